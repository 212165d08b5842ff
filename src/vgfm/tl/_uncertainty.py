"""Uncertainty of the learned velocity, growth and fates from an ensemble of fits.

Each member is trained with :func:`vgfm._core.train.train` on the data of the reference fit
(same representation, times, population sizes, held-out time and every training option —
including the coupling options — read from the stored model), with its own seed, by default a
bootstrap resample of the cells of every time point, its own random tenth of the cells held
back from training (``MEMBER_VAL_FRACTION``), and a coupling relaxation ``reg_m`` spread around
the fitted one.  The spread of the members measures how much the result depends
on *which cells were sampled*, on the optimisation's randomness and on the relaxation that
growth identifiability hinges on (docs/method.md, "Why growth is hard to pin down").  It does not measure errors shared by all
members (the representation, the population sizes, ``reg``, the model class); see
``docs/fates.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time as _time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vgfm._core.methods import get_method
from vgfm._core.threads import torch_threads
from vgfm._core.train import train
from vgfm._data import keys as C
from vgfm._data._containers import Data, resolve_container
from vgfm._data._options import resolve_progress
from vgfm._data._representation import get_representation
from vgfm._data._times import at_time
from vgfm._model import VGFM
from vgfm.tl._fates import (
    _categories,
    _cell_times,
    _copy_target,
    _descendant_fates,
    _EndStates,
    _held_out,
    _model_for,
    _score_for,
    _sigma,
    _store_score,
    _target_time,
)

logger = logging.getLogger("vgfm")

__all__ = ["ensemble"]

#: Share of the cells of every snapshot but the first that each ensemble member holds back
#: from training (at least; a reference fit that holds back more passes its own share on), on
#: top of its bootstrap resample.  The reference fit holds none back (``val_fraction=0``, so
#: that a random draw does not change the composition the couplings see), but the members'
#: spread should include how much the result depends on which cells the couplings see: without
#: it the coverage of the true growth on ``two_gene_grn`` fell from 0.785 / 0.819 to 0.743 /
#: 0.800 (seeds 0, 1; docs/fates.md).
MEMBER_VAL_FRACTION = 0.1


def _member_configs(mdl: VGFM, steps_fraction: float, n_models: int, reg_m_spread: float):
    """Per-member configs: fewer steps and a spread of the relaxation.

    Member ``m`` (``e_m`` evenly spaced in ``[-1, 1]``) uses ``reg_m * reg_m_spread ** e_m`` and
    ``reg_m_motion * (1 + e_m)``: the members run from the most permissive relaxation (a quarter
    of ``reg_m``, no motion stiffening) to the stiffest (four times ``reg_m``, twice the
    stiffening), the two knobs that decide how much of a snapshot difference is read as growth.
    The permissive half (``e_m < 0``) also leaves out the growth tests (``growth_test=None``,
    ``growth_noise_test=None``):
    where the test makes an interval's cells grow alike, the data could not tell their growth
    differences from motion, and the ensemble's spread should say so.  It also regresses on the
    plan's own growth targets (``net_of_motion=False``): the correction for motion is itself an
    estimate (it leaves part of a shift's edge growth, and at the first time points it can
    reverse small differences), so the spread spans both readings.  For the same reason it
    pairs the cells by distances alone (``coupling_momentum=0``): the permissive half leaves
    out every correction that looks beyond the interval's own coupling.  Every member holds back
    at least ``MEMBER_VAL_FRACTION`` of the cells (its own random draw).
    """
    cfg = mdl.config
    base = dataclasses.replace(
        cfg,
        stage1_steps=max(1, int(round(cfg.stage1_steps * steps_fraction))),
        stage2_steps=int(round(cfg.stage2_steps * steps_fraction)),
        val_fraction=max(float(cfg.val_fraction), MEMBER_VAL_FRACTION),
    )
    reg_m = getattr(cfg, "reg_m", None)
    vary = (reg_m_spread > 1 and get_method(cfg.method).learns_growth and reg_m is not None
            and math.isfinite(float(reg_m)))
    if not vary:
        return [base] * n_models
    kappa = float(getattr(cfg, "reg_m_motion", 0.0))
    expo = np.linspace(-1.0, 1.0, n_models)
    test = getattr(cfg, "growth_test", None)
    noise_test = getattr(cfg, "growth_noise_test", None)
    net = bool(getattr(cfg, "net_of_motion", False))
    momentum = float(getattr(cfg, "coupling_momentum", 0.0))
    return [dataclasses.replace(base, reg_m=float(reg_m) * float(reg_m_spread) ** e,
                                reg_m_motion=kappa * (1.0 + float(e)),
                                growth_test=None if e < 0 else test,
                                growth_noise_test=None if e < 0 else noise_test,
                                net_of_motion=False if e < 0 else net,
                                coupling_momentum=0.0 if e < 0 else momentum)
            for e in expo]


def direction_confidence(velocities: np.ndarray) -> np.ndarray:
    """Length of the mean unit velocity across members, ``(n,)`` in ``[0, 1]``.

    1: every member points the same way; about ``1/sqrt(M)`` for ``M`` random directions.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # two members, one cell, orthogonal
    >>> round(float(direction_confidence(v)[0]), 4)
    0.7071
    """
    v = np.asarray(velocities, dtype=np.float64)
    norm = np.linalg.norm(v, axis=2, keepdims=True)
    unit = np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)
    return np.linalg.norm(unit.mean(0), axis=1)


def ensemble(
    adata: Data,
    *,
    key: str = C.DEFAULT_KEY,
    key_added: str | None = None,
    n_models: int = 5,
    bootstrap: bool = True,
    steps_fraction: float = 0.4,
    reg_m_spread: float = 4.0,
    fates_groupby: str | None = None,
    fates_time: float | str | None = None,
    n_samples: int = 30,
    n_neighbors: int = 15,
    sigma: float | None = None,
    seed: int = 0,
    model: VGFM | None = None,
    device: str | None = None,
    progress: bool | None = None,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    mod: str | None = None,
    copy: bool = False,
    n_threads: int | None = 1,
) -> Data | None:
    """Fit an ensemble of models and write the spread of velocity, growth and fates.

    Parameters
    ----------
    adata
        AnnData/MuData fitted with :func:`vgfm.tl.fit` under ``key`` (the reference fit whose
        data and options every member reuses).
    key
        Key of the reference fit.
    key_added
        Prefix of the fields written (default ``key``).
    n_models
        Ensemble members (at least 2).
    bootstrap
        Resample the cells of every time point with replacement for each member (``False``:
        members differ by their seed only).  Either way each member also holds back a random
        ``MEMBER_VAL_FRACTION`` (a tenth) of the cells of every snapshot but the first from its
        couplings (``uns[key_added + "_ensemble"]["member_val_fraction"]``).
    steps_fraction
        Fraction of the reference fit's stage-1 and stage-2 steps each member trains for
        (default 0.4: an ensemble of 5 costs about 2 fits plus 5 couplings; the members are
        trained less than the reference, which adds optimisation noise to the spread).
    reg_m_spread
        Uncertainty about the coupling relaxation: member ``m`` uses the reference
        ``reg_m`` times ``reg_m_spread ** e_m`` and the reference ``reg_m_motion`` times
        ``1 + e_m``, with ``e_m`` evenly spaced in ``[-1, 1]`` (default 4: from a quarter of
        ``reg_m`` without motion stiffening to four times ``reg_m`` with twice the
        stiffening; the permissive half of the members also leaves out the growth test,
        ``growth_test=None``, the correction for motion, ``net_of_motion=False``, and the
        pairing by where the cells go next, ``coupling_momentum=0``).
        Growth is not identifiable from snapshots without such a choice
        (docs/method.md, "Why growth is hard to pin down"), and it is the largest source of
        error of the learned growth; ``1`` gives a pure bootstrap/seed ensemble.
    fates_groupby
        When given, also compute :func:`vgfm.tl.fates` per member (categories of this
        ``.obs`` column at ``fates_time``, default the last time) and write their spread. All
        members share the reference fit's stochastic model (the score of the population and
        σ), so the spread reflects the velocity and growth.
    fates_time, n_samples, n_neighbors, sigma
        Options of the fates (see :func:`vgfm.tl.fates`).
    seed
        Member ``m`` trains with seed ``seed * 1000 + m`` and bootstraps with
        ``numpy.random.default_rng([seed, m])``.
    model
        Reference model; ``None`` rebuilds it from ``uns[key]``.
    device, progress
        Training device and progress bars of the members (``None``: bars only on a
        terminal).
    time_order, time_values
        Order (and numeric values) of time labels the fit did not see.
    mod, copy
        MuData modality; work on a copy and return it.
    n_threads
        Torch CPU threads meanwhile (restored afterwards); ``None`` keeps torch's setting.

    Returns
    -------
    ``None`` (or the copy); writes, with ``p = key_added``:

    * ``obs[f"{p}_growth_mean"]``, ``obs[f"{p}_growth_sd"]`` — mean and standard deviation
      (``ddof=1``) of the members' growth rates at every cell's own state and time;
    * ``obsm[f"{p}_velocity_sd"]`` — per-coordinate standard deviation of the velocity;
    * ``obs[f"{p}_velocity_confidence"]`` — length of the mean unit velocity (1: all members
      agree on the direction);
    * with ``fates_groupby``: ``obsm[f"{p}_fates_mean"]``, ``obsm[f"{p}_fates_sd"]``
      (DataFrames with the categories as columns) and ``obs[f"{p}_descendants_sd"]``;
    * ``uns[f"{p}_ensemble"]`` — options and timings (``seconds``, ``member_seconds``,
      ``member_phase_seconds``, ``reference_seconds``, ``cost_ratio`` = members' training
      seconds / reference fit seconds, both wall-clock).

    Examples
    --------
    >>> vgfm.tl.fit(adata, "time", use_rep="X")       # doctest: +SKIP
    >>> vgfm.tl.ensemble(adata, n_models=5)            # doctest: +SKIP
    >>> adata.obs[["vgfm_growth_mean", "vgfm_growth_sd"]].head()  # doctest: +SKIP
    """
    if n_models < 2:
        raise ValueError(f"n_models must be at least 2 to measure a spread, got {n_models}")
    if not 0 < steps_fraction <= 1:
        raise ValueError(f"steps_fraction must be in (0, 1], got {steps_fraction}")
    key_added = key_added or key
    container = resolve_container(adata, mod)
    mdl = _model_for(container, model, key)
    x = get_representation(container, mdl.use_rep)
    # members are trained, and fates computed, in the model's frame (x - origin, in float64)
    xm = mdl.to_model_frame(x, dtype=x.dtype)
    cell_t = _cell_times(container, mdl, time_order, time_values)
    times = mdl.times
    held = _held_out(mdl)
    holdout = int(np.flatnonzero(held)[0]) if held.any() else None
    rel = np.asarray(mdl.info["relative_size"], dtype=float)
    groups = [np.flatnonzero(at_time(cell_t, t, times)) for t in times]
    for t, g in zip(times, groups):
        if len(g) < 2:
            raise ValueError(f"time point {t:g} has {len(g)} cells; the ensemble needs at "
                             "least 2 per time point.")
    if not reg_m_spread >= 1:
        raise ValueError(f"reg_m_spread must be >= 1 (1: no spread), got {reg_m_spread}")
    cfgs = _member_configs(mdl, steps_fraction, n_models, reg_m_spread)

    end = score = None
    if fates_groupby is not None:
        k_t, t_target = _target_time(mdl, fates_time)
        at_target = at_time(cell_t, t_target, times)
        labels = _categories(container, fates_groupby, at_target, f"time {t_target:g}")
        end = _EndStates(xm[at_target], labels, n_neighbors)
        codes = np.full(container.n_obs, -1)
        codes[at_target] = np.asarray(labels.codes)
        start = np.flatnonzero(cell_t <= t_target + 1e-12)
        t_start = np.asarray(times)[np.argmin(np.abs(cell_t[start, None] - times[None]), 1)]

    vs, gs, fs, ds, secs, phases = [], [], [], [], [], []
    t_all = _time.perf_counter()
    rec = None
    with torch_threads(n_threads):
        if fates_groupby is not None:
            score, rec = _score_for(container, mdl, key, seed, cell_t, device)
            sig = _sigma(score, sigma)
        for m in range(n_models):
            rng = np.random.default_rng([int(seed), m])
            snaps = []
            for g in groups:
                take = rng.choice(g, len(g), replace=True) if bootstrap else g
                snaps.append(xm[take])
            t0 = _time.perf_counter()
            cfg = cfgs[m]
            res = train(snaps, mdl.to_model_times(times).tolist(), population_size=rel,
                        holdout=holdout, config=cfg,
                        seed=int(seed) * 1000 + m, device=device,
                        progress=resolve_progress(progress))
            secs.append(_time.perf_counter() - t0)
            phases.append({k: float(v) for k, v in res.extra.items() if k.startswith("seconds_")})
            member = mdl.with_field(res.field, config=cfg)
            v, g = member.predict(x, cell_t)
            vs.append(v)
            gs.append(g)
            if end is not None:
                f, d = _descendant_fates(member, score, sig, xm[start], t_start, t_target, end,
                                         n_samples=n_samples, seed=seed + m, n_steps=4,
                                         batch_size=65536, own=codes[start], device=device)
                fs.append(f)
                ds.append(d)
            logger.info("ensemble member %d/%d trained in %.1fs", m + 1, n_models, secs[-1])
    seconds = _time.perf_counter() - t_all
    v_all, g_all = np.stack(vs), np.stack(gs).astype(np.float64)

    out, container = _copy_target(adata, copy, mod)
    p = key_added
    container.obs[f"{p}_growth_mean"] = g_all.mean(0)
    container.obs[f"{p}_growth_sd"] = g_all.std(0, ddof=1)
    container.obsm[f"{p}_velocity_sd"] = v_all.std(0, ddof=1).astype(np.float32)
    container.obs[f"{p}_velocity_confidence"] = direction_confidence(v_all)
    written = [f"obs[{p + '_growth_mean'!r}]", f"obs[{p + '_growth_sd'!r}]",
               f"obsm[{p + '_velocity_sd'!r}]", f"obs[{p + '_velocity_confidence'!r}]"]
    if end is not None:
        f_all, d_all = np.stack(fs), np.stack(ds)
        for name, arr in (("mean", f_all.mean(0)), ("sd", f_all.std(0, ddof=1))):
            full = np.full((container.n_obs, len(end.names)), np.nan)
            full[start] = arr
            container.obsm[f"{p}_fates_{name}"] = pd.DataFrame(
                full, index=container.obs_names, columns=end.names)
        dsd = np.full(container.n_obs, np.nan)
        dsd[start] = d_all.std(0, ddof=1)
        container.obs[f"{p}_descendants_sd"] = dsd
        written += [f"obsm[{p + '_fates_mean'!r}]", f"obsm[{p + '_fates_sd'!r}]",
                    f"obs[{p + '_descendants_sd'!r}]"]
        written += _store_score(container, key, rec)
    ref_seconds = _reference_seconds(container, key)
    container.uns[f"{p}_ensemble"] = {
        "n_models": int(n_models), "bootstrap": bool(bootstrap),
        "steps_fraction": float(steps_fraction), "seed": int(seed),
        "reg_m_spread": float(reg_m_spread),
        "member_reg_m": np.asarray([float(getattr(c, "reg_m", np.nan)) for c in cfgs]),
        "member_reg_m_motion": np.asarray([float(getattr(c, "reg_m_motion", np.nan))
                                           for c in cfgs]),
        # NaN: the member leaves out that growth test
        **{f"member_{name}": np.asarray([np.nan if getattr(c, name, None) is None
                                         else float(getattr(c, name)) for c in cfgs])
           for name in ("growth_test", "growth_noise_test")},
        "member_val_fraction": np.asarray([float(c.val_fraction) for c in cfgs]),
        "member_net_of_motion": np.asarray([bool(getattr(c, "net_of_motion", False))
                                            for c in cfgs]),
        "member_coupling_momentum": np.asarray([float(getattr(c, "coupling_momentum", 0.0))
                                                for c in cfgs]),
        "seconds": float(seconds), "member_seconds": np.asarray(secs, dtype=float),
        "reference_seconds": ref_seconds,
        "member_phase_seconds": {k: np.asarray([p.get(k, np.nan) for p in phases])
                                 for k in sorted({k for p in phases for k in p})},
        "cost_ratio": float(sum(secs) / ref_seconds) if ref_seconds > 0 else math.nan,
        "fates_groupby": fates_groupby or "",
    }
    written.append(f"uns[{p + '_ensemble'!r}]")
    logger.info("vgfm.tl.ensemble added %s (%d members, %.1fs)", ", ".join(written), n_models,
                seconds)
    return out if copy else None


def _reference_seconds(container: Any, key: str) -> float:
    uns = container.uns.get(key)
    if isinstance(uns, dict) and "train_seconds" in uns:
        return float(uns["train_seconds"])
    return math.nan
