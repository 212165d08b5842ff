"""Stochastic simulation, growth-weighted fate probabilities and cluster transitions.

The SDE of :mod:`vgfm._core.sde` (drift ``v + (σ²/2) ∇log ρ``, diffusion ``σ``, log-mass
``d log m = g dt``) has the marginals and masses of the fitted ODE, but a single start cell
now spreads into many possible descendants.  :func:`fates` follows ``n_samples`` of them from
every cell to a later observed time, weights each by its mass (its expected number of
descendants along that path), and reads off which ``groupby`` category of the cells observed
there it ends in.  The score network is stored in ``uns[key]["stochastic"]`` (plain arrays,
h5ad-serialisable), so fates can be recomputed from a saved file.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree

from vgfm._core.methods import get_method
from vgfm._core.sde import (
    DRIFT_EVALUATIONS,
    ScoreConfig,
    ScoreField,
    check_sde_method,
    integrate_sde,
    train_score,
)
from vgfm._core.threads import torch_threads
from vgfm._core.train import fit_couplings, resolve_device
from vgfm._data import keys as C
from vgfm._data._containers import Data, resolve_container
from vgfm._data._representation import get_representation, stored_states
from vgfm._data._times import TimeMapping, at_time, cell_times, start_cells_and_grid
from vgfm._model import VGFM

logger = logging.getLogger("vgfm")

__all__ = ["cluster_transitions", "fates", "fit_stochastic", "simulate_stochastic"]

_STOCHASTIC = "stochastic"
_FORMAT_VERSION = 1
Direction = Literal["forward", "backward"]
Normalize = Literal["source", "target", "none"]


# --------------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------------
def fates_key(key: str) -> str:
    """``adata.obsm`` key of the fate probabilities."""
    return f"{key}_fates"


def ancestors_key(key: str) -> str:
    """``adata.obsm`` key of the backward (ancestor) view."""
    return f"{key}_ancestors"


def descendants_key(key: str) -> str:
    """``adata.obs`` key of the expected number of descendants."""
    return f"{key}_descendants"


def transitions_key(key: str) -> str:
    """``adata.uns`` key of the cluster transition table."""
    return f"{key}_transitions"


# --------------------------------------------------------------------------------------------
# (de)serialisation of the score network
# --------------------------------------------------------------------------------------------
def score_to_dict(score: ScoreField, *, sigma_estimated: float, config: ScoreConfig,
                  history: np.ndarray, seconds: float, seed: int) -> dict[str, Any]:
    """h5ad-serialisable record of a trained score network (arrays, floats, a JSON string)."""
    return {
        "format_version": _FORMAT_VERSION,
        "state": {k: v.detach().cpu().numpy() for k, v in score.state_dict().items()},
        "config": json.dumps(config.to_dict()),
        "dim": int(score.dim),
        "sigma": float(score.sigma),
        "sigma_estimated": float(sigma_estimated),
        "floor": float(score.floor),
        "history": np.asarray(history, dtype=float),
        "seconds": float(seconds),
        "seed": int(seed),
    }


def score_from_dict(d: dict[str, Any]) -> ScoreField:
    """Rebuild the :class:`~vgfm._core.sde.ScoreField` stored by :func:`score_to_dict`."""
    try:
        cfg = ScoreConfig(**json.loads(str(d["config"])))
        state = {k: torch.as_tensor(np.asarray(v)) for k, v in d["state"].items()}
        dim = int(d["dim"])
        fld = ScoreField(
            dim, center=torch.zeros(dim), scale=1.0, t_start=0.0, t_span=1.0,
            knots=state["knots"].tolist(), sigma=float(d["sigma"]), floor=float(d["floor"]),
            hidden=cfg.hidden, n_layers=cfg.n_layers,
        )
        fld.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise ValueError(
            f"the stored stochastic model could not be rebuilt ({err}); recompute it with "
            "vgfm.tl.fit_stochastic(adata)."
        ) from err
    return fld.eval()


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------
def _model_for(container: Any, model: VGFM | None, key: str) -> VGFM:
    if model is None:
        return VGFM.from_adata(container, key)
    model.check_adata(container)
    return model


def _copy_target(data: Any, copy: bool, mod: str | None) -> tuple[Any, Any]:
    if copy:
        data = data.copy()
    return data, resolve_container(data, mod)


def _mapping(mdl: VGFM) -> TimeMapping:
    return TimeMapping(tuple(str(v) for v in mdl.info["time_labels"]), mdl.times,
                       unit=str(mdl.info.get("time_unit", "") or ""))


def _cell_times(container: Any, mdl: VGFM, time_order: Sequence | None = None,
                time_values: Sequence[float] | None = None) -> np.ndarray:
    return cell_times(container, mdl.info["time_key"], _mapping(mdl), time_order=time_order,
                      time_values=time_values)


def _model_rep(container: Any, mdl: VGFM) -> np.ndarray:
    """The representation in the model's frame, ``x - origin`` (subtracted in float64); the
    stochastic model, rollouts and end-state neighbours all work in this frame."""
    x = get_representation(container, mdl.use_rep)
    return mdl.to_model_frame(x, dtype=x.dtype)


def _held_out(mdl: VGFM) -> np.ndarray:
    held = mdl.info.get("held_out")
    return np.zeros(len(mdl.times), bool) if held is None else np.asarray(held, dtype=bool)


def _time_index(mdl: VGFM, value: Any, name: str) -> int:
    mapping = _mapping(mdl)
    k = mapping.find(value)
    if k is None:
        raise ValueError(
            f"{name}={value!r} is not a time point of the fit; available: "
            f"{list(mapping.labels)} (values {mdl.times.tolist()})."
        )
    return k


def _train_score_for(container: Any, mdl: VGFM, *, sigma: float | None, config: ScoreConfig,
                     seed: int, cell_t: np.ndarray | None = None,
                     device: Any = None) -> tuple[ScoreField, dict[str, Any]]:
    x = _model_rep(container, mdl)
    if cell_t is None:
        cell_t = _cell_times(container, mdl)
    held = _held_out(mdl)
    keep = [k for k in range(len(mdl.times)) if not held[k]]
    times = [float(mdl.times[k]) for k in keep]
    snaps = [x[at_time(cell_t, t, mdl.times)] for t in times]
    for t, s in zip(times, snaps):
        if len(s) < 2:
            raise ValueError(
                f"time point {t:g} has {len(s)} cells in adata.obs[{mdl.info['time_key']!r}]; "
                "the stochastic model needs at least 2 per fitted time point."
            )
    rel = np.asarray(mdl.info["relative_size"], dtype=float)[keep]
    cfg = mdl.config
    spec = get_method(cfg.method)
    if not spec.learns_growth:  # balanced couplings of unit mass, as in training
        rel = np.ones_like(rel)
    fld = mdl.field
    scale = float(fld.scale)
    # the score's floor: the fit's interpolant noise, at most STEP_LENGTH data scales (a floor
    # much wider than that smooths the score until the SDE's marginals leave the ODE's)
    floor = min(float(cfg.sigma), STEP_LENGTH) * scale if cfg.sigma > 0 else 0.01 * scale
    model_times = mdl.to_model_times(times).tolist()
    # the fit's own coupling pipeline (momentum, stiffening, net growth), so that the SDE's
    # bridges join the cells the flow joins; its own generator, not the pairs'
    dev = torch.device(device) if device is not None else torch.device("cpu")
    tensors = [torch.as_tensor(np.asarray(s), dtype=torch.float32).to(dev) for s in snaps]
    # the fit's own growth-test decisions, when recorded (the test is not run again)
    factors = (mdl.training.get("growth_vs_motion") or {}).get("reg_m_factor")
    if factors is not None:
        factors = [math.inf if f is None else float(f) for f in factors]
        if len(factors) != len(snaps) - 1:
            factors = None
    couplings, _ = fit_couplings(tensors, model_times, rel.tolist(), config=cfg,
                                 growth=spec.learns_growth,
                                 generator=torch.Generator().manual_seed(int(seed) + 1_000_003),
                                 seed=int(seed), reg_m_factors=factors)
    res = train_score(
        tensors, model_times, solver=spec.solver, options=cfg.to_dict(), population_size=rel,
        sigma=sigma, floor=floor, center=fld.center.detach().cpu(), scale=scale,
        t_start=float(fld.t_start), t_span=float(fld.t_span), max_block=cfg.coupling_block,
        max_blocks=cfg.coupling_max_blocks, config=config, couplings=couplings, seed=seed,
        device=dev,
    )
    rec = score_to_dict(res.field, sigma_estimated=res.sigma_estimated, config=config,
                        history=res.history, seconds=res.seconds, seed=seed)
    logger.info("stochastic model: sigma=%.4g (estimated %.4g), score trained in %.1fs",
                res.sigma, res.sigma_estimated, res.seconds)
    return res.field, rec


def _score_for(container: Any, mdl: VGFM, key: str, seed: int,
               cell_t: np.ndarray | None = None,
               device: Any = None) -> tuple[ScoreField, dict[str, Any] | None]:
    """Stored score network of ``uns[key]``; trained when absent (then its new record)."""
    uns = container.uns.get(key)
    if isinstance(uns, dict) and _STOCHASTIC in uns:
        score = score_from_dict(uns[_STOCHASTIC])
        if score.dim != mdl.dim:
            raise ValueError(
                f"adata.uns[{key!r}]['stochastic'] is {score.dim}-dimensional but the model "
                f"is {mdl.dim}-dimensional; recompute it with vgfm.tl.fit_stochastic(adata)."
            )
        return score, None
    logger.info("no stochastic model in adata.uns[%r]; training one (vgfm.tl.fit_stochastic)",
                key)
    score, rec = _train_score_for(container, mdl, sigma=None, config=ScoreConfig(), seed=seed,
                                  cell_t=cell_t, device=device)
    return score, rec


def _store_score(container: Any, key: str, rec: dict[str, Any] | None) -> list[str]:
    if rec is None or not isinstance(container.uns.get(key), dict):
        return []
    container.uns[key][_STOCHASTIC] = rec
    return [f"uns[{key!r}]['stochastic']"]


def _sigma(score: ScoreField, sigma: float | None) -> float:
    if sigma is None:
        return float(score.sigma)
    if not (math.isfinite(float(sigma)) and float(sigma) >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    return float(sigma)


def _max_step(score: ScoreField, sigma: float) -> float | None:
    """Longest stable step: ``(σ²/2) dt / τ_0² ≤ 1/2`` (the score's stiffness near the data is
    about ``1/τ_0²``; Euler–Maruyama and Heun share the stability interval ``λh ≤ 2``)."""
    if sigma <= 0:
        return None
    return float(score.floor) ** 2 / sigma**2


#: Longest length scale, relative to the data scale, of the score's floor and of the distance a
#: particle moves per drift evaluation (the length the SDE was validated with in table 6 of
#: ``benchmarks/fates.py``; the fit's interpolant noise may be larger).
STEP_LENGTH = 0.05

#: Quantile of the particles' drift speed that sets the drift step bound (robust to outliers).
_SPEED_QUANTILE = 0.99


def _drift_steps(fld: Any, sc: ScoreField, sigma: float, x: torch.Tensor, a: float, b: float,
                 floor: float, method: str = "heun") -> int:
    """Steps over ``[a, b]`` so that a particle moves at most ``τ_0`` per drift evaluation.

    ``τ_0`` (the score's floor, VGFM's interpolant noise) is the length scale below which the
    velocity and the score were not resolved in training; an Euler step longer than
    ``τ_0 / |b(x)|`` jumps across structure the fields do resolve (a first-order scheme with
    one step per observed interval moves cells by their whole displacement at the start
    velocity).  ``|b|`` is the speed of the full drift ``v + (σ²/2) s`` at the particles'
    current states, its 99th percentile over the chunk.  The bound is on the distance per
    drift evaluation: Heun evaluates the drift twice per step (at both ends), so its steps
    may be twice as long, at the cost of Euler–Maruyama's; its local error is third order in
    the step against second for Euler–Maruyama (measured in ``benchmarks/fates.py``,
    table 6).
    """
    if len(x) == 0 or not floor > 0:
        return 1
    with torch.no_grad():
        t = torch.tensor(float(a), dtype=x.dtype, device=x.device)
        v, _ = fld(t, x)
        if sigma > 0:
            v = v + 0.5 * sigma**2 * sc(t, x)
        speed = torch.linalg.vector_norm(v, dim=1).double()
        q = float(torch.quantile(speed, _SPEED_QUANTILE)) if len(speed) > 1 else float(speed[0])
    if not math.isfinite(q):
        return 1
    length = floor * DRIFT_EVALUATIONS[method]
    return max(1, math.ceil((b - a) * q / length - 1e-9))


def _rollout(mdl: VGFM, score: ScoreField, sigma: float, x0: np.ndarray, t_grid: Sequence[float],
             *, seed: int, n_steps: int, batch_size: int, device: Any = None,
             method: str = "heun") -> tuple[np.ndarray, np.ndarray]:
    """SDE rollout of ``x0`` on ``t_grid`` in chunks; states ``(T, N, d)``, log-masses.

    Each output interval takes at least ``n_steps`` steps of the scheme ``method`` (see
    :func:`~vgfm._core.sde.integrate_sde`), more when the noise
    (:func:`_max_step`) or the drift (:func:`_drift_steps`, measured at the start of the
    interval) asks for shorter ones. ``x0`` and the returned states are in the model's frame
    (``x - origin``); ``t_grid`` is in the user's times (shifted by ``t_origin`` here, in
    float64).
    """
    xs, lms = [], []
    step = _max_step(score, sigma)
    floor = float(score.floor)  # at most STEP_LENGTH data scales (set in _train_score_for)
    grid = [float(v) for v in mdl.to_model_times(list(map(float, t_grid)))]
    dev = resolve_device(device)
    fld, sc = mdl.field.to(dev), score.to(dev)
    try:
        for c, s in enumerate(range(0, len(x0), batch_size)):
            xb = torch.from_numpy(np.ascontiguousarray(x0[s : s + batch_size],
                                                       dtype=np.float32)).to(dev)
            lm = torch.zeros(len(xb), dtype=xb.dtype, device=dev)
            x_out, lm_out = [xb], [lm]
            for k, (a, b) in enumerate(zip(grid[:-1], grid[1:])):
                steps = max(int(n_steps), _drift_steps(fld, sc, sigma, xb, a, b, floor, method))
                x, lm_k = integrate_sde(fld, sc, xb, [a, b], sigma=sigma, log_mass0=lm,
                                        n_steps=steps, max_step=step, method=method,
                                        seed=seed * 100_003 + c * 1_009 + k)
                xb, lm = x[-1], lm_k[-1]
                x_out.append(xb)
                lm_out.append(lm)
            xs.append(torch.stack(x_out).cpu().numpy())
            lms.append(torch.stack(lm_out).cpu().numpy())
    finally:
        mdl.field.cpu()
        score.cpu()
    if not xs:
        return np.zeros((len(t_grid), 0, mdl.dim), np.float32), np.zeros((len(t_grid), 0))
    return np.concatenate(xs, 1), np.concatenate(lms, 1)


def _categories(container: Any, groupby: str, mask: np.ndarray, where: str) -> pd.Categorical:
    if groupby not in container.obs:
        raise KeyError(
            f"adata.obs[{groupby!r}] is missing; available obs columns: "
            f"{list(container.obs.columns)}. Pass `groupby=` naming a cell-type column."
        )
    col = container.obs[groupby]
    cat = col.astype("category") if not isinstance(col.dtype, pd.CategoricalDtype) else col
    sub = cat[mask].cat.remove_unused_categories()
    if sub.notna().sum() == 0:
        raise ValueError(f"adata.obs[{groupby!r}] has no labelled cells at {where}.")
    return pd.Categorical(sub)


class _EndStates:
    """Soft kNN assignment of states to the categories of the cells observed at one time."""

    def __init__(self, x_ref: np.ndarray, labels: pd.Categorical, n_neighbors: int):
        ok = ~pd.isna(labels)
        self.names = [str(c) for c in labels.categories]
        self.codes = np.asarray(labels.codes)[ok]
        self.tree = cKDTree(np.asarray(x_ref, dtype=np.float64)[ok])
        self.k = int(min(max(1, n_neighbors), ok.sum()))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        _, idx = self.tree.query(np.asarray(x, dtype=np.float64), k=self.k)
        idx = idx.reshape(len(x), self.k)
        onehot = np.zeros((len(x), len(self.names)))
        np.add.at(onehot, (np.repeat(np.arange(len(x)), self.k), self.codes[idx].ravel()), 1.0)
        return onehot / self.k


def _descendant_fates(
    mdl: VGFM, score: ScoreField, sigma: float, x: np.ndarray, t_cells: np.ndarray,
    t_target: float, end: _EndStates, *, n_samples: int, seed: int, n_steps: int,
    batch_size: int, own: np.ndarray | None = None, device: Any = None, method: str = "heun",
) -> tuple[np.ndarray, np.ndarray]:
    """Mass-weighted fate probabilities ``(n, C)`` and expected descendants ``(n,)``.

    Cells are grouped by start time; each is repeated ``n_samples`` times and integrated to
    ``t_target`` through every observed time in between (hit exactly).  Cells observed at
    ``t_target`` keep their own category ``own`` (codes, ``-1``: unknown, then kNN).
    """
    fate = np.full((len(x), len(end.names)), np.nan)
    desc = np.full(len(x), np.nan)
    for k, t0 in enumerate(np.unique(t_cells)):
        idx = np.flatnonzero(t_cells == t0)
        if at_time(np.array([t0]), t_target, mdl.times)[0]:
            fate[idx] = end(x[idx])
            if own is not None:
                known = idx[own[idx] >= 0]
                fate[known] = np.eye(len(end.names))[own[known]]
            desc[idx] = 1.0
            continue
        inner = [float(v) for v in mdl.times
                 if t0 < v < t_target and not at_time(np.array([v]), t0, mdl.times)[0]]
        grid = [float(t0)] + inner + [float(t_target)]
        x0 = np.repeat(x[idx], n_samples, axis=0)
        xs, lms = _rollout(mdl, score, sigma, x0, grid, seed=seed + 7919 * k, n_steps=n_steps,
                           batch_size=batch_size, device=device, method=method)
        m = np.exp(lms[-1].astype(np.float64)).reshape(len(idx), n_samples)
        onehot = end(xs[-1]).reshape(len(idx), n_samples, -1)
        mass = m.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            fate[idx] = (m[:, :, None] * onehot).sum(1) / mass[:, None]
        desc[idx] = m.mean(1)
    return fate, desc


def _target_time(mdl: VGFM, time: Any) -> tuple[int, float]:
    k = len(mdl.times) - 1 if time is None else _time_index(mdl, time, "time")
    return k, float(mdl.times[k])


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------
def fit_stochastic(
    adata: Data,
    *,
    model: VGFM | None = None,
    key: str = C.DEFAULT_KEY,
    sigma: float | None = None,
    steps: int = 3200,
    batch_size: int = 256,
    seed: int = 0,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    device: str | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> Data | None:
    """Learn what the stochastic dynamics need: the noise level σ and the population score.

    Recomputes the couplings of the fit through the fit's own pipeline
    (:func:`vgfm._core.train.fit_couplings`: the model's options, so ``reg``, ``reg_m``, the
    pairing with where cells go next, the stiffening the fit's growth test recorded and the
    block bounds, and the relative population sizes; held-out time points stay out; a growth
    prior given to the fit is not used), so that the score's bridges join the pairs the flow
    joins, estimates σ from
    their conditional spread (:func:`vgfm._core.sde.estimate_sigma`) unless ``sigma`` is
    given, and learns the score of the Brownian-bridge interpolant between coupled pairs
    (:func:`vgfm._core.sde.train_score`).  :func:`simulate_stochastic`, :func:`fates` and
    :func:`cluster_transitions` call it when ``uns[key]`` holds no stochastic model.

    Parameters
    ----------
    adata
        AnnData/MuData fitted with :func:`vgfm.tl.fit` under ``key``.
    model
        The fitted model; ``None`` rebuilds it from ``uns[key]``.
    key
        Key of the fit.
    sigma
        Diffusion σ in units of the representation per square-root time unit; ``None``
        estimates it from the couplings.
    steps, batch_size
        Adam steps and pairs per interval per step of the score network.
    seed
        Seed of the couplings, pairs, noise and initialisation.
    time_order, time_values
        Order (and numeric values) of time labels the fit did not see.
    device
        Torch device; ``None``: CUDA when available, else CPU.
    mod, copy
        MuData modality; work on a copy and return it.
    n_threads
        Torch CPU threads meanwhile (restored afterwards); ``None`` keeps torch's setting.

    Returns
    -------
    ``None`` (or the copy); writes ``uns[key]["stochastic"]`` with the score network's
    weights (``"state"``), ``"sigma"``, ``"sigma_estimated"``, ``"floor"``, ``"config"``
    (JSON), ``"history"`` and ``"seconds"``.

    Examples
    --------
    >>> vgfm.tl.fit_stochastic(adata)                # doctest: +SKIP
    >>> adata.uns["vgfm"]["stochastic"]["sigma"]      # doctest: +SKIP
    """
    container = resolve_container(adata, mod)
    mdl = _model_for(container, model, key)
    if key not in container.uns or not isinstance(container.uns[key], dict):
        raise KeyError(
            f"adata.uns[{key!r}] is missing; fit the model with vgfm.tl.fit(adata, "
            f"key_added={key!r}) first so the stochastic model can be stored beside it."
        )
    cfg = ScoreConfig(steps=int(steps), batch_size=int(batch_size))
    cell_t = _cell_times(container, mdl, time_order, time_values)
    with torch_threads(n_threads):
        _, rec = _train_score_for(container, mdl, sigma=sigma, config=cfg, seed=seed,
                                  cell_t=cell_t, device=device)
    out, container = _copy_target(adata, copy, mod)
    container.uns[key][_STOCHASTIC] = rec
    logger.info("vgfm.tl.fit_stochastic added uns[%r]['stochastic']", key)
    return out if copy else None


def simulate_stochastic(
    adata: Data,
    *,
    model: VGFM | None = None,
    key: str = C.DEFAULT_KEY,
    start_time: float | str | None = None,
    n_cells: int | None = None,
    n_samples: int = 1,
    t_eval: Sequence[float] | None = None,
    n_per_interval: int = 10,
    sigma: float | None = None,
    seed: int = 0,
    sde_method: str = "heun",
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    device: str | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> Data | None:
    """Simulate stochastic trajectories (SDE) and lineage masses from the cells of one time.

    Each start cell is followed by ``n_samples`` independent paths of
    ``dx = [v + (σ²/2) ∇log ρ] dt + σ dW``, ``d log m = g dt`` (:mod:`vgfm._core.sde`), whose
    mass-weighted marginals are those of the deterministic model; the spread of the paths
    from one cell shows where its descendants may go.

    Parameters
    ----------
    adata
        Fitted AnnData/MuData.
    model
        Trained model; ``None`` rebuilds it from ``uns[key]``.
    key
        Key of the fit; the result goes to ``uns[f"{key}_trajectories"]``.
    start_time
        Time point (label or value) whose cells start; default the first.
    n_cells
        Start cells drawn at random (``seed``) from that time point; default all.
    n_samples
        Independent paths per start cell.
    t_eval, n_per_interval
        Output times (default every observed time from ``start_time`` on plus
        ``n_per_interval - 1`` points inside each interval).
    sigma
        Diffusion σ; default the one stored in ``uns[key]["stochastic"]``.
    seed
        Seed of the start-cell subsample and of the Brownian motion.
    sde_method
        Integration scheme (:func:`vgfm._core.sde.integrate_sde`): ``"heun"`` (default;
        stochastic Heun, second order in the drift, two drift evaluations per step) or
        ``"euler"`` (Euler–Maruyama). The steps are bounded as in :func:`fates`.
    time_order, time_values
        Order (and numeric values) of time labels the fit did not see.
    device
        Torch device; ``None``: CUDA when available, else CPU.
    mod, copy
        MuData modality; work on a copy and return it.
    n_threads
        Torch CPU threads meanwhile (restored afterwards); ``None`` keeps torch's setting.

    Returns
    -------
    ``None`` (or the copy); writes ``uns[f"{key}_trajectories"] = {"t": (T,), "x": (T, N, d),
    "log_mass": (T, N), "start_obs": (N,), "sigma": float}`` with ``N = n_cells × n_samples``
    (the samples of one cell are consecutive), every particle starting at ``log_mass = 0``;
    trains and adds ``uns[key]["stochastic"]`` first when it is missing.

    Examples
    --------
    >>> vgfm.tl.simulate_stochastic(adata, n_cells=5, n_samples=20)  # doctest: +SKIP
    >>> vgfm.pl.trajectories(adata)                                 # doctest: +SKIP
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    check_sde_method(sde_method, "sde_method")
    container = resolve_container(adata, mod)
    mdl = _model_for(container, model, key)
    x = _model_rep(container, mdl)
    cell_t = _cell_times(container, mdl, time_order, time_values)
    k0 = 0 if start_time is None else _time_index(mdl, start_time, "start_time")
    t0 = float(mdl.times[k0])
    idx, t_grid = start_cells_and_grid(cell_t, mdl.times, t0, time_key=mdl.info["time_key"],
                                       n_cells=n_cells, seed=seed, t_eval=t_eval,
                                       n_per_interval=n_per_interval)
    with torch_threads(n_threads):
        score, rec = _score_for(container, mdl, key, seed, cell_t, device)
        sig = _sigma(score, sigma)
        x0 = np.repeat(x[idx], n_samples, axis=0)
        xs, lms = _rollout(mdl, score, sig, x0, t_grid, seed=seed, n_steps=1,
                           batch_size=65536, device=device, method=sde_method)
    out, container = _copy_target(adata, copy, mod)
    _store_score(container, key, rec)
    container.uns[C.trajectories_key(key)] = {
        "t": t_grid.astype(float),
        "x": stored_states(mdl.from_model_frame(xs), mdl.origin),
        "log_mass": lms.astype(np.float32),
        "start_obs": np.repeat(np.asarray(container.obs_names[idx], dtype=str), n_samples),
        "sigma": float(sig),
    }
    logger.info("vgfm.tl.simulate_stochastic added uns[%r] (%d particles, %d times, sigma=%.4g)",
                C.trajectories_key(key), len(x0), len(t_grid), sig)
    return out if copy else None


