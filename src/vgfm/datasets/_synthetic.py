"""Synthetic time courses with known velocity and growth, written for this project.

* :func:`two_gene_grn` — a bistable two-gene switch simulated as an SDE with a birth–death
  branching process whose birth rate depends on the cell state;
* :func:`gaussian_bifurcation` — the Gaussian bifurcation-with-growth family in any dimension,
  with :func:`sample_gaussian_bifurcation_law` drawing independent samples of its true law;
* :func:`three_gene_switch` — a tristable three-gene switch whose fates proliferate, die or
  persist (state-dependent birth *and* death), sampled at uneven times;
* :func:`large_time_course` — either system lifted into many dimensions, for scale tests with
  10^4 … 10^6 cells.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

__all__ = [
    "gaussian_bifurcation",
    "large_time_course",
    "sample_gaussian_bifurcation_law",
    "three_gene_switch",
    "two_gene_grn",
]

logger = logging.getLogger("vgfm")

#: Name of the branch (attractor basin) that proliferates in :func:`two_gene_grn`.
PROLIFERATING_BRANCH = "gene_2_high"
_BRANCHES = ("gene_1_high", "gene_2_high")
_CLUSTERS = ("lower", "left", "right", "upper")
_UPPER_CENTRE = (0.0, 2.5)
_LOWER_FRACTION = 0.8
_UPPER_FRACTION = 0.2


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _sample_snapshots(states, sizes, t, n_cells_0, n_cells, n_lineages, rng):
    """Sample the snapshots of a simulated population: cells, their times and the counts.

    By default ``n_k = round(n_cells_0 * N_k / N_0)`` alive particles are drawn at ``t_k``
    (uniformly, without replacement), else the given ``n_cells``.
    """
    if n_cells is None:
        counts = np.rint(n_cells_0 * sizes / sizes[0]).astype(np.int64)
    else:
        counts = np.asarray(n_cells, dtype=np.int64)
    blocks, block_times = [], []
    for k, (state, n_k) in enumerate(zip(states, counts)):
        if n_k > state.shape[0]:
            raise ValueError(
                f"{int(n_k)} cells requested at time {t[k]:g} but only {state.shape[0]} "
                f"simulated cells are alive; increase n_lineages (now {n_lineages})."
            )
        idx = rng.choice(state.shape[0], size=int(n_k), replace=False)
        blocks.append(state[idx])
        block_times.append(np.full(int(n_k), t[k]))
    x = np.concatenate(blocks) if blocks else np.empty((0, states[0].shape[1]))
    return x, np.concatenate(block_times), counts


def _day_labels(times: np.ndarray) -> pd.Categorical:
    levels = np.unique(times)
    names = [f"day {t:g}" for t in levels]
    codes = np.searchsorted(levels, times)
    return pd.Categorical.from_codes(codes, categories=names, ordered=True)


def _cell_names(n: int) -> pd.Index:
    return pd.Index([f"cell_{i}" for i in range(n)])


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder)."""
    weights = np.asarray(weights, dtype=np.float64)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def _check_times(times: Sequence[float]) -> np.ndarray:
    arr = np.asarray(times, dtype=np.float64).ravel()
    if arr.shape[0] < 2:
        raise ValueError(f"times needs at least 2 time points, got {arr.tolist()}.")
    if not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
        raise ValueError(f"times must be finite and strictly increasing, got {arr.tolist()}.")
    return arr


# --------------------------------------------------------------------------------------------
# two-gene regulatory network
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _GrnParams:
    noise_sd: float = 0.1
    birth_rate: float = 0.9
    death_rate: float = 0.1
    growth_width: float = 0.2
    initial_mean: tuple[float, float] = (0.4, 0.4)
    initial_sd: float = 0.1
    hill: float = 4.0
    time_scale: float = 3.0
    dt: float = 0.01


def _grn_drift(x: np.ndarray, p: _GrnParams) -> np.ndarray:
    """Toggle switch with self-activation: ``τ (h(x_i) + 1 − h(x_j) − x_i)``, ``h = xⁿ/(1+xⁿ)``."""
    pw = np.power(x, p.hill)
    h = pw / (1.0 + pw)
    return p.time_scale * (h + (1.0 - h[:, ::-1]) - x)


def _grn_birth(x: np.ndarray, p: _GrnParams) -> np.ndarray:
    """Birth (division) rate ``b(x) = b₀ · sigmoid((x₂ − x₁) / w)``."""
    z = np.clip((x[:, 1] - x[:, 0]) / p.growth_width, -50.0, 50.0)
    return p.birth_rate / (1.0 + np.exp(-z))


def _grn_net_growth(x: np.ndarray, p: _GrnParams) -> np.ndarray:
    return _grn_birth(x, p) - p.death_rate


