"""End-to-end demonstration on the synthetic two-gene switch (``vgfm demo`` / ``make demo``).

The two genes of :func:`vgfm.datasets.two_gene_grn` are lifted to a 30-gene expression matrix
by a fixed, seeded, non-negative linear map plus small noise (the two true genes are kept), so
that the demo runs the ordinary Scanpy workflow — PCA, neighbours, UMAP — before
:func:`vgfm.tl.fit`, exactly as on real data. Everything written is listed in the return value
and logged on the ``"vgfm"`` logger.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import vgfm
from vgfm._data._record import read_record
from vgfm._figures import N_TRAJECTORIES, standard_figures
from vgfm._model import atomic_write
from vgfm.pl._utils import _default_palette

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger("vgfm")

__all__ = ["lift_to_genes", "format_table", "growth_vs_truth", "run_demo"]

#: Number of genes of the lifted expression matrix (the 2 true genes included).
N_GENES = 30
#: Number of principal components fitted by the demo.
N_PCS = 10
#: Smaller configuration used by ``run_demo(fast=True)`` (tests, smoke runs).
_FAST_CELLS_0 = 60
_FAST_OPTIONS: dict[str, Any] = {"stage1_steps": 60, "stage2_steps": 2, "hidden": 16}


def lift_to_genes(
    adata: AnnData,
    *,
    n_genes: int = N_GENES,
    noise_sd: float = 0.05,
    seed: int = 0,
) -> AnnData:
    """Embed a 2-gene dataset in a larger, realistic-looking gene space.

    Gene ``j`` of the new matrix is ``max(0, b_j + x W[:, j] + eps_ij)`` with ``x`` the two true
    genes, ``W`` a non-negative ``2 × (n_genes - 2)`` matrix (Gamma-distributed entries; the
    first half of the extra genes is driven mostly by ``gene_1``, the second half mostly by
    ``gene_2``, like two co-regulated programmes), ``b_j`` a baseline in ``[0.1, 0.5]`` and
    ``eps_ij ~ N(0, noise_sd²)``. The two true genes are kept as the first two columns.

    Parameters
    ----------
    adata
        Output of :func:`vgfm.datasets.two_gene_grn` (``.X`` with two genes).
    n_genes
        Total number of genes of the result (at least 3).
    noise_sd
        Standard deviation of the gene-level Gaussian noise.
    seed
        Seed of the map and of the noise.

    Returns
    -------
    AnnData
        New object with the same ``obs``/``uns`` and ``X`` of shape ``(n_obs, n_genes)``
        (``float32``); the map is stored in ``uns["gene_map"]`` = ``{"weights": (2, n_genes -
        2), "baseline": (n_genes - 2,), "noise_sd", "seed", "source_genes"}``.

    Examples
    --------
    >>> import vgfm
    >>> from vgfm._demo import lift_to_genes
    >>> lifted = lift_to_genes(vgfm.datasets.two_gene_grn(n_cells_0=50, seed=0))
    >>> lifted.shape[1], list(lifted.var_names[:2])
    (30, ['gene_1', 'gene_2'])
    """
    import anndata as ad

    if adata.n_vars != 2:
        raise ValueError(f"lift_to_genes expects 2 genes in adata.X, found {adata.n_vars}.")
    if n_genes < 3:
        raise ValueError(f"n_genes must be at least 3 (2 true genes + 1), got {n_genes}.")
    if noise_sd < 0:
        raise ValueError(f"noise_sd must be >= 0, got {noise_sd}.")
    rng = np.random.default_rng(seed)
    n_extra = n_genes - 2
    weights = rng.gamma(shape=2.0, scale=0.5, size=(2, n_extra))
    half = n_extra // 2
    weights[1, :half] *= 0.15  # programme driven by gene_1
    weights[0, half:] *= 0.15  # programme driven by gene_2
    baseline = rng.uniform(0.1, 0.5, size=n_extra)
    x = np.asarray(adata.X, dtype=np.float64)
    extra = baseline + x @ weights + rng.normal(0.0, noise_sd, size=(adata.n_obs, n_extra))
    expr = np.hstack([x, np.clip(extra, 0.0, None)]).astype(np.float32)
    names = list(map(str, adata.var_names)) + [f"gene_{j}" for j in range(3, n_genes + 1)]
    out = ad.AnnData(
        X=expr,
        obs=adata.obs.copy(),
        var=pd.DataFrame(index=pd.Index(names)),
        uns=dict(adata.uns),
    )
    out.uns["gene_map"] = {
        "weights": weights,
        "baseline": baseline,
        "noise_sd": float(noise_sd),
        "seed": int(seed),
        "source_genes": np.asarray(adata.var_names[:2], dtype=str),
    }
    return out


def format_table(df: pd.DataFrame, *, digits: int = 4) -> str:
    """Render a DataFrame as an aligned Markdown (pipe) table.

    Parameters
    ----------
    df
        Table to render; floats are printed with ``digits`` significant digits.
    digits
        Significant digits of floating-point cells.

    Returns
    -------
    str
        The table, one line per row plus a header and a separator line.

    Examples
    --------
    >>> import pandas as pd
    >>> print(format_table(pd.DataFrame({"time": [1.0], "w1": [0.123456]})))
    | time | w1     |
    | ---- | ------ |
    | 1    | 0.1235 |
    """

    def cell(v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            return str(bool(v))
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.{digits}g}"
        return str(v)

    header = [str(c) for c in df.columns]
    rows = [[cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
    widths = [max([len(h), 3] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join(
        [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    )


def _growth_vs_truth_figure(adata: AnnData, path: Path) -> Path:
    """Write :func:`growth_vs_truth` to ``path`` (150 dpi) and close it."""
    import matplotlib.pyplot as plt

    fig = growth_vs_truth(adata)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    logger.info("saved figure to %s", path)
    return path


def growth_vs_truth(adata: AnnData) -> Any:
    """True and learned growth rates on the UMAP on one colour scale, and learned vs true.

    The two maps share one symmetric, zero-centred colour scale (limit: the largest true
    ``|g|``; learned rates beyond it get the end colours) and one colour bar, so that equal
    colours mean equal rates; the scatter plot shows the per-cell agreement per time point.

    Parameters
    ----------
    adata
        The demo's fitted data: ``obs["vgfm_growth"]``, ``obs["true_growth"]``, ``obs["day"]``
        and ``obsm["X_umap"]``.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels (true map, learned map, scatter) and one colour bar.

    Examples
    --------
    >>> fig = growth_vs_truth(adata)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    learned = np.asarray(adata.obs["vgfm_growth"], dtype=float)
    true = np.asarray(adata.obs["true_growth"], dtype=float)
    emb = np.asarray(adata.obsm["X_umap"])
    days = adata.obs["day"]
    fig, (left, middle, right) = plt.subplots(
        1, 3, figsize=(16.0, 4.8), layout="constrained",
        gridspec_kw={"width_ratios": [1.0, 1.0, 1.05]})

    # one scale for both maps, spanning the true rates: learned rates beyond the true range
    # get the end colours (the colour bar then has pointed ends)
    both = np.abs(np.concatenate([learned, true]))
    both = both[np.isfinite(both)]
    finite_true = np.abs(true[np.isfinite(true)])
    lim = float(finite_true.max()) if finite_true.size else 1.0
    lim = lim if lim > 0 else 1.0
    norm = TwoSlopeNorm(0.0, -lim, lim)
    size = float(min(40.0, 120000.0 / adata.n_obs))
    points = None
    for axis, values, title in ((left, true, "true growth rate (simulation)"),
                                (middle, learned, "learned growth rate (VGFM)")):
        order = np.argsort(np.abs(values), kind="stable")
        points = axis.scatter(emb[order, 0], emb[order, 1], c=values[order], cmap="RdBu_r",
                              s=size, norm=norm, linewidths=0, rasterized=True)
        axis.set(title=title, xlabel="UMAP1", ylabel="UMAP2", xticks=[], yticks=[])
    clipped = bool((both > lim).any())
    fig.colorbar(points, ax=[left, middle], fraction=0.04, pad=0.02, shrink=0.9,
                 extend="both" if clipped else "neither").set_label(
        "growth rate (per day), one scale for both maps")

    categories = list(days.cat.categories)
    colors = adata.uns.get("day_colors", _default_palette(len(categories)))
    for label, color in zip(categories, colors):
        m = np.asarray(days == label)
        rho = _spearman(learned[m], true[m])
        note = f"Spearman {rho:.2f}" if np.isfinite(rho) else "one learned rate for all cells"
        right.scatter(true[m], learned[m], s=6, color=color, alpha=0.6, linewidths=0,
                      label=f"{label} ({note})", rasterized=True)
    lo, hi = float(true.min()), float(true.max())
    right.plot([lo, hi], [lo, hi], color="0.2", ls="--", lw=1.2, label="learned = true")
    right.axhline(0.0, color="0.8", lw=0.8, zorder=0)
    right.set(xlabel="true growth rate (per day)", ylabel="learned growth rate (per day)",
              title="learned vs true growth rate, per cell")
    right.legend(fontsize="small", frameon=False, loc="upper left", markerscale=2.5)
    return fig


