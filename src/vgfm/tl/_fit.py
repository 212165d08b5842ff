"""AnnData-facing training, velocity, simulation and evaluation."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vgfm import _constants as C
from vgfm._anndata_utils import obs_times, resolve_container
from vgfm._core.metrics import relative_mass_error, wasserstein1
from vgfm._core.ode import grid_times
from vgfm._core.threads import torch_threads
from vgfm._core.train import TrainConfig, train
from vgfm._model import VGFM
from vgfm.pp._validate import (
    TimeMapping,
    cells_per_time,
    check_holdout_time,
    get_representation,
    population_sizes_or_default,
    resolve_times,
)

logger = logging.getLogger("vgfm")

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _config_from_options(method: str, options: dict[str, Any]) -> TrainConfig:
    unknown = sorted(set(options) - _CONFIG_FIELDS)
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for vgfm.tl.fit; valid options: "
            f"{sorted(_CONFIG_FIELDS - {'method'})}"
        )
    return TrainConfig(method=method, **options)


def _copy_target(data: Any, copy: bool, mod: str | None) -> tuple[Any, Any]:
    """Return (object to hand back, container to write into)."""
    if copy:
        data = data.copy()
    return data, resolve_container(data, mod)


def _cell_times(container: Any, info: dict[str, Any]) -> np.ndarray:
    """Numeric time of each cell, with the label mapping stored at fit time."""
    return obs_times(container, info["time_key"], info["time_labels"], info["times"])


def _write_predictions(container: Any, model: VGFM, key: str, x: np.ndarray,
                       t: np.ndarray) -> list[str]:
    v, g = model.predict(x, t)
    container.obsm[C.velocity_key(key)] = v.astype(np.float32)
    container.obs[C.growth_key(key)] = g.astype(np.float64)
    written = [f"obsm[{C.velocity_key(key)!r}]", f"obs[{C.growth_key(key)!r}]"]
    if model.use_rep == "X_pca" and "PCs" in getattr(container, "varm", {}):
        pcs = np.asarray(container.varm["PCs"])
        if pcs.shape[1] >= v.shape[1]:
            container.layers[C.gene_velocity_key(key)] = (v @ pcs[:, : v.shape[1]].T).astype(
                np.float32
            )
            written.append(f"layers[{C.gene_velocity_key(key)!r}]")
    return written


def fit(
    adata: Any,
    time_key: str = C.DEFAULT_TIME_KEY,
    *,
    use_rep: str = C.DEFAULT_USE_REP,
    key_added: str = C.DEFAULT_KEY,
    method: C.Method = "vgfm",
    population_size: Sequence[float] | dict | None = None,
    holdout_time: float | str | None = None,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
    **options: Any,
) -> VGFM | tuple[Any, VGFM]:
    """Fit joint velocity-growth flow matching on a time-course AnnData (or MuData).

    Couples consecutive snapshots by semi-relaxed optimal transport, regresses the velocity
    and growth rate on the couplings (stage 1), refines them by fitting the observed
    snapshots with the simulated, mass-weighted population (stage 2), picks the checkpoint on
    held-back cells, and writes the learned velocity and growth of every cell back.

    Parameters
    ----------
    adata
        :class:`~anndata.AnnData` or :class:`~mudata.MuData` with a time column.
    time_key
        ``.obs`` column with each cell's time: numeric, or labels like ``"day 2"``/``"E14.5"``.
    use_rep
        Representation to model: an ``.obsm`` key (``"X_pca"``, a MOFA/WNN embedding) or ``"X"``.
    key_added
        Prefix of every field written (see Returns).
    method
        ``"vgfm"`` (growth-aware) or ``"otcfm"`` (the balanced, growth-free OT-CFM baseline).
    population_size
        Population size per time point (measured counts or relative sizes), as a sequence in
        time order or a dict keyed by time label/value. Default: the values stored by
        :func:`vgfm.pp.population_size`, else the cell counts.
    holdout_time
        Interior time point (label or value) left out of training to test interpolation.
    time_order, time_values
        Explicit order (and numeric values) of non-numeric time labels.
    seed
        Seed of every random draw; the same seed on CPU gives the same numbers.
    device
        ``"cpu"``, ``"cuda"``, … ; ``None`` picks CUDA when available.
    progress
        Show progress bars.
    mod
        For a MuData: fit on modality ``mod`` instead of the joint object.
    copy
        Work on a copy and return ``(copy, model)``.
    n_threads
        Torch CPU threads used meanwhile (restored afterwards); ``None`` keeps torch's
        setting. One thread is the default: the networks are small, and it avoids the large
        slowdown when torch's threads compete with the OpenMP threads that Scanpy's
        neighbours/UMAP (numba) leave running on a small machine.
    **options
        Training options of :class:`vgfm._core.train.TrainConfig` (``reg``, ``reg_m``,
        ``sigma``, ``stage1_steps``, ``stage2_steps``, ``hidden``, …).

    Returns
    -------
    The trained :class:`vgfm.VGFM` (or ``(adata_copy, model)`` with ``copy=True``), and writes

    - ``obsm[f"{key_added}_velocity"]``: velocity at each cell's own state and time
      (``use_rep`` space, per unit of the user's time);
    - ``obs[f"{key_added}_growth"]``: growth rate ``g(x, t)`` (per unit time);
    - ``layers[f"{key_added}_velocity"]``: gene-space velocity, when ``use_rep="X_pca"`` and
      ``varm["PCs"]`` exist;
    - ``uns[key_added]``: params, time mapping, population sizes, training history and the
      model (config + weights), enough for :meth:`vgfm.VGFM.from_adata`.

    Nothing is written when the input is invalid or training is interrupted.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(seed=0)
    >>> model = vgfm.tl.fit(adata, "time", use_rep="X", progress=False)  # doctest: +SKIP
    >>> adata.obs["vgfm_growth"].describe()                              # doctest: +SKIP
    """
    if method not in C.METHODS:
        raise ValueError(f"method must be one of {C.METHODS}, got {method!r}")
    cfg = _config_from_options(method, options)
    container = resolve_container(adata, mod)
    if getattr(container, "isbacked", False):
        raise ValueError(
            "adata is backed (opened with backed='r'); VGFM needs it in memory: "
            "call `adata = adata.to_memory()` first."
        )
    times, mapping = resolve_times(container, time_key, order=time_order, values=time_values)
    x = get_representation(container, use_rep)
    counts = cells_per_time(times, mapping)
    sizes = population_sizes_or_default(container, population_size, key_added, mapping, counts)
    hold = check_holdout_time(holdout_time, mapping)
    snapshots = [x[times == v] for v in mapping.values]

    with torch_threads(n_threads):
        result = train(snapshots, mapping.values, population_size=sizes, holdout=hold,
                       config=cfg, seed=seed, device=device, progress=progress)

    info = {
        "use_rep": use_rep,
        "dim": int(x.shape[1]),
        "time_key": time_key,
        "times": mapping.values.tolist(),
        "time_labels": list(mapping.labels),
        "relative_size": (sizes / sizes[0]).tolist(),
        "n_cells": counts.tolist(),
        "held_out": [k == hold for k in range(len(mapping.values))],
        "seed": int(seed),
    }
    model = VGFM(result.field, config=cfg, info=info, history=result.history)

    out, container = _copy_target(adata, copy, mod)
    with torch_threads(n_threads):
        written = _write_predictions(container, model, key_added, x, times)
    container.uns[key_added] = {
        "params": {
            "time_key": time_key, "use_rep": use_rep, "method": method, "seed": int(seed),
            "holdout_time": "" if hold is None else mapping.labels[hold],
            "mod": mod or "", **{k: v for k, v in cfg.to_dict().items() if k != "method"},
        },
        "times": mapping.values.copy(),
        "time_labels": np.asarray(mapping.labels, dtype=str),
        "n_cells": counts.astype(np.int64),
        "population_size": np.asarray(sizes, dtype=float),
        "relative_size": np.asarray(sizes / sizes[0], dtype=float),
        "held_out": np.asarray(info["held_out"], dtype=bool),
        "history": {k: np.asarray(v) for k, v in result.history.items()},
        "train_seconds": float(result.seconds),
        "timing": {k: float(v) for k, v in result.extra.items() if k.startswith("seconds_")},
        "model": model.to_dict(),
    }
    written.append(f"uns[{key_added!r}]")
    logger.info("vgfm.tl.fit added %s", ", ".join(written))
    return (out, model) if copy else model


def _model_for(container: Any, model: VGFM | None, key: str) -> VGFM:
    if model is None:
        return VGFM.from_adata(container, key)
    model.check_adata(container)
    return model


def velocity(
    adata: Any,
    model: VGFM | None = None,
    *,
    key: str = C.DEFAULT_KEY,
    key_added: str | None = None,
    time: float | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> Any | None:
    """Apply a trained model to any AnnData with the same representation (e.g. new cells).

    Parameters
    ----------
    adata
        Cells to evaluate; must carry the model's ``use_rep`` with the same dimension.
    model
        Trained model; ``None`` rebuilds it from ``adata.uns[key]``.
    key
        Where the model is stored when ``model=None``.
    key_added
        Prefix of the fields written (default ``key``).
    time
        Evaluate every cell at this time instead of its own ``obs[time_key]``.
    mod, copy
        MuData modality; work on a copy and return it.
    n_threads
        Torch CPU threads used meanwhile (restored afterwards); ``None`` keeps torch's
        setting. One thread is the default: the networks are small, and it avoids the large
        slowdown when torch's threads compete with the OpenMP threads that Scanpy's
        neighbours/UMAP (numba) leave running on a small machine.

    Returns
    -------
    ``None`` (or the copy); writes ``obsm[f"{key_added}_velocity"]`` and
    ``obs[f"{key_added}_growth"]`` (and the gene-space layer for ``X_pca``).

    Examples
    --------
    >>> vgfm.tl.velocity(new_cells, model)  # doctest: +SKIP
    """
    container = resolve_container(adata, mod)
    mdl = _model_for(container, model, key)
    x = get_representation(container, mdl.use_rep)
    if time is None and mdl.info["time_key"] not in container.obs:
        raise KeyError(
            f"adata.obs[{mdl.info['time_key']!r}] (the time key the model was fitted with) is "
            f"missing; available obs columns: {list(container.obs.columns)}. Pass `time=` to "
            "evaluate every cell at one time."
        )
    t = np.full(len(x), float(time)) if time is not None else _cell_times(container, mdl.info)
    out, container = _copy_target(adata, copy, mod)
    with torch_threads(n_threads):
        written = _write_predictions(container, mdl, key_added or key, x, t)
    logger.info("vgfm.tl.velocity added %s", ", ".join(written))
    return out if copy else None


def simulate(
    adata: Any,
    model: VGFM | None = None,
    *,
    key: str = C.DEFAULT_KEY,
    start_time: float | str | None = None,
    n_cells: int | None = None,
    t_eval: Sequence[float] | None = None,
    n_per_interval: int = 10,
    seed: int = 0,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> Any | None:
    """Simulate trajectories and lineage masses from the cells of one time point.

    Parameters
    ----------
    adata
        Fitted AnnData/MuData (or any data with the model's representation when ``model`` is
        given).
    model
        Trained model; ``None`` rebuilds it from ``adata.uns[key]`` (works after a
        ``write_h5ad``/``read_h5ad`` round trip).
    key
        Key of the fit; the result goes to ``uns[f"{key}_trajectories"]``.
    start_time
        Time point (label or value) whose cells start the simulation; default the first.
    n_cells
        Number of start cells drawn at random (``seed``) from that time point; default all.
    t_eval
        Output times; default every observed time from ``start_time`` on plus
        ``n_per_interval - 1`` equally spaced points inside each interval.
    n_per_interval
        Output steps per observed interval of the default ``t_eval``.
    seed
        Seed of the start-cell subsample.
    mod, copy
        MuData modality; work on a copy and return it.
    n_threads
        Torch CPU threads used meanwhile (restored afterwards); ``None`` keeps torch's
        setting. One thread is the default: the networks are small, and it avoids the large
        slowdown when torch's threads compete with the OpenMP threads that Scanpy's
        neighbours/UMAP (numba) leave running on a small machine.

    Returns
    -------
    ``None`` (or the copy); writes ``uns[f"{key}_trajectories"] = {"t": (T,), "x": (T, N, d),
    "log_mass": (T, N), "start_obs": (N,)}``, every particle starting with ``log_mass = 0``.

    Examples
    --------
    >>> vgfm.tl.simulate(adata, n_cells=200)  # doctest: +SKIP
    >>> adata.uns["vgfm_trajectories"]["x"].shape  # doctest: +SKIP
    """
    container = resolve_container(adata, mod)
    mdl = _model_for(container, model, key)
    x = get_representation(container, mdl.use_rep)
    cell_t = _cell_times(container, mdl.info)
    obs_times = mdl.times
    if start_time is None:
        t0 = float(obs_times[0])
    else:
        mapping = TimeMapping(tuple(mdl.info["time_labels"]), obs_times)
        k = mapping.find(start_time)
        if k is None:
            raise ValueError(
                f"start_time={start_time!r} is not a time point of the fit; available: "
                f"{list(mapping.labels)} (values {obs_times.tolist()})."
            )
        t0 = float(obs_times[k])
    idx = np.flatnonzero(np.isclose(cell_t, t0))
    if len(idx) == 0:
        raise ValueError(f"no cells at start time {t0} in adata.obs[{mdl.info['time_key']!r}]")
    if n_cells is not None:
        if n_cells < 1:
            raise ValueError(f"n_cells must be >= 1, got {n_cells}")
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(idx, min(n_cells, len(idx)), replace=False))
    if t_eval is None:
        t_grid = np.asarray(grid_times(obs_times[obs_times >= t0], n_per_interval))
    else:
        t_grid = np.asarray(sorted(set(float(v) for v in t_eval) | {t0}))
        if t_grid[0] < t0:
            raise ValueError(f"t_eval must not start before start_time {t0}")
    with torch_threads(n_threads):
        xs, lms = mdl.simulate(x[idx], t_grid)
    out, container = _copy_target(adata, copy, mod)
    container.uns[C.trajectories_key(key)] = {
        "t": t_grid.astype(float),
        "x": xs.astype(np.float32),
        "log_mass": lms.astype(np.float32),
        "start_obs": np.asarray(container.obs_names[idx], dtype=str),
    }
    logger.info("vgfm.tl.simulate added uns[%r] (%d particles, %d times)",
                C.trajectories_key(key), len(idx), len(t_grid))
    return out if copy else None


def evaluate(
    adata: Any,
    model: VGFM | None = None,
    *,
    key: str = C.DEFAULT_KEY,
    max_cells: int = 6000,
    max_start_cells: int | None = 30_000,
    mod: str | None = None,
    n_threads: int | None = 1,
) -> pd.DataFrame:
    """W1 and relative mass error at every observed time point after the first.

    Definitions of METHOD.md §5: roll out from all cells of the first time point (mass 1
    each, no gradient); W1 is the exact EMD (Euclidean cost) between the predicted particles
    weighted by ``m / sum(m)`` and the observed cells; RME is
    ``|mean m(t_k) - r_k| / r_k``.  Snapshots with more than ``max_cells`` cells are compared
    by the subsampling rule of :func:`vgfm._core.metrics.wasserstein1` (``w1_se`` > 0).

    Bounded cost on atlas-size data: when the first time point has more than
    ``max_start_cells`` cells, the rollout starts from ``max_start_cells`` of them drawn
    uniformly without replacement with a fixed seed (``numpy.random.default_rng(0)``, so
    repeated calls agree); W1 and the predicted size are then Monte-Carlo estimates over
    those start cells (the W1 subsamples of ``max_cells`` particles are drawn from them, so
    ``w1_se`` covers both the start-cell and the observed-cell sampling).  With at most
    ``max_start_cells`` cells the rollout uses them all, as in METHOD.md §5.  Cost is then
    at most one rollout of ``max_start_cells`` particles plus ``n_subsamples`` exact EMDs of
    ``max_cells`` × ``max_cells`` per time point, whatever the number of cells.

    Parameters
    ----------
    adata
        Fitted AnnData/MuData (or any data with the model's representation and time key when
        ``model`` is given).
    model
        Trained model; ``None`` rebuilds it from ``adata.uns[key]``.
    key
        Key of the fit; the table is also stored in ``uns[key]["evaluation"]``.
    max_cells
        Snapshot size above which W1 is estimated on subsamples of this many cells.
    max_start_cells
        Most start cells rolled out (uniform subsample, fixed seed); ``None``: all of them.
    mod
        For a MuData: evaluate on modality ``mod`` instead of the joint object.
    n_threads
        Torch CPU threads used meanwhile (restored afterwards); ``None`` keeps torch's
        setting. One thread is the default: the networks are small, and it avoids the large
        slowdown when torch's threads compete with the OpenMP threads that Scanpy's
        neighbours/UMAP (numba) leave running on a small machine.

    Returns
    -------
    DataFrame with columns ``time``, ``label``, ``w1``, ``w1_se``, ``rme``,
    ``predicted_size``, ``observed_size``, ``held_out``; also stored (as arrays) in
    ``uns[key]["evaluation"]`` when ``uns[key]`` exists.

    Examples
    --------
    >>> vgfm.tl.evaluate(adata)[["time", "w1", "rme"]]  # doctest: +SKIP
    """
    container = resolve_container(adata, mod)
    mdl = _model_for(container, model, key)
    x = get_representation(container, mdl.use_rep)
    cell_t = _cell_times(container, mdl.info)
    times = mdl.times
    rel = np.asarray(mdl.info["relative_size"], dtype=float)
    held = np.asarray(mdl.info["held_out"], dtype=bool)
    start = np.flatnonzero(np.isclose(cell_t, times[0]))
    if max_start_cells is not None and len(start) > max_start_cells:
        if max_start_cells < 1:
            raise ValueError(f"max_start_cells must be >= 1, got {max_start_cells}")
        start = np.sort(np.random.default_rng(0).choice(start, max_start_cells, replace=False))
    with torch_threads(n_threads):
        xs, lms = mdl.simulate(x[start], times)
    rows = []
    for k in range(1, len(times)):
        m = np.exp(lms[k].astype(np.float64))
        y = x[np.isclose(cell_t, times[k])]
        w = wasserstein1(xs[k], y, m, max_cells=max_cells, seed=k)
        pred = float(m.mean())
        rows.append({
            "time": float(times[k]), "label": str(mdl.info["time_labels"][k]),
            "w1": w.value, "w1_se": w.se, "rme": relative_mass_error(pred, rel[k]),
            "predicted_size": pred, "observed_size": float(rel[k]), "held_out": bool(held[k]),
        })
    df = pd.DataFrame(rows)
    if key in container.uns and isinstance(container.uns[key], dict):
        container.uns[key]["evaluation"] = {c: df[c].to_numpy() for c in df.columns}
        logger.info("vgfm.tl.evaluate added uns[%r]['evaluation']", key)
    return df
