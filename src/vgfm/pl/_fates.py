"""Plots of fate probabilities, cluster transitions and growth-sign uncertainty."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vgfm._data._containers import Data, resolve_container
from vgfm._data._keys import DEFAULT_KEY
from vgfm._data._representation import get_embedding
from vgfm.pl._embedding_plots import growth as _growth_plot
from vgfm.pl._uncertainty import draw_uncertain, uncertain_sign
from vgfm.pl._utils import (
    BACKGROUND_GREY,
    default_point_size,
    finish,
    new_axes,
    style_embedding_axes,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

logger = logging.getLogger("vgfm")

__all__ = ["cluster_transitions", "fates", "hatch_uncertain", "uncertain_sign"]


def _fate_frame(data: Any, key: str, direction: str) -> pd.DataFrame:
    name = f"{key}_fates" if direction == "forward" else f"{key}_ancestors"
    if name not in data.obsm:
        raise KeyError(
            f"adata.obsm[{name!r}] is missing; run `vgfm.tl.fates(adata, groupby, "
            f"key_added={key!r}, direction={direction!r})` first."
        )
    frame = data.obsm[name]
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(np.asarray(frame), index=data.obs_names)
    return frame


def fates(
    adata: Data,
    *,
    basis: str = "umap",
    key: str = DEFAULT_KEY,
    categories: list[str] | None = None,
    direction: Literal["forward", "backward"] = "forward",
    ncols: int = 4,
    size: float | None = None,
    cmap: str = "viridis",
    panel_size: tuple[float, float] = (3.6, 3.2),
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> list[Axes] | None:
    """One embedding panel per category, coloured by the fate probability toward it.

    Reads ``obsm[f"{key}_fates"]`` (or ``obsm[f"{key}_ancestors"]`` with
    ``direction="backward"``) written by :func:`vgfm.tl.fates`.  Fates share one colour scale
    from 0 to 1; ancestor shares share one scale from 0 to their largest value.  Cells without
    a value (not started, or observed after the target time) are drawn in grey underneath.

    Parameters
    ----------
    adata
        AnnData (or MuData) with ``obsm["X_<basis>"]``.
    basis
        Embedding name.
    key
        The ``key_added`` of :func:`vgfm.tl.fates`.
    categories
        Panels to draw (default all columns).
    direction
        ``"forward"`` (fates) or ``"backward"`` (ancestors).
    ncols
        Panels per row.
    size, cmap
        Marker area and colour map.
    panel_size
        Width and height of one panel in inches.
    mod
        For a MuData: modality holding the fields.
    ax
        Axes to draw into when there is a single panel (an error otherwise); ``None``
        creates a figure with one panel per category.
    show, save
        As in :func:`vgfm.pl.growth` (the figure is saved as ``vgfm_fates.png`` with
        ``save=True``).

    Returns
    -------
    The list of :class:`~matplotlib.axes.Axes` (one per category) unless shown.

    Examples
    --------
    >>> vgfm.tl.fates(adata, "cell_type")           # doctest: +SKIP
    >>> axes = vgfm.pl.fates(adata, show=False)     # doctest: +SKIP
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    data = resolve_container(adata, mod)
    emb = get_embedding(data, basis)
    frame = _fate_frame(data, key, direction)
    cols = [str(c) for c in frame.columns]
    if categories is not None:
        missing = [c for c in categories if str(c) not in cols]
        if missing:
            raise KeyError(f"categories {missing} are not columns of the fates; available: {cols}")
        cols = [str(c) for c in categories]
    values = frame.copy()
    values.columns = [str(c) for c in values.columns]
    vals = values[cols].to_numpy(dtype=np.float64)
    vmax = 1.0 if direction == "forward" else float(np.nanmax(vals)) if np.isfinite(vals).any() else 1.0
    n = len(cols)
    if ax is not None:
        if n != 1:
            raise ValueError(f"ax= takes one panel, but {n} categories are drawn; pass "
                             "categories=[one name] or ax=None.")
        fig, axs, ncols, nrows = ax.figure, [[ax]], 1, 1
    else:
        ncols = max(1, min(int(ncols), n))
        nrows = math.ceil(n / ncols)
        fig, axs = plt.subplots(nrows, ncols, squeeze=False,
                                figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    s = default_point_size(emb.shape[0]) if size is None else size
    axes = []
    sc_ = None
    for i, c in enumerate(cols):
        ax = axs[i // ncols][i % ncols]
        v = vals[:, i]
        ok = np.isfinite(v)
        ax.scatter(emb[~ok, 0], emb[~ok, 1], c=BACKGROUND_GREY, s=s, linewidths=0,
                   rasterized=True)
        order = np.flatnonzero(ok)[np.argsort(v[ok], kind="stable")]
        sc_ = ax.scatter(emb[order, 0], emb[order, 1], c=v[order], cmap=cmap, vmin=0.0,
                         vmax=vmax, s=s, linewidths=0, rasterized=True)
        label = "fate" if direction == "forward" else "ancestor share"
        style_embedding_axes(ax, basis, emb, f"{label}: {c}")
        axes.append(ax)
    for j in range(n, nrows * ncols):
        axs[j // ncols][j % ncols].set_visible(False)
    if sc_ is not None:
        cb = fig.colorbar(sc_, ax=axes, shrink=0.8, pad=0.02)
        cb.set_label("fraction of mass-weighted descendants" if direction == "forward"
                     else "share of the cluster's descendants")
    finish(axes[0], ax_given=True, show=False, save=save, name="fates")
    if show is None:
        show = ax is None and plt.isinteractive()
    if show:
        plt.show()
        return None
    return axes


def cluster_transitions(
    adata: Data,
    *,
    key: str = DEFAULT_KEY,
    cmap: str = "Blues",
    annotate: bool = True,
    fmt: str = ".2f",
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> Axes | None:
    """Heatmap of the growth-weighted cluster transition table of :func:`vgfm.tl.cluster_transitions`.

    Parameters
    ----------
    adata
        AnnData with ``uns[f"{key}_transitions"]``.
    key
        The ``key_added`` of :func:`vgfm.tl.cluster_transitions`.
    cmap
        Colour map (the scale runs from 0 to the largest entry).
    annotate, fmt
        Write each value in its cell, with this format.
    mod, ax, show, save
        As in :func:`vgfm.pl.growth`.

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` unless shown.

    Examples
    --------
    >>> vgfm.tl.cluster_transitions(adata, "cell_type")      # doctest: +SKIP
    >>> ax = vgfm.pl.cluster_transitions(adata, show=False)  # doctest: +SKIP
    """
    data = resolve_container(adata, mod)
    name = f"{key}_transitions"
    rec = data.uns.get(name)
    if not isinstance(rec, dict) or "table" not in rec:
        raise KeyError(
            f"adata.uns[{name!r}] is missing; run `vgfm.tl.cluster_transitions(adata, groupby, "
            f"key_added={key!r})` first."
        )
    table = np.asarray(rec["table"], dtype=np.float64)
    src = [str(s) for s in np.asarray(rec["source"])]
    tgt = [str(s) for s in np.asarray(rec["target"])]
    fig, ax_ = new_axes(ax, figsize=(1.0 + 0.9 * len(tgt), 1.0 + 0.6 * len(src)))
    finite = table[np.isfinite(table)]
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    im = ax_.imshow(table, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto")
    ax_.grid(False)  # a style's grid (e.g. scanpy's figure params) would cut the cells
    ax_.set_xticks(range(len(tgt)), tgt, rotation=45, ha="right")
    ax_.set_yticks(range(len(src)), src)
    ax_.set_xlabel(f"target ({float(rec['target_time']):g})")
    ax_.set_ylabel(f"source ({float(rec['source_time']):g})")
    norm = str(rec.get("normalize", "source"))
    ax_.set_title({"source": "where each source cluster goes",
                   "target": "where each target cluster comes from"}.get(
        norm, "expected descendants"))
    if annotate:
        for i in range(table.shape[0]):
            for j in range(table.shape[1]):
                if np.isfinite(table[i, j]):
                    ax_.text(j, i, format(table[i, j], fmt), ha="center", va="center",
                             color="white" if table[i, j] > 0.6 * vmax else "black",
                             fontsize=8)
    fig.colorbar(im, ax=ax_, shrink=0.8)
    return finish(ax_, ax_given=ax is not None, show=show, save=save,
                  name="cluster_transitions")


def hatch_uncertain(
    adata: Data,
    *,
    basis: str = "umap",
    key: str = DEFAULT_KEY,
    z: float = 2.0,
    size: float | None = None,
    hatch: str = "////",
    color: str = "#4d4d4d",
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> Axes | None:
    """Hatch the cells whose growth sign is uncertain, ``|mean| < z · sd`` of the ensemble.

    Reads ``obs[f"{key}_growth_sd"]`` (written by :func:`vgfm.tl.ensemble`) and the ensemble
    mean ``obs[f"{key}_growth_mean"]`` (or the fitted ``obs[f"{key}_growth"]``), and draws
    hatched circles over those cells: on ``ax`` (e.g. the axes of a growth or fate plot), or,
    when ``ax`` is ``None``, on a new :func:`vgfm.pl.growth` plot.

    Parameters
    ----------
    adata
        AnnData (or MuData) with ``obsm["X_<basis>"]`` after :func:`vgfm.tl.ensemble`.
    basis
        Embedding name.
    key
        The ``key_added`` of :func:`vgfm.tl.ensemble`.
    z
        Number of standard deviations the mean must exceed for a certain sign.
    size
        Marker area of the hatched circles (default twice scanpy's).
    hatch, color
        Matplotlib hatch pattern and edge colour.
    mod
        For a MuData: modality holding the fields.
    ax, show, save
        As in :func:`vgfm.pl.growth`.

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` unless shown; the hatched cells are the
    :class:`~matplotlib.collections.PathCollection` labelled ``"uncertain sign"``.

    Examples
    --------
    >>> vgfm.tl.ensemble(adata)                                          # doctest: +SKIP
    >>> ax = vgfm.pl.hatch_uncertain(adata, basis="umap", show=False)    # doctest: +SKIP
    """
    data = resolve_container(adata, mod)
    emb = get_embedding(data, basis)
    mask = uncertain_sign(data, key=key, z=z)
    ax_ = ax
    if ax_ is None:
        ax_ = _growth_plot(data, basis=basis, key=key, show=False)
    draw_uncertain(ax_, emb, mask, mode="hatch", size=size, hatch=hatch, color=color)
    return finish(ax_, ax_given=ax is not None, show=show, save=save, name="hatch_uncertain")
