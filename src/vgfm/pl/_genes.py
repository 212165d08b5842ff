"""Ranked gene plot of :func:`vgfm.tl.growth_genes` (in the style of scanpy's
``sc.pl.rank_genes_groups``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgfm._data._containers import Data, resolve_container
from vgfm._data._keys import DEFAULT_KEY, growth_genes_key
from vgfm.pl._utils import finish, method_label, new_axes, panels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

logger = logging.getLogger("vgfm")

__all__ = ["growth_genes"]


def _rankings(data: Any, key: str) -> dict[str, dict[str, np.ndarray]]:
    field = growth_genes_key(key)
    res = data.uns.get(field)
    if not isinstance(res, dict) or "overall" not in res:
        raise KeyError(
            f"adata.uns[{field!r}] (genes ranked by growth correlation) is missing; run "
            f"`vgfm.tl.growth_genes(adata, key={key!r})` first."
        )
    out = {"overall": res["overall"]}
    for label, ranking in dict(res.get("per_time", {})).items():
        out[str(label)] = ranking
    return out


def growth_genes(
    adata: Data,
    *,
    key: str = DEFAULT_KEY,
    groups: str | Sequence[str] | None = None,
    n_genes: int = 20,
    fontsize: float = 8.0,
    ncols: int = 4,
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> Axes | list[Axes] | None:
    """Genes ranked by their correlation with the learned growth rate.

    Draws ``uns["<key>_growth_genes"]`` written by :func:`vgfm.tl.growth_genes`: one panel
    per ranking (``"overall"`` and one per time label), the x axis the rank, the y axis the
    correlation (a dot per gene), each gene's name written vertically at its dot, as scanpy's
    ``sc.pl.rank_genes_groups`` does. Genes are in the stored order (largest absolute
    correlation first); a dotted line marks zero.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.growth_genes`.
    key
        The ``key`` used in :func:`vgfm.tl.growth_genes`.
    groups
        Rankings to draw: ``"overall"``, time labels, or a list of them; ``None`` draws
        ``"overall"`` and every time point.
    n_genes
        Genes per panel (at most the ``n_top`` stored).
    fontsize
        Font size of the gene names.
    ncols
        Panels per row.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax
        Axes for a single ranking (``groups`` a string); not with several panels.
    show, save
        As in :func:`vgfm.pl.growth` (``save=True`` writes ``vgfm_growth_genes.png``).

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` for one ranking, a list of them for several, unless the
    figure was shown.

    Examples
    --------
    >>> import vgfm
    >>> table = vgfm.tl.growth_genes(adata, n_top=20)  # doctest: +SKIP
    >>> axes = vgfm.pl.growth_genes(adata, n_genes=10, show=False)  # doctest: +SKIP
    """
    if int(n_genes) < 1:
        raise ValueError(f"n_genes must be >= 1; got {n_genes}.")
    data = resolve_container(adata, mod)
    rankings = _rankings(data, key)
    if groups is None:
        names = list(rankings)
    elif isinstance(groups, str):
        names = [groups]
    else:
        names = [str(g) for g in groups]
    missing = [g for g in names if g not in rankings]
    if missing:
        raise KeyError(
            f"growth-gene ranking(s) {missing} not found in adata.uns"
            f"[{growth_genes_key(key)!r}]; available: {list(rankings)}."
        )
    label = method_label(data, key)

    def draw(name: str, axis: Axes) -> None:
        ranking = rankings[name]
        genes = np.asarray(ranking["gene"], dtype=str)[: int(n_genes)]
        corr = np.asarray(ranking["correlation"], dtype=np.float64)[: int(n_genes)]
        ranks = np.arange(1, genes.size + 1)
        finite = np.isfinite(corr)
        lo = float(min(0.0, corr[finite].min())) if finite.any() else -1.0
        hi = float(max(0.0, corr[finite].max())) if finite.any() else 1.0
        pad = 0.12 * max(hi - lo, 1e-3)
        for r, g, c in zip(ranks[finite], genes[finite], corr[finite]):
            axis.text(
                r,
                c,
                g,
                rotation=90,
                ha="center",
                va="bottom" if c >= 0 else "top",
                fontsize=fontsize,
            )
        axis.scatter(ranks[finite], corr[finite], s=8, color="#262626", zorder=3, label="genes")
        axis.axhline(0.0, color="0.6", lw=0.8, ls=":")
        axis.set_xlim(0.3, genes.size + 0.7)
        axis.set_ylim(lo - pad * (3.0 if lo < 0 else 0.3), hi + pad * (3.0 if hi > 0 else 0.3))
        axis.set_xlabel("rank")
        axis.set_ylabel("correlation with growth")
        axis.set_title(name if name != "overall" else f"{label} growth genes, all cells")

    if len(names) > 1:
        return panels(
            draw,
            names,
            ax=ax,
            show=show,
            save=save,
            name="growth_genes",
            ncols=ncols,
            panel_size=(4.0, 3.6),
        )
    _, ax_ = new_axes(ax, figsize=(4.5, 4.0))
    draw(names[0], ax_)
    return finish(ax_, ax_given=ax is not None, show=show, save=save, name="growth_genes")
