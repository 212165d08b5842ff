"""Shared plotting plumbing: axes creation, show/save, colours, labels. Never writes to data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vgfm._data._record import read_record

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger("vgfm")

BACKGROUND_GREY = "#d3d3d3"
_TIME_UNITS = {
    "day": "day",
    "days": "day",
    "d": "day",
    "hour": "hour",
    "hours": "hour",
    "h": "hour",
    "hr": "hour",
    "hpf": "hour",
    "week": "week",
    "weeks": "week",
    "minute": "minute",
    "minutes": "minute",
    "min": "minute",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
}
_GENERIC_TIME_NAMES = frozenset({"time", "t", "timepoint", "time_point", "sample", "samples"})
_BASIS_LABELS = {
    "umap": "UMAP",
    "tsne": "tSNE",
    "pca": "PC",
    "diffmap": "DC",
    "draw_graph_fa": "FA",
    "draw_graph_fr": "FR",
    "phate": "PHATE",
    "spring": "SPRING",
}


def basis_axis_labels(basis: str) -> tuple[str, str]:
    """Scanpy-style axis labels: ``"umap"`` -> ``("UMAP1", "UMAP2")``."""
    name = basis.removeprefix("X_")
    stem = _BASIS_LABELS.get(name.lower(), name.upper())
    return f"{stem}1", f"{stem}2"


def time_unit_label(time_key: str | None) -> str:
    """Rate unit for an ``obs`` time column, for axis and colour-bar labels.

    A known unit gives ``"per <unit>"`` (``"day"`` / ``"days"`` / ``"d"`` -> ``"per day"``,
    ``"hpf"`` -> ``"per hour"``, ...); no key or a generic name (``"time"``, ``"t"``,
    ``"timepoint"``, ``"time_point"``, ``"sample"``, ``"samples"``) gives ``"per unit time"``;
    anything else gives ``"per unit of 'key'"``. Matching ignores case and surrounding spaces.
    """
    if not time_key:
        return "per unit time"
    name = str(time_key).strip().lower()
    if name in _GENERIC_TIME_NAMES:
        return "per unit time"
    unit = _TIME_UNITS.get(name)
    return f"per {unit}" if unit else f"per unit of {time_key!r}"


def method_label(adata: AnnData, key: str) -> str:
    """Display name of the fitted method (``"VGFM"`` or ``"OT-CFM"``)."""
    try:
        method = read_record(adata, key).method
    except KeyError:
        method = "vgfm"
    return {"vgfm": "VGFM", "otcfm": "OT-CFM"}.get(str(method), str(method))


def new_axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> tuple[Figure, Axes]:
    """Return ``(figure, axes)``, creating them when ``ax`` is ``None``."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize or (5.0, 4.5))
    return fig, ax


def finish(
    ax: Axes,
    *,
    ax_given: bool,
    show: bool | None,
    save: str | Path | bool | None,
    name: str,
) -> Axes | None:
    """Save and/or show the figure of ``ax`` (scanpy semantics) and return ``ax`` or ``None``.

    ``save=True`` writes ``<scanpy figdir>/vgfm_<name>.png``; a string or path is used as
    the file name (``.png`` appended when it has no suffix). ``show=None`` shows the figure
    when the axes were created here and matplotlib is in interactive mode.
    """
    fig = ax.figure
    if save:
        if save is True:
            import scanpy as sc

            path = Path(sc.settings.figdir) / f"vgfm_{name}.png"
        else:
            path = Path(save)
            if not path.suffix:
                path = path.with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
        logger.info("saved figure to %s", path)
    if show is None:
        show = (not ax_given) and mpl.is_interactive()
    if show:
        plt.show()
        return None
    return ax


def is_panel_list(value: Any) -> bool:
    """``True`` for a list/tuple (one panel per entry, scanpy style), not for a string."""
    return isinstance(value, (list, tuple))


def panels(
    draw: Any,
    values: list[Any],
    *,
    ax: Axes | None,
    show: bool | None,
    save: str | Path | bool | None,
    name: str,
    ncols: int = 4,
    panel_size: tuple[float, float] = (5.0, 4.5),
) -> list[Axes] | None:
    """One panel per entry of ``values`` (scanpy's ``color=[...]`` convention).

    ``draw(value, ax)`` draws one panel into ``ax``; the figure has ``min(ncols, n)`` columns.
    Returns the list of panel axes (``None`` when shown); ``save`` writes the whole figure.
    """
    if ax is not None:
        raise ValueError(
            "ax= cannot be combined with a list (one panel per entry); pass a single value "
            "or leave ax=None."
        )
    if len(values) == 0:
        raise ValueError("the list of panels is empty; pass at least one value.")
    n = len(values)
    cols = min(ncols, n)
    rows = int(np.ceil(n / cols))
    fig, grid = plt.subplots(
        rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows), squeeze=False
    )
    axes = list(grid.ravel())
    for extra in axes[n:]:
        extra.remove()
    axes = axes[:n]
    for value, axis in zip(values, axes):
        draw(value, axis)
    fig.tight_layout()
    finish(axes[-1], ax_given=False, show=show, save=save, name=name)
    if show is None:
        show = mpl.is_interactive()
    return None if show else axes


