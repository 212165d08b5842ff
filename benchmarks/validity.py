"""Validity suite (issue 9): measure what a user relies on, with vgfm's defaults.

Blocks (``--blocks``, all by default):

``holdout``
    Every interior time point left out in turn; W1 / RME (and the spread) at the held-out time,
    mean over the held-out times, for ``vgfm`` and the growth-free ``otcfm`` in the same run
    (simulation gene, dyngen, mouse haematopoiesis, iPSC, Gaussian 50-D with 3 time points).
``growth``
    Learned growth ``obs["vgfm_growth"]`` against the per-cell truth ``obs["true_growth"]`` of
    generators with known growth (``two_gene_grn``, ``gaussian_bifurcation`` 50-D and
    1000-D, ``three_gene_switch``): Pearson, Spearman, MAE and MAE in units of sd(true growth) per time
    point, over all cells, over all cells but the last time point, and the last time point
    alone (it has no outgoing interval). Gaussian 50-D: mean growth of the upper / lower
    cluster at t = 0 against ln 10 / 0.
``no_false_growth``
    The same generators without birth or death and with equal population sizes, and the
    krumsiek11 time course (four realisations of a branching gene network without growth,
    cut into 5 equal-size snapshots of consecutive time steps; ``krumsiek11_binned``, needs the
    data folder): mean |g| x (t_last - t_first) per time point (0 is the truth).
``spread``
    At every time point after the first: mass-weighted predicted / observed total variance,
    energy distance and its two-half floor (``vgfm._core.metrics.spread``), on the benchmark
    files including Gaussian 1000-D.
``alltime``
    W1 / RME at the training time points (METHOD.md §5) and wall time of ``fit`` +
    ``evaluate``; shares its fits with ``spread``.

Everything goes through the public defaults (``vgfm.tl.fit`` + ``vgfm.tl.evaluate``, as
``benchmarks/paper_table.py``), so the suite measures whatever the defaults are. Published
numbers of METHOD.md §7 and the acceptance targets of issue 9 are printed beside ours.

Usage::

    python benchmarks/validity.py                       # all blocks, seeds 0 1 2
    python benchmarks/validity.py --seeds 0 --blocks growth no_false_growth
    python benchmarks/validity.py --quick --out /tmp/v.json
    python benchmarks/validity.py --set reg_m=5 --set stage2_steps=100 --blocks growth

From Python (every block accepts training options as keyword arguments)::

    import sys; sys.path.insert(0, "benchmarks")
    import validity
    res = validity.growth_block([0], reg_m=5.0)
    print(validity.format_growth(res))

The benchmark files live in ``../shared/data`` beside the checkout (or ``VGFM_DATA_DIR``);
blocks that need them say so and are skipped when the files are absent (the generator-based
blocks ``growth`` and ``no_false_growth`` always run; the latter then without krumsiek11).
"""

from __future__ import annotations

import argparse
import ast
import datetime as _dt
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr

import vgfm
from vgfm._core.metrics import spread, wasserstein1

# --------------------------------------------------------------------------------------------
# configuration: datasets, anchors (METHOD.md §7, §5) and targets (issue 9 acceptance)
# --------------------------------------------------------------------------------------------
#: Step counts of ``--quick`` (a smoke run of the whole suite; never the defaults).
QUICK_OPTIONS: dict[str, Any] = {"stage1_steps": 300, "stage2_steps": 10}

HOLDOUT_DATASETS: tuple[str, ...] = (
    "simulation_gene_2d",
    "dyngen_5d",
    "mouse_hematopoiesis_2d",
    "ipsc_bifurcation_4d",
    "gaussian_50d_3t",
)
FULL_DATASETS: tuple[str, ...] = (
    "simulation_gene_2d",
    "dyngen_5d",
    "mouse_hematopoiesis_2d",
    "ipsc_bifurcation_4d",
    "gaussian_50d",
    "gaussian_1000d_regen",
)
GENERATORS: tuple[str, ...] = ("two_gene_grn", "gaussian_bifurcation_50d", "three_gene_switch",
                               "gaussian_bifurcation_1000d")
#: Growth-free data files of the no_false_growth block (besides the growth-free generators).
NO_GROWTH_FILES: tuple[str, ...] = ("krumsiek11_binned",)
#: Snapshots cut from the krumsiek11 time course (equal-width bins of its 160 time steps).
KRUMSIEK_BINS = 5

#: Published hold-out W1 at the held-out times (METHOD.md §7); value = (per time, mean).
HOLDOUT_ANCHORS: dict[str, dict[str, tuple[tuple[float, ...], float]]] = {
    "simulation_gene_2d": {
        "Var-RUOT": ((0.0880, 0.1043, 0.0943), 0.0955),
        "DeepRUOT": ((0.096, 0.089, 0.118), 0.101),
        "TIGON": ((0.121, 0.093, 0.239), float(np.mean([0.121, 0.093, 0.239]))),
        "CRUFM (measured here, t2 only)": ((math.nan, 0.211, math.nan), math.nan),
    },
    "mouse_hematopoiesis_2d": {
        "Var-RUOT": ((0.270,), 0.270),
        "TIGON": ((0.584,), 0.584),
        "DeepRUOT": ((0.624,), 0.624),
    },
}
HOLDOUT_TARGETS = {
    "simulation_gene_2d": "mean W1 <= 0.090 and <= 0.9 x otcfm",
    "mouse_hematopoiesis_2d": "W1 at t1 <= 0.26",
    "dyngen_5d": "mean W1 <= 1.0",
}
#: All-time W1 / RME anchors (METHOD.md §5 and §7).
ALLTIME_ANCHORS: dict[str, dict[str, tuple[float, float | None]]] = {
    "simulation_gene_2d": {
        "OT-CFM": (0.302, None), "TIGON": (0.099, 0.065), "DeepRUOT": (0.068, 0.016),
        "VGFM (paper)": (0.046, 0.006), "authors' code, re-run": (0.058, 0.011),
        "CRUFM (measured here)": (0.026, 0.002),
    },
    "dyngen_5d": {
        "OT-CFM": (3.926, None), "TIGON": (1.029, 0.542), "DeepRUOT": (0.474, 0.199),
        "VGFM (paper)": (0.420, 0.053), "authors' code, re-run": (0.56, 0.09),
        "CRUFM (measured here)": (0.202, 0.033),
    },
    "gaussian_1000d_regen": {"OT-CFM": (10.126, None), "VGFM (paper)": (3.010, 0.037)},
}
ALLTIME_TARGETS = {
    "simulation_gene_2d": "W1 <= 0.046, RME <= 0.006; fit+evaluate no slower than before",
    "dyngen_5d": "W1 <= 0.42, RME <= 0.053; fit+evaluate no slower than before",
}
GROWTH_TARGETS = {
    "two_gene_grn": "all cells: Pearson >= 0.9, MAE <= 0.35 sd(true)  (CRUFM measured: 0.80)",
    "three_gene_switch": "all cells: Pearson >= 0.9, MAE <= 0.35 sd(true)",
    "gaussian_bifurcation_50d": "t=0: upper within 10 % of ln 10 = 2.303, lower within +-0.23",
    "gaussian_bifurcation_1000d": "t=0: upper within 10 % of ln 10 = 2.303, lower within +-0.23 "
                                  "(the construction of gaussian_1000d_regen)",
}
NO_FALSE_GROWTH_LIMIT = 0.2
VARIANCE_RATIO_RANGE = (0.9, 1.1)
ENERGY_RATIO_LIMIT = 2.0

