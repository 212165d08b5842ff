"""Fates, descendants and uncertainty against lineage truth (issue 10).

Prints tables:

1. fate probabilities (``tl.fates``) vs the true fate probabilities of the early cells of
   ``datasets.lineage_branching`` (Pearson, pooled over the branches) and predicted vs true
   expected descendants (Spearman), for 3 seeds, with the estimated σ and with the true σ;
2. the spread kept by the stochastic simulation: mass-weighted total variance of the SDE
   (and ODE) rollout from the first time point over the observed total variance, per time;
3. coverage: share of cells whose true growth lies within ±2 sd of the ensemble mean, per
   time point, on the growth-truth generators ``lineage_branching``, ``two_gene_grn``,
   ``three_gene_switch`` and the Gaussian 50-D bifurcation;
4. timings: ``tl.fates`` on ~10k cells, ensemble of 5 vs one fit;
5. CellRank 2 fate probabilities from the same vgfm velocities (VelocityKernel in the fitted
   representation, alone or with a ConnectivityKernel; terminal states = the branches at the
   last time), Pearson with the true fates of the same early cells as table 1, when
   ``cellrank`` is importable (``pip install 'vgfm[cellrank]'``);
6. the spread kept by the stochastic simulation on simulation gene 2-D, dyngen 5-D (benchmark
   files, found as ``benchmarks/validity.py`` does) and the Gaussian 50-D bifurcation: fit with
   the defaults, simulate the SDE (``tl.simulate(stochastic=True)``) and the ODE from every
   first-snapshot cell to every observed time, and report per time the mass-weighted variance
   ratio and the energy distance over its two-half floor (target: ratio in [0.9, 1.1], energy
   distance <= 2x the floor).  The SDE is integrated, on the same fit, with every scheme of
   ``--sde-methods`` (default: the stochastic Heun default and Euler-Maruyama) and every
   score training length of ``--score-steps`` (default: the library's), so they are compared
   without refitting (columns ``{method}{steps}`` when several lengths are given).

Usage::

    python benchmarks/fates.py           # full run (~10 min on 2 CPU cores)
    python benchmarks/fates.py --quick   # smaller data and fewer steps, for development
    python benchmarks/fates.py --only-spread --seeds 0 1 2   # table 6 only
    python benchmarks/fates.py --only-cellrank --seeds 0 1 2 # tables 1 and 5 only
    python benchmarks/fates.py --only-timing                  # table 4's tl.fates on ~10k cells
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
from scipy.stats import pearsonr, spearmanr

import vgfm
from vgfm._core.metrics import energy_distance, energy_distance_floor, variance_ratio
from vgfm.tl._fates import _EndStates  # the soft kNN assignment of tl.fates

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validity  # benchmarks/validity.py: data folder and dataset loader

BRANCH = "branch"


FIT_OPTIONS: dict = {}


def _fit(adata, quick: bool, seed: int = 0):
    opts = dict(stage1_steps=600, stage2_steps=20) if quick else {}
    opts.update(FIT_OPTIONS)
    t0 = time.perf_counter()
    vgfm.tl.fit(adata, "time", use_rep="X", progress=False, seed=seed, **opts)
    return time.perf_counter() - t0


def _early(adata):
    return (adata.obs["time"] == adata.obs["time"].min()).to_numpy()


def _scores(adata, key: str) -> tuple[float, float]:
    e = _early(adata)
    truth = adata.obsm["true_fates"].to_numpy()[e]
    pred = adata.obsm[f"{key}_fates"][list(adata.obsm["true_fates"].columns)].to_numpy()[e]
    ok = np.isfinite(truth).all(1) & np.isfinite(pred).all(1)
    r = pearsonr(pred[ok].ravel(), truth[ok].ravel())[0]
    rho = spearmanr(adata.obs[f"{key}_descendants"].to_numpy()[e],
                    adata.obs["true_descendants"].to_numpy()[e])[0]
    return float(r), float(rho)


def fates_table(seeds, quick: bool, n_samples: int) -> tuple[pd.DataFrame, dict]:
    rows, kept = [], {}
    for s in seeds:
        a = vgfm.datasets.lineage_branching(150 if quick else 300,
                                            n_replicates=100 if quick else 200, seed=s)
        t_fit = _fit(a, quick, seed=s)
        t0 = time.perf_counter()
        vgfm.tl.fates(a, BRANCH, n_samples=n_samples, seed=s)
        t_fates = time.perf_counter() - t0
        r, rho = _scores(a, "vgfm")
        sigma_est = float(a.uns["vgfm"]["stochastic"]["sigma"])
        true_sigma = float(a.uns["dataset"]["params"]["noise_sd"])
        vgfm.tl.fates(a, BRANCH, n_samples=n_samples, seed=s, sigma=true_sigma,
                      key_added="true_sigma")
        r_t, rho_t = _scores(a, "true_sigma")
        growth_r = pearsonr(a.obs["vgfm_growth"], a.obs["true_growth"])[0]
        rows.append({"seed": s, "n_cells": a.n_obs, "sigma_est": sigma_est,
                     "fates_pearson": r, "desc_spearman": rho,
                     "fates_pearson@true_sigma": r_t, "desc_spearman@true_sigma": rho_t,
                     "growth_pearson(all cells)": growth_r, "fit_s": t_fit, "fates_s": t_fates})
        kept[s] = a
    return pd.DataFrame(rows), kept


def spread_table(a) -> pd.DataFrame:
    """Mass-weighted total variance of SDE/ODE rollouts over the observed one, per time."""
    times = np.sort(a.obs["time"].unique())
    vgfm.tl.simulate_stochastic(a, t_eval=times, seed=0)
    sde = a.uns["vgfm_trajectories"]
    x_ode, lm_ode = vgfm.VGFM.from_adata(a).simulate(a.X[_early(a)], times)
    rows = []
    for k, t in enumerate(times[1:], start=1):
        obs = np.asarray(a.X[(a.obs["time"] == t).to_numpy()], dtype=float)
        v_obs = obs.var(0).sum()
        out = {"time": t}
        for name, x, lm in (("sde", sde["x"][k], sde["log_mass"][k]), ("ode", x_ode[k], lm_ode[k])):
            w = np.exp(lm - lm.max())
            w = w / w.sum()
            mu = (w[:, None] * x).sum(0)
            out[f"{name}_var_ratio"] = float((w[:, None] * (x - mu) ** 2).sum() / v_obs)
        rows.append(out)
    return pd.DataFrame(rows)


#: Datasets of the stochastic spread check (names of ``validity.load_dataset``).
SPREAD_DATASETS = ("simulation_gene_2d", "dyngen_5d", "gaussian_50d_3t")
VARIANCE_RATIO_RANGE = (0.9, 1.1)
ENERGY_RATIO_LIMIT = 2.0


#: SDE integration schemes compared in table 6 (``sde_method`` of ``tl.simulate_stochastic``).
SDE_METHODS = ("heun", "euler")


def _spread_rows(a, name: str, seed: int, sigma: float | None = None,
                 quick: bool = False, methods=SDE_METHODS,
                 score_steps: tuple = (None,)) -> list[dict]:
    """Fit ``a`` (defaults), roll the first snapshot out with the SDE and the ODE, compare.

    For each score training length of ``score_steps`` (``None``: the default of
    ``tl.fit_stochastic``) the score is trained with the fit's seed, as
    ``tl.simulate(stochastic=True)`` does on first use, and the SDE runs once per scheme of
    ``methods`` on the same fit.
    """
    t_fit = _fit(a, quick=quick, seed=seed)
    cell_t = a.obs["time"].to_numpy(dtype=float)
    times = np.asarray(vgfm.VGFM.from_adata(a).times, dtype=float)
    runs, secs = {}, {}
    for n in score_steps:
        vgfm.tl.fit_stochastic(a, seed=seed, **({} if n is None else {"steps": int(n)}))
        for m in methods:
            kind = m if len(score_steps) == 1 else f"{m}{n}"
            t0 = time.perf_counter()
            vgfm.tl.simulate_stochastic(a, t_eval=times, seed=seed, sigma=sigma, sde_method=m)
            secs[kind] = time.perf_counter() - t0
            runs[kind] = a.uns["vgfm_trajectories"]
    vgfm.tl.simulate(a, t_eval=times, seed=seed)
    runs["ode"] = a.uns["vgfm_trajectories"]
    sig = float(a.uns["vgfm"]["stochastic"]["sigma"]) if sigma is None else float(sigma)
    rows = []
    for k in range(1, len(times)):
        y = np.asarray(a.X[np.isclose(cell_t, times[k])], dtype=np.float64)
        floor = energy_distance_floor(y, seed=seed + k)
        row = {"dataset": name, "seed": seed, "time": f"{times[k]:g}", "sigma": sig}
        for kind, tr in runs.items():
            x = np.asarray(tr["x"][k], dtype=np.float64)
            w = np.exp(np.asarray(tr["log_mass"][k], dtype=np.float64))
            row[f"{kind}_var_ratio"] = variance_ratio(x, y, w)
            row[f"{kind}_ed/floor"] = energy_distance(x, y, w, seed=seed + k) / floor
        row["fit_s"] = t_fit
        for kind, sec in secs.items():
            row[f"{kind}_s"] = sec
        rows.append(row)
    return rows


def _kinds(methods, score_steps) -> list[str]:
    """Column prefixes of the SDE runs (see :func:`_spread_rows`)."""
    if len(score_steps) == 1:
        return list(methods)
    return [f"{m}{n}" for n in score_steps for m in methods]


def stochastic_spread_table(seeds, data_dir=None, sigma: float | None = None,
                            quick: bool = False, methods=SDE_METHODS,
                            score_steps: tuple = (None,)) -> pd.DataFrame:
    """Spread of SDE and ODE rollouts vs the observed snapshots (default fits).

    One row per dataset, seed and observed time after the first; ``{m}_var_ratio`` is the
    mass-weighted total variance over the observed one for each SDE scheme ``m`` of
    ``methods`` and the ODE (``ode``), ``{m}_ed/floor`` the mass-weighted energy distance over
    the two-half floor of the observed cells.
    """
    ddir = validity.find_data_dir(data_dir)
    rows = []
    for name in SPREAD_DATASETS:
        for s in seeds:
            try:
                a = validity.load_dataset(name, ddir)
            except FileNotFoundError as err:
                print(f"  {name}: skipped ({err})", file=sys.stderr)
                break
            rows += _spread_rows(a, name, s, sigma=sigma, quick=quick, methods=methods,
                                 score_steps=score_steps)
            print(f"  [spread] {name} seed {s} done", file=sys.stderr, flush=True)
    tab = pd.DataFrame(rows)
    if tab.empty:
        return tab
    lo, hi = VARIANCE_RATIO_RANGE
    for kind in (*_kinds(methods, score_steps), "ode"):
        ok = tab[f"{kind}_var_ratio"].between(lo, hi) & (tab[f"{kind}_ed/floor"]
                                                         <= ENERGY_RATIO_LIMIT)
        tab[f"{kind}_pass"] = np.where(ok, "PASS", "FAIL")
    return tab


def coverage_table(a, name: str, reg_m_spread: float = 4.0) -> tuple[pd.DataFrame, dict]:
    ref = float(a.uns["vgfm"]["train_seconds"])
    t0 = time.perf_counter()
    vgfm.tl.ensemble(a, n_models=5, reg_m_spread=reg_m_spread)
    t_ens = time.perf_counter() - t0
    name = f"{name} (reg_m_spread={reg_m_spread:g})"
    rows = []
    for t in np.sort(a.obs["time"].unique()):
        m = (a.obs["time"] == t).to_numpy()
        err = np.abs(a.obs["true_growth"].to_numpy()[m] - a.obs["vgfm_growth_mean"].to_numpy()[m])
        sd = a.obs["vgfm_growth_sd"].to_numpy()[m]
        rows.append({"dataset": name, "time": t, "n_cells": int(m.sum()),
                     "coverage_2sd": float(np.mean(err <= 2 * sd)),
                     "mean_sd": float(sd.mean()), "mean_abs_err": float(err.mean())})
    info = a.uns["vgfm_ensemble"]
    timing = {"dataset": name, "fit_s": ref, "ensemble5_s": t_ens,
              "members_s": float(np.sum(info["member_seconds"])),
              "ratio": float(np.sum(info["member_seconds"]) / ref)}
    return pd.DataFrame(rows), timing


#: CellRank 2 kernels of table 5: (VelocityKernel similarity, weight of a ConnectivityKernel).
#: ``correlation`` is CellRank's default; it centres the velocity and the displacement over
#: the features before comparing them, which in the 3 coordinates of ``lineage_branching``
#: removes one of three degrees of freedom, so ``cosine`` is reported too; ``0.8 vk + 0.2 ck``
#: is the combination CellRank's tutorials recommend.
CELLRANK_KERNELS = {
    "cr_vk": ("correlation", 0.0),
    "cr_vk_cosine": ("cosine", 0.0),
    "cr_0.8vk+0.2ck": ("correlation", 0.2),
    "cr_0.8vk_cosine+0.2ck": ("cosine", 0.2),
}
CELLRANK_NEIGHBORS = 30


def _import_cellrank():
    """``(cellrank, None)``, or ``(None, reason)`` when it is not importable."""
    try:
        with warnings.catch_warnings():
            # cellrank 2.0.x reads numpy.core.overrides at import (deprecated since numpy 2.0)
            warnings.simplefilter("ignore", DeprecationWarning)
            import cellrank as cr
    except ImportError as err:
        return None, f"cellrank is not importable ({err}); pip install 'vgfm[cellrank]'"
    return cr, None


def _early_agreement(adata, pred: pd.DataFrame) -> dict:
    """Predicted vs true fates of the early cells: Pearson pooled over branches, and more.

    Same cells and pooling as table 1 (``_scores``): early cells with a finite truth (a
    founder none of whose replicate trees survived has ``NaN`` true fates) and prediction.
    Pearson ignores an affine bias, e.g. a fate shifted by ignoring growth, so the mean
    absolute error and the mean predicted share of each branch (``share_<branch>``; the
    truth is in the row ``truth``) are returned too.
    """
    e = _early(adata)
    names = list(adata.obsm["true_fates"].columns)
    truth = adata.obsm["true_fates"][names].to_numpy()[e]
    p = pred[names].to_numpy()[e]
    ok = np.isfinite(truth).all(1) & np.isfinite(p).all(1)
    out = {"fates_pearson": float(pearsonr(p[ok].ravel(), truth[ok].ravel())[0]),
           "fates_mae": float(np.abs(p[ok] - truth[ok]).mean())}
    out.update({f"share_{n}": float(p[ok, j].mean()) for j, n in enumerate(names)})
    return out


def cellrank_fates(adata, cr, *, similarity: str = "correlation",
                   connectivity_weight: float = 0.0) -> tuple[pd.DataFrame, float]:
    """CellRank 2 fate probabilities towards the branches at the last time point.

    The VelocityKernel reads vgfm's velocity (``obsm["vgfm_velocity"]``) against the
    displacements to the kNN neighbours in the representation the model was fitted in
    (``use_rep``), on a kNN graph (``CELLRANK_NEIGHBORS``) built in that representation; the
    terminal states are the cells of each branch observed at the last time point (the
    targets of ``tl.fates``). Returns a cells x branches DataFrame (rows sum to 1) and the
    median cosine between a cell's expected one-step move under the kernel, ``T x - x``, and
    its vgfm velocity (1: the walk follows the velocity).
    """
    b = adata.copy()
    use_rep = vgfm.get_model(b).use_rep
    x = np.asarray(b.X if use_rep == "X" else b.obsm[use_rep], dtype=np.float64)
    v = np.asarray(b.obsm["vgfm_velocity"], dtype=np.float64)
    b.obsm["X_cellrank"] = x
    b.obsm["vgfm_velocity"] = v
    sc.pp.neighbors(b, use_rep="X_cellrank", n_neighbors=CELLRANK_NEIGHBORS)
    last = (b.obs["time"] == b.obs["time"].max()).to_numpy()
    terminal = {str(br): list(b.obs_names[last & (b.obs[BRANCH] == br).to_numpy()])
                for br in b.obs[BRANCH].cat.categories}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.testing keywords, dense-solver fallback notes
        k = cr.kernels.VelocityKernel(b, attr="obsm", xkey="X_cellrank", vkey="vgfm_velocity")
        k.compute_transition_matrix(similarity=similarity, show_progress_bar=False)
        if connectivity_weight > 0:
            ck = cr.kernels.ConnectivityKernel(b).compute_transition_matrix()
            k = (1.0 - connectivity_weight) * k + connectivity_weight * ck
        est = cr.estimators.GPCCA(k)
        est.set_terminal_states(terminal)
        est.compute_fate_probabilities(show_progress_bar=False)
    step = k.transition_matrix @ x - x
    cos = (step * v).sum(1) / (np.linalg.norm(step, axis=1) * np.linalg.norm(v, axis=1) + 1e-12)
    fp = est.fate_probabilities
    return pd.DataFrame(np.asarray(fp), index=b.obs_names, columns=list(fp.names)), float(
        np.median(cos))


def sde_path_fates(adata, *, n_samples: int, seed: int,
                   n_neighbors: int = 15) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fates of the early cells from ``tl.simulate_stochastic`` paths, with and without mass.

    A control for table 5: ``n_samples`` SDE paths per early cell to the last time, each end
    point assigned softly to the branches of its ``n_neighbors`` nearest cells observed
    there (as ``tl.fates`` does); returns the mass-weighted shares (``tl.fates``'s
    definition) and the plain shares of paths (mass ignored, like a Markov chain's fate
    probabilities). Rows: obs names of the early cells.
    """
    b = adata.copy()
    t = b.obs["time"].to_numpy(dtype=float)
    vgfm.tl.simulate_stochastic(b, n_samples=n_samples, t_eval=[t.min(), t.max()], seed=seed)
    tr = b.uns["vgfm_trajectories"]
    use_rep = vgfm.get_model(b).use_rep
    x = np.asarray(b.X if use_rep == "X" else b.obsm[use_rep], dtype=np.float64)
    last = t == t.max()
    end = _EndStates(x[last], pd.Categorical(b.obs[BRANCH])[last], n_neighbors)  # as tl.fates
    names = end.names
    share = end(np.asarray(tr["x"][-1], dtype=np.float64))
    m = np.exp(np.asarray(tr["log_mass"][-1], dtype=np.float64))
    start = pd.Index(np.asarray(tr["start_obs"]).astype(str))
    plain = pd.DataFrame(share, columns=names).groupby(start).mean()
    mass = pd.Series(m).groupby(start).sum()
    weighted = pd.DataFrame(share * m[:, None], columns=names).groupby(start).sum().div(
        mass, axis=0)
    return weighted, plain


