"""A branching population simulated cell by cell, with lineage truth for fate questions.

:func:`lineage_branching` simulates every cell of a population through a bifurcating SDE with
state-dependent birth and death, records the founder (time-0 ancestor) of every sampled cell
and returns, for every cell sampled at the first time point, its **true fate probabilities**
(the share of its descendants at the last time point that lie in each branch) and its **true
expected number of descendants**.  These are the quantities :func:`vgfm.tl.fates` estimates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData

__all__ = ["lineage_branching"]

logger = logging.getLogger("vgfm")

BRANCHES = ("lower", "upper")


@dataclass(frozen=True)
class _LineageParams:
    n_dims: int
    speed: float
    instability: float
    well: float
    noise_sd: float
    initial_sd: float
    birth: tuple[float, float]  # (deep in the lower branch, deep in the upper branch)
    death: tuple[float, float]
    growth_width: float
    dt: float


def _switch(x: np.ndarray, p: _LineageParams) -> np.ndarray:
    """Smooth indicator of the upper branch, ``sigmoid(x_2 / w)``."""
    z = np.clip(x[:, 1] / p.growth_width, -50.0, 50.0)
    return 1.0 / (1.0 + np.exp(-z))


def _rates(x: np.ndarray, p: _LineageParams) -> tuple[np.ndarray, np.ndarray]:
    h = _switch(x, p)
    birth = p.birth[0] + (p.birth[1] - p.birth[0]) * h
    death = p.death[0] + (p.death[1] - p.death[0]) * h
    return birth, death


def _drift(x: np.ndarray, p: _LineageParams) -> np.ndarray:
    f = np.empty_like(x)
    f[:, 0] = p.speed  # progression
    x2 = x[:, 1]
    f[:, 1] = p.instability * (x2 - x2**3 / p.well**2)  # pitchfork: wells at +-well
    if x.shape[1] > 2:
        f[:, 2:] = -x[:, 2:]  # nuisance coordinates: Ornstein-Uhlenbeck around 0
    return f


def _initial(n: int, p: _LineageParams, rng: np.random.Generator) -> np.ndarray:
    x = np.empty((n, p.n_dims))
    x[:, 0] = 0.1 * rng.standard_normal(n)
    x[:, 1] = p.initial_sd * rng.standard_normal(n)
    if p.n_dims > 2:  # stationary law of the OU coordinates
        x[:, 2:] = p.noise_sd / math.sqrt(2.0) * rng.standard_normal((n, p.n_dims - 2))
    return x


def _evolve(
    x: np.ndarray, tags: np.ndarray, duration: float, p: _LineageParams,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Euler-Maruyama over ``duration`` with one birth/death draw per particle and step.

    In each step of length ``dt`` a particle divides with probability ``b(x) dt`` (the
    daughter starts at the parent's state and inherits its tag) or dies with probability
    ``d(x) dt``.  ``tags`` (one integer per particle) follow the particles.
    """
    n_steps = max(1, math.ceil(duration / p.dt - 1e-9))
    dt = duration / n_steps
    sq = p.noise_sd * math.sqrt(dt)
    for _ in range(n_steps):
        if x.shape[0] == 0:
            break
        x = x + _drift(x, p) * dt + sq * rng.standard_normal(x.shape)
        birth, death = _rates(x, p)
        u = rng.random(x.shape[0])
        divide = u < birth * dt
        die = (u >= birth * dt) & (u < (birth + death) * dt)
        keep = ~die
        x = np.concatenate([x[keep], x[divide]])
        tags = np.concatenate([tags[keep], tags[divide]])
    return x, tags