def _simulate_grn(
    n_lineages: int, times: np.ndarray, p: _GrnParams, rng: np.random.Generator
) -> tuple[list[np.ndarray], np.ndarray]:
    """Euler–Maruyama + birth–death branching; returns alive states and counts at ``times``."""
    x = np.asarray(p.initial_mean, dtype=np.float64) + p.initial_sd * rng.standard_normal(
        (n_lineages, 2)
    )
    np.abs(x, out=x)
    states = [x.copy()]
    sizes = [float(x.shape[0])]
    for k in range(1, times.shape[0]):
        delta = times[k] - times[k - 1]
        n_steps = max(1, math.ceil(delta / p.dt - 1e-9))
        dt = delta / n_steps
        if (p.birth_rate + p.death_rate) * dt > 1.0:
            raise ValueError(
                f"dt={p.dt} is too large for birth_rate + death_rate = "
                f"{p.birth_rate + p.death_rate}; use dt < {1.0 / (p.birth_rate + p.death_rate)}."
            )
        sq = p.noise_sd * math.sqrt(dt)
        for _ in range(n_steps):
            if x.shape[0] == 0:
                break
            x = x + _grn_drift(x, p) * dt + sq * rng.standard_normal(x.shape)
            np.abs(x, out=x)  # reflect at 0: expression stays non-negative
            u = rng.random(x.shape[0])
            p_birth = _grn_birth(x, p) * dt
            divide = u < p_birth
            die = (u >= p_birth) & (u < p_birth + p.death_rate * dt)
            x = np.concatenate([x[~die], x[divide]])
        states.append(x.copy())
        sizes.append(float(x.shape[0]))
    return states, np.asarray(sizes)


def _grn_branch(x: np.ndarray) -> np.ndarray:
    """Attractor basin of the symmetric switch: the side of the diagonal ``x₁ = x₂``."""
    return (x[:, 1] > x[:, 0]).astype(np.int64)


def two_gene_grn(
    n_cells_0: int = 400,
    *,
    n_cells: Sequence[int] | None = None,
    times: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0),
    noise_sd: float = 0.1,
    birth_rate: float = 0.9,
    death_rate: float = 0.1,
    growth_width: float = 0.2,
    initial_mean: tuple[float, float] = (0.4, 0.4),
    initial_sd: float = 0.1,
    hill: float = 4.0,
    time_scale: float = 3.0,
    n_lineages: int | None = None,
    dt: float = 0.01,
    seed: int = 0,
) -> AnnData:
    """Simulate a two-gene bistable switch with state-dependent proliferation.

    Two genes inhibit each other and activate themselves (Hill functions, symmetric
    parameters)::

        dx₁ = τ (h(x₁) + 1 − h(x₂) − x₁) dt + σ dW₁
        dx₂ = τ (h(x₂) + 1 − h(x₁) − x₂) dt + σ dW₂,      h(x) = xⁿ / (1 + xⁿ)

    with τ = ``time_scale``, n = ``hill``, σ = ``noise_sd``, integrated by Euler–Maruyama and
    reflected at 0. With the default ``hill=4`` the switch has a saddle at (1, 1) and two
    attractors near (1.93, 0.07)
    ("gene_1_high") and (0.07, 1.93) ("gene_2_high"); the basins are the two sides of the
    diagonal. Cells start in an undecided cluster ``N(initial_mean, initial_sd²)`` and split
    into the two branches over time.

    Every particle divides with probability ``b(x)·dt`` and dies with probability ``d·dt`` in
    each step (daughters continue independently), with birth rate
    ``b(x) = birth_rate · sigmoid((x₂ − x₁) / growth_width)`` and constant death rate ``d =
    death_rate``: the gene-2 branch proliferates, the gene-1 branch slowly dies out. The true
    net growth rate is ``g(x) = b(x) − d``.

    ``n_lineages`` particles are simulated (default ``10 * n_cells_0``). By default the snapshot
    at ``t_k`` is a uniform sample without replacement of ``n_k = round(n_cells_0 · N_k / N_0)``
    alive particles, where ``N_k`` is the true number of alive particles: every snapshot samples
    the same fraction of the population, so cell-count ratios equal the true population-size
    ratios (the convention of the published benchmarks). Pass ``n_cells`` to sample fixed counts
    instead (as real experiments do) and use ``uns["true_population_size"]`` as the population
    size.

    Parameters
    ----------
    n_cells_0
        Number of cells sampled at the first time point (default counts are proportional to
        the true population size, see above).
    n_cells
        Explicit number of cells per time point; overrides the proportional default.
    times
        Real sampling times, strictly increasing; the simulation starts at ``times[0]``.
    noise_sd
        Diffusion coefficient σ of the SDE (``dx = f dt + σ dW``).
    birth_rate
        Maximal division rate ``b₀`` (reached deep in the gene-2 branch).
    death_rate
        Constant death rate ``d``.
    growth_width
        Width ``w`` of the sigmoid switch of the birth rate across the diagonal.
    initial_mean, initial_sd
        Mean and standard deviation of the initial Gaussian cluster.
    hill
        Hill coefficient n.
    time_scale
        Rate τ of the gene dynamics (larger: faster commitment).
    n_lineages
        Number of simulated initial particles (default ``10 * n_cells_0``, at least the largest
        requested snapshot).
    dt
        Largest Euler–Maruyama step; each interval is cut into equal steps no larger than it.
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same data.

    Returns
    -------
    AnnData
        ``X``
            ``float32`` expression of ``gene_1`` and ``gene_2``.
        ``obs["time"]``
            ``float`` real sampling time.
        ``obs["day"]``
            ordered categorical label ``"day 0"``, ``"day 0.5"``, ….
        ``obs["branch"]``
            categorical attractor basin at sampling, ``"gene_1_high"`` or ``"gene_2_high"``.
        ``obs["true_growth"]``
            ``float`` true net growth rate ``b(x) − d`` at the cell's state.
        ``uns["true_population_size"]``
            ``float`` array, number of alive particles ``N_k`` at each time (``N_0 =
            n_lineages``); pass it as ``population_size`` to use the true sizes.
        ``uns["times"]``
            ``float`` array of the sampling times.
        ``uns["dataset"]``
            name, proliferating branch and all parameters.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(seed=0)
    >>> adata.obs["day"].cat.categories.tolist()
    ['day 0', 'day 0.5', 'day 1', 'day 1.5', 'day 2']
    >>> counts = adata.obs["time"].value_counts().sort_index()
    >>> bool(counts.is_monotonic_increasing)
    True
    """
    t = _check_times(times)
    if n_cells_0 < 1:
        raise ValueError(f"n_cells_0 must be a positive integer, got {n_cells_0}.")
    if n_cells is not None and len(n_cells) != t.shape[0]:
        raise ValueError(
            f"n_cells has {len(n_cells)} entries but times has {t.shape[0]}; give one count per "
            "time point."
        )
    if noise_sd < 0 or birth_rate < 0 or death_rate < 0 or growth_width <= 0 or dt <= 0:
        raise ValueError(
            "noise_sd, birth_rate and death_rate must be >= 0 and growth_width, dt > 0; got "
            f"noise_sd={noise_sd}, birth_rate={birth_rate}, death_rate={death_rate}, "
            f"growth_width={growth_width}, dt={dt}."
        )
    params = _GrnParams(
        noise_sd=float(noise_sd),
        birth_rate=float(birth_rate),
        death_rate=float(death_rate),
        growth_width=float(growth_width),
        initial_mean=(float(initial_mean[0]), float(initial_mean[1])),
        initial_sd=float(initial_sd),
        hill=float(hill),
        time_scale=float(time_scale),
        dt=float(dt),
    )
    if n_lineages is None:
        n_lineages = 10 * n_cells_0
        if n_cells is not None:
            n_lineages = max(n_lineages, int(max(n_cells)))
    rng = np.random.default_rng(seed)
    states, sizes = _simulate_grn(int(n_lineages), t, params, rng)

    x, obs_t, counts = _sample_snapshots(states, sizes, t, n_cells_0, n_cells, n_lineages, rng)

    obs = pd.DataFrame(
        {
            "time": obs_t,
            "day": _day_labels(obs_t),
            "branch": pd.Categorical.from_codes(_grn_branch(x), categories=list(_BRANCHES)),
            "true_growth": _grn_net_growth(x, params),
        },
        index=_cell_names(x.shape[0]),
    )
    adata = AnnData(
        X=x.astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=pd.Index(["gene_1", "gene_2"])),
    )
    adata.uns["true_population_size"] = sizes
    adata.uns["times"] = t
    adata.uns["dataset"] = {
        "name": "two_gene_grn",
        "proliferating_branch": PROLIFERATING_BRANCH,
        "seed": int(seed),
        "n_lineages": int(n_lineages),
        "params": {
            "noise_sd": params.noise_sd,
            "birth_rate": params.birth_rate,
            "death_rate": params.death_rate,
            "growth_width": params.growth_width,
            "initial_mean": np.asarray(params.initial_mean),
            "initial_sd": params.initial_sd,
            "hill": params.hill,
            "time_scale": params.time_scale,
            "dt": params.dt,
        },
    }
    logger.info(
        "two_gene_grn: %s cells at times %s (true population sizes %s)",
        counts.tolist(),
        t.tolist(),
        sizes.tolist(),
    )
    return adata