def _select_cells(container: Any, cells: Any, mask: np.ndarray) -> np.ndarray:
    if cells is None:
        return mask
    if isinstance(cells, (np.ndarray, pd.Series, list)) and np.asarray(cells).dtype == bool:
        sel = np.asarray(cells, dtype=bool)
        if sel.shape != (container.n_obs,):
            raise ValueError(f"cells: boolean mask of length {container.n_obs} expected, "
                             f"got shape {sel.shape}")
    else:
        names = pd.Index(np.asarray(cells, dtype=str))
        missing = names.difference(container.obs_names)
        if len(missing):
            raise KeyError(f"cells: {len(missing)} names are not in adata.obs_names, e.g. "
                           f"{list(missing[:3])}")
        sel = container.obs_names.isin(names)
    return sel & mask


def fates(
    adata: Data,
    groupby: str = "cell_type",
    *,
    key: str = C.DEFAULT_KEY,
    key_added: str | None = None,
    time: float | str | None = None,
    source_time: float | str | None = None,
    cells: Any = None,
    direction: Direction = "forward",
    n_samples: int = 50,
    n_neighbors: int = 15,
    sigma: float | None = None,
    n_steps: int = 4,
    batch_size: int = 65536,
    seed: int = 0,
    sde_method: str = "heun",
    model: VGFM | None = None,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    device: str | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> Data | None:
    """Growth-weighted fate probabilities and expected descendants of every cell.

    From every start cell, ``n_samples`` stochastic descendants are simulated to the target
    time ``time`` (:func:`simulate_stochastic`'s SDE, log-mass ``d log m = g dt``).  Each end
    state is assigned to the ``groupby`` categories of the cells observed at ``time`` by its
    ``n_neighbors`` nearest observed cells in the fitted representation (soft: the fraction of
    neighbours in each category).  With ``m_s`` the mass of path ``s``:

    * fate of category ``c`` = ``Σ_s m_s 1[s ends in c] / Σ_s m_s`` — the share of the cell's
      expected descendants that are in ``c`` (a dying lineage counts less than an expanding
      one);
    * expected descendants = ``mean_s m_s`` (``1`` for cells observed at ``time``).

    ``direction="backward"`` answers the ancestor question for the clusters at ``time``
    (moscot's ``pull``): for each category ``c`` and each cell ``i`` observed at
    ``source_time`` (default the first time point), the share of the descendants in ``c``
    that come from ``i``, ``D_i F_ic / Σ_j D_j F_jc``.

    Parameters
    ----------
    adata
        AnnData/MuData fitted with :func:`vgfm.tl.fit`.
    groupby
        ``.obs`` column of categories (cell types, clusters) of the cells at ``time``.
    key
        Key of the fit.
    key_added
        Prefix of the fields written (default ``key``).
    time
        Target time point (label or value); default the last.
    source_time
        ``direction="backward"`` only: time point of the candidate ancestors (default first).
    cells
        Forward only: subset of start cells (boolean mask or obs names); default every cell
        observed before or at ``time``.
    direction
        ``"forward"`` (fates of cells) or ``"backward"`` (ancestors of clusters).
    n_samples
        Stochastic descendants per cell (Monte-Carlo error of a fate ≈ ``0.5 / sqrt(n)``).
    n_neighbors
        ``k`` of the end-state assignment.
    sigma
        Diffusion σ; default the stored/estimated one.
    n_steps
        Integration steps per observed interval (at least; more when the noise or the drift
        asks for shorter ones: a particle moves by at most the score's floor ``τ_0`` per step,
        by noise ``σ² h ≤ τ_0²`` and by drift ``h |v + (σ²/2) ∇log ρ| ≤ τ_0``).
    batch_size
        Particles integrated at once (memory bound).
    seed
        Seed of the Brownian motion (and of the score network when it is trained here).
    sde_method
        Integration scheme (:func:`vgfm._core.sde.integrate_sde`): ``"heun"`` (default;
        stochastic Heun, second order in the drift, two drift evaluations per step) or
        ``"euler"`` (Euler–Maruyama, one evaluation per step, first order).
    model
        Trained model; ``None`` rebuilds it from ``uns[key]``.
    time_order, time_values
        Order (and numeric values) of time labels the fit did not see.
    device
        Torch device; ``None``: CUDA when available, else CPU.
    mod, copy
        MuData modality; work on a copy and return it.
    n_threads
        Torch CPU threads meanwhile (restored afterwards); ``None`` keeps torch's setting.

    Returns
    -------
    ``None`` (or the copy). Forward: ``obsm[f"{key_added}_fates"]`` (DataFrame, columns the
    categories, ``NaN`` rows for cells not started) and ``obs[f"{key_added}_descendants"]``.
    Backward: ``obsm[f"{key_added}_ancestors"]`` (DataFrame; each column sums to 1 over the
    cells of ``source_time``, ``NaN`` elsewhere).  Both record their parameters in
    ``uns[f"{key_added}_fates"]``; ``uns[key]["stochastic"]`` is trained and added first when
    missing.

    Examples
    --------
    >>> adata = vgfm.datasets.lineage_branching(seed=0)             # doctest: +SKIP
    >>> vgfm.tl.fit(adata, "time", use_rep="X")                      # doctest: +SKIP
    >>> vgfm.tl.fates(adata, "branch", n_samples=50)                 # doctest: +SKIP
    >>> adata.obsm["vgfm_fates"].head()                              # doctest: +SKIP
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    check_sde_method(sde_method, "sde_method")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    key_added = key_added or key
    container = resolve_container(adata, mod)
    mdl = _model_for(container, model, key)
    x = _model_rep(container, mdl)
    cell_t = _cell_times(container, mdl, time_order, time_values)
    k_t, t_target = _target_time(mdl, time)
    at_target = at_time(cell_t, t_target, mdl.times)
    labels = _categories(container, groupby, at_target, f"time {t_target:g}")
    end = _EndStates(x[at_target], labels, n_neighbors)
    if direction == "forward":
        start = _select_cells(container, cells, (cell_t < t_target) | at_target)
    else:
        if cells is not None:
            raise ValueError("cells= selects start cells of direction='forward' only; use "
                             "source_time= for the backward view.")
        k_s = 0 if source_time is None else _time_index(mdl, source_time, "source_time")
        if k_s >= k_t:
            raise ValueError(f"source_time ({mdl.times[k_s]:g}) must come before the target "
                             f"time ({t_target:g}).")
        start = at_time(cell_t, mdl.times[k_s], mdl.times)
    idx = np.flatnonzero(start)
    if len(idx) == 0:
        raise ValueError("no start cells selected")
    t_start = np.asarray(mdl.times)[np.argmin(np.abs(cell_t[idx, None] - mdl.times[None]), 1)]
    with torch_threads(n_threads):
        score, rec = _score_for(container, mdl, key, seed, cell_t, device)
        sig = _sigma(score, sigma)
        codes = np.full(container.n_obs, -1)
        codes[at_target] = np.asarray(labels.codes)
        fate, desc = _descendant_fates(mdl, score, sig, x[idx], t_start, t_target, end,
                                       n_samples=n_samples, seed=seed, n_steps=n_steps,
                                       batch_size=batch_size, own=codes[idx], device=device,
                                       method=sde_method)
    out, container = _copy_target(adata, copy, mod)
    stored = _store_score(container, key, rec)
    full = np.full((container.n_obs, len(end.names)), np.nan)
    params = {"groupby": groupby, "time": t_target, "direction": direction,
              "n_samples": int(n_samples), "n_neighbors": int(n_neighbors), "sigma": sig,
              "seed": int(seed), "sde_method": sde_method,
              "categories": np.asarray(end.names, dtype=str)}
    if direction == "forward":
        full[idx] = fate
        d_all = np.full(container.n_obs, np.nan)
        d_all[idx] = desc
        container.obsm[fates_key(key_added)] = pd.DataFrame(full, index=container.obs_names,
                                                            columns=end.names)
        container.obs[descendants_key(key_added)] = d_all
        written = [f"obsm[{fates_key(key_added)!r}]", f"obs[{descendants_key(key_added)!r}]"]
    else:
        contrib = desc[:, None] * fate
        with np.errstate(invalid="ignore", divide="ignore"):
            full[idx] = contrib / np.nansum(contrib, 0, keepdims=True)
        container.obsm[ancestors_key(key_added)] = pd.DataFrame(
            full, index=container.obs_names, columns=end.names)
        params["source_time"] = float(mdl.times[k_s])
        written = [f"obsm[{ancestors_key(key_added)!r}]"]
    container.uns[fates_key(key_added)] = params
    written += [f"uns[{fates_key(key_added)!r}]"] + stored
    logger.info("vgfm.tl.fates added %s (%d cells x %d samples, sigma=%.4g)",
                ", ".join(written), len(idx), n_samples, sig)
    return out if copy else None


def cluster_transitions(
    adata: Data,
    groupby: str = "cell_type",
    *,
    key: str = C.DEFAULT_KEY,
    key_added: str | None = None,
    source_time: float | str | None = None,
    target_time: float | str | None = None,
    source_groupby: str | None = None,
    normalize: Normalize = "source",
    n_samples: int = 50,
    n_neighbors: int = 15,
    sigma: float | None = None,
    n_steps: int = 4,
    seed: int = 0,
    sde_method: str = "heun",
    model: VGFM | None = None,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    device: str | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> pd.DataFrame | Data:
    """Growth-weighted cluster-to-cluster transitions between two time points.

    For every cell ``i`` of ``source_time`` the expected descendants ``D_i`` and fates
    ``F_i·`` at ``target_time`` are computed as in :func:`fates`;
    ``M[a, b] = Σ_{i in a} D_i F_ib`` is the expected number of descendants that source
    cluster ``a`` leaves in target cluster ``b`` (per sampled source cell).  Like moscot's
    ``cell_transition``, but growth-aware.

    Parameters
    ----------
    adata
        Fitted AnnData/MuData.
    groupby
        ``.obs`` column of the target categories (and of the source ones unless
        ``source_groupby`` is given).
    key, key_added
        Key of the fit; prefix of the stored table (default ``key``).
    source_time, target_time
        Time points (labels or values); default the first and the last.
    source_groupby
        ``.obs`` column of the source categories.
    normalize
        ``"source"``: rows sum to 1 (where does each source cluster's progeny go);
        ``"target"``: columns sum to 1 (where does each target cluster come from);
        ``"none"``: ``M`` itself.
    n_samples, n_neighbors, sigma, n_steps, seed, sde_method, model, mod, n_threads
        As in :func:`fates`.
    time_order, time_values
        Order (and numeric values) of time labels the fit did not see.
    device
        Torch device; ``None``: CUDA when available, else CPU.
    copy
        Work on a copy and return it (instead of the table).

    Returns
    -------
    DataFrame (rows: source categories, columns: target categories), or the modified copy
    with ``copy=True``; also stored in ``uns[f"{key_added}_transitions"]`` with the entries
    ``table``, ``source``, ``target``, ``source_time``, ``target_time``, ``normalize``,
    ``groupby`` and ``source_groupby``.

    Examples
    --------
    >>> vgfm.tl.cluster_transitions(adata, "branch", source_groupby="branch")  # doctest: +SKIP
    """
    if normalize not in ("source", "target", "none"):
        raise ValueError(f"normalize must be 'source', 'target' or 'none', got {normalize!r}")
    check_sde_method(sde_method, "sde_method")
    key_added = key_added or key
    container = resolve_container(adata, mod)
    mdl = _model_for(container, model, key)
    x = _model_rep(container, mdl)
    cell_t = _cell_times(container, mdl, time_order, time_values)
    k_s = 0 if source_time is None else _time_index(mdl, source_time, "source_time")
    k_t, t_target = _target_time(mdl, target_time)
    if k_s >= k_t:
        raise ValueError(f"source_time ({mdl.times[k_s]:g}) must come before target_time "
                         f"({t_target:g}).")
    at_target = at_time(cell_t, t_target, mdl.times)
    at_source = at_time(cell_t, mdl.times[k_s], mdl.times)
    end = _EndStates(x[at_target], _categories(container, groupby, at_target,
                                               f"time {t_target:g}"), n_neighbors)
    src = _categories(container, source_groupby or groupby, at_source,
                      f"time {mdl.times[k_s]:g}")
    idx = np.flatnonzero(at_source)
    with torch_threads(n_threads):
        score, rec = _score_for(container, mdl, key, seed, cell_t, device)
        sig = _sigma(score, sigma)
        fate, desc = _descendant_fates(
            mdl, score, sig, x[idx], np.full(len(idx), float(mdl.times[k_s])), t_target, end,
            n_samples=n_samples, seed=seed, n_steps=n_steps, batch_size=65536, device=device,
            method=sde_method)
    codes = np.asarray(src.codes)
    contrib = np.nan_to_num(desc[:, None] * fate)
    table = np.zeros((len(src.categories), len(end.names)))
    ok = codes >= 0
    np.add.at(table, codes[ok], contrib[ok])
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "source":
            table = table / table.sum(1, keepdims=True)
        elif normalize == "target":
            table = table / table.sum(0, keepdims=True)
    df = pd.DataFrame(table, index=pd.Index([str(c) for c in src.categories], name="source"),
                      columns=pd.Index(end.names, name="target"))
    out, container = _copy_target(adata, copy, mod)
    _store_score(container, key, rec)
    container.uns[transitions_key(key_added)] = {
        "table": table, "source": np.asarray(df.index, dtype=str),
        "target": np.asarray(df.columns, dtype=str), "source_time": float(mdl.times[k_s]),
        "target_time": t_target, "normalize": normalize, "groupby": groupby,
        "source_groupby": source_groupby or groupby,
    }
    logger.info("vgfm.tl.cluster_transitions added uns[%r]", transitions_key(key_added))
    return out if copy else df
