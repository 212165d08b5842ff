"""Plots on a 2-D embedding: growth rate, velocity field, simulated trajectories."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import TwoSlopeNorm, to_rgba
from matplotlib.legend import Legend

from vgfm._data._containers import Data, resolve_container
from vgfm._data._keys import (
    DEFAULT_KEY,
    growth_key,
    trajectories_key,
    trajectory_embedding_key,
    velocity_embedding_key,
)
from vgfm._data._options import VELOCITY_KINDS, VelocityKind
from vgfm._data._representation import get_embedding
from vgfm.pl._grid import smooth_on_grid
from vgfm.pl._uncertainty import draw_uncertain, uncertain_sign
from vgfm.pl._utils import (
    BACKGROUND_GREY,
    default_point_size,
    finish,
    fit_params,
    is_panel_list,
    method_label,
    new_axes,
    panels,
    scatter_cells,
    style_embedding_axes,
    symmetric_limit,
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
    color: str | Sequence[str] | None = None,
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    size: float | None = None,
    title: str | None = None,
    uncertainty: bool | Literal["hatch", "mask"] = False,
    uncertainty_z: float = 2.0,
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> Axes | list[Axes] | None:
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
    color
        ``obs`` column(s) of growth rates to draw; ``None`` draws ``obs["<key>_growth"]``. A
        list draws one panel per column (scanpy's ``color=[...]``) on one shared colour scale,
        e.g. ``color=["vgfm_growth", "true_growth"]`` to compare a fit with a known truth, or
        the growth of two fits.
    vmax
        Colour limit; ``None`` uses the 99th percentile of ``|g|`` over the cells (finite
        values; over all panels for a list), so that a few extreme cells do not wash out the
        rest (falling back to ``max |g|`` when that percentile is 0, and to 1 when all rates
        are 0 or missing).
    cmap
        A diverging matplotlib colormap.
    size
        Marker area; scanpy's default ``120000 / n_obs`` (capped) when ``None``.
    title
        Axes title; a default naming the method is used when ``None`` (the column name for
        each panel of a list).
    uncertainty
        Mark the cells whose growth *sign* is not certain, ``|mean| < uncertainty_z · sd`` of
        an ensemble of fits (``obs["<key>_growth_mean"]`` and ``obs["<key>_growth_sd"]``,
        written by :func:`vgfm.tl.ensemble`; the fitted ``obs["<key>_growth"]`` stands in
        for a missing mean). ``True`` or ``"hatch"`` draws hatched circles over them (their
        colour stays visible), ``"mask"`` greys them out; the legend gives their number. The
        same cells as :func:`vgfm.pl.hatch_uncertain`, on every panel of a list. Raises a
        ``KeyError`` naming the missing field when the ensemble was not run.
    uncertainty_z
        Standard deviations the ensemble mean must reach for a certain sign.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax
        Axes to draw into; a new figure is created when ``None`` (not with a list).
    show
        Show the figure; ``None`` shows it when the axes were created here and matplotlib is
        interactive.
    save
        File path (``.png`` appended without suffix) or ``True`` for
        ``<sc.settings.figdir>/vgfm_growth.png``; written at 150 dpi.

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` (a list of them for a list of columns) unless the
    figure was shown.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.fit(adata, time_key="day")  # doctest: +SKIP
    >>> ax = vgfm.pl.growth(adata, basis="umap", show=False)  # doctest: +SKIP
    >>> axes = vgfm.pl.growth(adata, color=["vgfm_growth", "true_growth"], show=False)  # doctest: +SKIP

    Hatch the cells whose growth sign an ensemble of fits does not pin down:

    >>> import numpy as np
    >>> adata = vgfm.datasets.two_gene_grn(n_cells_0=40, seed=0)
    >>> adata.obsm["X_umap"] = adata.X.copy()
    >>> _ = vgfm.tl.fit(adata, "time", use_rep="X", stage1_steps=20, stage2_steps=0,
    ...                 progress=False)
    >>> vgfm.tl.ensemble(adata, n_models=2, steps_fraction=0.5)
    >>> ax = vgfm.pl.growth(adata, uncertainty=True, show=False)
    >>> hatched = [c for c in ax.collections if c.get_label() == "uncertain sign"][0]
    >>> g, sd = adata.obs["vgfm_growth_mean"], adata.obs["vgfm_growth_sd"]
    >>> len(hatched.get_offsets()) == int(np.sum(np.abs(g) < 2 * sd))
    True
    """
    data = resolve_container(adata, mod)
    emb = get_embedding(data, basis)
    if uncertainty is True:
        uncertainty = "hatch"
    if uncertainty not in (False, None, "hatch", "mask"):
        raise ValueError(
            f"uncertainty must be False, True, 'hatch' or 'mask'; got {uncertainty!r}."
        )
    uncertain = uncertain_sign(data, key=key, z=uncertainty_z) if uncertainty else None
    columns = list(color) if is_panel_list(color) else [color or growth_key(key)]
    values = {}
    for column in columns:
        if column not in data.obs:
            hint = (
                f"run `vgfm.tl.fit(adata, key_added={key!r})` first"
                if column == growth_key(key)
                else f"obs columns: {list(data.obs.columns)}"
            )
            raise KeyError(f"adata.obs[{column!r}] (growth rates) is missing; {hint}.")
        values[column] = np.asarray(data.obs[column], dtype=np.float64)
    a = float(vmax) if vmax is not None else symmetric_limit(np.concatenate(list(values.values())))
    if not a > 0:
        a = 1.0
    params = fit_params(data, key)
    unit = time_unit_label(params.get("time_key"))

    def draw(column: str, axis: Axes) -> None:
        g = values[column]
        finite = np.isfinite(g)
        clipped = bool((np.abs(g[finite]) > a).any())
        norm = TwoSlopeNorm(vcenter=0.0, vmin=-a, vmax=a)
        s = default_point_size(emb.shape[0]) if size is None else size
        if (~finite).any():
            axis.scatter(
                emb[~finite, 0],
                emb[~finite, 1],
                c=BACKGROUND_GREY,
                s=s,
                linewidths=0,
                rasterized=True,
            )
        shown = finite if uncertainty != "mask" else finite & ~uncertain
        idx = np.flatnonzero(shown)
        idx = idx[np.argsort(np.abs(g[idx]), kind="stable")]
        sc_ = axis.scatter(
            emb[idx, 0],
            emb[idx, 1],
            c=g[idx],
            cmap=cmap,
            norm=norm,
            s=s,
            linewidths=0,
            rasterized=True,
        )
        cb = axis.figure.colorbar(
            sc_, ax=axis, fraction=0.046, pad=0.04, extend="both" if clipped else "neither"
        )
        cb.set_label(f"growth rate ({unit})")
        if uncertain is not None:
            coll = draw_uncertain(axis, emb, uncertain, mode=str(uncertainty))
            axis.legend(
                [coll],
                [f"uncertain sign, |mean| < {uncertainty_z:g} sd: "
                 f"{int(uncertain.sum())}/{uncertain.size} cells"],
                loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize=7, frameon=False,
                handletextpad=0.6,
            )
        default = f"{method_label(data, key)} growth rate" if column == growth_key(key) else column
        panel_title = title if title is not None and len(columns) == 1 else None
        style_embedding_axes(axis, basis, emb, panel_title or default)

    if is_panel_list(color):
        return panels(draw, columns, ax=ax, show=show, save=save, name="growth")
    fig, ax_ = new_axes(ax)
    draw(columns[0], ax_)
    return finish(ax_, ax_given=ax is not None, show=show, save=save, name="growth")