# --------------------------------------------------------------------------------------------
# Gaussian bifurcation with growth
# --------------------------------------------------------------------------------------------
def _gaussian_components(
    s: float, growth_factor: float
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Labels, 2-D centres, masses and growth indicators at fraction ``s`` of the way."""
    upper_mass = _UPPER_FRACTION * growth_factor**s
    if s == 0.0:
        labels = ["lower", "upper"]
        centres = np.array([[0.0, 0.0], _UPPER_CENTRE])
        masses = np.array([_LOWER_FRACTION, upper_mass])
        upper = np.array([False, True])
    else:
        labels = ["left", "right", "upper"]
        centres = np.array([[-s, 0.0], [s, 0.0], _UPPER_CENTRE])
        half = _LOWER_FRACTION / 2
        masses = np.array([half, half, upper_mass])
        upper = np.array([False, False, True])
    return labels, centres, masses, upper


def _check_gaussian_args(n_dims: int, noise_sd: float, growth_factor: float) -> None:
    if n_dims < 2:
        raise ValueError(f"n_dims must be at least 2 (the (x1, x2) plane), got {n_dims}.")
    if noise_sd < 0:
        raise ValueError(f"noise_sd must be >= 0, got {noise_sd}.")
    if growth_factor <= 0:
        raise ValueError(f"growth_factor must be > 0, got {growth_factor}.")


def _gaussian_block(
    counts: np.ndarray, centres: np.ndarray, n_dims: int, noise_sd: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``counts[c]`` draws around ``centres[c]`` (first two coordinates) + isotropic noise."""
    n = int(counts.sum())
    comp = np.repeat(np.arange(len(counts)), counts)
    x = rng.standard_normal((n, n_dims), dtype=np.float32)
    x *= np.float32(noise_sd)
    x[:, :2] += centres[comp].astype(np.float32)
    return x, comp


def gaussian_bifurcation(
    n_dims: int = 2,
    *,
    n_cells_0: int = 500,
    n_times: int = 2,
    t_end: float = 1.0,
    noise_sd: float = 0.07,
    growth_factor: float = 10.0,
    seed: int = 0,
) -> AnnData:
    """Gaussian bifurcation with growth, in any dimension.

    The construction of the ``gaussian_{10,20,50,100}d`` benchmark files. In the (x1, x2) plane,
    at time 0, 80 % of the mass sits at (0, 0) ("lower") and 20 % at (0, 2.5) ("upper"). At
    time ``t_end`` the lower cluster has split into two halves at (−1, 0) ("left") and (1, 0)
    ("right") without net growth, while the upper cluster stays at (0, 2.5) and has grown by
    ``growth_factor``. Every coordinate carries i.i.d. ``N(0, noise_sd²)`` noise. The defaults
    give 500 cells at time 0 (400 lower, 100 upper) and 1400 at time 1 (200 left, 200 right,
    1000 upper): cell counts follow the mass.

    With ``n_times > 2`` the times are ``linspace(0, t_end, n_times)``; at fraction
    ``s = t / t_end`` the left and right centres are at ``(∓s, 0)`` (linear interpolation) and
    the upper mass is ``0.2 · growth_factor**s`` (exponential growth at the constant rate
    ``ln(growth_factor) / t_end``). Counts per cluster are ``round(n_cells_0 · mass)``.

    Parameters
    ----------
    n_dims
        Dimension D ≥ 2; coordinates 3 … D are pure noise.
    n_cells_0
        Number of cells at time 0 (mass 1).
    n_times
        Number of time points (≥ 2), equally spaced on ``[0, t_end]``.
    t_end
        Last time point.
    noise_sd
        Standard deviation of the isotropic noise on every coordinate.
    growth_factor
        Factor by which the upper cluster grows between time 0 and ``t_end``.
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    AnnData
        ``X``
            ``float32`` (n_cells × D), ``var_names`` ``x1 … xD``.
        ``obs["time"]``
            ``float`` time.
        ``obs["day"]``
            ordered categorical label ``"day 0"``, ``"day 1"``, ….
        ``obs["cluster"]``
            categorical ``"lower"`` (time 0), ``"left"``, ``"right"``, ``"upper"``.
        ``obs["true_growth"]``
            ``ln(growth_factor) / t_end`` for upper cells, 0 otherwise.
        ``uns["true_population_size"]``
            ``float`` array, true relative mass at each time (1 at time 0).
        ``uns["times"]``, ``uns["dataset"]``
            sampling times; name and parameters.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.gaussian_bifurcation(n_dims=10, seed=0)
    >>> adata.obs["time"].value_counts().sort_index().tolist()
    [500, 1400]
    >>> adata.obs.groupby("cluster", observed=True)["true_growth"].first().round(3).to_dict()
    {'lower': 0.0, 'left': 0.0, 'right': 0.0, 'upper': 2.303}
    """
    _check_gaussian_args(n_dims, noise_sd, growth_factor)
    if n_times < 2:
        raise ValueError(f"n_times must be at least 2, got {n_times}.")
    if t_end <= 0:
        raise ValueError(f"t_end must be > 0, got {t_end}.")
    if n_cells_0 < 1:
        raise ValueError(f"n_cells_0 must be a positive integer, got {n_cells_0}.")
    rng = np.random.default_rng(seed)
    times = np.linspace(0.0, float(t_end), n_times)
    rate = math.log(growth_factor) / float(t_end)
    xs, labels, growth, obs_t, sizes = [], [], [], [], []
    for t in times:
        s = float(t / t_end)
        names, centres, masses, upper = _gaussian_components(s, growth_factor)
        counts = np.rint(n_cells_0 * masses).astype(np.int64)
        x, comp = _gaussian_block(counts, centres, n_dims, noise_sd, rng)
        perm = rng.permutation(x.shape[0])
        x, comp = x[perm], comp[perm]
        xs.append(x)
        labels.append(np.array([_CLUSTERS.index(names[c]) for c in range(len(names))])[comp])
        growth.append(np.where(upper[comp], rate, 0.0))
        obs_t.append(np.full(x.shape[0], t))
        sizes.append(float(masses.sum()))
    X = np.concatenate(xs)
    t_all = np.concatenate(obs_t)
    obs = pd.DataFrame(
        {
            "time": t_all,
            "day": _day_labels(t_all),
            "cluster": pd.Categorical.from_codes(np.concatenate(labels), categories=_CLUSTERS),
            "true_growth": np.concatenate(growth),
        },
        index=_cell_names(X.shape[0]),
    )
    adata = AnnData(
        X=X, obs=obs, var=pd.DataFrame(index=pd.Index([f"x{i + 1}" for i in range(n_dims)]))
    )
    adata.uns["true_population_size"] = np.asarray(sizes)
    adata.uns["times"] = times
    adata.uns["dataset"] = {
        "name": "gaussian_bifurcation",
        "seed": int(seed),
        "params": {
            "n_dims": int(n_dims),
            "n_cells_0": int(n_cells_0),
            "n_times": int(n_times),
            "t_end": float(t_end),
            "noise_sd": float(noise_sd),
            "growth_factor": float(growth_factor),
        },
    }
    logger.info(
        "gaussian_bifurcation: %d cells x %d dims at times %s",
        adata.n_obs,
        n_dims,
        times.tolist(),
    )
    return adata


def sample_gaussian_bifurcation_law(
    n_cells: int,
    time: float = 1.0,
    *,
    n_dims: int = 2,
    noise_sd: float = 0.07,
    growth_factor: float = 10.0,
    t_end: float = 1.0,
    stratified: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Draw an independent sample of the true law of :func:`gaussian_bifurcation` at ``time``.

    The law at ``time`` is the Gaussian mixture of :func:`gaussian_bifurcation` normalised to
    probability one (cluster weights proportional to their masses). Comparing two such
    samples gives the sampling floor of a distance such as W1: in 1000 dimensions two samples
    of 1400 cells are already about 3 apart.

    Parameters
    ----------
    n_cells
        Number of draws.
    time
        Time in ``[0, t_end]``.
    n_dims, noise_sd, growth_factor, t_end
        As in :func:`gaussian_bifurcation`.
    stratified
        ``True``: cluster counts are the mass proportions rounded by largest remainder (as the
        generated snapshots); ``False``: multinomial cluster counts.
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(n_cells, n_dims)``, rows in random order.

    Examples
    --------
    >>> import vgfm
    >>> x = vgfm.datasets.sample_gaussian_bifurcation_law(1400, time=1.0, n_dims=10, seed=1)
    >>> x.shape
    (1400, 10)
    >>> round(float((x[:, 1] > 1.25).mean()), 3)  # upper cluster weight 2 / 2.8
    0.714
    """
    _check_gaussian_args(n_dims, noise_sd, growth_factor)
    if not 0.0 <= time <= t_end:
        raise ValueError(f"time must lie in [0, t_end={t_end}], got {time}.")
    if n_cells < 0:
        raise ValueError(f"n_cells must be >= 0, got {n_cells}.")
    rng = np.random.default_rng(seed)
    _, centres, masses, _ = _gaussian_components(float(time / t_end), growth_factor)
    if stratified:
        counts = _allocate(n_cells, masses)
    else:
        counts = rng.multinomial(n_cells, masses / masses.sum()).astype(np.int64)
    x, _ = _gaussian_block(counts, centres, n_dims, noise_sd, rng)
    return x[rng.permutation(x.shape[0])]


# --------------------------------------------------------------------------------------------
# three-gene tristable switch with fate-dependent proliferation and death
# --------------------------------------------------------------------------------------------
_TRI_BRANCHES = ("gene_1_high", "gene_2_high", "gene_3_high")


@dataclass(frozen=True)
class _TriParams:
    noise_sd: float = 0.15
    birth_rate: float = 0.8
    death_rate: float = 1.2
    growth_width: float = 0.3
    self_activation: float = 1.5
    initial_mean: float = 0.5
    initial_sd: float = 0.1
    hill: float = 4.0
    time_scale: float = 3.0
    dt: float = 0.01


def _tri_drift(x: np.ndarray, p: _TriParams) -> np.ndarray:
    """``τ (a h(x_i) + 1 / (1 + (Σ_{j≠i} x_j)ⁿ) − x_i)``, ``h = xⁿ / (1 + xⁿ)``."""
    pw = np.power(x, p.hill)
    h = pw / (1.0 + pw)
    others = x.sum(axis=1, keepdims=True) - x
    repress = 1.0 / (1.0 + np.power(others, p.hill))
    return p.time_scale * (p.self_activation * h + repress - x)


def _tri_fate_weights(x: np.ndarray, p: _TriParams) -> np.ndarray:
    """Soft fate indicators ``softmax(x / w)`` (rows sum to 1; 1/3 each on the diagonal)."""
    z = x / p.growth_width
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _tri_rates(x: np.ndarray, p: _TriParams) -> tuple[np.ndarray, np.ndarray]:
    """Birth ``b₀ s₁(x)`` and death ``d₀ s₂(x)`` rates (``s = softmax(x / w)``)."""
    s = _tri_fate_weights(x, p)
    return p.birth_rate * s[:, 0], p.death_rate * s[:, 1]


def _tri_net_growth(x: np.ndarray, p: _TriParams) -> np.ndarray:
    b, d = _tri_rates(x, p)
    return b - d


def _simulate_tri(
    n_lineages: int, times: np.ndarray, p: _TriParams, rng: np.random.Generator
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Euler–Maruyama + state-dependent birth–death; alive states and counts at ``times``,
    plus the mean net growth of the alive particles on the simulation grid."""
    x = np.abs(p.initial_mean + p.initial_sd * rng.standard_normal((n_lineages, 3)))
    states, sizes = [x.copy()], [float(n_lineages)]
    grid_t, grid_g = [float(times[0])], [float(_tri_net_growth(x, p).mean())]
    t_now = float(times[0])
    for k in range(1, times.shape[0]):
        delta = times[k] - times[k - 1]
        n_steps = max(1, math.ceil(delta / p.dt - 1e-9))
        dt = delta / n_steps
        if (p.birth_rate + p.death_rate) * dt > 1.0:
            raise ValueError(
                f"dt={p.dt} is too large for birth_rate + death_rate = "
                f"{p.birth_rate + p.death_rate}; use dt < {1.0 / (p.birth_rate + p.death_rate)}."
            )
        sq = p.noise_sd * math.sqrt(dt)
        for step in range(n_steps):
            if x.shape[0] > 0:
                x = x + _tri_drift(x, p) * dt + sq * rng.standard_normal(x.shape)
                np.abs(x, out=x)  # reflect at 0: expression stays non-negative
                b, d = _tri_rates(x, p)
                u = rng.random(x.shape[0])
                divide = u < b * dt
                die = (u >= b * dt) & (u < (b + d) * dt)
                x = np.concatenate([x[~die], x[divide]])
            t_now = times[k - 1] + (step + 1) * dt
            grid_t.append(float(t_now))
            grid_g.append(float(_tri_net_growth(x, p).mean()) if x.shape[0] else 0.0)
        states.append(x.copy())
        sizes.append(float(x.shape[0]))
    return states, np.asarray(sizes), np.asarray(grid_t), np.asarray(grid_g)


def three_gene_switch(
    n_cells_0: int = 300,
    *,
    n_cells: Sequence[int] | None = None,
    times: Sequence[float] = (0.0, 0.3, 0.8, 1.6, 2.5),
    noise_sd: float = 0.15,
    birth_rate: float = 0.8,
    death_rate: float = 1.2,
    growth_width: float = 0.3,
    self_activation: float = 1.5,
    initial_mean: float = 0.5,
    initial_sd: float = 0.1,
    hill: float = 4.0,
    time_scale: float = 3.0,
    n_lineages: int | None = None,
    dt: float = 0.01,
    seed: int = 0,
) -> AnnData:
    """Simulate a three-gene tristable switch whose fates proliferate, die or persist.

    Three genes activate themselves and are repressed by the sum of the other two::

        dx_i = τ (a h(x_i) + 1 / (1 + (Σ_{j≠i} x_j)ⁿ) − x_i) dt + σ dW_i,   h(x) = xⁿ / (1 + xⁿ)

    (τ = ``time_scale``, a = ``self_activation``, n = ``hill``, σ = ``noise_sd``;
    Euler–Maruyama, reflected at 0). With the defaults cells start undecided near
    ``(0.5, 0.5, 0.5)`` and commit in equal shares to three attractors near
    ``(2.45, 0.06, 0.06)`` and its permutations ("gene_1_high", "gene_2_high",
    "gene_3_high").

    Growth differs from :func:`two_gene_grn` in mechanism: both birth and death depend on the
    state. With soft fate indicators ``s(x) = softmax(x / w)`` (``w`` = ``growth_width``) every
    particle divides at rate ``b(x) = birth_rate · s₁(x)`` and dies at rate
    ``d(x) = death_rate · s₂(x)``: the gene-1 fate proliferates, the gene-2 fate dies out, the
    gene-3 fate neither grows nor dies, and undecided cells have ``g ≈ (b₀ − d₀)/3``. The true
    net growth rate is ``g(x) = b(x) − d(x)``. The default sampling times are uneven.

    ``birth_rate=0, death_rate=0`` gives the same dynamics without any growth: the population
    size is then constant and every snapshot has ``n_cells_0`` cells.

    ``n_lineages`` particles are simulated (default ``10 * n_cells_0``); by default the
    snapshot at ``t_k`` samples ``round(n_cells_0 · N_k / N_0)`` of the ``N_k`` alive
    particles without replacement (cell-count ratios equal population-size ratios), or
    ``n_cells`` cells when given.

    Parameters
    ----------
    n_cells_0
        Number of cells sampled at the first time point.
    n_cells
        Explicit number of cells per time point; overrides the proportional default.
    times
        Real sampling times, strictly increasing; the simulation starts at ``times[0]``.
    noise_sd
        Diffusion coefficient σ.
    birth_rate
        Division rate ``b₀`` deep in the gene-1 fate.
    death_rate
        Death rate ``d₀`` deep in the gene-2 fate.
    growth_width
        Temperature ``w`` of the soft fate indicators (large: the same rates everywhere,
        ``g ≡ (b₀ − d₀)/3``).
    self_activation
        Strength ``a`` of the self-activation.
    initial_mean, initial_sd
        Mean (the same for each gene) and standard deviation of the initial cluster.
    hill
        Hill coefficient n.
    time_scale
        Rate τ of the gene dynamics.
    n_lineages
        Number of simulated initial particles (default ``10 * n_cells_0``, at least the largest
        requested snapshot).
    dt
        Largest Euler–Maruyama step; each interval is cut into equal steps no larger than it.
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    AnnData
        ``X``
            ``float32`` expression of ``gene_1``, ``gene_2``, ``gene_3``.
        ``obs["time"]``, ``obs["day"]``
            ``float`` real time and its ordered categorical label (``"day 0.3"``, …).
        ``obs["branch"]``
            categorical fate at sampling (the highest gene): ``"gene_1_high"``,
            ``"gene_2_high"`` or ``"gene_3_high"``.
        ``obs["true_growth"]``
            ``float`` true net growth rate ``b(x) − d(x)`` at the cell's state.
        ``uns["true_population_size"]``
            ``float`` array, number of alive particles ``N_k`` at each time.
        ``uns["true_mean_growth"]``
            ``{"time", "value"}``: mean net growth rate of all alive particles on the
            simulation grid (``d log E[N] / dt``; ``log N_k/N_0`` is close to its integral).
        ``uns["times"]``, ``uns["dataset"]``
            sampling times; name and parameters.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.three_gene_switch(seed=0)
    >>> adata.obs["day"].cat.categories.tolist()
    ['day 0', 'day 0.3', 'day 0.8', 'day 1.6', 'day 2.5']
    >>> last = adata.obs["time"] == 2.5
    >>> g = adata.obs.loc[last].groupby("branch", observed=True)["true_growth"].mean()
    >>> bool(g["gene_1_high"] > 0.7 and g["gene_2_high"] < -1.0 and abs(g["gene_3_high"]) < 0.05)
    True
    >>> flat = vgfm.datasets.three_gene_switch(birth_rate=0, death_rate=0, seed=0)
    >>> flat.obs["time"].value_counts().sort_index().tolist()
    [300, 300, 300, 300, 300]
    """
    t = _check_times(times)
    if n_cells_0 < 1:
        raise ValueError(f"n_cells_0 must be a positive integer, got {n_cells_0}.")
    if n_cells is not None and len(n_cells) != t.shape[0]:
        raise ValueError(
            f"n_cells has {len(n_cells)} entries but times has {t.shape[0]}; give one count per "
            "time point."
        )
    if (
        noise_sd < 0
        or birth_rate < 0
        or death_rate < 0
        or growth_width <= 0
        or dt <= 0
        or initial_sd < 0
    ):
        raise ValueError(
            "noise_sd, birth_rate, death_rate and initial_sd must be >= 0 and growth_width, "
            f"dt > 0; got noise_sd={noise_sd}, birth_rate={birth_rate}, "
            f"death_rate={death_rate}, initial_sd={initial_sd}, growth_width={growth_width}, "
            f"dt={dt}."
        )
    params = _TriParams(
        noise_sd=float(noise_sd),
        birth_rate=float(birth_rate),
        death_rate=float(death_rate),
        growth_width=float(growth_width),
        self_activation=float(self_activation),
        initial_mean=float(initial_mean),
        initial_sd=float(initial_sd),
        hill=float(hill),
        time_scale=float(time_scale),
        dt=float(dt),
    )
    if n_lineages is None:
        n_lineages = 10 * n_cells_0
        if n_cells is not None:
            n_lineages = max(n_lineages, int(max(n_cells)))
    rng = np.random.default_rng(seed)
    states, sizes, grid_t, grid_g = _simulate_tri(int(n_lineages), t, params, rng)

    x, obs_t, counts = _sample_snapshots(states, sizes, t, n_cells_0, n_cells, n_lineages, rng)
    obs = pd.DataFrame(
        {
            "time": obs_t,
            "day": _day_labels(obs_t),
            "branch": pd.Categorical.from_codes(
                np.argmax(x, axis=1).astype(np.int64), categories=list(_TRI_BRANCHES)
            ),
            "true_growth": _tri_net_growth(x, params),
        },
        index=_cell_names(x.shape[0]),
    )
    adata = AnnData(
        X=x.astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=pd.Index(["gene_1", "gene_2", "gene_3"])),
    )
    adata.uns["true_population_size"] = sizes
    adata.uns["true_mean_growth"] = {"time": grid_t, "value": grid_g}
    adata.uns["times"] = t
    adata.uns["dataset"] = {
        "name": "three_gene_switch",
        "proliferating_branch": "gene_1_high",
        "dying_branch": "gene_2_high",
        "seed": int(seed),
        "n_lineages": int(n_lineages),
        "params": {
            "noise_sd": params.noise_sd,
            "birth_rate": params.birth_rate,
            "death_rate": params.death_rate,
            "growth_width": params.growth_width,
            "self_activation": params.self_activation,
            "initial_mean": params.initial_mean,
            "initial_sd": params.initial_sd,
            "hill": params.hill,
            "time_scale": params.time_scale,
            "dt": params.dt,
        },
    }
    logger.info(
        "three_gene_switch: %s cells at times %s (true population sizes %s)",
        counts.tolist(),
        t.tolist(),
        sizes.tolist(),
    )
    return adata


# --------------------------------------------------------------------------------------------
# large lifted time course
# --------------------------------------------------------------------------------------------
_MAX_LINEAGES = 20_000
_CHUNK_ROWS = 65_536


def large_time_course(
    n_cells: int,
    n_dims: int = 50,
    n_times: int = 5,
    seed: int = 0,
    *,
    base: Literal["two_gene", "gaussian"] = "two_gene",
    noise_sd: float = 0.05,
    t_end: float = 2.0,
) -> AnnData:
    """A large time course in many dimensions, for scale tests (10^4 … 10^6 cells in seconds).

    A 2-D system with known growth is lifted into ``n_dims`` dimensions by a random
    orthonormal map ``Q`` (2 × D, drawn from ``seed``) plus isotropic ``N(0, noise_sd²)`` noise
    on every coordinate: ``x = z Q + ε``. ``n_cells`` is split over the time points in
    proportion to the true population size, so cell-count ratios reflect the true growth.

    * ``base="two_gene"``: ``z`` is the state of the :func:`two_gene_grn` switch (default
      parameters) at ``linspace(0, t_end, n_times)``. At most 20 000 lineages are simulated;
      when a snapshot needs more cells than are alive, simulated states are drawn with
      replacement (the lifted noise makes the cells distinct).
    * ``base="gaussian"``: ``z`` is the centre of the :func:`gaussian_bifurcation` cluster of
      the cell (growth factor 10 over ``[0, t_end]``); the noise plays the role of the
      Gaussian spread.

    ``X`` is ``float32`` and filled in chunks, so memory stays near the size of ``X`` itself
    (1e6 × 50 cells: 200 MB).

    Parameters
    ----------
    n_cells
        Total number of cells over all time points.
    n_dims
        Dimension D ≥ 2.
    n_times
        Number of time points, equally spaced on ``[0, t_end]``.
    seed
        Seed of :func:`numpy.random.default_rng` (simulation, map ``Q`` and noise).
    base
        The 2-D system: ``"two_gene"`` or ``"gaussian"``.
    noise_sd
        Standard deviation of the isotropic noise added after lifting.
    t_end
        Last time point.

    Returns
    -------
    AnnData
        ``X``
            ``float32`` (n_cells × D), ``var_names`` ``x1 … xD``.
        ``obs["time"]``, ``obs["day"]``
            ``float`` time and its ordered categorical label.
        ``obs["branch"]`` (``two_gene``) or ``obs["cluster"]`` (``gaussian``)
            categorical ground-truth state.
        ``obs["true_growth"]``
            ``float`` true net growth rate of the cell.
        ``obsm["X_latent"]``
            ``float32`` (n_cells × 2) latent state ``z`` before lifting.
        ``uns["lift_matrix"]``
            ``float32`` (2 × D) orthonormal map ``Q``.
        ``uns["true_population_size"]``, ``uns["times"]``, ``uns["dataset"]``
            true relative population size per time, times, name and parameters.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.large_time_course(20_000, n_dims=50, n_times=5, seed=0)
    >>> adata.shape
    (20000, 50)
    >>> adata.obs["time"].nunique()
    5
    """
    if n_dims < 2:
        raise ValueError(f"n_dims must be at least 2, got {n_dims}.")
    if n_times < 2:
        raise ValueError(f"n_times must be at least 2, got {n_times}.")
    if n_cells < n_times:
        raise ValueError(f"n_cells must be at least n_times={n_times}, got {n_cells}.")
    if base not in ("two_gene", "gaussian"):
        raise ValueError(f"base must be 'two_gene' or 'gaussian', got {base!r}.")
    if noise_sd < 0 or t_end <= 0:
        raise ValueError(f"noise_sd must be >= 0 and t_end > 0, got {noise_sd}, {t_end}.")
    rng = np.random.default_rng(seed)
    times = np.linspace(0.0, float(t_end), n_times)

    latent_blocks: list[np.ndarray] = []
    label_blocks: list[np.ndarray] = []
    growth_blocks: list[np.ndarray] = []
    if base == "two_gene":
        params = _GrnParams()
        n_lineages = int(min(_MAX_LINEAGES, max(1_000, n_cells // n_times)))
        states, sizes = _simulate_grn(n_lineages, times, params, rng)
        counts = _allocate(n_cells, sizes)
        for state, n_k in zip(states, counts):
            replace = bool(n_k > state.shape[0])
            z = state[rng.choice(state.shape[0], size=int(n_k), replace=replace)]
            latent_blocks.append(z)
            label_blocks.append(_grn_branch(z))
            growth_blocks.append(_grn_net_growth(z, params))
        categories: Sequence[str] = _BRANCHES
        label_key = "branch"
        rel_sizes = sizes / sizes[0]
    else:
        rate = math.log(10.0) / float(t_end)
        masses_t = []
        comps = []
        for t in times:
            names, centres, masses, upper = _gaussian_components(float(t / t_end), 10.0)
            masses_t.append(masses.sum())
            comps.append((names, centres, masses, upper))
        rel_sizes = np.asarray(masses_t)
        counts = _allocate(n_cells, rel_sizes)
        for (names, centres, masses, upper), n_k in zip(comps, counts):
            c_counts = _allocate(int(n_k), masses)
            comp = rng.permutation(np.repeat(np.arange(len(names)), c_counts))
            latent_blocks.append(centres[comp])
            label_blocks.append(np.array([_CLUSTERS.index(nm) for nm in names])[comp])
            growth_blocks.append(np.where(upper[comp], rate, 0.0))
        categories = _CLUSTERS
        label_key = "cluster"

    z_all = np.concatenate(latent_blocks).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((n_dims, 2)))
    lift = np.ascontiguousarray(q.T, dtype=np.float32)  # (2, D), orthonormal rows
    X = np.empty((n_cells, n_dims), dtype=np.float32)
    for start in range(0, n_cells, _CHUNK_ROWS):
        block = X[start : start + _CHUNK_ROWS]
        rng.standard_normal(dtype=np.float32, out=block)
        block *= np.float32(noise_sd)
        block += z_all[start : start + _CHUNK_ROWS] @ lift
    t_all = np.repeat(times, counts)
    obs = pd.DataFrame(
        {
            "time": t_all,
            "day": _day_labels(t_all),
            label_key: pd.Categorical.from_codes(
                np.concatenate(label_blocks), categories=list(categories)
            ),
            "true_growth": np.concatenate(growth_blocks),
        },
        index=_cell_names(n_cells),
    )
    adata = AnnData(
        X=X, obs=obs, var=pd.DataFrame(index=pd.Index([f"x{i + 1}" for i in range(n_dims)]))
    )
    adata.obsm["X_latent"] = z_all
    adata.uns["lift_matrix"] = lift
    adata.uns["true_population_size"] = np.asarray(rel_sizes, dtype=np.float64)
    adata.uns["times"] = times
    adata.uns["dataset"] = {
        "name": "large_time_course",
        "seed": int(seed),
        "params": {
            "base": base,
            "n_cells": int(n_cells),
            "n_dims": int(n_dims),
            "n_times": int(n_times),
            "noise_sd": float(noise_sd),
            "t_end": float(t_end),
        },
    }
    logger.info(
        "large_time_course(%s): %s cells x %d dims at times %s",
        base,
        counts.tolist(),
        n_dims,
        times.tolist(),
    )
    return adata