def symmetric_limit(values: Any, quantile: float = 99.0) -> float:
    """Default symmetric colour limit of a signed quantity (growth rates).

    The ``quantile``-th percentile of ``|values|`` over the finite values, so that a few
    extreme cells do not wash out the rest; ``max |values|`` when that percentile is 0; 1 when
    every value is 0 or missing.
    """
    a = np.abs(np.asarray(values, dtype=np.float64))
    a = a[np.isfinite(a)]
    if a.size == 0:
        return 1.0
    limit = float(np.percentile(a, quantile))
    if not limit > 0:
        limit = float(a.max())
    return limit if limit > 0 else 1.0


def default_point_size(n: int) -> float:
    """Scanpy's default marker area, capped for tiny datasets."""
    return float(min(40.0, 120000.0 / max(n, 1)))


def _default_palette(n: int) -> list[str]:
    from scanpy.plotting import palettes

    if n <= 20:
        return list(palettes.default_20[:n])
    if n <= 28:
        return list(palettes.default_28[:n])
    if n <= len(palettes.default_102):
        return list(palettes.default_102[:n])
    cmap = plt.get_cmap("nipy_spectral")
    return [mpl.colors.to_hex(cmap(i / max(n - 1, 1))) for i in range(n)]


def _obs_values(adata: AnnData, color: str) -> pd.Series | None:
    if color in adata.obs:
        return adata.obs[color]
    var_names = getattr(adata, "var_names", None)
    if var_names is not None and color in var_names and hasattr(adata, "obs_vector"):
        return pd.Series(np.asarray(adata.obs_vector(color)), index=adata.obs_names, name=color)
    return None


def scatter_cells(
    ax: Axes,
    adata: AnnData,
    emb: np.ndarray,
    color: str | None,
    *,
    size: float | None = None,
    alpha: float = 1.0,
    default_color: str = BACKGROUND_GREY,
    legend: bool = True,
    cmap: str = "viridis",
    zorder: float = 0,
) -> None:
    """Scatter cells on ``ax`` coloured by an obs key / gene, a matplotlib colour, or grey.

    Categorical keys use ``adata.uns[f"{color}_colors"]`` when present (and long enough),
    otherwise scanpy's default palettes; nothing is written to ``adata``.
    """
    s = default_point_size(emb.shape[0]) if size is None else size
    common = {"s": s, "alpha": alpha, "linewidths": 0, "zorder": zorder, "rasterized": True}
    if color is None:
        ax.scatter(emb[:, 0], emb[:, 1], c=default_color, **common)
        return
    values = _obs_values(adata, color)
    if values is None:
        if mpl.colors.is_color_like(color):
            ax.scatter(emb[:, 0], emb[:, 1], c=color, **common)
            return
        raise KeyError(
            f"color={color!r} is neither an adata.obs column, a gene in adata.var_names nor a "
            f"matplotlib colour; obs columns: {list(adata.obs.columns)}."
        )
    is_cat = isinstance(values.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    )
    if not is_cat:
        vals = np.asarray(values, dtype=np.float64)
        order = np.argsort(np.nan_to_num(vals, nan=-np.inf), kind="stable")
        sc_ = ax.scatter(emb[order, 0], emb[order, 1], c=vals[order], cmap=cmap, **common)
        cb = ax.figure.colorbar(sc_, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label(color)
        return
    cat = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    categories = list(cat.cat.categories)
    stored = adata.uns.get(f"{color}_colors")
    if stored is not None and len(stored) >= len(categories):
        palette = [str(c) for c in stored[: len(categories)]]
    else:
        palette = _default_palette(len(categories))
    codes = np.asarray(cat.cat.codes)
    for i, (name, col) in enumerate(zip(categories, palette)):
        m = codes == i
        if m.any():
            ax.scatter(emb[m, 0], emb[m, 1], c=col, label=str(name), **common)
    if (codes < 0).any():
        m = codes < 0
        ax.scatter(emb[m, 0], emb[m, 1], c=BACKGROUND_GREY, label="NA", **common)
    if legend:
        ax.legend(
            title=color,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            frameon=False,
            markerscale=max(1.0, 6.0 / np.sqrt(s)),
            fontsize="small",
        )


def style_embedding_axes(ax: Axes, basis: str, emb: np.ndarray, title: str) -> None:
    """Axis labels, title, equal-ish limits containing every cell, no ticks (scanpy look)."""
    xl, yl = basis_axis_labels(basis)
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    finite = np.all(np.isfinite(emb), axis=1)
    if finite.any():
        lo = emb[finite].min(axis=0)
        hi = emb[finite].max(axis=0)
        pad = 0.05 * np.maximum(hi - lo, 1e-9)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])


def fit_params(adata: AnnData, key: str) -> dict[str, Any]:
    """``adata.uns[key]["params"]`` with a clear error when missing."""
    return read_record(adata, key).params