def cellrank_table(kept: dict, n_samples_more: int = 200) -> pd.DataFrame | str:
    """Table 5: CellRank 2 fates from the same vgfm velocities, against the lineage truth.

    One row per seed and method: ``tl.fates`` as in table 1, ``tl.fates`` with
    ``n_samples_more`` descendants per cell (how much of the gap is Monte-Carlo error), and
    :func:`sde_path_fates` (the same SDE's paths with and without their mass: how much the
    growth weighting moves the fates), and each kernel of ``CELLRANK_KERNELS``;
    ``fates_pearson`` on the same early cells, pooled
    over the branches, with the mean absolute error and mean shares of
    :func:`_early_agreement` (row ``truth``: the true shares); ``step_cos``: see
    :func:`cellrank_fates`.
    """
    cr, reason = _import_cellrank()
    if cr is None:
        return f"skipped: {reason}"
    rows = []
    for s, a in kept.items():
        names = list(a.obsm["true_fates"].columns)
        rows.append({"seed": s, "method": "truth",
                     **_early_agreement(a, a.obsm["true_fates"][names])})
        rows.append({"seed": s, "method": "tl.fates (table 1)",
                     **_early_agreement(a, a.obsm["vgfm_fates"])})
        b = a.copy()
        t0 = time.perf_counter()
        vgfm.tl.fates(b, BRANCH, n_samples=n_samples_more, seed=s, key_added="more")
        rows.append({"seed": s, "method": f"tl.fates, n_samples={n_samples_more}",
                     **_early_agreement(b, b.obsm["more_fates"]),
                     "seconds": time.perf_counter() - t0})
        weighted, plain = sde_path_fates(a, n_samples=n_samples_more, seed=s)
        for label, df in (("SDE paths, mass-weighted", weighted),
                          ("SDE paths, mass ignored", plain)):
            rows.append({"seed": s, "method": f"{label} (n_samples={n_samples_more})",
                         **_early_agreement(a, df.reindex(a.obs_names))})
        for name, (similarity, w_ck) in CELLRANK_KERNELS.items():
            t0 = time.perf_counter()
            fp, cos = cellrank_fates(a, cr, similarity=similarity, connectivity_weight=w_ck)
            rows.append({"seed": s, "method": name, **_early_agreement(a, fp),
                         "step_cos": cos, "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="training option passed to vgfm.tl.fit (e.g. reg_m=3), repeatable")
    ap.add_argument("--only-fates", action="store_true", help="print table 1 only")
    ap.add_argument("--only-spread", action="store_true", help="print table 6 only")
    ap.add_argument("--only-cellrank", action="store_true",
                    help="print tables 1 and 5 only (CellRank 2 from the same velocities)")
    ap.add_argument("--data-dir", default=None,
                    help="folder of the benchmark CSV files (default: as benchmarks/validity.py)")
    ap.add_argument("--sigma", type=float, default=None,
                    help="SDE noise level of table 6 (default: estimated from the couplings)")
    ap.add_argument("--sde-methods", nargs="+", default=list(SDE_METHODS),
                    help="SDE schemes compared in table 6 (default: heun euler)")
    ap.add_argument("--score-steps", type=int, nargs="+", default=None,
                    help="score training lengths compared in table 6 (default: the library's)")
    ap.add_argument("--only-timing", action="store_true",
                    help="table 4's tl.fates timing on ~10k cells only (default fit)")
    args = ap.parse_args()
    FIT_OPTIONS.update(validity._parse_set(args.option))  # Python literals: 5, 0.8, None
    if FIT_OPTIONS:
        print("fit options:", FIT_OPTIONS)
    pd.set_option("display.width", 250)
    pd.set_option("display.float_format", lambda v: f"{v:.3f}")
    n_samples = 20 if args.quick else 50
    t_start = time.perf_counter()

    if args.only_spread:
        _print_spread(args)
        print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
        return
    if args.only_timing:
        _print_fates_timing(args, n_samples)
        print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
        return
    ft, kept = fates_table(args.seeds, args.quick, n_samples)
    print("\n## 1. fates and descendants vs lineage truth (lineage_branching, early cells)")
    print(ft.to_string(index=False))
    print(f"mean fates Pearson {ft['fates_pearson'].mean():.3f} (target >= 0.8); "
          f"mean descendants Spearman {ft['desc_spearman'].mean():.3f} (target >= 0.7)")

    if args.only_fates:
        return
    if args.only_cellrank:
        _print_cellrank(kept)
        print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
        return
    a0 = kept[args.seeds[0]]
    print("\n## 2. spread kept by the simulation (mass-weighted total variance / observed)")
    print(spread_table(a0.copy()).to_string(index=False))

    print("\n## 3. growth coverage of the ensemble (true growth within +-2 sd of the mean)")
    cov1, tim1 = coverage_table(a0.copy(), "lineage_branching")
    cov0, tim0 = coverage_table(a0.copy(), "lineage_branching", reg_m_spread=1.0)
    grn = vgfm.datasets.two_gene_grn(150 if args.quick else 400, seed=0)
    _fit(grn, args.quick)
    cov2, tim2 = coverage_table(grn, "two_gene_grn")
    sw = vgfm.datasets.three_gene_switch(150 if args.quick else 300, seed=0)
    _fit(sw, args.quick)
    cov3, _ = coverage_table(sw, "three_gene_switch")
    g50 = vgfm.datasets.gaussian_bifurcation(n_dims=50, growth_factor=10.0, seed=0)
    _fit(g50, args.quick)
    cov4, _ = coverage_table(g50, "gaussian_bifurcation_50d")
    cov = pd.concat([cov1, cov0, cov2, cov3, cov4])
    print(cov.to_string(index=False))
    pooled = (cov.assign(hit=cov["coverage_2sd"] * cov["n_cells"]).groupby("dataset", sort=False)
              [["hit", "n_cells"]].sum())
    print("coverage over all cells:", (pooled["hit"] / pooled["n_cells"]).round(3).to_dict(),
          "(target >= 0.8)")
    print("mean over time points:",
          cov.groupby("dataset", sort=False)["coverage_2sd"].mean().round(3).to_dict())

    print("\n## 4. timings")
    big = vgfm.datasets.lineage_branching(300 if args.quick else 1500, n_replicates=2, seed=10)
    big.uns["vgfm"] = a0.uns["vgfm"]  # the seed-0 model and its stochastic part
    t0 = time.perf_counter()
    vgfm.tl.fates(big, BRANCH, n_samples=n_samples)
    t_big = time.perf_counter() - t0
    timing = pd.DataFrame([tim1, tim0, tim2])
    print(f"tl.fates on {big.n_obs} cells x {n_samples} samples: {t_big:.1f} s (target <= 120 s)")
    print(timing.to_string(index=False))
    print("ensemble of 5 / one fit (members' training seconds over the reference fit's): "
          f"{timing['ratio'].round(2).tolist()} (target <= 3)")

    _print_cellrank(kept)
    _print_spread(args)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


def _print_cellrank(kept: dict) -> None:
    print("\n## 5. CellRank 2 fate probabilities from the same vgfm velocities (Pearson with the "
          "true fates of early cells, pooled over branches; step_cos: median cosine between "
          "the kernel's expected step and the velocity)")
    tab = cellrank_table(kept)
    if isinstance(tab, str):
        print(tab)
        return
    print(tab.to_string(index=False))
    for col in ("fates_pearson", "fates_mae"):
        wide = tab.pivot(index="method", columns="seed", values=col)
        wide["mean"] = wide.mean(axis=1)
        print(f"\n{col} per seed")
        print(wide.loc[tab["method"].unique()].drop(index="truth").to_string())


def _print_fates_timing(args, n_samples: int) -> None:
    """Table 4's ``tl.fates`` timing on ~10k cells, per SDE scheme (score trained first)."""
    import os

    a0 = vgfm.datasets.lineage_branching(150 if args.quick else 300,
                                         n_replicates=100 if args.quick else 200, seed=0)
    t_fit = _fit(a0, args.quick, seed=0)
    t0 = time.perf_counter()
    vgfm.tl.fit_stochastic(a0)
    t_score = time.perf_counter() - t0
    big = vgfm.datasets.lineage_branching(300 if args.quick else 1500, n_replicates=2, seed=10)
    big.uns["vgfm"] = a0.uns["vgfm"]  # the seed-0 model and its stochastic part, as table 4
    print(f"\n## 4. timing of tl.fates (fit {t_fit:.0f} s, score {t_score:.0f} s on "
          f"{a0.n_obs} cells)")
    for m in args.sde_methods:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        vgfm.tl.fates(big, BRANCH, n_samples=n_samples, sde_method=m)
        t_big = time.perf_counter() - t0
        print(f"tl.fates(sde_method={m!r}) on {big.n_obs} cells x {n_samples} samples: "
              f"{t_big:.1f} s (target <= 120 s); load average before/after "
              f"{load:.2f}/{os.getloadavg()[0]:.2f}")


def _print_spread(args) -> None:
    print("\n## 6. stochastic spread on simulation gene 2-D, dyngen 5-D, Gaussian 50-D "
          "(default fits; first snapshot rolled out to every observed time)")
    methods = tuple(args.sde_methods)
    steps = tuple(args.score_steps) if args.score_steps else (None,)
    tab = stochastic_spread_table(args.seeds, args.data_dir, sigma=args.sigma, quick=args.quick,
                                  methods=methods, score_steps=steps)
    if tab.empty:
        print("skipped: no dataset could be loaded")
        return
    print(tab.to_string(index=False))
    lo, hi = VARIANCE_RATIO_RANGE
    for kind in (*_kinds(methods, steps), "ode"):
        n_ok = int((tab[f"{kind}_pass"] == "PASS").sum())
        print(f"{kind.upper()}: {n_ok}/{len(tab)} (dataset, seed, time) rows pass "
              f"(variance ratio in [{lo}, {hi}] and ED <= {ENERGY_RATIO_LIMIT:g} x floor); "
              f"variance ratio range [{tab[f'{kind}_var_ratio'].min():.3f}, "
              f"{tab[f'{kind}_var_ratio'].max():.3f}], ED/floor max "
              f"{tab[f'{kind}_ed/floor'].max():.2f}")
    worst = tab.groupby("dataset").agg(**{
        f"{kind}_{stat}": (f"{kind}_{col}", fn)
        for kind in (*_kinds(methods, steps), "ode")
        for stat, col, fn in (("vr_min", "var_ratio", "min"), ("vr_max", "var_ratio", "max"),
                              ("ed_max", "ed/floor", "max"))
    })
    print("worst values per dataset:")
    print(worst.T.to_string())


if __name__ == "__main__":
    main()
