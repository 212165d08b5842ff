"""AnnData-facing training, velocity, simulation and evaluation."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vgfm._core.methods import get_method
from vgfm._core.metrics import relative_mass_error, spread, wasserstein1
from vgfm._core.threads import torch_threads
from vgfm._core.train import MOTION_EXPLAINED_WARN, TrainConfig
from vgfm._data import keys
from vgfm._data._containers import Data, copy_target, resolve_container
from vgfm._data._docs import doc_params
from vgfm._data._format import fmt_list, format_number, is_real_number
from vgfm._data._holdout import check_holdout_time
from vgfm._data._options import (
    Method,
    check_finite_time,
    resolve_progress,
    validate_key,
    validate_seed,
)
from vgfm._data._population import (
    SOURCE_CELL_COUNTS,
    growth_prior_per_snapshot,
    population_sizes_or_default,
)
from vgfm._data._record import FitRecord, read_record
from vgfm._data._representation import get_representation, stored_states
from vgfm._data._times import (
    at_time,
    cell_times,
    cells_per_time,
    resolve_times,
    start_cells_and_grid,
)
from vgfm._model import VGFM
from vgfm.tl._fates import simulate_stochastic

logger = logging.getLogger("vgfm")

__all__ = ["GENE_LAYER_MAX_ENTRIES", "evaluate", "fit", "get_model", "simulate", "velocity"]

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}

#: ``fit(gene_velocity=None)`` writes the dense cells × genes velocity layer only up to this
#: many entries (float32: 4 bytes each, ~80 MB); above, use :func:`vgfm.tl.gene_velocity`.
GENE_LAYER_MAX_ENTRIES = 20_000_000


def _config_from_options(method: str, options: dict[str, Any]) -> TrainConfig:
    unknown = sorted(set(options) - _CONFIG_FIELDS)
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for vgfm.tl.fit; valid options: "
            f"{sorted(_CONFIG_FIELDS - {'method'})}"
        )
    return TrainConfig(method=method, **options)


def _gene_layer(container: Any, use_rep: str, v: np.ndarray, gene_velocity: bool | None,
                key: str) -> np.ndarray | None:
    """Gene-space velocity ``v @ PCs.T`` in float32, or ``None`` (opt-in / size-guarded)."""
    if gene_velocity is False or use_rep != "X_pca" or "PCs" not in getattr(container, "varm",
                                                                            {}):
        if gene_velocity is True:
            raise ValueError(
                "gene_velocity=True needs use_rep='X_pca' and adata.varm['PCs'] (the loadings "
                f"of sc.pp.pca); found use_rep={use_rep!r}, varm keys "
                f"{list(getattr(container, 'varm', {}).keys())}."
            )
        return None
    pcs = np.asarray(container.varm["PCs"])
    if pcs.shape[1] < v.shape[1]:
        return None
    n_entries = int(v.shape[0]) * int(pcs.shape[0])
    if gene_velocity is None and n_entries > GENE_LAYER_MAX_ENTRIES:
        logger.info(
            "not writing layers[%r]: %d cells × %d genes = %s entries exceeds %s; compute it "
            "with vgfm.tl.gene_velocity(adata, key=%r) or fit(..., gene_velocity=True)",
            keys.gene_velocity_key(key), v.shape[0], pcs.shape[0], f"{n_entries:,}",
            f"{GENE_LAYER_MAX_ENTRIES:,}", key,
        )
        return None
    loadings = np.ascontiguousarray(pcs[:, : v.shape[1]].T, dtype=np.float32)
    return np.asarray(v, dtype=np.float32) @ loadings


def _remove_stale(container: Any, key: str) -> list[str]:
    """Delete fields derived from an earlier fit under ``key`` (they would be stale)."""
    layers = getattr(container, "layers", None)
    stale = keys.derived_fields(key, list(container.obsm.keys()), list(container.uns.keys()),
                                [] if layers is None else list(layers.keys()))
    removed = []
    for slot, names in stale.items():
        for name in names:
            del getattr(container, slot)[name]
            removed.append(f"{slot}[{name!r}]")
    if removed:
        logger.warning("refit under key %r: removed fields derived from the previous fit: %s",
                       key, ", ".join(removed))
    return removed


@doc_params
def fit(
    adata: Data,
    time_key: str = keys.DEFAULT_TIME_KEY,
    *,
    use_rep: str = keys.DEFAULT_USE_REP,
    key_added: str = keys.DEFAULT_KEY,
    method: Method = "vgfm",
    population_size: Sequence[float] | dict | None = None,
    holdout_time: float | str | None = None,
    growth_prior: str | None = None,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    gene_velocity: bool | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
    **options: Any,
) -> VGFM | Data:
    """Fit joint velocity-growth flow matching on a time-course AnnData (or MuData).

    Couples consecutive snapshots by semi-relaxed optimal transport, regresses the velocity
    and growth rate on the couplings (stage 1), refines them by fitting the observed
    snapshots with the simulated, mass-weighted population (stage 2), keeps the checkpoint
    whose rollout is closest to the observed cells (energy distance to every observed
    cell), and writes the learned velocity and growth of every cell back.

    Parameters
    ----------
    adata
        {adata}
    time_key
        {time_key}
    use_rep
        {use_rep}
    key_added
        Prefix of every field written (letters, digits, ``_``, ``.``, ``-``; see Returns).
    method
        A method of the table :mod:`vgfm._core.methods`: ``"vgfm"`` (growth-aware) or
        ``"otcfm"`` (the balanced, growth-free OT-CFM baseline), or one registered there.
    population_size
        Population size per time point (measured counts or relative sizes), as a sequence in
        time order or a dict keyed by time label/value. Default: the values stored by
        :func:`vgfm.pp.population_size`, else the cell counts (announced with a WARNING).
    holdout_time
        Interior time point (label or value) left out of training to test interpolation.
    growth_prior
        ``.obs`` column of a positive per-cell growth prior, e.g. from
        :func:`vgfm.pp.growth_prior` (proliferation/apoptosis gene scores).  It becomes the
        reference of the relaxed source marginal of every coupling: a cell with prior 2 is
        expected to leave twice the mass of one with prior 1 unless the snapshots say
        otherwise (:func:`vgfm._core.couplings.couple_interval`).  ``None``: no prior.
    time_order
        {time_order}
    time_values
        {time_values}
    gene_velocity
        Write the dense gene-space layer ``v @ PCs.T`` (``use_rep="X_pca"`` only): ``None``
        when it has at most :data:`GENE_LAYER_MAX_ENTRIES` entries, ``True`` always, ``False``
        never (:func:`vgfm.tl.gene_velocity` computes it on demand).
    seed
        {seed}
    device
        {device}
    progress
        {progress}
    mod
        {mod}
    copy
        Work on a copy and return it (the model is then :func:`vgfm.get_model` of the copy).
    n_threads
        {n_threads}
    **options
        Training options of :class:`vgfm._core.train.TrainConfig` (``reg``, ``reg_m``,
        ``sigma``, ``stage1_steps``, ``stage2_steps``, ``hidden``, …).

    Returns
    -------
    The trained :class:`vgfm.VGFM` (or the fitted copy with ``copy=True``), and writes

    - ``obsm[f"{{key_added}}_velocity"]``: velocity at each cell's own state and time
      (``use_rep`` space, per unit of the user's time);
    - ``obs[f"{{key_added}}_growth"]``: growth rate (per unit time) at each cell's state and
      time: ``g(x, t)`` or, when ``growth_form="auto"`` keeps the time-free form, ``g(x)``;
      within the range of the couplings' growth targets (``bound_growth``: of the interval
      that starts at the cell's time, the last interval at the last time point; over all
      intervals for ``g(x)``);
    - ``layers[f"{{key_added}}_velocity"]``: gene-space velocity (see ``gene_velocity``);
    - ``uns[key_added]``: the fit record (params, time mapping and unit, population sizes,
      training history, timings, versions, and the model's weights), enough for
      :func:`vgfm.get_model`; for methods with growth also ``growth_vs_motion``, the growth
      test per interval (``growth_test`` of :class:`vgfm._core.train.TrainConfig`; intervals
      whose growth differences motion largely explains are named in a WARNING; with
      ``growth_noise_test`` also ``sampling_sd`` and ``signal_to_noise``, the spread motion
      leaves unexplained over the sampling noise, intervals at or below the test named in a
      WARNING) and the
      range the growth rate is bounded to on each interval (``growth_low``/``growth_high``)
      and, with ``growth_form="auto"``, the form kept (``growth_form``, ``"xt"`` or ``"x"``)
      with the stage-1 checkpoint scores of both (``growth_form_score``).

    A refit under the same key removes the fields derived from the previous fit (velocity
    embeddings, trajectories, growth genes). Nothing is written when the input is invalid or
    training is interrupted; the fields are assigned together once everything is computed.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(n_cells_0=50, seed=0)
    >>> model = vgfm.tl.fit(adata, "time", use_rep="X", population_size=[1, 1.5, 2, 3, 4],
    ...                     stage1_steps=20, stage2_steps=0, progress=False)
    >>> adata.obs["vgfm_growth"].shape == (adata.n_obs,)
    True
    """
    get_method(method)  # the method table names the valid methods
    validate_key(key_added, "key_added")
    seed = validate_seed(seed)
    show_progress = resolve_progress(progress)
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
    sizes, source = population_sizes_or_default(container, population_size, key_added, mapping,
                                                counts)
    if source == SOURCE_CELL_COUNTS:
        logger.warning(
            "population sizes are the cell counts per time point (%s): growth is learned as if "
            "sequencing had sampled a fixed fraction of every population. Pass "
            "population_size= (or run vgfm.pp.population_size) with measured sizes.",
            ", ".join(f"{lab}: {int(c)}" for lab, c in zip(mapping.labels, counts)),
        )
    hold = check_holdout_time(holdout_time, mapping)
    snapshots = [x[times == v] for v in mapping.values]
    prior = None
    if growth_prior is not None:
        prior = growth_prior_per_snapshot(container, growth_prior, times=times,
                                          time_values=mapping.values)

    # the representation's fingerprint (checked when the model is loaded onto other data)
    loadings = None
    varm = getattr(container, "varm", None)
    if use_rep == "X_pca" and varm is not None and "PCs" in varm:
        loadings = np.asarray(varm["PCs"])
    feature_names = [str(v) for v in container.var_names] if use_rep == "X" else None
    with torch_threads(n_threads):
        model = VGFM.fit(snapshots, mapping.values, population_size=sizes, holdout=hold,
                         config=cfg, seed=seed, device=device, progress=show_progress,
                         source_prior=prior, loadings=loadings, feature_names=feature_names,
                         info={"use_rep": use_rep})

    record = FitRecord(
        use_rep=use_rep, time_key=time_key, time=mapping, method=method, dim=int(x.shape[1]),
        n_cells=counts.astype(np.int64), population_size=np.asarray(sizes, dtype=float),
        population_size_source=source,
        held_out=np.array([k == hold for k in range(mapping.n_times)], dtype=bool), seed=seed,
        mod=mod, time_order=None if time_order is None else [str(t) for t in time_order],
        time_values=None if time_values is None else [float(v) for v in time_values],
        config={k: v for k, v in cfg.to_dict().items() if k != "method"},
        history={k: np.asarray(v) for k, v in model.history.items()},
        growth_vs_motion=_growth_vs_motion(model.training, mapping, hold, cfg.growth_test,
                                           cfg.growth_noise_test),
        timings={"train": float(model.training["seconds"]),
                 **{k: float(v) for k, v in model.training.items() if k.startswith("seconds_")}},
    )
    model.info = record.model_info()
    record.model = {k: v for k, v in model.to_dict().items() if k != "info"}

    # compute everything first ...
    with torch_threads(n_threads):
        v, g = model.predict(x, times, device=device)
    layer = _gene_layer(container, use_rep, v, gene_velocity, key_added)
    uns_entry = record.to_uns()

    # ... then assign in one block
    out, container = copy_target(adata, copy, mod)
    _remove_stale(container, key_added)
    container.obsm[keys.velocity_key(key_added)] = v.astype(np.float32)
    container.obs[keys.growth_key(key_added)] = g.astype(np.float64)
    written = [f"obsm[{keys.velocity_key(key_added)!r}]", f"obs[{keys.growth_key(key_added)!r}]"]
    if layer is not None:
        container.layers[keys.gene_velocity_key(key_added)] = layer
        written.append(f"layers[{keys.gene_velocity_key(key_added)!r}]")
    elif getattr(container, "layers", None) is not None and \
            keys.gene_velocity_key(key_added) in container.layers:
        del container.layers[keys.gene_velocity_key(key_added)]
    container.uns[key_added] = uns_entry
    written.append(f"uns[{key_added!r}]")
    logger.info("vgfm.tl.fit added %s", ", ".join(written))
    return out if copy else model


def _growth_vs_motion(training: dict, mapping: Any, hold: int | None,
                      threshold: float | None, noise_test: float | None = None) -> dict | None:
    """``uns[key]["growth_vs_motion"]`` from the training record, with a WARNING naming the
    intervals whose growth differences a growth-free population with the same motion shows
    as well, and one naming those whose differences are within sampling noise."""
    motion = training.get("growth_vs_motion")
    if not motion:
        return None
    threshold = MOTION_EXPLAINED_WARN if threshold is None else threshold
    labels = [lab for k, lab in enumerate(mapping.labels) if k != hold]
    out = {"start": np.asarray(labels[:-1], dtype=str), "end": np.asarray(labels[1:], dtype=str),
           **{k: np.asarray(v) if isinstance(v, str) else np.asarray(v, dtype=np.float64)
              for k, v in motion.items()}}
    stiffer = out["reg_m_factor"] > 1
    flagged = [f"{a} -> {b} ({e:.2f})" for a, b, e in
               zip(out["start"], out["end"], out["motion_explained"])
               if np.isfinite(e) and e > threshold]
    if flagged and stiffer.any():
        logger.warning(
            "growth differences between cells are largely those a population without any "
            "growth, moving as the cells do, would also show (share of the growth-target "
            "spread): %s. These intervals were coupled with a stiffer relaxation, so that their "
            "cells grow more alike (reg_m_factor; growth_test=None keeps reg_m). "
            "uns[key]['growth_vs_motion'] has the numbers.", ", ".join(flagged))
    elif flagged:
        logger.warning(
            "growth differences between cells are those a population without any growth, "
            "moving as the cells do, would also show (share of the growth-target spread): %s. "
            "Read the growth of the cells at the start of these intervals as motion, not as "
            "proliferation or death; uns[key]['growth_vs_motion'] has the numbers.",
            ", ".join(flagged))
    if "signal_to_noise" in out and noise_test is not None:
        noise = [f"{a} -> {b} ({r:.2f})" for a, b, r in
                 zip(out["start"], out["end"], out["signal_to_noise"])
                 if np.isfinite(r) and r <= noise_test]
        if noise:
            logger.warning(
                "the growth differences between cells that motion leaves unexplained are no "
                "larger than %g times the sampling noise of the snapshots (ratio to the "
                "noise): %s. Every cell of these intervals grows alike (at the population "
                "ratio); growth_noise_test=None keeps their differences. "
                "uns[key]['growth_vs_motion'] has the numbers.", noise_test, ", ".join(noise))
    return out


def get_model(adata: Data, *, key: str = keys.DEFAULT_KEY, mod: str | None = None) -> VGFM:
    """The model that :func:`vgfm.tl.fit` stored in ``adata.uns[key]`` (also after ``.h5ad``).

    Parameters
    ----------
    adata
        Fitted :class:`~anndata.AnnData` or :class:`~mudata.MuData`.
    key
        The ``key_added`` of the fit.
    mod
        For a MuData: the modality the fit was written to.

    Returns
    -------
    The :class:`vgfm.VGFM`, checked against ``adata``'s representation.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(n_cells_0=50, seed=0)
    >>> out = vgfm.tl.fit(adata, "time", use_rep="X", population_size=[1, 1.5, 2, 3, 4],
    ...                   stage1_steps=5, stage2_steps=0, progress=False, copy=True)
    >>> vgfm.get_model(out).use_rep
    'X'
    """
    return VGFM.from_adata(adata, key, mod=mod)


def _model_and_record(container: Any, model: VGFM | None, key: str) -> tuple[VGFM, FitRecord]:
    if model is None:
        record = read_record(container, key)
        return VGFM.from_adata(container, key), record
    model.check_adata(container)
    return model, FitRecord.from_model_info(model.info, model.config.to_dict())


def _cell_times(container: Any, record: FitRecord, time_order: Sequence | None,
                time_values: Sequence[float] | None) -> np.ndarray:
    return cell_times(container, record.time_key, record.time, time_order=time_order,
                      time_values=time_values)


def _warn_extrapolation(record: FitRecord, t: np.ndarray, what: str) -> None:
    lo, hi = float(record.times[0]), float(record.times[-1])
    span = max(hi - lo, 1e-12)
    outside = (t < lo - 1e-9 * span) | (t > hi + 1e-9 * span)
    if np.any(outside):
        bad = np.unique(t[outside])
        logger.warning(
            "%s at times %s outside the fitted range [%s, %s]: the model extrapolates there "
            "(growth compounds exponentially); results may be meaningless.",
            what, fmt_list([format_number(b) for b in bad], 5), format_number(lo),
            format_number(hi),
        )


def _time_of(time: Any, record: FitRecord) -> float:
    """A scalar ``time=`` option: a label of the fit or a finite number."""
    if isinstance(time, str):
        k = record.time.find(time) if record.time is not None else None
        if k is None:
            raise ValueError(
                f"time={time!r} is not a time point of the fit; available: "
                f"{list(record.time_labels)} (values {record.times.tolist()}), or pass a number."
            )
        return float(record.times[k])
    if not is_real_number(time):
        raise TypeError(f"time must be a number or a time label, got {time!r}.")
    return check_finite_time(time, "time")


@doc_params
def velocity(
    adata: Data,
    model: VGFM | None = None,
    *,
    key: str = keys.DEFAULT_KEY,
    key_added: str | None = None,
    time: float | str | None = None,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    gene_velocity: bool | None = None,
    device: str | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> Data | None:
    """Apply a trained model to any AnnData with the same representation (e.g. new cells).

    Parameters
    ----------
    adata
        Cells to evaluate; must carry the model's ``use_rep`` with the same dimension.
    model
        {model}
    key
        {key}
    key_added
        Prefix of the fields written (default ``key``).
    time
        Evaluate every cell at this time (a label of the fit such as ``"day 2"``, or a number)
        instead of its own ``obs[time_key]``.
    time_order
        {time_order} Only needed for labels the fit did not see.
    time_values
        {time_values}
    gene_velocity
        Also write the gene-space layer, as in :func:`vgfm.tl.fit`.
    device
        {device}
    mod
        {mod}
    copy
        {copy}
    n_threads
        {n_threads}

    Returns
    -------
    ``None`` (or the copy); writes ``obsm[f"{{key_added}}_velocity"]``,
    ``obs[f"{{key_added}}_growth"]`` and (see ``gene_velocity``) the gene-space layer.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(n_cells_0=50, seed=0)
    >>> model = vgfm.tl.fit(adata, "time", use_rep="X", population_size=[1, 1.5, 2, 3, 4],
    ...                     stage1_steps=5, stage2_steps=0, progress=False)
    >>> vgfm.tl.velocity(adata, model, time=1.0, key_added="at_t1")
    >>> adata.obsm["at_t1_velocity"].shape == (adata.n_obs, 2)
    True
    """
    out_key = validate_key(key_added if key_added is not None else key, "key_added")
    container = resolve_container(adata, mod)
    mdl, record = _model_and_record(container, model, key)
    x = get_representation(container, mdl.use_rep)
    if time is not None:
        t = np.full(len(x), _time_of(time, record))
    else:
        if record.time_key not in container.obs:
            raise KeyError(
                f"adata.obs[{record.time_key!r}] (the time key the model was fitted with) is "
                f"missing; available obs columns: {list(container.obs.columns)}. Pass `time=` "
                "to evaluate every cell at one time."
            )
        t = _cell_times(container, record, time_order, time_values)
    _warn_extrapolation(record, t, "velocity")
    with torch_threads(n_threads):
        v, g = mdl.predict(x, t, device=device)
    layer = _gene_layer(container, mdl.use_rep, v, gene_velocity, out_key)
    out, container = copy_target(adata, copy, mod)
    container.obsm[keys.velocity_key(out_key)] = v.astype(np.float32)
    container.obs[keys.growth_key(out_key)] = g.astype(np.float64)
    written = [f"obsm[{keys.velocity_key(out_key)!r}]", f"obs[{keys.growth_key(out_key)!r}]"]
    if layer is not None:
        container.layers[keys.gene_velocity_key(out_key)] = layer
        written.append(f"layers[{keys.gene_velocity_key(out_key)!r}]")
    logger.info("vgfm.tl.velocity added %s", ", ".join(written))
    return out if copy else None


@doc_params
def simulate(
    adata: Data,
    model: VGFM | None = None,
    *,
    key: str = keys.DEFAULT_KEY,
    start_time: float | str | None = None,
    n_cells: int | None = None,
    t_eval: Sequence[float] | None = None,
    n_per_interval: int = 10,
    stochastic: bool = False,
    n_samples: int = 1,
    sigma: float | None = None,
    sde_method: str | None = None,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    seed: int = 0,
    device: str | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> Data | None:
    """Simulate trajectories and lineage masses from the cells of one time point.

    By default the deterministic ODE ``dx/dt = v``, ``d log m/dt = g`` is integrated (one
    path per start cell).  ``stochastic=True`` integrates the SDE of
    :func:`vgfm.tl.simulate_stochastic` instead (``n_samples`` paths per start cell, noise
    ``sigma``; the score model is fitted on first use and stored), with the same layout.

    Parameters
    ----------
    adata
        Fitted AnnData/MuData (or any data with the model's representation when ``model`` is
        given).
    model
        {model}
    key
        Key of the fit; the result goes to ``uns[f"{{key}}_trajectories"]``.
    start_time
        Time point (label or value) whose cells start the simulation; default the first.
    n_cells
        Number of start cells drawn at random (``seed``) from that time point; default all.
    t_eval
        Output times (finite); default every observed time from ``start_time`` on plus
        ``n_per_interval - 1`` equally spaced points inside each interval. Times beyond the
        fitted range are extrapolation (a WARNING says so).
    n_per_interval
        Output steps per observed interval of the default ``t_eval`` (at least 1).
    stochastic
        Integrate the stochastic dynamics (:func:`vgfm.tl.simulate_stochastic`).
    n_samples
        Paths per start cell (``stochastic=True`` only).
    sigma
        Noise level of the SDE; ``None``: estimated from the couplings
        (``stochastic=True`` only).
    sde_method
        Integration scheme of the SDE, ``"heun"`` or ``"euler"``; ``None``: the default of
        :func:`vgfm.tl.simulate_stochastic` (``stochastic=True`` only).
    time_order
        {time_order} Only needed for labels the fit did not see.
    time_values
        {time_values}
    seed
        Seed of the start-cell subsample (and of the noise when ``stochastic=True``).
    device
        {device}
    mod
        {mod}
    copy
        {copy}
    n_threads
        {n_threads}

    Returns
    -------
    ``None`` (or the copy); writes ``uns[f"{{key}}_trajectories"] = {{"t": (T,), "x": (T, N, d),
    "log_mass": (T, N), "start_obs": (N,)}}``, every particle starting with ``log_mass = 0``.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(n_cells_0=50, seed=0)
    >>> model = vgfm.tl.fit(adata, "time", use_rep="X", population_size=[1, 1.5, 2, 3, 4],
    ...                     stage1_steps=5, stage2_steps=0, progress=False)
    >>> vgfm.tl.simulate(adata, n_cells=20, n_per_interval=2)
    >>> adata.uns["vgfm_trajectories"]["x"].shape
    (9, 20, 2)
    """
    if stochastic:
        scheme = {} if sde_method is None else {"sde_method": sde_method}
        return simulate_stochastic(
            adata, model=model, key=key, start_time=start_time, n_cells=n_cells,
            n_samples=n_samples, t_eval=t_eval, n_per_interval=n_per_interval, sigma=sigma,
            seed=seed, time_order=time_order, time_values=time_values, device=device, mod=mod,
            copy=copy, n_threads=n_threads, **scheme)
    if n_samples != 1 or sigma is not None or sde_method is not None:
        raise ValueError("n_samples, sigma and sde_method apply to stochastic=True only; pass "
                         "stochastic=True or leave them at their defaults")
    seed = validate_seed(seed)
    if isinstance(n_per_interval, bool) or not isinstance(n_per_interval, (int, np.integer)) \
            or n_per_interval < 1:
        raise ValueError(
            f"n_per_interval must be an int >= 1 (output steps per observed interval), got "
            f"{n_per_interval!r}."
        )
    container = resolve_container(adata, mod)
    mdl, record = _model_and_record(container, model, key)
    x = get_representation(container, mdl.use_rep)
    cell_t = _cell_times(container, record, time_order, time_values)
    fitted = record.times
    if start_time is None:
        t0 = float(fitted[0])
    else:
        k = record.time.find(start_time)
        if k is None:
            raise ValueError(
                f"start_time={start_time!r} is not a time point of the fit; available: "
                f"{list(record.time_labels)} (values {fitted.tolist()})."
            )
        t0 = float(fitted[k])
    idx, t_grid = start_cells_and_grid(cell_t, fitted, t0, time_key=record.time_key,
                                       n_cells=n_cells, seed=seed, t_eval=t_eval,
                                       n_per_interval=n_per_interval)
    _warn_extrapolation(record, t_grid, "simulate: output")
    with torch_threads(n_threads):
        xs, lms = mdl.simulate(x[idx], t_grid, device=device)
    out, container = copy_target(adata, copy, mod)
    container.uns[keys.trajectories_key(key)] = {
        "t": t_grid.astype(float),
        "x": stored_states(xs, mdl.origin),
        "log_mass": lms.astype(np.float32),
        "start_obs": np.asarray(container.obs_names[idx], dtype=str),
    }
    logger.info("vgfm.tl.simulate added uns[%r] (%d particles, %d times)",
                keys.trajectories_key(key), len(idx), len(t_grid))
    return out if copy else None


@doc_params
def evaluate(
    adata: Data,
    model: VGFM | None = None,
    *,
    key: str = keys.DEFAULT_KEY,
    key_added: str | None = None,
    max_cells: int = 6000,
    max_start_cells: int | None = 30_000,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    device: str | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> pd.DataFrame | Data:
    """W1 and relative mass error at every observed time point after the first.

    Definitions (docs/method.md): roll out from all cells of the first time point (mass 1
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
    ``max_start_cells`` cells the rollout uses them all.  Cost is then at most one rollout of
    ``max_start_cells`` particles plus ``n_subsamples`` exact EMDs of ``max_cells`` ×
    ``max_cells`` per time point, whatever the number of cells.

    Parameters
    ----------
    adata
        Fitted AnnData/MuData (or any data with the model's representation and time key when
        ``model`` is given).
    model
        {model}
    key
        {key}
    key_added
        Where the table is stored: ``None`` (default) in the fit record
        ``uns[key]["evaluation"]`` (when it exists), else ``uns[key_added]``.
    max_cells
        Snapshot size above which W1 is estimated on subsamples of this many cells (>= 1).
    max_start_cells
        Most start cells rolled out (uniform subsample, fixed seed); ``None``: all of them.
    time_order
        {time_order} Only needed for labels the fit did not see.
    time_values
        {time_values}
    device
        {device}
    mod
        {mod}
    copy
        Store the table in a copy of ``adata`` and return the copy instead of the table.
    n_threads
        {n_threads}

    Returns
    -------
    DataFrame with columns ``time``, ``label``, ``w1``, ``w1_se``, ``rme``,
    ``predicted_size``, ``observed_size``, ``held_out``, and the spread of the prediction:
    ``variance_ratio`` (mass-weighted predicted / observed total variance; below 1 means the
    prediction has collapsed), ``energy_distance`` (predicted vs observed) and its yardstick
    ``energy_floor`` (the energy distance between two random halves of the observed snapshot,
    what a perfect prediction scores by sampling alone), and ``off_data_mass``, the share of
    the predicted mass that lies in empty space, farther from every observed cell than 99 % of
    a random half of them are from the other half (about 0.01 for a perfect prediction;
    :func:`vgfm._core.metrics.off_data_mass`) — see :func:`vgfm._core.metrics.spread`.  With ``copy=True`` the copy holding it as arrays.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(n_cells_0=50, seed=0)
    >>> model = vgfm.tl.fit(adata, "time", use_rep="X", population_size=[1, 1.5, 2, 3, 4],
    ...                     stage1_steps=5, stage2_steps=0, progress=False)
    >>> vgfm.tl.evaluate(adata)["label"].tolist()
    ['0.5', '1', '1.5', '2']
    """
    for name, value in (("max_cells", max_cells), ("max_start_cells", max_start_cells)):
        if value is None and name == "max_start_cells":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
    if key_added is not None:
        validate_key(key_added, "key_added")
    container = resolve_container(adata, mod)
    mdl, record = _model_and_record(container, model, key)
    x = get_representation(container, mdl.use_rep)
    cell_t = _cell_times(container, record, time_order, time_values)
    times = record.times
    rel = record.relative_size
    held = (np.zeros(len(times), dtype=bool) if record.held_out is None
            else np.asarray(record.held_out, dtype=bool))
    for k in range(1, len(times)):
        obs = x[at_time(cell_t, times[k], times)]
        if len(obs) > 1 and not np.ptp(obs, axis=0).any():
            raise ValueError(
                f"evaluate: all {len(obs)} observed cells at time {record.time_labels[k]!r} "
                f"coincide in {mdl.use_rep!r} (dtype {x.dtype}), so W1 would be 0 there "
                "without measuring anything. Float32 data far from 0 are rounded to one "
                "point: store the representation as float64 (or subtract its mean) and refit."
            )
    start = np.flatnonzero(at_time(cell_t, times[0], times))
    if max_start_cells is not None and len(start) > max_start_cells:
        start = np.sort(np.random.default_rng(0).choice(start, max_start_cells, replace=False))
    # distances are compared in the model's frame (x - origin, subtracted in float64): the
    # same distances, without the cancellation of coordinates far from 0
    with torch_threads(n_threads):
        xs, lms = mdl.simulate(x[start], times, device=device, frame="model")
    rows = []
    for k in range(1, len(times)):
        m = np.exp(lms[k].astype(np.float64))
        y = mdl.to_model_frame(x[at_time(cell_t, times[k], times)], dtype=x.dtype)
        w = wasserstein1(xs[k], y, m, max_cells=max_cells, seed=k)
        pred = float(m.mean())
        if not (math.isfinite(w.value) and math.isfinite(pred)):
            raise ValueError(
                f"evaluate: non-finite result at time {record.time_labels[k]!r} (W1 {w.value}, "
                f"predicted size {pred}); the model's growth overflows there."
            )
        sp = spread(xs[k], y, m, max_cells=min(max_cells, 2000), seed=k)
        rows.append({
            "time": float(times[k]), "label": str(record.time_labels[k]),
            "w1": w.value, "w1_se": w.se, "rme": relative_mass_error(pred, rel[k]),
            "predicted_size": pred, "observed_size": float(rel[k]), "held_out": bool(held[k]),
            "variance_ratio": sp.variance_ratio, "energy_distance": sp.energy_distance,
            "energy_floor": sp.energy_floor, "off_data_mass": sp.off_data_mass,
        })
    df = pd.DataFrame(rows)
    table = {c: df[c].to_numpy() for c in df.columns}
    out, container = copy_target(adata, copy, mod)
    if key_added is not None:
        container.uns[key_added] = table
        logger.info("vgfm.tl.evaluate added uns[%r]", key_added)
    elif isinstance(container.uns.get(key), dict):
        container.uns[key][keys.evaluation_entry()] = table
        logger.info("vgfm.tl.evaluate added uns[%r][%r]", key, keys.evaluation_entry())
    return out if copy else df
