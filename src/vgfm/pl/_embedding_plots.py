"""Plots on a 2-D embedding: growth rate, velocity field, simulated trajectories."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import TwoSlopeNorm
from matplotlib.legend import Legend

from vgfm._data._containers import Data, resolve_container
from vgfm._data._keys import (
    DEFAULT_KEY,
    growth_key,
    trajectories_key,
    velocity_embedding_key,
)
from vgfm._data._options import VELOCITY_KINDS, VelocityKind
from vgfm._data._representation import get_embedding, get_representation
from vgfm.pl._grid import map_to_embedding, smooth_on_grid
from vgfm.pl._utils import (
    BACKGROUND_GREY,
    default_point_size,
    finish,
    fit_params,
    method_label,
    new_axes,
    scatter_cells,
    style_embedding_axes,
    time_unit_label,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

logger = logging.getLogger("vgfm")

__all__ = ["growth", "velocity", "trajectories"]


# --------------------------------------------------------------------------------------------
# growth
# --------------------------------------------------------------------------------------------
def growth(
    adata: Data,
    *,
    basis: str = "umap",
    key: str = DEFAULT_KEY,
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    size: float | None = None,
    title: str | None = None,
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> Axes | None:
    """Cells on an embedding coloured by the learned growth rate ``obs["<key>_growth"]``.

    A diverging colormap is centred at zero (``TwoSlopeNorm(vcenter=0)``) with symmetric
    limits ``(-vmax, vmax)``: red cells expand, blue cells shrink or die. Cells with the
    largest ``|g|`` are drawn on top. Cells with ``|g| > vmax`` are drawn in the end colours
    and the colour bar then has pointed ends (``extend="both"``).

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.fit` with ``obsm["X_<basis>"]``.
    basis
        Embedding name (``obsm["X_<basis>"]``).
    key
        The ``key_added`` used in :func:`vgfm.tl.fit`.
    vmax
        Colour limit; ``None`` uses the 99th percentile of ``|g|`` over the cells (finite
        values), so that a few extreme cells do not wash out the rest (falling back to
        ``max |g|`` when that percentile is 0, and to 1 when all rates are 0 or missing).
    cmap
        A diverging matplotlib colormap.
    size
        Marker area; scanpy's default ``120000 / n_obs`` (capped) when ``None``.
    title
        Axes title; a default naming the method is used when ``None``.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax
        Axes to draw into; a new figure is created when ``None``.
    show
        Show the figure; ``None`` shows it when the axes were created here and matplotlib is
        interactive.
    save
        File path (``.png`` appended without suffix) or ``True`` for
        ``<sc.settings.figdir>/vgfm_growth.png``; written at 150 dpi.

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` unless the figure was shown.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.fit(adata, time_key="day")  # doctest: +SKIP
    >>> ax = vgfm.pl.growth(adata, basis="umap", show=False)  # doctest: +SKIP
    """
    data = resolve_container(adata, mod)
    emb = get_embedding(data, basis)
    gkey = growth_key(key)
    if gkey not in data.obs:
        raise KeyError(
            f"adata.obs[{gkey!r}] (VGFM growth rates) is missing; run "
            f"`vgfm.tl.fit(adata, key_added={key!r})` first."
        )
    g = np.asarray(data.obs[gkey], dtype=np.float64)
    params = fit_params(data, key)
    finite = np.isfinite(g)
    abs_g = np.abs(g[finite])
    if vmax is not None:
        a = float(vmax)
    elif abs_g.size:
        a = float(np.percentile(abs_g, 99))
        if not a > 0:
            a = float(abs_g.max())
    else:
        a = 1.0
    if not a > 0:
        a = 1.0
    clipped = bool((abs_g > a).any())
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-a, vmax=a)

    fig, ax_ = new_axes(ax)
    s = default_point_size(emb.shape[0]) if size is None else size
    if (~finite).any():
        ax_.scatter(
            emb[~finite, 0], emb[~finite, 1], c=BACKGROUND_GREY, s=s, linewidths=0, rasterized=True
        )
    idx = np.flatnonzero(finite)
    idx = idx[np.argsort(np.abs(g[idx]), kind="stable")]
    sc_ = ax_.scatter(
        emb[idx, 0], emb[idx, 1], c=g[idx], cmap=cmap, norm=norm, s=s, linewidths=0, rasterized=True
    )
    cb = fig.colorbar(
        sc_, ax=ax_, fraction=0.046, pad=0.04, extend="both" if clipped else "neither"
    )
    cb.set_label(f"growth rate ({time_unit_label(params.get('time_key'))})")
    style_embedding_axes(ax_, basis, emb, title or f"{method_label(data, key)} growth rate")
    return finish(ax_, ax_given=ax is not None, show=show, save=save, name="growth")


# --------------------------------------------------------------------------------------------
# velocity
# --------------------------------------------------------------------------------------------
def _embedded_velocity(data: Any, basis: str, key: str) -> np.ndarray:
    field = velocity_embedding_key(key, basis)
    if field in data.obsm:
        v = np.asarray(data.obsm[field], dtype=np.float64)
        if v.ndim == 2 and v.shape[1] >= 2:
            return v[:, :2]
    from vgfm.tl._embedding import _velocity_embedding_array

    logger.info(
        "adata.obsm[%r] not found; projecting velocities on the fly (not stored; run "
        "`vgfm.tl.velocity_embedding` to keep them)",
        field,
    )
    return _velocity_embedding_array(data, basis=basis, key=key)


def _arrow_scale(vectors: np.ndarray, target_length: float) -> float:
    """quiver ``scale`` (``scale_units='xy'``) so that the 90th percentile arrow has
    ``target_length`` data units."""
    lengths = np.linalg.norm(vectors, axis=1)
    lengths = lengths[np.isfinite(lengths) & (lengths > 0)]
    if lengths.size == 0:
        return 1.0
    return float(np.quantile(lengths, 0.9) / target_length)


def velocity(
    adata: Data,
    *,
    basis: str = "umap",
    key: str = DEFAULT_KEY,
    kind: VelocityKind = "stream",
    color: str | None = None,
    density: float = 1.0,
    smooth: float = 1.0,
    linewidth: float | None = None,
    arrow_size: float = 1.0,
    n_arrows: int = 500,
    size: float | None = None,
    title: str | None = None,
    seed: int = 0,
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> Axes | None:
    """Velocity field on an embedding: streamlines, a grid of arrows, or one arrow per cell.

    Uses ``obsm["<key>_velocity_<basis>"]`` from :func:`vgfm.tl.velocity_embedding`; when it
    is missing the projection is computed on the fly (same defaults) without storing it.
    For ``kind="stream"`` and ``"grid"`` the per-cell vectors are averaged on a regular grid with
    a Gaussian kernel (bandwidth ``smooth`` × max(grid step, typical 5-NN distance)); grid
    points farther than two bandwidths from every cell are left empty.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.fit`, with ``obsm["X_<basis>"]``.
    basis
        Embedding name (``obsm["X_<basis>"]``).
    key
        The ``key_added`` used in :func:`vgfm.tl.fit`.
    kind
        ``"stream"`` (:meth:`~matplotlib.axes.Axes.streamplot`), ``"grid"`` (quiver on the grid)
        or ``"arrows"`` (quiver per cell, at most ``n_arrows`` cells, subsampled with ``seed``).
    color
        Background cells: an ``obs`` column (categorical: ``uns[f"{color}_colors"]`` or scanpy
        palettes; numeric: viridis), a gene, a matplotlib colour, or ``None`` for light grey.
    density
        Streamline density, and grid resolution (``40 * density`` points per axis for streams,
        ``20 * density`` for the grid).
    smooth
        Kernel bandwidth multiplier for ``"stream"`` / ``"grid"``.
    linewidth
        Streamline width; ``None`` scales it with the local speed (0.5–2).
    arrow_size
        Arrow head / length multiplier.
    n_arrows
        Maximum number of arrows for ``kind="arrows"``.
    size
        Marker area of the background cells.
    title
        Axes title; a default naming the method is used when ``None``.
    seed
        Seed of the arrow subsampling.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax, show, save
        As in :func:`vgfm.pl.growth`.

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` unless the figure was shown.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.velocity_embedding(adata, basis="umap")  # doctest: +SKIP
    >>> ax = vgfm.pl.velocity(adata, kind="stream", color="day", show=False)  # doctest: +SKIP
    """
    if kind not in VELOCITY_KINDS:
        raise ValueError(f"kind must be one of {VELOCITY_KINDS}; got {kind!r}.")
    if density <= 0:
        raise ValueError(f"density must be > 0; got {density}.")
    data = resolve_container(adata, mod)
    emb = get_embedding(data, basis)
    vel = _embedded_velocity(data, basis, key)
    if vel.shape[0] != emb.shape[0]:
        raise ValueError(
            f"adata.obsm[{velocity_embedding_key(key, basis)!r}] has {vel.shape[0]} rows but the "
            f"embedding has {emb.shape[0]}; recompute it with `vgfm.tl.velocity_embedding`."
        )

    fig, ax_ = new_axes(ax)
    scatter_cells(ax_, data, emb, color, size=size, alpha=0.6 if color else 1.0, zorder=0)
    span = float(np.max(np.ptp(emb[np.all(np.isfinite(emb), axis=1)], axis=0)))
    if kind == "stream":
        n_grid = max(int(round(40 * density)), 5)
        xs, ys, U, V = smooth_on_grid(emb, vel, n_grid=n_grid, smooth=smooth)
        speed = np.sqrt(U**2 + V**2)
        if linewidth is None:
            top = np.nanmax(speed) if np.isfinite(speed).any() else 1.0
            lw = 0.5 + 1.5 * np.nan_to_num(speed / (top if top > 0 else 1.0))
        else:
            lw = linewidth
        ax_.streamplot(
            xs,
            ys,
            np.ma.masked_invalid(U),
            np.ma.masked_invalid(V),
            density=density,
            color="#262626",
            linewidth=lw,
            arrowsize=arrow_size,
            zorder=2,
        )
    elif kind == "grid":
        n_grid = max(int(round(20 * density)), 3)
        xs, ys, U, V = smooth_on_grid(emb, vel, n_grid=n_grid, smooth=smooth)
        gx, gy = np.meshgrid(xs, ys)
        m = np.isfinite(U) & np.isfinite(V)
        vecs = np.column_stack([U[m], V[m]])
        step = float(xs[1] - xs[0]) if len(xs) > 1 else span
        ax_.quiver(
            gx[m],
            gy[m],
            U[m],
            V[m],
            angles="xy",
            scale_units="xy",
            scale=_arrow_scale(vecs, 0.9 * step * arrow_size),
            width=0.004,
            color="#262626",
            zorder=2,
        )
    else:
        ok = np.flatnonzero(np.all(np.isfinite(vel), axis=1) & np.all(np.isfinite(emb), axis=1))
        if ok.size > n_arrows:
            ok = np.sort(np.random.default_rng(seed).choice(ok, size=n_arrows, replace=False))
        ax_.quiver(
            emb[ok, 0],
            emb[ok, 1],
            vel[ok, 0],
            vel[ok, 1],
            angles="xy",
            scale_units="xy",
            scale=_arrow_scale(vel[ok], 0.04 * span * arrow_size),
            width=0.003,
            color="#262626",
            zorder=2,
        )
    style_embedding_axes(ax_, basis, emb, title or f"{method_label(data, key)} velocity")
    return finish(ax_, ax_given=ax is not None, show=show, save=save, name=f"velocity_{kind}")


# --------------------------------------------------------------------------------------------
# trajectories
# --------------------------------------------------------------------------------------------
def _trajectories(data: Any, key: str) -> dict[str, np.ndarray]:
    tkey = trajectories_key(key)
    traj = data.uns.get(tkey)
    if not isinstance(traj, dict) or "x" not in traj or "t" not in traj:
        raise KeyError(
            f"adata.uns[{tkey!r}] (simulated trajectories) is missing; run "
            f"`vgfm.tl.simulate(adata, key={key!r})` first."
        )
    x = np.asarray(traj["x"], dtype=np.float64)
    t = np.asarray(traj["t"], dtype=np.float64)
    if x.ndim != 3 or x.shape[0] != t.shape[0]:
        raise ValueError(
            f"adata.uns[{tkey!r}]['x'] must have shape (len(t), n_particles, d) = "
            f"({t.shape[0]}, N, d); found {x.shape}."
        )
    log_mass = traj.get("log_mass")
    lm = np.zeros(x.shape[:2]) if log_mass is None else np.asarray(log_mass, dtype=np.float64)
    return {"t": t, "x": x, "log_mass": lm}


def trajectories(
    adata: Data,
    *,
    basis: str = "umap",
    key: str = DEFAULT_KEY,
    n_paths: int | None = None,
    color: str | None = None,
    mass_scale: Literal["none", "width", "alpha"] = "none",
    n_neighbors: int = 10,
    path_color: str = "#262626",
    linewidth: float = 1.0,
    alpha: float = 0.7,
    size: float | None = None,
    title: str | None = None,
    seed: int = 0,
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> Axes | None:
    """Simulated particle paths (``uns["<key>_trajectories"]``) drawn on an embedding.

    Simulated states live in the fitted representation (``uns[key]["params"]["use_rep"]``),
    not in the embedding. Each state is placed on the embedding by inverse-distance-weighted
    k-nearest-neighbour regression: its ``n_neighbors`` (default 10) nearest cells in the
    fitted representation are found with :class:`sklearn.neighbors.NearestNeighbors` and the
    state gets ``sum_j w_j e_j / sum_j w_j`` with ``w_j = 1 / d_j``. This is a visual aid: a
    path that leaves the data manifold is drawn at the nearest observed cells.

    One line is drawn per particle (white circle: start, dark dot: end) over the cells.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.simulate`, with ``obsm["X_<basis>"]``.
    basis
        Embedding name (``obsm["X_<basis>"]``).
    key
        The ``key`` used in :func:`vgfm.tl.fit` / :func:`vgfm.tl.simulate`.
    n_paths
        Draw at most this many particles (random subset with ``seed``); ``None`` draws all.
    color
        Background cells, as in :func:`vgfm.pl.velocity`.
    mass_scale
        ``"width"`` or ``"alpha"``: scale each line by its particle's final mass
        ``exp(log_mass[-1])`` relative to the median; ``"none"`` draws all lines alike.
    n_neighbors
        ``k`` of the kNN mapping to the embedding.
    path_color, linewidth, alpha
        Line style of the paths.
    size
        Marker area of the background cells.
    title
        Axes title.
    seed
        Seed of the path subsampling.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax, show, save
        As in :func:`vgfm.pl.growth`.

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` unless the figure was shown. The paths are the
    :class:`~matplotlib.collections.LineCollection` with label ``"trajectories"``.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.simulate(adata)  # doctest: +SKIP
    >>> ax = vgfm.pl.trajectories(adata, n_paths=100, color="day", show=False)  # doctest: +SKIP
    """
    if mass_scale not in ("none", "width", "alpha"):
        raise ValueError(f"mass_scale must be 'none', 'width' or 'alpha'; got {mass_scale!r}.")
    data = resolve_container(adata, mod)
    emb = get_embedding(data, basis)
    traj = _trajectories(data, key)
    params = fit_params(data, key)
    rep = get_representation(data, params["use_rep"])
    x, lm = traj["x"], traj["log_mass"]
    T, N, d = x.shape
    if d != rep.shape[1]:
        raise ValueError(
            f"simulated states have {d} dimensions but adata.obsm[{params['use_rep']!r}] has "
            f"{rep.shape[1]}; were the trajectories simulated from another fit?"
        )
    sel = np.arange(N)
    if n_paths is not None and n_paths < N:
        sel = np.sort(np.random.default_rng(seed).choice(N, size=int(n_paths), replace=False))
    xs = x[:, sel, :]
    mapped = map_to_embedding(rep, emb, xs.reshape(-1, d), k=n_neighbors).reshape(T, sel.size, 2)
    paths = [mapped[:, i, :][np.all(np.isfinite(mapped[:, i, :]), axis=1)] for i in range(sel.size)]

    fig, ax_ = new_axes(ax)
    scatter_cells(ax_, data, emb, color, size=size, alpha=0.5 if color else 1.0, zorder=0)
    widths: Any = linewidth
    alphas: Any = alpha
    if mass_scale != "none" and sel.size:
        m = np.exp(lm[-1, sel])
        med = np.nanmedian(m)
        rel = np.clip(np.nan_to_num(m / med if med > 0 else m, nan=0.0), 0.1, 4.0)
        if mass_scale == "width":
            widths = linewidth * rel
        else:
            alphas = np.clip(alpha * rel / rel.max(), 0.05, 1.0)
    lc = LineCollection(
        paths, colors=path_color, linewidths=widths, alpha=None, zorder=2, label="trajectories"
    )
    if np.ndim(alphas) == 0:
        lc.set_alpha(float(alphas))
    else:
        from matplotlib.colors import to_rgba

        lc.set_color([to_rgba(path_color, float(a_)) for a_ in alphas])
    ax_.add_collection(lc)
    starts = np.array([p[0] for p in paths if len(p)]).reshape(-1, 2)
    ends = np.array([p[-1] for p in paths if len(p)]).reshape(-1, 2)
    ax_.scatter(
        starts[:, 0],
        starts[:, 1],
        s=18,
        facecolors="white",
        edgecolors="#262626",
        linewidths=0.8,
        zorder=3,
        label="start",
    )
    ax_.scatter(
        ends[:, 0],
        ends[:, 1],
        s=18,
        c="#b2182b",
        edgecolors="#262626",
        linewidths=0.5,
        zorder=4,
        label="end",
    )
    handles = [h for h in ax_.collections if h.get_label() in ("start", "end")]
    # a separate Legend artist keeps the category legend of `color=` (ax.legend_) intact
    leg = Legend(
        ax_,
        handles,
        [h.get_label() for h in handles],
        loc="best",
        fontsize="small",
        frameon=True,
        framealpha=0.8,
    )
    leg.set_zorder(5)
    ax_.add_artist(leg)
    t = traj["t"]
    style_embedding_axes(
        ax_,
        basis,
        emb,
        title
        or f"{method_label(data, key)} trajectories ({sel.size} paths, t = {t[0]:g} to {t[-1]:g})",
    )
    return finish(ax_, ax_given=ax is not None, show=show, save=save, name="trajectories")