# --------------------------------------------------------------------------------------------
# velocity
# --------------------------------------------------------------------------------------------
def _embedded_velocity(data: Any, basis: str, key: str) -> np.ndarray:
    field = velocity_embedding_key(key, basis)
    if field not in data.obsm:
        raise KeyError(
            f"adata.obsm[{field!r}] (the velocity projected on {basis!r}) is missing; run "
            f"`vgfm.tl.velocity_embedding(adata, basis={basis!r}, key={key!r})` first."
        )
    v = np.asarray(data.obsm[field], dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(
            f"adata.obsm[{field!r}] must have shape (n_obs, 2); found {v.shape}. Recompute it "
            f"with `vgfm.tl.velocity_embedding(adata, basis={basis!r}, key={key!r})`."
        )
    return v[:, :2]


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
    color: str | Sequence[str] | None = None,
    density: float = 1.0,
    smooth: float = 0.5,
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
) -> Axes | list[Axes] | None:
    """Velocity field on an embedding: streamlines, a grid of arrows, or one arrow per cell.

    Draws ``obsm["<key>_velocity_<basis>"]`` written by :func:`vgfm.tl.velocity_embedding`
    (this function computes no projection; it raises, naming that call, when the field is
    missing). For ``kind="stream"`` and ``"grid"`` the per-cell vectors are averaged on a
    regular grid with a Gaussian kernel (bandwidth ``smooth`` × max(grid step, typical 5-NN
    distance)); grid points farther than two bandwidths from every cell are left empty, so
    streamlines stay where the cells are.

    Islands: the projection turns a velocity into a direction towards the cell's neighbours
    *in the embedding*. A disconnected island of the embedding (typically the first time
    point, when it differs from everything after it) has no neighbours outside itself, so its
    arrows can only point within the island, and may point away from where the cells go
    next. Read the direction between islands from :func:`vgfm.pl.trajectories`, not from this
    plot.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.fit` and :func:`vgfm.tl.velocity_embedding`,
        with ``obsm["X_<basis>"]``.
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
        A list draws one panel per entry (scanpy's ``color=[...]``).
    density
        Streamline density (:meth:`~matplotlib.axes.Axes.streamplot` gets ``2 * density``) and
        grid resolution (``50 * density`` points per axis for streams, ``20 * density`` for the
        grid).
    smooth
        Kernel bandwidth multiplier for ``"stream"`` / ``"grid"``.
    linewidth
        Streamline width; ``None`` scales it with the local speed (0.4–1.5).
    arrow_size
        Arrow head / length multiplier.
    n_arrows
        Maximum number of arrows for ``kind="arrows"``.
    size
        Marker area of the background cells.
    title
        Axes title; a default naming the method is used when ``None`` (the colour key for
        each panel of a list).
    seed
        Seed of the arrow subsampling.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax, show, save
        As in :func:`vgfm.pl.growth`.

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` (a list of them when ``color`` is a list) unless the
    figure was shown.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.velocity_embedding(adata, basis="umap")  # doctest: +SKIP
    >>> ax = vgfm.pl.velocity(adata, kind="stream", color="day", show=False)  # doctest: +SKIP
    >>> axes = vgfm.pl.velocity(adata, color=["day", "vgfm_growth"], show=False)  # doctest: +SKIP
    """
    if is_panel_list(color):
        options = {
            "basis": basis,
            "key": key,
            "kind": kind,
            "density": density,
            "smooth": smooth,
            "linewidth": linewidth,
            "arrow_size": arrow_size,
            "n_arrows": n_arrows,
            "size": size,
            "seed": seed,
            "mod": mod,
        }

        def draw(value: str | None, axis: Axes) -> None:
            velocity(adata, color=value, title=value, ax=axis, show=False, **options)

        return panels(draw, list(color), ax=ax, show=show, save=save, name=f"velocity_{kind}")
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
        n_grid = max(int(round(50 * density)), 5)
        xs, ys, U, V = smooth_on_grid(emb, vel, n_grid=n_grid, smooth=smooth)
        speed = np.sqrt(U**2 + V**2)
        if linewidth is None:
            top = np.nanmax(speed) if np.isfinite(speed).any() else 1.0
            lw = 0.4 + 1.1 * np.nan_to_num(speed / (top if top > 0 else 1.0))
        else:
            lw = linewidth
        ax_.streamplot(
            xs,
            ys,
            np.ma.masked_invalid(U),
            np.ma.masked_invalid(V),
            density=2.0 * density,
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
def _trajectories(data: Any, key: str, basis: str) -> dict[str, np.ndarray]:
    tkey = trajectories_key(key)
    traj = data.uns.get(tkey)
    if not isinstance(traj, dict) or "x" not in traj or "t" not in traj:
        raise KeyError(
            f"adata.uns[{tkey!r}] (simulated trajectories) is missing; run "
            f"`vgfm.tl.simulate(adata, key={key!r})` first."
        )
    x = np.asarray(traj["x"])
    t = np.asarray(traj["t"], dtype=np.float64)
    if x.ndim != 3 or x.shape[0] != t.shape[0]:
        raise ValueError(
            f"adata.uns[{tkey!r}]['x'] must have shape (len(t), n_particles, d) = "
            f"({t.shape[0]}, N, d); found {x.shape}."
        )
    name = trajectory_embedding_key(basis)
    if name not in traj:
        raise KeyError(
            f"adata.uns[{tkey!r}][{name!r}] (the simulated states placed on {basis!r}) is "
            f"missing; run `vgfm.tl.trajectory_embedding(adata, basis={basis!r}, key={key!r})` "
            "first."
        )
    mapped = np.asarray(traj[name], dtype=np.float64)
    if mapped.shape != (*x.shape[:2], 2):
        raise ValueError(
            f"adata.uns[{tkey!r}][{name!r}] has shape {mapped.shape} but the trajectories have "
            f"{x.shape[:2]} states; it belongs to an older simulation: re-run "
            f"`vgfm.tl.trajectory_embedding(adata, basis={basis!r}, key={key!r})`."
        )
    gap_shape = (x.shape[0] - 1, x.shape[1])
    gap = np.asarray(traj.get(f"{name}_gap", np.zeros(gap_shape, dtype=bool)), dtype=bool)
    if gap.shape != gap_shape:
        gap = np.zeros(gap_shape, dtype=bool)
    log_mass = traj.get("log_mass")
    lm = np.zeros(x.shape[:2]) if log_mass is None else np.asarray(log_mass, dtype=np.float64)
    return {"t": t, "mapped": mapped, "gap": gap, "log_mass": lm}


def _select_paths(
    end_mass: np.ndarray, order_key: np.ndarray, n: int | None, by_mass: bool, seed: int
) -> np.ndarray:
    """Indices of the particles to draw.

    ``by_mass``: systematic (stratified) resampling on the cumulative final mass, particles
    ordered along ``order_key`` (so that every part of the embedding is represented): one
    offset ``u ~ U(0, 1/n)`` (``seed``), points ``u + i/n``; a particle is drawn when a point
    falls in its share of the mass, so the drawn set represents the mass-weighted population.
    Particles hit by several points are drawn once and the count is topped up to ``n`` by
    mass-weighted sampling without replacement among the others. Otherwise a uniform random subset. ``n=None`` draws every particle.
    """
    N = end_mass.size
    if n is None or n >= N:
        return np.arange(N)
    rng = np.random.default_rng(seed)
    m = np.nan_to_num(end_mass, nan=0.0, posinf=0.0)
    if not by_mass or not (m > 0).any():
        return np.sort(rng.choice(N, size=int(n), replace=False))
    order = np.argsort(order_key, kind="stable")
    cum = np.cumsum(m[order])
    cum /= cum[-1]
    points = (rng.uniform(0.0, 1.0) + np.arange(int(n))) / int(n)
    picked = np.unique(order[np.minimum(np.searchsorted(cum, points, side="left"), N - 1)])
    missing = int(n) - picked.size  # heavy particles span several strata: top up by mass
    if missing > 0:
        rest = np.setdiff1d(np.arange(N), picked)
        w = m[rest]
        w = w / w.sum() if w.sum() > 0 else None
        if w is not None and np.count_nonzero(w) < missing:
            w = None
        picked = np.union1d(picked, rng.choice(rest, size=missing, replace=False, p=w))
    return picked


def trajectories(
    adata: Data,
    *,
    basis: str = "umap",
    key: str = DEFAULT_KEY,
    n_paths: int | None = 30,
    by_mass: bool = True,
    color: str | None = None,
    mass_scale: Literal["none", "width", "alpha"] = "none",
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
    """Simulated particle paths drawn on an embedding.

    Draws ``uns["<key>_trajectories"]["<basis>"]``, the simulated states placed on the
    embedding by :func:`vgfm.tl.trajectory_embedding` (this function computes nothing).
    One line is drawn per particle (white circle: start, red dot: end) over the cells.

    Particles carry a mass (``exp(log_mass)``): lineages that grow are worth more than ones
    that shrink, and the observed population at a later time resembles the *mass-weighted*
    particles. By default ``n_paths=30`` paths are drawn, chosen in proportion to their final
    mass by stratified (systematic) resampling along the embedding's first coordinate of the
    end points, so that the end points represent the population the model predicts; with
    ``by_mass=False`` a uniform random subset is drawn. Segments that
    :func:`vgfm.tl.trajectory_embedding` flagged as crossing empty space (away from every
    observed cell, or a straight jump between disconnected islands of the embedding) are
    drawn dashed, labelled ``"crosses empty space"`` in the legend, and a warning is logged.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.simulate` and
        :func:`vgfm.tl.trajectory_embedding`, with ``obsm["X_<basis>"]``.
    basis
        Embedding name (``obsm["X_<basis>"]``).
    key
        The ``key`` used in :func:`vgfm.tl.fit` / :func:`vgfm.tl.simulate`.
    n_paths
        Draw at most this many particles; ``None`` draws all.
    by_mass
        Choose the drawn particles in proportion to their final mass (default) rather than
        uniformly.
    color
        Background cells, as in :func:`vgfm.pl.velocity`.
    mass_scale
        ``"width"`` or ``"alpha"``: scale each line by its particle's final mass
        ``exp(log_mass[-1])`` relative to the median; ``"none"`` draws all lines alike.
    path_color, linewidth, alpha
        Line style of the paths.
    size
        Marker area of the background cells.
    title
        Axes title.
    seed
        Seed of the path selection.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax, show, save
        As in :func:`vgfm.pl.growth`.

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` unless the figure was shown. The paths are the
    :class:`~matplotlib.collections.LineCollection` with label ``"trajectories"`` (parts away
    from the data: label ``"crosses empty space"``).

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.simulate(adata)  # doctest: +SKIP
    >>> vgfm.tl.trajectory_embedding(adata, basis="umap")  # doctest: +SKIP
    >>> ax = vgfm.pl.trajectories(adata, color="day", show=False)  # doctest: +SKIP
    """
    if mass_scale not in ("none", "width", "alpha"):
        raise ValueError(f"mass_scale must be 'none', 'width' or 'alpha'; got {mass_scale!r}.")
    if n_paths is not None and int(n_paths) < 1:
        raise ValueError(f"n_paths must be >= 1 or None; got {n_paths}.")
    data = resolve_container(adata, mod)
    emb = get_embedding(data, basis)
    traj = _trajectories(data, key, basis)
    mapped, gap, lm = traj["mapped"], traj["gap"], traj["log_mass"]
    T, N, _ = mapped.shape
    with np.errstate(over="ignore"):
        end_mass = np.exp(lm[-1])
    sel = _select_paths(end_mass, mapped[-1, :, 0], n_paths, by_mass, seed)

    paths = []
    off_segments = []
    for i in sel:
        ok = np.all(np.isfinite(mapped[:, i, :]), axis=1)
        paths.append(mapped[ok, i, :])
        for j in np.flatnonzero(gap[:, i] & ok[:-1] & ok[1:]):
            off_segments.append(mapped[j : j + 2, i, :])

    fig, ax_ = new_axes(ax)
    scatter_cells(ax_, data, emb, color, size=size, alpha=0.5 if color else 1.0, zorder=0)
    widths: Any = linewidth
    alphas: Any = alpha
    if mass_scale != "none" and sel.size:
        m = end_mass[sel]
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
        lc.set_color([to_rgba(path_color, float(a_)) for a_ in alphas])
    ax_.add_collection(lc)
    if off_segments:
        # the on-data line underneath is covered by a white gap pattern: dashed = off the data
        ax_.add_collection(
            LineCollection(
                off_segments,
                colors="white",
                linewidths=np.max(np.atleast_1d(widths)) * 1.6,
                zorder=2.5,
            )
        )
        ax_.add_collection(
            LineCollection(
                off_segments,
                colors=path_color,
                linewidths=np.max(np.atleast_1d(widths)),
                linestyles=(0, (2.0, 2.0)),
                zorder=2.6,
                label="crosses empty space",
            )
        )
        logger.warning(
            "pl.trajectories: %d drawn path segments cross empty space on %r (off the data or "
            "jumping between islands of the embedding); they are drawn dashed",
            len(off_segments),
            basis,
        )
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
    handles = [
        h for h in ax_.collections if h.get_label() in ("start", "end", "crosses empty space")
    ]
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
    how = "chosen by final mass" if by_mass and sel.size < N else "random" if sel.size < N else ""
    count = f"{sel.size} of {N} paths" + (f", {how}" if how else "")
    style_embedding_axes(
        ax_,
        basis,
        emb,
        title or f"{method_label(data, key)} trajectories ({count}, t = {t[0]:g} to {t[-1]:g})",
    )
    return finish(ax_, ax_given=ax is not None, show=show, save=save, name="trajectories")