def run_demo(
    output_dir: str | Path = "demo_output",
    *,
    seed: int = 0,
    progress: bool = True,
    fast: bool = False,
    n_threads: int | None = 1,
) -> dict[str, Any]:
    """Fit VGFM on the synthetic two-gene switch and write the results and figures.

    Steps: :func:`vgfm.datasets.two_gene_grn` → :func:`lift_to_genes` (30 genes) →
    :func:`scanpy.pp.pca` (10 components) → :func:`scanpy.pp.neighbors` on ``X_pca`` →
    :func:`scanpy.tl.umap` → :func:`vgfm.tl.fit` on ``X_pca`` with ``time_key="day"`` and the
    default options → :func:`vgfm.tl.velocity_embedding` → :func:`vgfm.tl.simulate` (every
    cell of the first time point, so that the simulated population size is the one
    :func:`vgfm.tl.evaluate` scores; 100 of the paths are drawn) → :func:`vgfm.tl.evaluate` →
    :func:`vgfm.tl.growth_genes`.

    Parameters
    ----------
    output_dir
        Folder receiving every file (created if needed; existing demo files are overwritten).
    seed
        Seed of the data, the gene map, PCA, UMAP and the fit.
    progress
        Show training progress bars.
    fast
        Smaller data (60 cells at the first time point) and a short training
        (``stage1_steps=60, stage2_steps=2, hidden=16``): a smoke test, not a result.
    n_threads
        Torch intra-op threads for the VGFM steps (restored afterwards). The networks are
        small, so one thread is as fast as several, and it avoids a large slowdown on small
        machines when torch's threads compete with the OpenMP threads that Scanpy's
        neighbours/UMAP (numba) leave behind; ``None`` keeps torch's setting.

    Returns
    -------
    dict
        ``"h5ad"`` (the fitted data), ``"figures"`` (name → PNG path), ``"evaluation_csv"``,
        ``"evaluation_md"``, ``"growth_genes_csv"`` (paths), ``"evaluation"`` (the
        :class:`pandas.DataFrame` of :func:`vgfm.tl.evaluate`), ``"growth_correlation"``
        (Spearman correlation of learned and true growth rates over all cells) and
        ``"seconds"`` (wall-clock run time).

    Examples
    --------
    >>> from vgfm._demo import run_demo
    >>> result = run_demo("demo_output")  # doctest: +SKIP
    >>> result["evaluation"][["time", "w1", "rme"]]  # doctest: +SKIP
    """
    return _run_demo(Path(output_dir), seed=seed, progress=progress, fast=fast,
                     n_threads=n_threads)