def _branch(x: np.ndarray) -> np.ndarray:
    return (x[:, 1] > 0).astype(np.int64)


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    arr = np.broadcast_to(np.asarray(value, dtype=float), (2,))
    if np.any(~np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be one or two finite rates >= 0, got {value!r}.")
    return float(arr[0]), float(arr[1])


def lineage_branching(
    n_cells_0: int = 300,
    *,
    times: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0),
    n_dims: int = 3,
    speed: float = 1.0,
    instability: float = 2.0,
    well: float = 1.5,
    noise_sd: float = 0.3,
    initial_sd: float = 0.2,
    birth_rate: float | Sequence[float] = (0.3, 0.9),
    death_rate: float | Sequence[float] = (0.6, 0.1),
    growth_width: float = 0.3,
    n_lineages: int | None = None,
    n_replicates: int = 200,
    dt: float = 0.01,
    seed: int = 0,
) -> AnnData:
    """Simulate a bifurcating, proliferating population cell by cell, with lineage truth.

    Every cell follows the SDE ``dx = f(x) dt + σ dW`` (Euler-Maruyama, step ``dt``) with

    * ``f_1 = speed`` — progression along the first coordinate;
    * ``f_2 = κ (x_2 − x_2³ / a²)`` — a pitchfork: the undecided state ``x_2 = 0`` is unstable
      and cells commit to the ``"upper"`` (``x_2 > 0``, well at ``+a``) or the ``"lower"``
      branch (well at ``−a``); κ = ``instability``, a = ``well``;
    * ``f_i = −x_i`` for ``i > 2`` — nuisance Ornstein-Uhlenbeck coordinates.

    In each step a cell divides with probability ``b(x) dt`` (the daughter starts where the
    parent is) or dies with probability ``d(x) dt``, with rates interpolating between the
    branches, ``b(x) = b_lo + (b_up − b_lo) h(x)``, ``d(x) = d_lo + (d_up − d_lo) h(x)``,
    ``h(x) = sigmoid(x_2 / growth_width)``. With the defaults the upper branch proliferates
    (net rate 0.8) and the lower one dies out (−0.3). The true net growth rate is
    ``g(x) = b(x) − d(x)``.

    ``n_lineages`` founders start at ``times[0]`` from ``x_1 ~ N(0, 0.1²)``,
    ``x_2 ~ N(0, initial_sd²)`` (the OU coordinates from their stationary law).  Snapshots are
    uniform samples without replacement of the living cells, of sizes proportional to the true
    population (``n_k = round(n_cells_0 N_k / N_0)``), as in :func:`two_gene_grn`; sampling
    does not remove cells from the simulated population.

    **Lineage truth.** Every sampled cell records its founder.  For every cell sampled at the
    first time point (a founder), the truth is estimated by simulating ``n_replicates``
    independent copies of its whole descendant tree from its sampled state to the last time
    point (fresh noise, same dynamics and rates). With ``D_r`` the number of living
    descendants of replicate ``r`` and ``D_{r,c}`` those in branch ``c`` (sign of ``x_2``):

    * ``true_descendants = mean_r D_r`` — the expected number of descendants (Monte-Carlo
      standard error ``sd_r(D_r) / sqrt(n_replicates)``, stored as
      ``obs["true_descendants_se"]``);
    * ``true_fates[c] = sum_r D_{r,c} / sum_r D_r`` — the share of the expected descendants in
      branch ``c`` (a ratio of expectations: each descendant counts once, so a lineage that
      expands weighs more, exactly the mass weighting of :func:`vgfm.tl.fates`). ``NaN`` when
      no replicate left a descendant.

    Parameters
    ----------
    n_cells_0
        Cells sampled at the first time point (the early cells with lineage truth).
    times
        Sampling times, strictly increasing.
    n_dims
        Dimension (at least 2); coordinates beyond the second are nuisance OU noise.
    speed, instability, well
        Drift parameters (see above).
    noise_sd
        Diffusion σ of every coordinate.
    initial_sd
        Spread of the founders along ``x_2``: how far from undecided early cells are.
    birth_rate, death_rate
        One rate, or ``(lower branch, upper branch)``; equal entries give constant rates.
    growth_width
        Width of the switch of the rates across ``x_2 = 0``.
    n_lineages
        Founders simulated (default ``5 * n_cells_0``, at least ``n_cells_0``).
    n_replicates
        Independent descendant trees per early cell for the truth.
    dt
        Euler-Maruyama step (and birth/death step); ``(b + d) dt`` must stay below 1.
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    AnnData
        ``X``: ``float32`` states (var ``progression``, ``fate``, ``noise_1``, …);
        ``obs["time"]``, ``obs["day"]``; ``obs["branch"]`` (``"lower"``/``"upper"``: sign of
        ``x_2``); ``obs["true_growth"]`` (``b − d`` at the cell's state); ``obs["founder"]``
        (integer founder id) and ``obs["ancestor"]`` (obs name of the founder when it was
        sampled at the first time point, else ``""``); ``obs["true_descendants"]`` and
        ``obs["true_descendants_se"]`` (early cells; ``NaN`` elsewhere);
        ``obsm["true_fates"]`` (DataFrame with columns ``"lower"``, ``"upper"``; early cells,
        ``NaN`` elsewhere); ``uns["true_population_size"]``, ``uns["times"]``,
        ``uns["dataset"]`` (name and parameters).

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.lineage_branching(60, n_replicates=20, seed=0)
    >>> early = adata.obs["time"] == 0
    >>> bool(adata.obsm["true_fates"][early.to_numpy()].sum(axis=1).round(6).eq(1).all())
    True
    """
    t = np.asarray(times, dtype=float).ravel()
    if t.shape[0] < 2 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError(f"times must hold at least 2 strictly increasing values, got {t.tolist()}.")
    if n_cells_0 < 1:
        raise ValueError(f"n_cells_0 must be a positive integer, got {n_cells_0}.")
    if n_dims < 2:
        raise ValueError(f"n_dims must be at least 2 (progression and fate), got {n_dims}.")
    if n_replicates < 1:
        raise ValueError(f"n_replicates must be >= 1, got {n_replicates}.")
    if noise_sd < 0 or growth_width <= 0 or dt <= 0 or well <= 0:
        raise ValueError(
            "noise_sd must be >= 0 and growth_width, dt, well > 0; got "
            f"noise_sd={noise_sd}, growth_width={growth_width}, dt={dt}, well={well}."
        )
    birth, death = _pair(birth_rate, "birth_rate"), _pair(death_rate, "death_rate")
    if (max(birth) + max(death)) * dt >= 1.0:
        raise ValueError(
            f"dt={dt} is too large for birth + death rates up to {max(birth) + max(death)}; "
            f"use dt < {1.0 / (max(birth) + max(death)):.3g}."
        )
    p = _LineageParams(int(n_dims), float(speed), float(instability), float(well),
                       float(noise_sd), float(initial_sd), birth, death, float(growth_width),
                       float(dt))
    n_lineages = max(int(n_cells_0), 5 * int(n_cells_0) if n_lineages is None else int(n_lineages))
    rng = np.random.default_rng(seed)

    # ---- the population -------------------------------------------------------------------
    x = _initial(n_lineages, p, rng)
    founders = np.arange(n_lineages)
    states, tags = [x.copy()], [founders.copy()]
    for k in range(1, len(t)):
        x, founders = _evolve(x, founders, t[k] - t[k - 1], p, rng)
        states.append(x.copy())
        tags.append(founders.copy())
    sizes = np.array([float(len(s)) for s in states])
    counts = np.rint(n_cells_0 * sizes / sizes[0]).astype(np.int64)

    blocks, block_t, block_f = [], [], []
    for k, (state, tag, n_k) in enumerate(zip(states, tags, counts)):
        idx = np.sort(rng.choice(len(state), size=int(min(n_k, len(state))), replace=False))
        blocks.append(state[idx])
        block_f.append(tag[idx])
        block_t.append(np.full(len(idx), t[k]))
    x_all = np.concatenate(blocks)
    obs_t = np.concatenate(block_t)
    founder = np.concatenate(block_f)
    names = pd.Index([f"cell_{i}" for i in range(len(x_all))])
    n_early = len(blocks[0])
    early_name = dict(zip(block_f[0].tolist(), names[:n_early]))
    ancestor = np.array([early_name.get(int(f), "") for f in founder], dtype=object)

    # ---- lineage truth of the early cells: independent replicate trees ---------------------
    x_rep = np.repeat(blocks[0], n_replicates, axis=0)
    tag_rep = np.arange(n_early * n_replicates)  # (early cell, replicate) pair
    x_end, tag_end = _evolve(x_rep, tag_rep, t[-1] - t[0], p, rng)
    per_rep = np.zeros((n_early * n_replicates, len(BRANCHES)))
    np.add.at(per_rep, (tag_end, _branch(x_end)), 1.0)
    per_rep = per_rep.reshape(n_early, n_replicates, len(BRANCHES))
    totals = per_rep.sum(2)  # (early, replicate) descendants
    desc = totals.mean(1)
    desc_se = totals.std(1, ddof=1) / math.sqrt(n_replicates) if n_replicates > 1 else \
        np.full(n_early, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        fates = per_rep.sum(1) / per_rep.sum((1, 2))[:, None]

    n = len(x_all)
    true_fates = np.full((n, len(BRANCHES)), np.nan)
    true_fates[:n_early] = fates
    true_desc = np.full(n, np.nan)
    true_desc[:n_early] = desc
    true_desc_se = np.full(n, np.nan)
    true_desc_se[:n_early] = desc_se
    birth_x, death_x = _rates(x_all, p)
    levels = np.unique(obs_t)
    obs = pd.DataFrame(
        {
            "time": obs_t,
            "day": pd.Categorical.from_codes(np.searchsorted(levels, obs_t),
                                             categories=[f"day {v:g}" for v in levels],
                                             ordered=True),
            "branch": pd.Categorical.from_codes(_branch(x_all), categories=list(BRANCHES)),
            "true_growth": birth_x - death_x,
            "founder": founder.astype(np.int64),
            "ancestor": ancestor.astype(str),
            "true_descendants": true_desc,
            "true_descendants_se": true_desc_se,
        },
        index=names,
    )
    var_names = ["progression", "fate"] + [f"noise_{i}" for i in range(1, p.n_dims - 1)]
    adata = AnnData(X=x_all.astype(np.float32), obs=obs,
                    var=pd.DataFrame(index=pd.Index(var_names)))
    adata.obsm["true_fates"] = pd.DataFrame(true_fates, index=names, columns=list(BRANCHES))
    adata.uns["true_population_size"] = sizes
    adata.uns["times"] = t
    adata.uns["dataset"] = {
        "name": "lineage_branching",
        "seed": int(seed),
        "n_lineages": int(n_lineages),
        "n_replicates": int(n_replicates),
        "params": {
            "n_dims": p.n_dims, "speed": p.speed, "instability": p.instability,
            "well": p.well, "noise_sd": p.noise_sd, "initial_sd": p.initial_sd,
            "birth_rate": np.asarray(p.birth), "death_rate": np.asarray(p.death),
            "growth_width": p.growth_width, "dt": p.dt,
        },
    }
    logger.info("lineage_branching: %s cells at times %s (true population sizes %s)",
                counts.tolist(), t.tolist(), sizes.tolist())
    return adata