logger = logging.getLogger("vgfm.benchmarks.validity")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def find_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Benchmark folder: ``explicit``, ``$VGFM_DATA_DIR``, else ``shared/data`` beside the checkout.

    The checkout's parent and grandparent are searched (a worktree under ``wt/`` finds the
    main ``shared/data``). ``None`` when no folder holds ``simulation_gene_2d.csv``.
    """
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    env = os.environ.get(vgfm.datasets.DATA_DIR_ENV)
    if env:
        candidates.append(Path(env))
    root = Path(__file__).resolve().parents[1]
    candidates += [root.parent / "shared" / "data", root.parent.parent / "shared" / "data"]
    for c in candidates:
        if (c / "simulation_gene_2d.csv").is_file():
            return c
    return None


def _missing_data_message() -> str:
    return (
        "Benchmark data not found: set VGFM_DATA_DIR to the folder holding the benchmark CSV "
        "files (simulation_gene_2d.csv, ...) or run from a checkout with ../shared/data beside "
        "it. The blocks that need these files were not measured."
    )


def load_dataset(name: str, ddir: Path | None):
    """A benchmark file (``vgfm.datasets.load_benchmark``) or the generated Gaussian 50-D
    time course with 3 time points (``gaussian_50d_3t``, data seed 0)."""
    if name == "gaussian_50d_3t":
        return vgfm.datasets.gaussian_bifurcation(n_dims=50, n_times=3, seed=0)
    if ddir is None:
        raise FileNotFoundError(_missing_data_message())
    return vgfm.datasets.load_benchmark(name, ddir)


def load_krumsiek11_binned(ddir: Path | None, n_bins: int = KRUMSIEK_BINS):
    """Growth-free snapshots from ``krumsiek11_timeseries.csv`` (scanpy's krumsiek11 simulation).

    Four realisations of a branching myeloid gene network (11 genes, 160 time steps each, no
    division or death) are cut into ``n_bins`` equal-width bins of time steps; every bin holds
    the same number of cells from every realisation, so the population sizes are equal and the
    true growth is 0 everywhere.  Unlike the generators, each snapshot is a stretch of
    trajectory (cells at different stages of one progression), the shape in which motion is
    most easily read as growth.  ``obs["time"]`` is the bin index.
    """
    import anndata as ad
    import pandas as pd

    if ddir is None:
        raise FileNotFoundError(_missing_data_message())
    df = pd.read_csv(Path(ddir) / "krumsiek11_timeseries.csv")
    genes = [c for c in df.columns if c not in ("realization", "time_step")]
    steps = df["time_step"].to_numpy(dtype=float)
    width = (steps.max() + 1) / n_bins
    time = np.floor(steps / width)
    adata = ad.AnnData(df[genes].to_numpy(dtype=np.float32),
                       obs=pd.DataFrame({"time": time, "realization": df["realization"].to_numpy()},
                                        index=[f"cell{i}" for i in range(len(df))]))
    adata.var_names = genes
    return adata


def _needs_files(name: str) -> bool:
    return name != "gaussian_50d_3t"


def make_generator(name: str, seed: int, *, growth: bool = True):
    """Generator data with per-cell true growth; ``growth=False``: no birth, no death, equal sizes."""
    if name == "two_gene_grn":
        if growth:
            return vgfm.datasets.two_gene_grn(seed=seed)
        return vgfm.datasets.two_gene_grn(birth_rate=0.0, death_rate=0.0, seed=seed)
    if name in ("gaussian_bifurcation_50d", "gaussian_bifurcation_1000d"):
        return vgfm.datasets.gaussian_bifurcation(
            n_dims=int(name.rsplit("_", 1)[1][:-1]), growth_factor=10.0 if growth else 1.0,
            seed=seed,
            # the 1000-D benchmark file's noise (sd sqrt(0.005)); 50-D: the generator's default
            **({"noise_sd": math.sqrt(0.005)} if name.endswith("1000d") else {}),
        )
    if name == "three_gene_switch":
        if growth:
            return vgfm.datasets.three_gene_switch(seed=seed)
        return vgfm.datasets.three_gene_switch(birth_rate=0.0, death_rate=0.0, seed=seed)
    raise ValueError(f"unknown generator {name!r}; expected one of {list(GENERATORS)}")


# --------------------------------------------------------------------------------------------
# fitting through the public defaults
# --------------------------------------------------------------------------------------------
def _merge_options(quick: bool, options: dict[str, Any]) -> dict[str, Any]:
    merged = dict(QUICK_OPTIONS) if quick else {}
    merged.update(options)
    return merged


def fit_evaluate(adata, *, method: str = "vgfm", seed: int = 0, holdout=None,
                 **options: Any) -> dict[str, Any]:
    """``vgfm.tl.fit`` + ``vgfm.tl.evaluate`` on ``use_rep="X"`` with timings.

    Returns ``{"model", "table", "fit_s", "fit_evaluate_s"}``; ``adata`` receives the usual
    ``obs["vgfm_growth"]`` etc.
    """
    t0 = time.perf_counter()
    model = vgfm.tl.fit(adata, "time", use_rep="X", method=method, seed=seed, progress=False,
                        holdout_time=holdout, **options)
    t1 = time.perf_counter()
    table = vgfm.tl.evaluate(adata, model)
    t2 = time.perf_counter()
    return {"model": model, "table": table, "fit_s": t1 - t0, "fit_evaluate_s": t2 - t0}


def _rollout(model, adata) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Roll all first-time cells out to every time point (mass 1 each), as ``tl.evaluate``."""
    x = np.asarray(adata.X, dtype=np.float32)
    cell_t = adata.obs["time"].to_numpy(dtype=float)
    times = np.asarray(model.times, dtype=float)
    start = np.isclose(cell_t, times[0])
    xs, lms = model.simulate(x[start], times)
    return times, xs, lms, cell_t


def _spread_at(xs_k: np.ndarray, lm_k: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    m = np.exp(lm_k.astype(np.float64))
    r = spread(xs_k, y, m, seed=seed)
    return {"variance_ratio": r.variance_ratio, "energy_distance": r.energy_distance,
            "energy_floor": r.energy_floor, "energy_ratio": r.energy_ratio,
            "off_data_mass": r.off_data_mass}


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _safe(fn: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
    """Run one measurement; a failure is recorded (and printed) instead of ending the run."""
    try:
        return fn()
    except Exception as exc:  # a benchmark records failures and goes on
        _progress(f"  FAILED {what}: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


def _stats(values: Iterable[float]) -> dict[str, float]:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"mean": math.nan, "sd": math.nan, "n": 0}
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "n": int(a.size)}


# --------------------------------------------------------------------------------------------
# block: hold-out
# --------------------------------------------------------------------------------------------
def holdout_block(
    seeds: Sequence[int] = (0, 1, 2),
    *,
    datasets: Sequence[str] = HOLDOUT_DATASETS,
    methods: Sequence[str] = ("vgfm", "otcfm"),
    data_dir: str | os.PathLike[str] | None = None,
    quick: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Each interior time point left out in turn: W1 / RME / spread at the held-out time.

    ``options`` are training options forwarded to ``vgfm.tl.fit`` (``reg_m=...``, ...);
    ``quick`` adds :data:`QUICK_OPTIONS` under them.
    """
    opts = _merge_options(quick, options)
    ddir = find_data_dir(data_dir)
    out: dict[str, Any] = {"block": "holdout", "seeds": list(seeds), "options": opts,
                           "datasets": {}}
    for name in datasets:
        if _needs_files(name) and ddir is None:
            out["datasets"][name] = {"skipped": _missing_data_message()}
            continue
        adata = load_dataset(name, ddir)
        times = np.sort(adata.obs["time"].unique())
        interior = [float(t) for t in times[1:-1]]
        if not interior:
            out["datasets"][name] = {"skipped": f"only {len(times)} time points, none interior"}
            continue
        entry: dict[str, Any] = {"held_out_times": interior, "methods": {}}
        for method in methods:
            runs = []
            for seed in seeds:
                for t in interior:
                    def one(t=t, seed=seed, method=method, adata=adata) -> dict[str, Any]:
                        res = fit_evaluate(adata, method=method, seed=seed, holdout=t, **opts)
                        row = res["table"][res["table"]["held_out"]].iloc[0]
                        tt, xs, lms, cell_t = _rollout(res["model"], adata)
                        k = int(np.argmin(np.abs(tt - t)))
                        y = np.asarray(adata.X[np.isclose(cell_t, t)], dtype=np.float64)
                        rec = {"w1": float(row["w1"]), "rme": float(row["rme"]),
                               "fit_evaluate_s": res["fit_evaluate_s"]}
                        rec.update(_spread_at(xs[k], lms[k], y, seed=k))
                        return rec
                    rec = _safe(one, f"holdout {name} t={t:g} {method} seed {seed}")
                    rec.update({"seed": int(seed), "held_out": t})
                    runs.append(rec)
                    if "error" not in rec:
                        _progress(f"[holdout] {name} t={t:g} {method} seed {seed}: "
                                  f"W1 {rec['w1']:.4f} RME {rec['rme']:.4f} "
                                  f"var {rec['variance_ratio']:.2f} "
                                  f"ED/floor {rec['energy_ratio']:.2f} "
                                  f"({rec['fit_evaluate_s']:.1f} s)")
            entry["methods"][method] = {"runs": runs, "summary": _holdout_summary(runs, interior)}
        out["datasets"][name] = entry
    return out


def _holdout_summary(runs: list[dict[str, Any]], interior: list[float]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    per_time = {}
    for t in interior:
        rs = [r for r in ok if r["held_out"] == t]
        per_time[f"{t:g}"] = {k: _stats(r[k] for r in rs)
                              for k in ("w1", "rme", "variance_ratio", "energy_ratio")}
    # mean over held-out times within a seed, then mean ± sd over seeds
    seeds = sorted({r["seed"] for r in ok})
    per_seed = {k: [] for k in ("w1", "rme", "variance_ratio", "energy_ratio")}
    for s in seeds:
        rs = [r for r in ok if r["seed"] == s]
        if len(rs) == len(interior):
            for k in per_seed:
                per_seed[k].append(float(np.mean([r[k] for r in rs])))
    return {"per_time": per_time, "mean_over_times": {k: _stats(v) for k, v in per_seed.items()},
            "n_failed": len(runs) - len(ok)}


# --------------------------------------------------------------------------------------------
# block: growth against per-cell truth
# --------------------------------------------------------------------------------------------
def growth_agreement(pred: np.ndarray, true: np.ndarray, sd_true: float) -> dict[str, float]:
    """Pearson, Spearman, MAE and MAE / ``sd_true`` of predicted vs true growth."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    if len(pred) > 1 and np.std(pred) > 0 and np.std(true) > 0:
        pr, sr = float(pearsonr(pred, true)[0]), float(spearmanr(pred, true)[0])
    else:
        pr = sr = math.nan
    mae = float(np.mean(np.abs(pred - true)))
    return {"pearson": pr, "spearman": sr, "mae": mae,
            "mae_sd": mae / sd_true if sd_true > 0 else math.nan, "n": int(len(pred)),
            "mean_pred": float(pred.mean()), "mean_true": float(true.mean())}


def _growth_record(adata, name: str) -> dict[str, Any]:
    pred = adata.obs["vgfm_growth"].to_numpy(dtype=float)
    true = adata.obs["true_growth"].to_numpy(dtype=float)
    t = adata.obs["time"].to_numpy(dtype=float)
    times = np.sort(np.unique(t))
    sd = float(true.std())
    rec: dict[str, Any] = {"sd_true": sd, "per_time": {}}
    for tk in times:
        sel = t == tk
        rec["per_time"][f"{tk:g}"] = growth_agreement(pred[sel], true[sel], sd)
    rec["all"] = growth_agreement(pred, true, sd)
    rec["all_but_last"] = growth_agreement(pred[t < times[-1]], true[t < times[-1]], sd)
    rec["last"] = rec["per_time"][f"{times[-1]:g}"]
    if name.startswith("gaussian_bifurcation"):
        at0 = t == times[0]
        upper = at0 & (adata.obs["cluster"].to_numpy() == "upper")
        lower = at0 & (adata.obs["cluster"].to_numpy() == "lower")
        rec["upper_t0"] = float(pred[upper].mean())
        rec["lower_t0"] = float(pred[lower].mean())
    return rec


def growth_block(
    seeds: Sequence[int] = (0, 1, 2),
    *,
    generators: Sequence[str] = GENERATORS,
    quick: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Learned per-cell growth against the generators' truth (data seed = run seed).

    ``options`` are training options forwarded to ``vgfm.tl.fit``.
    """
    opts = _merge_options(quick, options)
    out: dict[str, Any] = {"block": "growth", "seeds": list(seeds), "options": opts,
                           "generators": {}}
    for name in generators:
        runs = []
        for seed in seeds:
            def one(seed=seed, name=name) -> dict[str, Any]:
                adata = make_generator(name, seed, growth=True)
                res = fit_evaluate(adata, seed=seed, **opts)
                rec = _growth_record(adata, name)
                rec["fit_evaluate_s"] = res["fit_evaluate_s"]
                return rec
            rec = _safe(one, f"growth {name} seed {seed}")
            rec["seed"] = int(seed)
            runs.append(rec)
            if "error" not in rec:
                a = rec["all"]
                _progress(f"[growth] {name} seed {seed}: Pearson {a['pearson']:.3f} "
                          f"Spearman {a['spearman']:.3f} MAE/sd {a['mae_sd']:.3f} "
                          f"({rec['fit_evaluate_s']:.1f} s)")
        out["generators"][name] = {"runs": runs, "summary": _growth_summary(runs)}
    return out


def _growth_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"n_failed": len(runs)}
    keys = ("pearson", "spearman", "mae", "mae_sd", "mean_pred", "mean_true")
    summ: dict[str, Any] = {"per_time": {}, "n_failed": len(runs) - len(ok)}
    for tk in ok[0]["per_time"]:
        summ["per_time"][tk] = {k: _stats(r["per_time"][tk][k] for r in ok) for k in keys}
    for part in ("all", "all_but_last", "last"):
        summ[part] = {k: _stats(r[part][k] for r in ok) for k in keys}
    for extra in ("upper_t0", "lower_t0", "sd_true"):
        if extra in ok[0]:
            summ[extra] = _stats(r[extra] for r in ok)
    return summ


# --------------------------------------------------------------------------------------------
# block: no false growth
# --------------------------------------------------------------------------------------------
def no_false_growth_block(
    seeds: Sequence[int] = (0, 1, 2),
    *,
    generators: Sequence[str] = GENERATORS + NO_GROWTH_FILES,
    quick: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Growth-free data: mean |g| x (t_last - t_first) per time point.

    The growth-free versions of the generators (no birth, no death, equal sizes) and the
    growth-free data files of ``NO_GROWTH_FILES`` (skipped, with a message, when the data
    folder is not found).  ``options`` are training options forwarded to ``vgfm.tl.fit``.
    """
    ddir = find_data_dir(data_dir)
    if ddir is None and any(n in NO_GROWTH_FILES for n in generators):
        _progress(f"[no_false_growth] {', '.join(NO_GROWTH_FILES)} skipped: "
                  + _missing_data_message())
        generators = [n for n in generators if n not in NO_GROWTH_FILES]
    opts = _merge_options(quick, options)
    out: dict[str, Any] = {"block": "no_false_growth", "seeds": list(seeds), "options": opts,
                           "limit": NO_FALSE_GROWTH_LIMIT, "generators": {}}
    for name in generators:
        runs = []
        for seed in seeds:
            def one(seed=seed, name=name) -> dict[str, Any]:
                adata = (load_krumsiek11_binned(ddir) if name == "krumsiek11_binned"
                         else make_generator(name, seed, growth=False))
                res = fit_evaluate(adata, seed=seed, **opts)
                g = adata.obs["vgfm_growth"].to_numpy(dtype=float)
                t = adata.obs["time"].to_numpy(dtype=float)
                times = np.sort(np.unique(t))
                span = float(times[-1] - times[0])
                per_time = {f"{tk:g}": float(np.mean(np.abs(g[t == tk]))) * span for tk in times}
                return {"per_time": per_time, "max": max(per_time.values()),
                        "mean_g": float(g.mean()) * span,
                        "rme_mean": float(res["table"]["rme"].mean()),
                        "fit_evaluate_s": res["fit_evaluate_s"]}
            rec = _safe(one, f"no_false_growth {name} seed {seed}")
            rec["seed"] = int(seed)
            runs.append(rec)
            if "error" not in rec:
                _progress(f"[no_false_growth] {name} seed {seed}: max mean|g|*T {rec['max']:.3f} "
                          f"({rec['fit_evaluate_s']:.1f} s)")
        ok = [r for r in runs if "error" not in r]
        summ: dict[str, Any] = {"n_failed": len(runs) - len(ok)}
        if ok:
            summ["per_time"] = {tk: _stats(r["per_time"][tk] for r in ok)
                                for tk in ok[0]["per_time"]}
            summ["max"] = _stats(r["max"] for r in ok)
            summ["mean_g"] = _stats(r["mean_g"] for r in ok)
        out["generators"][name] = {"runs": runs, "summary": summ}
    return out


# --------------------------------------------------------------------------------------------
# blocks: spread and all-time W1/RME (shared full fits)
# --------------------------------------------------------------------------------------------
_FULL_CACHE: dict[tuple, dict[str, Any]] = {}


def _full_fit(name: str, seed: int, ddir: Path | None, opts: dict[str, Any]) -> dict[str, Any]:
    """One fit on all time points: all-time W1/RME, timings and spread per time (cached)."""
    key = (name, int(seed), str(ddir), json.dumps(opts, sort_keys=True, default=str))
    if key in _FULL_CACHE:
        return _FULL_CACHE[key]
    adata = load_dataset(name, ddir)

    def one() -> dict[str, Any]:
        res = fit_evaluate(adata, seed=seed, **opts)
        tab = res["table"]
        times, xs, lms, cell_t = _rollout(res["model"], adata)
        per_time = {}
        for k in range(1, len(times)):
            y = np.asarray(adata.X[np.isclose(cell_t, times[k])], dtype=np.float64)
            row = tab.iloc[k - 1]
            rec = {"w1": float(row["w1"]), "rme": float(row["rme"])}
            rec.update(_spread_at(xs[k], lms[k], y, seed=k))
            per_time[f"{times[k]:g}"] = rec
        return {"w1": float(tab["w1"].mean()), "rme": float(tab["rme"].mean()),
                "fit_s": res["fit_s"], "fit_evaluate_s": res["fit_evaluate_s"],
                "per_time": per_time}

    rec = _safe(one, f"full fit {name} seed {seed}")
    rec["seed"] = int(seed)
    if "error" not in rec:
        worst_v = max(abs(math.log(r["variance_ratio"])) for r in rec["per_time"].values())
        _progress(f"[full] {name} seed {seed}: W1 {rec['w1']:.4f} RME {rec['rme']:.4f} "
                  f"fit+evaluate {rec['fit_evaluate_s']:.1f} s; worst |log var ratio| "
                  f"{worst_v:.3f}")
    _FULL_CACHE[key] = rec
    return rec


def _full_block(kind: str, seeds, datasets, data_dir, quick, options) -> dict[str, Any]:
    opts = _merge_options(quick, options)
    ddir = find_data_dir(data_dir)
    out: dict[str, Any] = {"block": kind, "seeds": list(seeds), "options": opts, "datasets": {}}
    for name in datasets:
        if _needs_files(name) and ddir is None:
            out["datasets"][name] = {"skipped": _missing_data_message()}
            continue
        runs = [_full_fit(name, s, ddir, opts) for s in seeds]
        ok = [r for r in runs if "error" not in r]
        summ: dict[str, Any] = {"n_failed": len(runs) - len(ok)}
        if ok:
            if kind == "alltime":
                for k in ("w1", "rme", "fit_s", "fit_evaluate_s"):
                    summ[k] = _stats(r[k] for r in ok)
            else:
                summ["per_time"] = {
                    tk: {k: _stats(r["per_time"][tk][k] for r in ok)
                         for k in ("variance_ratio", "energy_distance", "energy_floor",
                                   "energy_ratio", "off_data_mass")}
                    for tk in ok[0]["per_time"]}
        if kind == "alltime" and name == "gaussian_1000d_regen":
            summ["w1_sampling_floor"] = _gaussian_1000d_w1_floor()
        out["datasets"][name] = {"runs": runs, "summary": summ}
    return out


def _gaussian_1000d_w1_floor() -> float:
    """W1 between two independent samples (1400 cells) of the 1000-D Gaussian law at t = 1."""
    noise = float(np.sqrt(0.005))
    a = vgfm.datasets.sample_gaussian_bifurcation_law(1400, 1.0, n_dims=1000, noise_sd=noise,
                                                      seed=0)
    b = vgfm.datasets.sample_gaussian_bifurcation_law(1400, 1.0, n_dims=1000, noise_sd=noise,
                                                      seed=1000)
    return wasserstein1(a, b).value


def spread_block(
    seeds: Sequence[int] = (0, 1, 2),
    *,
    datasets: Sequence[str] = FULL_DATASETS,
    data_dir: str | os.PathLike[str] | None = None,
    quick: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Variance ratio and energy distance / two-half floor at every time point after the first.

    ``options`` are training options forwarded to ``vgfm.tl.fit``.
    """
    return _full_block("spread", seeds, datasets, data_dir, quick, options)


def alltime_block(
    seeds: Sequence[int] = (0, 1, 2),
    *,
    datasets: Sequence[str] = FULL_DATASETS,
    data_dir: str | os.PathLike[str] | None = None,
    quick: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """All-time W1 / RME (METHOD.md §5) and wall time of ``fit`` + ``evaluate``.

    ``options`` are training options forwarded to ``vgfm.tl.fit``.
    """
    return _full_block("alltime", seeds, datasets, data_dir, quick, options)


BLOCKS: dict[str, Callable[..., dict[str, Any]]] = {
    "holdout": holdout_block,
    "growth": growth_block,
    "no_false_growth": no_false_growth_block,
    "spread": spread_block,
    "alltime": alltime_block,
}


# --------------------------------------------------------------------------------------------
# Markdown tables
# --------------------------------------------------------------------------------------------
def _f(s: dict[str, float] | float | None, digits: int = 3, sd: bool = True) -> str:
    if s is None:
        return "—"
    if isinstance(s, dict):
        m, d, n = s.get("mean", math.nan), s.get("sd", math.nan), s.get("n", 0)
        if n == 0 or not math.isfinite(m):
            return "—"
        return f"{m:.{digits}f} ± {d:.{digits}f}" if sd and n > 1 else f"{m:.{digits}f}"
    return "—" if not math.isfinite(float(s)) else f"{float(s):.{digits}f}"


def _anchor(label: str) -> str:
    return label if "measured" in label or "re-run" in label else f"{label} (published)"


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" ✓" if ok else " ✗")


def format_holdout(res: dict[str, Any]) -> str:
    lines = [f"### Hold-out (seeds {res['seeds']}; W1/RME/spread at the held-out time)", "",
             "| dataset | method | W1 per held-out time | mean W1 | mean RME | var ratio | "
             "ED / floor | W1 / otcfm |", "|---|---|---|---|---|---|---|---|"]
    for name, entry in res["datasets"].items():
        if "skipped" in entry:
            lines.append(f"| {name} | — | skipped: {entry['skipped']} | | | | | |")
            continue
        meths = entry["methods"]
        otc = meths.get("otcfm", {}).get("summary", {}).get("mean_over_times", {}).get("w1", {})
        for method, m in meths.items():
            s = m["summary"]
            per = " / ".join(_f(v["w1"], 3, sd=False) for v in s["per_time"].values())
            mw = s["mean_over_times"]["w1"]
            ratio = (mw["mean"] / otc["mean"]) if method != "otcfm" and otc.get("n") else math.nan
            fail = f" ({s['n_failed']} failed)" if s["n_failed"] else ""
            mk = ""
            if method == "vgfm" and mw.get("n"):
                lim = {"simulation_gene_2d": 0.090, "mouse_hematopoiesis_2d": 0.26,
                       "dyngen_5d": 1.0}.get(name)
                if lim is not None:
                    ok = mw["mean"] <= lim and (name != "simulation_gene_2d"
                                                or not math.isfinite(ratio) or ratio <= 0.9)
                    mk = _mark(ok)
            lines.append(
                f"| {name} | {method}{fail} | {per} | {_f(mw, 4)}{mk} | "
                f"{_f(s['mean_over_times']['rme'], 4)} | "
                f"{_f(s['mean_over_times']['variance_ratio'], 2)} | "
                f"{_f(s['mean_over_times']['energy_ratio'], 2)} | {_f(ratio, 2)} |")
        for label, (per_t, mean) in HOLDOUT_ANCHORS.get(name, {}).items():
            per = " / ".join(_f(v, 4) for v in per_t)
            lines.append(f"| {name} | {_anchor(label)} | {per} | {_f(mean, 4)} | | | | |")
    lines.append("")
    for name, tgt in HOLDOUT_TARGETS.items():
        if name in res["datasets"]:
            lines.append(f"- target {name}: {tgt}")
    return "\n".join(lines) + "\n"


def format_growth(res: dict[str, Any]) -> str:
    lines = [f"### Growth against per-cell truth (seeds {res['seeds']}, data seed = seed)", "",
             "| generator | cells | n | Pearson | Spearman | MAE | MAE / sd(true) | mean g pred | "
             "mean g true |", "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in res["generators"].items():
        s = entry["summary"]
        if "all" not in s:
            lines.append(f"| {name} | all failed | | | | | | | |")
            continue
        ok = [r for r in entry["runs"] if "error" not in r]
        times = list(s["per_time"])
        rows = [(f"t = {tk}" + (" (last, no outgoing interval)" if tk == times[-1] else ""),
                 s["per_time"][tk], ok[0]["per_time"][tk]["n"]) for tk in times]
        rows += [("**all cells**", s["all"], ok[0]["all"]["n"]),
                 ("all but the last time", s["all_but_last"], ok[0]["all_but_last"]["n"])]
        for label, v, n in rows:
            mp = mm = ""
            if label == "**all cells**" and name in ("two_gene_grn", "three_gene_switch"):
                mp = _mark(v["pearson"]["mean"] >= 0.9)
                mm = _mark(v["mae_sd"]["mean"] <= 0.35)
            lines.append(f"| {name} | {label} | {n} | {_f(v['pearson'])}{mp} | "
                         f"{_f(v['spearman'])} | {_f(v['mae'])} | {_f(v['mae_sd'])}{mm} | "
                         f"{_f(v['mean_pred'])} | {_f(v['mean_true'])} |")
        if "upper_t0" in s:
            up, lo = s["upper_t0"]["mean"], s["lower_t0"]["mean"]
            lines.append(f"| {name} | t = 0 upper cluster: mean g (truth ln 10 = 2.303) | | | | | "
                         f"| {_f(s['upper_t0'])}{_mark(abs(up - math.log(10)) <= 0.1 * math.log(10))}"
                         " | 2.303 |")
            lines.append(f"| {name} | t = 0 lower cluster: mean g (truth 0) | | | | | "
                         f"| {_f(s['lower_t0'])}{_mark(abs(lo) <= 0.23)} | 0.000 |")
        lines.append(f"| {name} | sd(true growth), all cells | | | | | | | {_f(s['sd_true'])} |")
    lines.append("")
    for name, tgt in GROWTH_TARGETS.items():
        if name in res["generators"]:
            lines.append(f"- target {name}: {tgt}")
    return "\n".join(lines) + "\n"


def format_no_false_growth(res: dict[str, Any]) -> str:
    lines = [f"### No false growth (growth-free generators, equal sizes; seeds {res['seeds']})",
             "", "mean |g| x (t_last - t_first) per time point (truth 0; target <= "
             f"{NO_FALSE_GROWTH_LIMIT} at every time point)", "",
             "| generator | time | mean \\|g\\| x T | worst seed | |", "|---|---|---|---|---|"]
    for name, entry in res["generators"].items():
        s = entry["summary"]
        if "per_time" not in s:
            lines.append(f"| {name} | all failed | | | |")
            continue
        ok = [r for r in entry["runs"] if "error" not in r]
        for tk, v in s["per_time"].items():
            worst = max(r["per_time"][tk] for r in ok)
            lines.append(f"| {name} | {tk} | {_f(v)} | {worst:.3f} |"
                         f"{_mark(v['mean'] <= NO_FALSE_GROWTH_LIMIT)} |")
        lines.append(f"| {name} | mean g x T (signed, all cells) | {_f(s['mean_g'])} | | |")
    return "\n".join(lines) + "\n"


def format_spread(res: dict[str, Any]) -> str:
    lo, hi = VARIANCE_RATIO_RANGE
    lines = [f"### Spread of the predicted population (seeds {res['seeds']})", "",
             f"target: variance ratio in [{lo}, {hi}] and energy distance <= "
             f"{ENERGY_RATIO_LIMIT} x the two-half floor at every time point (a perfect sample "
             "of the observed size scores about 0.5 x the floor); off-data mass: share of the "
             "predicted mass in empty space (no criterion; about 0.01 for a perfect sample)", "",
             "| dataset | time | variance ratio | energy distance | two-half floor | ED / floor "
             "| off-data mass |",
             "|---|---|---|---|---|---|---|"]
    for name, entry in res["datasets"].items():
        if "skipped" in entry:
            lines.append(f"| {name} | skipped: data absent | | | | | |")
            continue
        s = entry["summary"]
        if "per_time" not in s:
            lines.append(f"| {name} | all failed | | | | | |")
            continue
        for tk, v in s["per_time"].items():
            vr, er = v["variance_ratio"]["mean"], v["energy_ratio"]["mean"]
            lines.append(
                f"| {name} | {tk} | {_f(v['variance_ratio'])}{_mark(lo <= vr <= hi)} | "
                f"{_f(v['energy_distance'], 4)} | {_f(v['energy_floor'], 4)} | "
                f"{_f(v['energy_ratio'], 2)}{_mark(er <= ENERGY_RATIO_LIMIT)} | "
                f"{_f(v['off_data_mass'], 3) if 'off_data_mass' in v else '—'} |")
    return "\n".join(lines) + "\n"


def format_alltime(res: dict[str, Any]) -> str:
    lines = [f"### All-time W1 / RME at the training time points, wall time (seeds "
             f"{res['seeds']})", "",
             "| dataset | method | W1 | RME | fit s | fit+evaluate s |", "|---|---|---|---|---|---|"]
    for name, entry in res["datasets"].items():
        if "skipped" in entry:
            lines.append(f"| {name} | skipped: data absent | | | | |")
            continue
        s = entry["summary"]
        if "w1" in s:
            lim = {"simulation_gene_2d": (0.046, 0.006), "dyngen_5d": (0.42, 0.053)}.get(name)
            mw = mr = ""
            if lim is not None:
                mw, mr = _mark(s["w1"]["mean"] <= lim[0]), _mark(s["rme"]["mean"] <= lim[1])
            lines.append(f"| {name} | vgfm (ours) | {_f(s['w1'])}{mw} | {_f(s['rme'], 4)}{mr} | "
                         f"{_f(s['fit_s'], 1)} | {_f(s['fit_evaluate_s'], 1)} |")
        else:
            lines.append(f"| {name} | vgfm (ours): all failed | | | | |")
        for label, (w1, rme) in ALLTIME_ANCHORS.get(name, {}).items():
            lines.append(f"| {name} | {_anchor(label)} | {w1:.3f} | "
                         f"{'—' if rme is None else f'{rme:.3f}'} | | |")
        if "w1_sampling_floor" in s:
            lines.append(f"| {name} | W1 sampling floor (two true-law samples) | "
                         f"{s['w1_sampling_floor']:.3f} | | | |")
    lines += ["", "Wall time of the peers (METHOD.md §5, §7; 2-core CPU): authors' code ≈30 s "
              "(simulation gene), 45–75 s (dyngen); CRUFM 390–540 s."]
    for name, tgt in ALLTIME_TARGETS.items():
        if name in res["datasets"]:
            lines.append(f"- target {name}: {tgt}")
    return "\n".join(lines) + "\n"


def acceptance(blocks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue-9 acceptance criteria that the measured blocks cover, with value and verdict.

    ``blocks`` maps block names to the results of the block functions (as in the ``"blocks"``
    entry of the JSON file). Values are means over seeds; "worst" is over time points.
    """
    rows: list[dict[str, Any]] = []

    def add(criterion: str, value: float, ok: bool) -> None:
        rows.append({"criterion": criterion, "value": float(value), "pass": bool(ok)})

    nfg = blocks.get("no_false_growth", {}).get("generators", {})
    for name, e in nfg.items():
        pt = e["summary"].get("per_time")
        if pt:
            worst = max(v["mean"] for v in pt.values())
            add(f"no false growth {name}: worst mean abs(g) x T", worst,
                worst <= NO_FALSE_GROWTH_LIMIT)
    gr = blocks.get("growth", {}).get("generators", {})
    for name, e in gr.items():
        s = e["summary"]
        if "all" not in s:
            continue
        if name in ("two_gene_grn", "three_gene_switch"):
            add(f"growth {name}: Pearson (all cells) >= 0.9", s["all"]["pearson"]["mean"],
                s["all"]["pearson"]["mean"] >= 0.9)
            add(f"growth {name}: MAE/sd (all cells) <= 0.35", s["all"]["mae_sd"]["mean"],
                s["all"]["mae_sd"]["mean"] <= 0.35)
        if "upper_t0" in s:
            up, lo = s["upper_t0"]["mean"], s["lower_t0"]["mean"]
            add(f"growth {name}: upper cluster t=0 within 10 % of ln 10", up,
                abs(up - math.log(10)) <= 0.1 * math.log(10))
            add(f"growth {name}: lower cluster t=0 within +-0.23", lo, abs(lo) <= 0.23)
    ho = blocks.get("holdout", {}).get("datasets", {})
    limits = {"simulation_gene_2d": 0.090, "mouse_hematopoiesis_2d": 0.26, "dyngen_5d": 1.0}
    for name, lim in limits.items():
        e = ho.get(name, {})
        w = e.get("methods", {}).get("vgfm", {}).get("summary", {})
        w = w.get("mean_over_times", {}).get("w1", {})
        if w.get("n"):
            add(f"hold-out {name}: mean W1 <= {lim}", w["mean"], w["mean"] <= lim)
            o = e["methods"].get("otcfm", {}).get("summary", {}).get("mean_over_times", {})
            o = o.get("w1", {})
            if name == "simulation_gene_2d" and o.get("n"):
                r = w["mean"] / o["mean"]
                add(f"hold-out {name}: W1 vgfm / otcfm <= 0.9", r, r <= 0.9)
    sp = blocks.get("spread", {}).get("datasets", {})
    lo_v, hi_v = VARIANCE_RATIO_RANGE
    for name, e in sp.items():
        pt = e.get("summary", {}).get("per_time")
        if not pt:
            continue
        vrs = [v["variance_ratio"]["mean"] for v in pt.values()]
        worst_v = max(vrs, key=lambda r: abs(math.log(r)) if r > 0 else math.inf)
        add(f"spread {name}: worst variance ratio in [{lo_v}, {hi_v}]", worst_v,
            all(lo_v <= r <= hi_v for r in vrs))
        worst_e = max(v["energy_ratio"]["mean"] for v in pt.values())
        add(f"spread {name}: worst ED / floor <= {ENERGY_RATIO_LIMIT}", worst_e,
            worst_e <= ENERGY_RATIO_LIMIT)
    at = blocks.get("alltime", {}).get("datasets", {})
    for name, (lw, lr) in {"simulation_gene_2d": (0.046, 0.006),
                           "dyngen_5d": (0.42, 0.053)}.items():
        s = at.get(name, {}).get("summary", {})
        if "w1" in s:
            add(f"all-time {name}: W1 <= {lw}", s["w1"]["mean"], s["w1"]["mean"] <= lw)
            add(f"all-time {name}: RME <= {lr}", s["rme"]["mean"], s["rme"]["mean"] <= lr)
    return rows


def format_acceptance(blocks: dict[str, dict[str, Any]]) -> str:
    rows = acceptance(blocks)
    n_ok = sum(r["pass"] for r in rows)
    lines = [f"### Acceptance checklist (issue 9): {n_ok} / {len(rows)} met", "",
             "| criterion | value | |", "|---|---|---|"]
    lines += [f"| {r['criterion']} | {r['value']:.3f} |{_mark(r['pass'])} |" for r in rows]
    lines.append("\n(speed: compare the fit+evaluate column of two versions measured in one run)")
    return "\n".join(lines) + "\n"


FORMATTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "holdout": format_holdout,
    "growth": format_growth,
    "no_false_growth": format_no_false_growth,
    "spread": format_spread,
    "alltime": format_alltime,
}


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value (e.g. reg_m=5), got {item!r}")
        k, v = item.split("=", 1)
        try:
            opts[k.strip()] = ast.literal_eval(v.strip())
        except (ValueError, SyntaxError):
            opts[k.strip()] = v.strip()
    return opts


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--blocks", nargs="+", choices=list(BLOCKS), default=list(BLOCKS))
    p.add_argument("--datasets", nargs="+", default=None,
                   help="restrict the dataset blocks (holdout, spread, alltime) to these names")
    p.add_argument("--generators", nargs="+", choices=list(GENERATORS + NO_GROWTH_FILES),
                   default=None,
                   help="restrict the generator blocks (growth, no_false_growth; "
                        f"{', '.join(NO_GROWTH_FILES)}: no_false_growth only)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="methods of the holdout block (default: vgfm and otcfm)")
    p.add_argument("--quick", action="store_true",
                   help=f"fewer training steps ({QUICK_OPTIONS}); never the defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="training option forwarded to vgfm.tl.fit (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="write every number to this JSON file")
    p.add_argument("--data-dir", default=None, help="folder of the benchmark CSV files")
    p.add_argument("--verbose", action="store_true", help="show vgfm's warnings")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.verbose:
        logging.getLogger("vgfm").setLevel(logging.ERROR)
    options = _parse_set(args.set)
    ddir = find_data_dir(args.data_dir)
    print(f"vgfm {getattr(vgfm, '__version__', '?')}; data: "
          f"{ddir if ddir else 'NOT FOUND (file-based blocks skipped)'}; seeds {args.seeds}; "
          f"quick {args.quick}; options {options or 'defaults'}\n", flush=True)
    if ddir is None:
        print(_missing_data_message(), file=sys.stderr, flush=True)
    results: dict[str, Any] = {
        "meta": {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "vgfm_version": getattr(vgfm, "__version__", "?"), "seeds": args.seeds,
                 "quick": args.quick, "options": options, "data_dir": str(ddir),
                 "python": platform.python_version(), "machine": platform.machine()},
        "blocks": {}}
    t_start = time.perf_counter()
    for block in args.blocks:
        kw: dict[str, Any] = dict(options)
        kw["quick"] = args.quick
        if block in ("holdout", "spread", "alltime"):
            kw["data_dir"] = args.data_dir
            if args.datasets:
                kw["datasets"] = args.datasets
            if block == "holdout" and args.methods:
                kw["methods"] = args.methods
        else:
            gens = args.generators
            if block == "no_false_growth":
                kw["data_dir"] = args.data_dir
            elif gens:  # the growth block has truth for the generators only
                gens = [g for g in gens if g in GENERATORS]
            if gens:
                kw["generators"] = gens
        t0 = time.perf_counter()
        res = BLOCKS[block](args.seeds, **kw)
        res["seconds"] = time.perf_counter() - t0
        results["blocks"][block] = res
        print(FORMATTERS[block](res), flush=True)
        if args.out is not None:  # write after every block: a long run keeps what it measured
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(_jsonable(results), indent=1))
    results["acceptance"] = acceptance(results["blocks"])
    print(format_acceptance(results["blocks"]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(_jsonable(results), indent=1))
    print(f"total {time.perf_counter() - t_start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