def _run_demo(
    out: Path, *, seed: int, progress: bool, fast: bool, n_threads: int | None
) -> dict[str, Any]:
    import scanpy as sc

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    raw = vgfm.datasets.two_gene_grn(_FAST_CELLS_0 if fast else 400, seed=seed)
    adata = lift_to_genes(raw, seed=seed)
    logger.info("demo data: %d cells x %d genes at times %s", adata.n_obs, adata.n_vars,
                list(adata.obs["day"].cat.categories))
    sc.pp.pca(adata, n_comps=N_PCS, random_state=seed)
    sc.pp.neighbors(adata, use_rep="X_pca", random_state=seed)
    sc.tl.umap(adata, random_state=seed)

    options = dict(_FAST_OPTIONS) if fast else {}
    vgfm.tl.fit(adata, "day", use_rep="X_pca", seed=seed, progress=progress,
                n_threads=n_threads, **options)
    vgfm.tl.velocity_embedding(adata, basis="umap")
    vgfm.tl.simulate(adata, seed=seed, n_threads=n_threads)
    vgfm.tl.trajectory_embedding(adata, basis="umap", seed=seed)
    evaluation = vgfm.tl.evaluate(adata, n_threads=n_threads)
    genes = vgfm.tl.growth_genes(adata)
    rho = _spearman(adata.obs["vgfm_growth"], adata.obs["true_growth"])

    h5ad = out / "vgfm_demo.h5ad"
    atomic_write(h5ad, adata.write_h5ad, binary=None, suffix=".h5ad")
    logger.info("wrote %s", h5ad)

    # the figures of `vgfm plot` (one recipe), plus the comparison with the simulation's truth
    figures = standard_figures(adata, out, basis="umap", n_paths=N_TRAJECTORIES, seed=seed)
    figures["growth_vs_truth"] = _growth_vs_truth_figure(adata, out / "growth_vs_truth.png")

    csv = out / "evaluation.csv"
    evaluation.to_csv(csv, index=False)
    genes_csv = out / "growth_genes.csv"
    genes.sort_values("overall", key=np.abs, ascending=False).to_csv(genes_csv)
    seconds = time.perf_counter() - start
    md = out / "evaluation.md"
    md.write_text(_evaluation_markdown(adata, evaluation, rho, seconds, fast), encoding="utf-8")
    for path in (csv, md, genes_csv):
        logger.info("wrote %s", path)
    logger.info("demo finished in %.1f s; results in %s", seconds, out)
    return {
        "h5ad": h5ad,
        "figures": figures,
        "evaluation_csv": csv,
        "evaluation_md": md,
        "growth_genes_csv": genes_csv,
        "evaluation": evaluation,
        "growth_correlation": rho,
        "seconds": seconds,
    }


def _spearman(a: Any, b: Any) -> float:
    """Spearman correlation of two vectors; NaN when either is constant (undefined), e.g. a
    time point whose cells all grow alike.

    Examples
    --------
    >>> round(_spearman([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]), 6)
    0.5
    >>> _spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    nan
    """
    from .tl._embedding import _correlate  # tl.growth_genes' correlation (NaN if constant)

    x = np.asarray(a, dtype=float)[:, None]
    return float(_correlate(x, np.asarray(b, dtype=float), "spearman")[0])


def _growth_check(adata: AnnData) -> pd.DataFrame:
    """Per time point: Spearman correlation and means of learned and true growth rates."""
    rows = []
    for label, obs in adata.obs.groupby("day", observed=True):
        rows.append({
            "day": str(label),
            "spearman": _spearman(obs["vgfm_growth"], obs["true_growth"]),
            "learned_mean": float(obs["vgfm_growth"].mean()),
            "true_mean": float(obs["true_growth"].mean()),
        })
    return pd.DataFrame(rows)


def _evaluation_markdown(
    adata: AnnData, evaluation: pd.DataFrame, rho: float, seconds: float, fast: bool
) -> str:
    params = read_record(adata, "vgfm").params
    counts = adata.obs["day"].value_counts(sort=False)
    cells = ", ".join(f"{k}: {v}" for k, v in counts.items())
    lines = [
        "# vgfm demo: two-gene switch",
        "",
        f"Data: `vgfm.datasets.two_gene_grn(seed={params['seed']})` lifted to "
        f"{adata.n_vars} genes (`uns['gene_map']`), {adata.n_obs} cells ({cells}).",
        f"Fit: `vgfm.tl.fit(adata, 'day', use_rep='X_pca')`, method `{params['method']}`, "
        f"{'short smoke-test training' if fast else 'default options'}; "
        f"{N_PCS} principal components; total run time {seconds:.0f} s.",
        "",
        "Evaluation (`vgfm.tl.evaluate`; roll-out from every cell of the first time point; "
        "W1 in PCA space, RME = relative error of the predicted population size):",
        "",
        format_table(evaluation),
        "",
        "Learned growth rate `obs['vgfm_growth']` against the true net growth rate of the "
        f"simulation `obs['true_growth']` (per day): Spearman correlation {rho:.3f} over all "
        "cells; per time point:",
        "",
        format_table(_growth_check(adata)),
        "",
    ]
    return "\n".join(lines)
