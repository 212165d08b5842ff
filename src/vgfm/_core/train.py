"""Two-stage VGFM training on plain arrays (no AnnData).

Stage 1 regresses ``(v, g)`` on semi-relaxed OT couplings (simulation-free).  Stage 2 rolls the
ODE out from the first snapshot and fits the observed snapshots with an exact weighted EMD
(gradient into positions *and* weights), a population-size term and the stage-1 loss as a
regulariser.  The checkpoint is chosen by the energy distance to all observed cells (including
cells held back from training, when ``val_fraction`` holds any back).
"""

from __future__ import annotations

import copy
import logging
import math
import time as _time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import ot
import torch
from tqdm.auto import tqdm

from .couplings import (
    IntervalCoupling,
    affine_align,
    cost_scale,
    couple_interval,
    momentum_targets,
    motion_null_growth,
    outgoing_velocity,
)
from .matcher import SPEEDS, PairSampler, VelocityGrowthMatcher
from .methods import get_method
from .metrics import relative_mass_error, wasserstein1
from .networks import GROWTH_FORMS, INPUT_FRAMES, VelocityGrowthField, adam
from .ode import integrate
from .routes import GraphRoutes
from .sinkhorn import semi_relaxed_sinkhorn, squared_distances
from .solvers import get_solver

logger = logging.getLogger("vgfm")


#: ``growth_form`` values of :class:`TrainConfig`: a form of the field, or ``"auto"``, which
#: trains ``g(x, t)`` and ``g(x)`` side by side in stage 1 and keeps the one whose rollout fits
#: the snapshots better (:func:`train`).
CONFIG_GROWTH_FORMS = ("auto", *GROWTH_FORMS)


#: Default ``growth_test``: share of an interval's growth-target spread above which motion is
#: said to explain it (the relaxation is stiffened, and :func:`vgfm.tl.fit` warns; with
#: ``growth_test=None`` the fit still warns from this share on).
MOTION_EXPLAINED_WARN = 0.8

#: Random half-splits of the target cells averaged by the noise test (:func:`sampling_noise`).
NOISE_SPLITS = 8
#: Parts each split cuts the target cells into (:func:`sampling_noise`).
NOISE_FOLDS = 2


@dataclass
class TrainConfig:
    """Options of :func:`train`. Defaults are shared by every dataset (no per-dataset tuning).

    Attributes
    ----------
    method
        A row of the method table (:mod:`vgfm._core.methods`): ``"vgfm"`` (semi-relaxed
        couplings + growth) or ``"otcfm"`` (balanced couplings, no growth: the OT-CFM baseline
        through the same code path), or a registered plug-in.
    reg
        Entropic regularisation of the couplings, relative to the mean squared distance.
    reg_m
        KL weight of the relaxed source marginal (smaller: growth follows the data more freely).
    reg_m_motion
        Stiffening of the relaxed marginal with motion: source cell ``i`` gets the KL weight
        ``reg_m * (1 + reg_m_motion * d_i^2 / mean(d^2))``, ``d_i`` its displacement under the
        balanced plan (:func:`vgfm._core.couplings.motion_reg_m`), so moving clouds are not
        read as growth while populations that change in place still are; ``0``: one weight
        for every cell (the behaviour before this option existed).
    motion_noise_floor
        Count only the displacement beyond the noise floor in ``reg_m_motion`` (opt-in;
        default ``False``): ``d_i^2`` is replaced by ``max(d_i^2 - f, 0)``, ``f`` half the
        median squared distance between neighbouring source cells
        (:func:`vgfm._core.couplings.displacement_floor`).  In high dimension noise makes
        every cell's displacement look alike and the raw weights stiffen every cell about
        equally, which turns growth into transport (two Gaussian clusters in 1000 dimensions,
        3 seeds: the tenfold-growing one at 1.10 per day and the still one at 1.00, against
        2.30 and 0; with the floor 1.88 and 0.59).  It is not the default because it widens
        the high-dimensional prediction (energy distance 2.5 times its two-half floor there,
        against 0.57 without); measured on the whole benchmark suite in ``docs/method.md``,
        "The stiffening net of the noise floor".
    sigma
        Interpolant noise, relative to the data scale (root mean per-coordinate variance).
    hidden, n_layers
        Width and depth of the two MLPs.
    stage1_steps, batch_size, lr
        Stage-1 optimisation: steps, pairs per interval per step, Adam learning rate.
    stage2_growth_lr
        Stage-2 learning rate of the growth network (``None``: ``stage2_lr``; ``0``: the
        growth network keeps its stage-1 weights and stage 2 fits the velocity alone).
    stage2_steps, stage2_lr, stage2_particles, stage2_targets
        Stage-2 optimisation: steps, learning rate, particles rolled out and observed cells
        compared per step (random subsets, so cost per step does not grow with the data).
    mass_weight, fm_weight
        Weights of the population-size term and of the stage-1 regulariser in stage 2.
    val_fraction, val_every, val_particles
        Share of the cells of every snapshot but the first held back from training (default
        0: none), how often (stage-2 steps) to score a checkpoint, and how many particles the
        scoring rollout uses.  A checkpoint is scored by the energy distance
        (``SCORE_DISTANCE``) between the weighted rollout and all observed cells of each later
        snapshot, held back or not, plus the population-size error; the best-scoring
        checkpoint is kept.  Cells held back at random change the composition of the
        snapshots the couplings see, which they read as growth (on a growth-free time course
        whose snapshots hold equal numbers of each lineage, 10 % held back gave 0.15-0.25 of
        false log-mass over the time course; ``docs/method.md``), so none are by default.
    val_targets
        Most observed cells per snapshot a checkpoint is scored against: larger snapshots are
        replaced once by a fixed uniform subset of this size, so scoring costs the same
        whatever the number of cells.
    ode_steps
        Runge-Kutta steps per observed interval.
    interpolant
        Path between coupled cells that stage 1 regresses the velocity on. ``"routes"``
        (default): where the chord between two coupled cells crosses a region much sparser
        than both cells' neighbourhoods (``chord_gap``), the pair travels the shortest path
        through a kNN graph of the cells of the interval's two snapshots in their leading
        principal directions (:class:`vgfm._core.routes.GraphRoutes`), so that between
        snapshots cells travel where cells were observed instead of across the empty inside
        of a bend; every other pair keeps its chord (also where the route is more than twice
        as long or jumps a gap). ``"linear"``: the straight chord for every pair (the
        default before routes; ``method="otcfm"`` with it is the published OT-CFM).
    chord_gap
        With ``interpolant="routes"``: a pair follows its route only when, at a quarter, half
        or three quarters of the way, the chord between the graph nodes nearest the two cells
        is farther from its 10th nearest node than ``chord_gap`` times the same distance at
        either end, i.e. the chord leaves the cells.  ``None``: every pair whose route passes
        the length rules follows it, which also pulls pairs inside broad clouds towards their
        dense cores (their predicted spread and fit suffer).  Measured on the whole benchmark
        suite in ``docs/method.md``, "Routes where the chord leaves the cells".
    interpolant_speed
        How fast a cell travels along its path. ``"least_action"`` (default): a cell whose
        mass grows by ``exp(g dt)`` over the interval moves with the least mass-weighted
        kinetic energy, fast while small (:func:`vgfm._core.matcher.least_action_clock`), so
        a growing population reaches its destination early and a shrinking one late;
        ``"constant"``: constant speed. Without growth (``g = 0``, or ``"otcfm"``) both are
        the constant speed.
    coupling_geometry
        ``"affine"``: the coupling weights (growth targets) are computed after the target
        snapshot is aligned to the source's mean and covariance
        (:func:`vgfm._core.couplings.affine_align`), so a global shift or expansion of the
        population is not read as growth; ``"euclidean"``: plain squared distances.
    stage2_loss
        Distance between the weighted rollout and the observed cells in stage 2:
        ``"w1"`` (exact earth mover's distance) or ``"energy"`` (energy
        distance, whose minimiser is the observed law even for finite samples, so that it does
        not reward a rollout that shrinks each cluster towards its mean in high dimension).
        ``"auto"`` (default): ``"energy"`` from ``AUTO_ENERGY_DIM`` (100) dimensions on,
        ``"w1"`` below (measured in ``docs/method.md``: in 1000 dimensions W1 shrinks the
        predicted population to 0.79 of the observed variance, the energy distance keeps 0.91;
        in 2 to 5 dimensions W1 fits the snapshots more tightly).
    growth_form
        What the growth rate depends on. ``"xt"`` (default): state and time, ``g(x, t)``. ``"x+t"``:
        ``g(x) + c(t)``, a state-dependent rate that is the same at every time plus one rate
        shared by all cells at each time (the population may grow faster in one interval than
        another, but *which* states grow faster is consistent over time, so the edge effects
        of METHOD §8, which move with the population, partly cancel). ``"x"``: ``g(x)``, a
        property of the cell state learned from every interval at once. ``"auto"``
        (opt-in): ``g(x, t)`` and ``g(x)`` are regressed side by side in stage 1 (same pairs,
        same velocity) and the one whose rollout fits the observed snapshots better (the
        checkpoint score: energy distance to the cells plus the size error) is kept for
        stage 2; ``g(x)`` wins where the changes of the population sizes follow from which
        states are present (the generators with known growth), ``g(x, t)`` where the sizes
        rise and fall for other reasons (cell counts of real experiments). The choice and
        both scores are recorded (``growth_form``, ``growth_form_score`` in
        ``growth_vs_motion``); when ``g(x, t)`` is kept the fit is the same as with
        ``"xt"``. Measured in ``docs/method.md``, "Growth as a property of the state" (not
        the default: on the generators it raises the correlation with the true growth but
        compresses its levels).
    input_frame
        Coordinates the velocity and growth networks see. ``"global"`` (default):
        ``(x - mean) / scale`` over all cells. ``"global+time"``: beside those,
        ``(x - c(t)) / s(t)``, the cell relative to the centre and scale of the population at
        ``t`` (those of the training cells of each training snapshot, interpolated linearly,
        also across a held-out time; :func:`snapshot_frames`,
        :meth:`VelocityGrowthField.set_input_frame`), and the stage-1 interpolant noise is
        ``sigma`` times ``s(t)`` instead of the global scale. Noise as wide as a tight
        population slows its spreading (the regressed velocity of a dilating cloud of spread
        ``m`` is scaled by ``m^2 / (m^2 + noise^2)``), and a tight population occupies a tiny
        part of the networks' global input, so with ``"global"`` a first snapshot much tighter
        than the next is predicted too narrow there. A time-free growth (``growth_form`` ``"x"``, ``"x+t"``)
        sees the global coordinates only. Measured on the whole suite in ``docs/method.md``,
        "A tight early population".
    growth_test
        Whether an interval's growth differences are told from motion. Before training, each
        interval's growth targets are compared with those the same coupling gives to a
        population that moves as the plan says but does not grow
        (:func:`growth_vs_motion`); where that growth-free population reproduces more than
        this share ``E`` of their spread, the data can hardly tell proliferation from motion
        there, and the interval's ``reg_m`` is multiplied by ``(1 - growth_test) / (1 - E)``
        (:func:`relaxation_factor`; every cell grows alike on the balanced plan when motion
        explains all of it, :func:`uniform_growth_coupling`). ``None``: never (each interval
        keeps ``reg_m``). Ignored with a growth prior. Default 0.8 (measurements in
        ``docs/method.md``, "Growth told from motion").
    growth_noise_test
        Whether an interval's growth differences are told from sampling noise (opt-in). The
        spread of the growth targets that motion leaves unexplained (above) is compared with
        the spread the finite samples alone give the same coupling (:func:`sampling_noise`:
        the source coupled to two random halves of the target, averaged over 8 splits);
        where their ratio (``signal_to_noise``) is at most this value, nothing in the data
        says that the interval's cells grow differently, and every cell grows alike there
        (the balanced plan at the population ratio, :func:`uniform_growth_coupling`).
        ``None`` (default): no such test. Ignored with a growth prior. ``3`` (on the
        growth-free generators the ratio stayed at or below 3.0, mostly below 1; intervals
        whose cells grow differently mostly gave 4 to 400) removed the false growth of every
        growth-free generator of the benchmarks but made left-out time points worse where
        real growth differences were weak (mean W1 0.090 -> 0.102 on one benchmark) and took
        1.3-1.4x the default's fit time; measurements in ``docs/method.md``, "Growth told from
        sampling noise".
    bound_growth
        After stage 1, bound the growth rate on each interval by the smallest and largest
        growth target of that interval's coupling
        (:meth:`VelocityGrowthField.set_growth_bounds`), so that a trajectory that strays from
        the observed cells cannot pick up a rate no coupling implied (on one benchmark fit a
        few such paths multiplied the population's mass by 10^5). With ``growth_form`` ``"x"`` or
        ``"x+t"`` one range, over all intervals, so that differences between cells stay the
        same at every time. ``False``: the network's rate unbounded (the behaviour before this
        option).
    coupling_block, coupling_max_blocks
        Memory bound of the couplings: blocks of at most ``coupling_block`` cells a side, at
        most ``coupling_max_blocks`` blocks per interval.
    coupling_momentum
        How far each interval's coupling looks at where the target cells go next: source
        ``x_i`` is compared with ``y_j - coupling_momentum * dt * u_j``, where ``u_j`` is the
        velocity of target cell ``j`` on the following interval (barycentric image under that
        interval's plan, :func:`vgfm._core.couplings.outgoing_velocity`), each shift at most
        halfway to the target cell's nearest source cell
        (:func:`vgfm._core.couplings.momentum_targets`); couplings are then computed from the
        last interval backwards, and the last one is unchanged.  With ``1`` a source is
        paired with the target cells whose constant-velocity path passes near it (the squared
        acceleration of the path ``x_i -> y_j -> next``), so two populations at similar
        distances are told apart by the direction they keep moving in.  Only the pairing
        changes: stage 1 regresses on the observed positions.  Default ``1``; ``0``:
        distances alone, the behaviour before this default (measured in ``docs/method.md``,
        "Pairing with where the cells go next").
    net_of_motion
        Regress the growth on targets net of motion (default ``True``): for each block of each
        interval the plan is solved a second time, to the population its own rows give when
        every source cell keeps its mass (the cells move as the plan says, none grows), and
        the growth target that second plan reports for a cell is subtracted from the real one
        (:meth:`vgfm._core.couplings.IntervalCoupling.net_growth`; a constant keeps the
        interval's total growth).  The leading edge of a moving cloud, which the plan reads as
        growing, reads about as much in the growth-free copy and is removed; growth in place
        and differences between branches are kept.  It removes about half of the edge growth
        of a cloud that only shifts (the second plan's motion is shorter, the plan having
        grown the leading edge), the rest is left to ``reg_m_motion`` and ``growth_test``.
        Costs one more Sinkhorn solve per block.  ``False``: the plan's targets as they are
        (the behaviour before this option; measured in ``docs/method.md``, "Growth net of
        motion").
    stiffened_targets
        The growth targets of an interval the growth test stiffens (a finite
        ``reg_m_factor`` above 1). ``"shrunk"`` (default): those of the plan the test
        measured (net of motion), their differences divided by the stiffening
        (:func:`shrunk_targets`). ``"plan"``: those of the stiffened plan, net of its own
        growth-free copy (the behaviour before this option). The pairs are the stiffened
        plan's either way. A very stiff plan's targets and its copy's are both
        tiny and their difference mostly noise, which on ``two_gene_grn`` came out reversed
        (correlation with the truth -0.36 at ``t = 0.5``, where the measured plan's net
        targets have +0.59); measured in ``docs/method.md``, "Stiffened intervals".
    """

    method: str = "vgfm"
    reg: float = 0.01
    reg_m: float = 0.5
    reg_m_motion: float = 1.0
    motion_noise_floor: bool = False
    sigma: float = 0.15
    hidden: int = 64
    n_layers: int = 3
    stage1_steps: int = 1000
    batch_size: int = 256
    lr: float = 3e-3
    stage2_steps: int = 60
    stage2_lr: float = 5e-4
    stage2_growth_lr: float | None = None
    stage2_particles: int = 384
    stage2_targets: int = 288
    mass_weight: float = 30.0
    fm_weight: float = 0.1
    val_fraction: float = 0.0
    val_every: int = 10
    val_particles: int = 1024
    val_targets: int = 2048
    ode_steps: int = 3
    stage2_loss: str = "auto"
    coupling_geometry: str = "euclidean"
    interpolant: str = "routes"
    chord_gap: float | None = 1.5
    interpolant_speed: str = "least_action"
    growth_form: str = "xt"
    input_frame: str = "global"
    growth_test: float | None = MOTION_EXPLAINED_WARN
    growth_noise_test: float | None = None
    bound_growth: bool = True
    coupling_block: int = 2048
    coupling_max_blocks: int = 8
    coupling_momentum: float = 1.0
    net_of_motion: bool = True
    stiffened_targets: str = "shrunk"

    def __post_init__(self) -> None:
        get_method(self.method)  # raises with the list of registered methods
        for name, allowed in (("coupling_geometry", COUPLING_GEOMETRIES),
                              ("interpolant_speed", SPEEDS), ("interpolant", INTERPOLANTS),
                              ("growth_form", CONFIG_GROWTH_FORMS),
                              ("stage2_loss", STAGE2_LOSSES), ("input_frame", INPUT_FRAMES),
                              ("stiffened_targets", STIFFENED_TARGETS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"training option {name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}")
        for name, kind, low, low_ok in _CONFIG_RULES:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if kind is int:
                ok_type = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            else:
                ok_type = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                    value, bool)
            if not ok_type:
                raise TypeError(
                    f"training option {name} must be {'an integer' if kind is int else 'a number'}"
                    f", got {value!r} ({type(value).__name__}); pass e.g. {name}="
                    f"{_FIELD_DEFAULTS[name]!r}")
            value = kind(value)
            if not math.isfinite(value) and not (name == "reg_m" and value == math.inf):
                raise ValueError(f"training option {name} must be finite, got {value!r}")
            if value < low or (value == low and not low_ok):
                bound = f">= {low}" if low_ok else f"> {low}"
                raise ValueError(
                    f"training option {name} must be {bound}, got {value!r} "
                    f"(default {_FIELD_DEFAULTS[name]!r})")
            setattr(self, name, value)
        for name in ("bound_growth", "net_of_motion", "motion_noise_floor"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"training option {name} must be True or False, got {value!r}")
            setattr(self, name, bool(value))
        if not 0 <= self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")

    def to_dict(self) -> dict:
        """Plain-dict view (JSON/h5ad serialisable)."""
        return asdict(self)


_FIELD_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


# (name, type, lower bound, bound allowed) for every numeric option of TrainConfig
_CONFIG_RULES: tuple[tuple[str, type, float, bool], ...] = (
    ("reg", float, 0.0, False), ("reg_m", float, 0.0, False), ("reg_m_motion", float, 0.0, True),
    ("sigma", float, 0.0, True),
    ("hidden", int, 1, True), ("n_layers", int, 1, True), ("stage1_steps", int, 0, True),
    ("batch_size", int, 1, True), ("lr", float, 0.0, False), ("stage2_steps", int, 0, True),
    ("stage2_lr", float, 0.0, False), ("stage2_growth_lr", float, 0.0, True),
    ("stage2_particles", int, 2, True), ("stage2_targets", int, 2, True),
    ("mass_weight", float, 0.0, True), ("fm_weight", float, 0.0, True),
    ("val_fraction", float, 0.0, True), ("val_every", int, 1, True),
    ("val_particles", int, 2, True), ("val_targets", int, 1, True), ("ode_steps", int, 1, True),
    ("coupling_block", int, 2, True), ("coupling_max_blocks", int, 1, True),
    ("growth_test", float, 0.0, False), ("coupling_momentum", float, 0.0, True),
    ("growth_noise_test", float, 0.0, True), ("chord_gap", float, 0.0, False),
)
_OPTIONAL = frozenset({"stage2_growth_lr", "growth_test", "growth_noise_test", "chord_gap"})
STAGE2_LOSSES = ("auto", "w1", "energy")
#: ``stiffened_targets`` values of :class:`TrainConfig`.
STIFFENED_TARGETS = ("plan", "shrunk")


#: Smallest dimension in which ``stage2_loss="auto"`` uses the energy distance: in high
#: dimension W1 between finite samples rewards a prediction that shrinks every cluster towards
#: its mean (METHOD §7), the energy distance does not.
AUTO_ENERGY_DIM = 100


def resolve_stage2_loss(loss: str, dim: int) -> str:
    """The stage-2 distance that ``loss`` means for ``dim``-dimensional data.

    Examples
    --------
    >>> resolve_stage2_loss("auto", 50), resolve_stage2_loss("auto", 1000)
    ('w1', 'energy')
    >>> resolve_stage2_loss("w1", 1000)
    'w1'
    """
    if loss != "auto":
        return loss
    return "energy" if dim >= AUTO_ENERGY_DIM else "w1"


#: Distance of the stage-2 checkpoint score.  The energy distance is a strictly proper score:
#: in expectation it is smallest for the law the observed cells were drawn from, however few
#: they are.  W1 to a finite sample is not: it rewards a prediction shrunk towards the sample
#: (METHOD §7; on a 1,000-cell data set it ranked a collapsed stage-1 field above the trained
#: one).
SCORE_DISTANCE = "energy"

COUPLING_GEOMETRIES = ("euclidean", "affine")
INTERPOLANTS = ("linear", "routes")


def energy_distance(x: torch.Tensor, wx: torch.Tensor, y: torch.Tensor,
                    wy: torch.Tensor, *, y_term: torch.Tensor | None = None) -> torch.Tensor:
    """Energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` between two weighted samples.

    Differentiable in the positions and the weights (weights are normalised here).  Distances
    are smoothed at 0 (``sqrt(d^2 + tiny)``) so the self terms have finite gradients.
    ``y_term``: ``E|Y-Y'|`` of the same ``y`` and ``wy`` from an earlier call
    (:func:`energy_self_term`), when ``y`` is scored against many ``x`` (the largest of the
    three distance matrices is then computed once).

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(1, 1); y = torch.ones(1, 1); w = torch.ones(1, dtype=torch.float64)
    >>> round(float(energy_distance(x, w, y, w)), 6)
    2.0
    """
    wx = wx / wx.sum()
    wy = wy / wy.sum()
    x, y = x.double(), y.double()
    tiny = _energy_tiny(y)

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(squared_distances(a, b) + tiny)

    yy = wy @ dist(y, y) @ wy if y_term is None else y_term
    return 2 * wx @ dist(x, y) @ wy - wx @ dist(x, x) @ wx - yy


def _energy_tiny(y: torch.Tensor) -> float:
    """Smoothing of the distances at 0 in :func:`energy_distance` (set by ``y``)."""
    return 1e-24 * (1.0 + float(y.square().mean()))


def energy_self_term(y: torch.Tensor, wy: torch.Tensor) -> torch.Tensor:
    """``E|Y-Y'|`` of :func:`energy_distance`, for its ``y_term``; the same value, bit for bit.

    Examples
    --------
    >>> import torch
    >>> y = torch.tensor([[0.0], [2.0]]); w = torch.ones(2, dtype=torch.float64)
    >>> x = torch.tensor([[1.0]])
    >>> e = energy_distance(x, w[:1], y, w)
    >>> bool(e == energy_distance(x, w[:1], y, w, y_term=energy_self_term(y, w)))
    True
    """
    wy = wy / wy.sum()
    y = y.double()
    return wy @ torch.sqrt(squared_distances(y, y) + _energy_tiny(y)) @ wy


def growth_vs_motion(snaps: Sequence[torch.Tensor], couplings: Sequence[IntervalCoupling],
                     rel: Sequence[float], *, solver: str, options: dict, seed: int,
                     max_cells: int = 1000, draws: int = 2,
                     targets: Sequence[torch.Tensor] | None = None,
                     noise_splits: int = 0) -> dict[str, list[float]]:
    """How much of each interval's growth-target spread a growth-free process would show too.

    For the first block of every interval (at most ``max_cells`` random source rows), the
    growth targets ``γ`` are compared with :func:`vgfm._core.couplings.motion_null_growth`'s
    ``γ0``, the targets the same coupling gives when every cell keeps its mass and moves as the
    plan says.  ``motion_explained = 1 - var(γ - γ0) / var(γ)``: near 1 the growth differences
    of the interval are what motion alone produces (they say nothing about proliferation),
    near 0 or below they are not.  Uses its own generator (from ``seed``), so the training
    draws are the same with or without it.

    ``targets``: the cells each interval's coupling compared its sources with, when not the
    next snapshot (``coupling_momentum``); the growth-free population is built from them.

    ``noise_splits > 0`` also measures how much of that spread the finite samples alone
    produce (:func:`sampling_noise`, on the same rows and a proportional share of the
    block's target cells, scaled to the block's sizes) and reports
    ``signal_to_noise``: the spread that motion leaves unexplained, ``var(γ - γ0)``, over the
    spread sampling noise gives the same coupling.  Near 1 or below, what motion leaves is
    what two draws of the same populations differ by, so the interval shows no growth
    differences beyond noise.

    Returns ``{"motion_explained", "growth_sd", "growth_sd_null"}`` (with ``noise_splits``
    also ``"sampling_sd"`` and ``"signal_to_noise"``), one value per interval (``growth_sd``:
    standard deviation of the targets, per unit of time).
    """
    gen = torch.Generator().manual_seed(int(seed) + 104_729)
    gen_noise = torch.Generator().manual_seed(int(seed) + 7_919)  # the test's own draws
    out: dict[str, list[float]] = {"motion_explained": [], "growth_sd": [],
                                   "growth_sd_null": []}
    if noise_splits > 0:
        out["sampling_sd"], out["signal_to_noise"] = [], []
    for k, c in enumerate(couplings):
        src, tgt, plan, g = c.source[0], c.target[0], c.plans[0], c.growth[0]
        w = None if c.row_weights is None else c.row_weights[0]
        n_src, n_tgt = len(src), len(tgt)
        if len(src) > max_cells:
            keep = torch.randperm(len(src), generator=gen)[:max_cells]
            src, plan, g = src[keep], plan[keep.to(plan.device)], g[keep.to(g.device)]
            w = None if w is None else w[keep.to(w.device)]
        sub = IntervalCoupling([torch.arange(len(src))], [tgt], [plan], [g], c.dt,
                               None if w is None else [w])
        x0 = snaps[k][src.to(snaps[k].device)]
        x1 = snaps[k + 1] if targets is None else targets[k]
        if noise_splits > 0:
            # on the kept rows and as large a share of the target cells; noise variance goes
            # as one over the sample size, so it is scaled back to the block's sizes
            n_sub = min(n_tgt, max(4, round(n_tgt * len(src) / n_src)))
            sub_t = tgt[torch.randperm(n_tgt, generator=gen_noise)[:n_sub]]
            noise_var = sampling_noise(
                x0, x1[sub_t.to(x1.device)], mass0=float(rel[k]), mass1=float(rel[k + 1]),
                dt=c.dt, solver=solver, options=options, row_weights=w, splits=noise_splits,
                folds=NOISE_FOLDS, generator=gen_noise) * n_sub / n_tgt
        # a looser Sinkhorn (tolerance 1e-3, at most 500 iterations): on the benchmark data the
        # share moves by at most 0.06 (0.03 where it is above 0.8), at half the cost
        null = motion_null_growth(x0, x1, sub, mass0=float(rel[k]), solver=solver,
                                  options={**options, "sinkhorn_tol": 1e-3,
                                           "sinkhorn_max_iter": 500},
                                  draws=draws, generator=gen)
        real = g.double().cpu()
        var = float(real.var())
        out["growth_sd"].append(var ** 0.5)
        out["growth_sd_null"].append(float(null.std()))
        out["motion_explained"].append(
            1.0 - float((real - null).var()) / var if var > 0 else float("nan"))
        if noise_splits > 0:
            out["sampling_sd"].append(noise_var ** 0.5)
            left = float((real - null).var())
            out["signal_to_noise"].append(
                left / noise_var if noise_var > 0 else (math.inf if left > 0 else float("nan")))
    return out


def sampling_noise(x0: torch.Tensor, x1: torch.Tensor, *, mass0: float, mass1: float, dt: float,
                   solver: str, options: dict, row_weights: torch.Tensor | None = None,
                   splits: int = 8, folds: int = 2,
                   generator: torch.Generator | None = None) -> float:
    """Variance of an interval's growth targets that the finite samples alone produce.

    The source cells ``x0`` are coupled (one block, the same solver, options and, when given,
    per-row KL weights) to two disjoint random halves ``A``, ``B`` of the target cells
    ``x1``.  The two halves are independent draws of the same population, so the growth
    targets' difference ``γA - γB`` is sampling noise only; a half has half the cells, so the
    noise a full target sample puts into the targets has variance ``var(γA - γB) / 4``.  The
    source is a sample too, and its noise enters the competition for the target mass in the
    same way, scaled by the sizes: the returned variance is
    ``var(γA - γB) / 4 * (1 + n1 / n0)``, averaged over ``splits`` random splits.  Where the
    growth differences between cells come from a few population shares (two branches), each
    split is essentially one draw of a share, so single splits scatter widely (a chi-square
    with few degrees of freedom); the mean over splits has a relative error of about
    ``sqrt(2 / splits)``.

    Parameters
    ----------
    x0, x1
        Source and target cells of the interval (one block: all are coupled at once).
    mass0, mass1, dt, solver, options
        As for :func:`vgfm._core.couplings.couple_interval`.
    row_weights
        Per-row KL weights of the interval's plan (``IntervalCoupling.row_weights``), kept so
        that the halves are coupled with the same relaxation as the real plan.
    splits
        Random splits averaged.
    folds
        Parts each split cuts the target into (2: halves).  A part holds ``1 / folds`` of the
        cells, so the variance across parts is divided by ``folds``; more parts give more
        degrees of freedom per split, at smaller and noisier parts.
    generator
        Torch generator (CPU) for the splits.

    Returns
    -------
    The noise variance of the growth targets (per unit of time, squared).

    Examples
    --------
    Two clusters that keep their shares: the targets differ between them by noise only.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> def sample(n):
    ...     side = (torch.rand(n, 1, generator=g) < 0.3).double() * 4
    ...     return side + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    >>> v = sampling_noise(sample(400), sample(400), mass0=1.0, mass1=1.0, dt=1.0,
    ...                    solver="semi_relaxed", options={"reg": 0.05, "reg_m": 1.0},
    ...                    generator=g)
    >>> 0 < v < 0.05
    True
    """
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    n0, n1 = len(x0), len(x1)
    size = n1 // folds
    if size < 2:
        return float("nan")
    # the interval's own cost, scaled as couple_interval scales it for all target cells, so
    # that every part is coupled with the same regularisation as the whole
    if options.get("coupling_geometry", "euclidean") == "affine":
        x1 = affine_align(x0, x1, generator=generator).to(x1.dtype)
    scale = cost_scale(x0, x1, generator=generator)
    cost = squared_distances(x0.double(), x1.double())
    fn = get_solver(solver)
    opts = {**options, "reg_m_rows": row_weights} if row_weights is not None else options
    a = torch.full((n0,), mass0 / n0, dtype=torch.float64, device=x0.device)
    b = torch.full((size,), mass1 / size, dtype=torch.float64, device=x0.device)
    # the semi-relaxed solver starts every part from the first part's source potential (the
    # parts are draws of one population, so their potentials are close): same plans to the
    # tolerance, a fraction of the iterations
    warm = solver == "semi_relaxed"
    reg_m = row_weights if row_weights is not None else float(options.get("reg_m", math.inf))
    f0 = None
    total = 0.0
    for _ in range(splits):
        perm = torch.randperm(n1, generator=generator).to(x1.device)
        parts = []
        for f in range(folds):
            c = cost[:, perm[f * size:(f + 1) * size]]
            c = (c - c.min(0, keepdim=True).values) / scale
            if warm:
                plan, pot = semi_relaxed_sinkhorn(
                    c, a, b, float(options["reg"]), reg_m, init=f0, return_potential=True,
                    tol=float(options.get("sinkhorn_tol", 1e-5)),
                    max_iter=int(options.get("sinkhorn_max_iter", 2000)))
                f0 = pot if f0 is None else f0
            else:
                plan = fn(c, a, b, opts)
            parts.append(torch.log(plan.sum(1).clamp_min(1e-300) / a) / dt)
        # a part holds 1 / folds of the cells, so its noise variance is folds times the
        # full sample's
        total += float(torch.stack(parts).var(0).mean()) / folds
    return total / splits * (1.0 + n1 / n0)


def relaxation_factor(share: float, threshold: float) -> float:
    """How much stiffer an interval's relaxation is made when motion explains ``share`` of its
    growth-target spread: ``1`` up to ``threshold``, then ``(1 - threshold) / (1 - share)``,
    infinite (balanced plan, uniform growth) when motion explains all of it (above 0.999).

    Examples
    --------
    >>> [round(relaxation_factor(e, 0.8), 6) for e in (0.5, 0.9, 0.95, 1.0)]
    [1.0, 2.0, 4.0, inf]
    """
    if not share > threshold:  # also NaN
        return 1.0
    if share >= 0.999:
        return math.inf
    return (1.0 - threshold) / (1.0 - share)


def uniform_growth_coupling(x0: torch.Tensor, x1: torch.Tensor, *, mass0: float, mass1: float,
                            dt: float, solver: str, options: dict, max_block: int,
                            max_blocks: int, generator: torch.Generator | None = None,
                            ) -> IntervalCoupling:
    """The coupling of an interval whose cells all grow alike: the balanced plan between the
    source (its mass scaled to ``mass1``) and the target, with every growth target
    ``log(mass1 / mass0) / dt``.

    Examples
    --------
    >>> import torch
    >>> x0 = torch.tensor([[0.0], [1.0]]); x1 = torch.tensor([[0.2], [1.2], [1.3]])
    >>> c = uniform_growth_coupling(x0, x1, mass0=1.0, mass1=2.0, dt=0.5, solver="semi_relaxed",
    ...                             options={"reg": 0.05, "reg_m": 0.5}, max_block=8,
    ...                             max_blocks=1)
    >>> [round(float(v), 4) for v in c.growth[0]]  # log(2) / 0.5 for every cell
    [1.3863, 1.3863]
    >>> [round(float(v), 4) for v in c.plans[0].sum(1)]  # each cell carries half the target
    [1.0, 1.0]
    """
    opts = {**options, "reg_m": math.inf, "reg_m_motion": 0.0}
    c = couple_interval(x0, x1, mass0=mass1, mass1=mass1, dt=dt, solver=solver, options=opts,
                        max_block=max_block, max_blocks=max_blocks, generator=generator)
    rate = math.log(mass1 / mass0) / dt
    c.growth = [torch.full_like(g, rate) for g in c.growth]
    return c


def fit_couplings(
    snaps: Sequence[torch.Tensor],
    times: Sequence[float],
    rel: Sequence[float],
    *,
    config: TrainConfig,
    growth: bool = True,
    source_prior: Sequence[torch.Tensor | None] | None = None,
    generator: torch.Generator,
    seed: int = 0,
    reg_m_factors: Sequence[float] | None = None,
) -> tuple[list[IntervalCoupling], dict[str, list[float]] | None]:
    """The couplings a fit regresses on, with every option of ``config`` that shapes them.

    One coupling per interval (:func:`vgfm._core.couplings.couple_interval`): with
    ``coupling_momentum > 0`` from the last interval backwards, each paired with the target
    cells moved back along their velocity on the next interval; then the growth test
    (:func:`growth_vs_motion`, stiffer relaxation where motion explains the growth
    differences; skipped with a prior) and the growth targets net of motion.  :func:`train`
    and the score network of the stochastic model (:func:`vgfm._core.sde.train_score`) both
    call it, so that the SDE's bridges join the same pairs as the flow.

    Parameters
    ----------
    snaps, times, rel
        Snapshots, their times and relative population sizes (``rel[0] == 1``).
    config
        Options; ``method``'s solver couples.
    growth
        Whether the method learns growth; without, balanced couplings of unit mass and no
        growth test.
    source_prior
        Optional prior on the relative growth of each interval's source cells (one tensor or
        ``None`` per interval).
    generator
        Torch generator (CPU) of the random blocks and draws; consumed in a fixed order.
    seed
        Seed of the growth test's own draws.
    reg_m_factors
        The growth test's stiffening per interval from an earlier run on the same snapshots
        (``growth_vs_motion["reg_m_factor"]`` of a fit): the test is not run again, and the
        record holds only these factors.

    Returns
    -------
    The couplings and, for methods with growth, the growth-test record
    (:func:`growth_vs_motion` with ``reg_m_factor``; ``None`` without growth).

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> snaps = [torch.randn(50, 2, generator=g) + k for k in range(3)]
    >>> cs, motion = fit_couplings(snaps, [0.0, 1.0, 2.0], [1.0, 1.0, 1.0],
    ...                            config=TrainConfig(), generator=g)
    >>> len(cs), len(motion["reg_m_factor"])
    (2, 2)
    """
    cfg = config
    spec = get_method(cfg.method)
    n_int = len(snaps) - 1
    couplings: list = [None] * n_int
    # the cells each interval's coupling compares the source with: the target snapshot, or
    # with coupling_momentum > 0 the target cells moved back along their velocity on the
    # next interval (couplings then computed from the last interval backwards)
    targets = list(snaps[1:])
    copts = {**cfg.to_dict(), "net_of_motion": cfg.net_of_motion and growth}
    order = range(n_int) if cfg.coupling_momentum <= 0 else range(n_int - 1, -1, -1)
    for k in order:
        dt = times[k + 1] - times[k]
        m0, m1 = (rel[k], rel[k + 1]) if growth else (1.0, 1.0)
        prior = source_prior[k] if source_prior is not None and growth else None
        if cfg.coupling_momentum > 0 and k + 1 < n_int:
            u = outgoing_velocity(snaps[k + 1], snaps[k + 2], couplings[k + 1])
            targets[k] = momentum_targets(snaps[k], snaps[k + 1], u,
                                          cfg.coupling_momentum * dt, generator=generator)
        couplings[k] = couple_interval(
            snaps[k], targets[k], mass0=m0, mass1=m1, dt=dt, solver=spec.solver,
            options=copts, max_block=cfg.coupling_block,
            max_blocks=cfg.coupling_max_blocks, source_prior=prior, generator=generator,
        )
    if reg_m_factors is not None:  # the test's decisions of an earlier run
        if len(reg_m_factors) != n_int:
            raise ValueError(f"reg_m_factors must hold one factor per interval ({n_int}), "
                             f"got {len(reg_m_factors)}")
        motion = {"reg_m_factor": [float(f) for f in reg_m_factors]} if growth else None
    else:
        noise_test = cfg.growth_noise_test is not None and source_prior is None
        motion = growth_vs_motion(snaps, couplings, rel, solver=spec.solver,
                                  options=cfg.to_dict(), seed=seed, targets=targets,
                                  noise_splits=NOISE_SPLITS if noise_test else 0,
                                  ) if growth else None
        if motion is not None:
            motion["reg_m_factor"] = [
                relaxation_factor(share, cfg.growth_test)
                if cfg.growth_test is not None and source_prior is None else 1.0
                for share in motion["motion_explained"]]
            if noise_test:
                # no growth differences beyond sampling noise: every cell grows alike
                motion["reg_m_factor"] = [
                    math.inf if snr <= cfg.growth_noise_test else f
                    for f, snr in zip(motion["reg_m_factor"], motion["signal_to_noise"])]
    if motion is not None:
        # intervals whose growth differences motion alone largely reproduces: a stiffer
        # relaxation, up to every cell growing alike on the balanced plan
        for k, factor in enumerate(list(motion["reg_m_factor"])):
            if factor == 1.0:
                continue
            before = couplings[k]
            shrink = cfg.stiffened_targets == "shrunk" and not math.isinf(factor)
            recouple = uniform_growth_coupling if math.isinf(factor) else couple_interval
            # (shrunk targets come from the measured plan: the stiff plan needs no copy)
            couplings[k] = recouple(
                snaps[k], targets[k], mass0=rel[k], mass1=rel[k + 1],
                dt=times[k + 1] - times[k], solver=spec.solver,
                options={**copts, "reg_m": cfg.reg_m * factor,
                         **({"net_of_motion": False} if shrink else {})},
                max_block=cfg.coupling_block, max_blocks=cfg.coupling_max_blocks,
                generator=generator)
            if shrink:
                couplings[k] = shrunk_targets(couplings[k], before, len(snaps[k]), factor)
    if growth and cfg.net_of_motion:
        # growth targets net of what the same plans report for cells that do not grow
        # (intervals coupled with uniform growth have no differences to correct)
        for c in couplings:
            if c.null_growth is not None:
                c.growth = c.net_growth()
    return couplings, motion


def shrunk_targets(stiff: IntervalCoupling, loose: IntervalCoupling, n_source: int,
                   factor: float) -> IntervalCoupling:
    """The stiffened coupling ``stiff`` with the growth differences of ``loose`` divided by
    ``factor``.

    ``loose`` is the interval's coupling at the relaxation the growth test measured; its
    growth targets (net of motion when it has a growth-free copy) are shrunk towards their
    block mean by ``factor``, the stiffening of the relaxation, and shifted so that each block
    of ``stiff`` keeps its total mass.  The pairs stay those of ``stiff``.  A very stiff
    plan's own targets and its growth-free copy's are both tiny and their difference mostly
    noise; the loose plan's differences, scaled down as the stiffening scales a plan's
    differences, keep their direction.

    Examples
    --------
    >>> import torch
    >>> one = [torch.arange(3)]
    >>> loose = IntervalCoupling(one, one, [torch.eye(3)], [torch.tensor([0.0, 0.3, 0.6])], 1.0)
    >>> stiff = IntervalCoupling(one, one, [torch.eye(3)], [torch.zeros(3)], 1.0)
    >>> g = shrunk_targets(stiff, loose, 3, 3.0).growth[0]
    >>> [round(float(v - g[0]), 4) for v in g]  # differences divided by 3
    [0.0, 0.1, 0.2]
    >>> round(float(torch.exp(g).sum()), 4)  # the stiff block's total mass (3 x exp(0))
    3.0
    """
    per_cell = torch.full((n_source,), float("nan"), dtype=torch.float64)
    loose_growth = loose.net_growth() if loose.null_growth is not None else loose.growth
    for src, g in zip(loose.source, loose_growth):
        per_cell[src.cpu()] = g.double().cpu()
    out = []
    for src, g in zip(stiff.source, stiff.growth):
        v = per_cell[src.cpu()]
        known = torch.isfinite(v)
        centre = v[known].mean() if bool(known.any()) else torch.zeros((), dtype=torch.float64)
        v = torch.where(known, centre + (v - centre) / factor, centre) * stiff.dt
        shift = torch.logsumexp(g.double().cpu() * stiff.dt, 0) - torch.logsumexp(v, 0)
        out.append(((v + shift) / stiff.dt).float().to(g.device))
    return IntervalCoupling(stiff.source, stiff.target, stiff.plans, out, stiff.dt,
                            stiff.row_weights, None)


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    ``extra`` holds wall-clock seconds per phase: ``seconds_couplings``, ``seconds_stage1``,
    ``seconds_stage2`` (including checkpoint scoring) and ``seconds_validation`` (the
    checkpoint scoring alone); ``stage2_loss`` (the distance stage 2 fitted) and, for methods
    with growth, ``growth_vs_motion`` (:func:`growth_vs_motion`).
    """

    field: VelocityGrowthField
    history: dict[str, np.ndarray]
    couplings: list[IntervalCoupling]
    best_step: int
    seconds: float
    extra: dict = field(default_factory=dict)


#: Smallest scale of a snapshot in the time-dependent input frame, as a share of the global
#: scale (a snapshot of one cell, or of identical cells, has no spread of its own).
FRAME_SCALE_FLOOR = 0.05


def snapshot_frames(snaps: Sequence[torch.Tensor], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and scale of every snapshot, for :meth:`VelocityGrowthField.set_input_frame`.

    The scale is the root mean per-coordinate variance (as :func:`data_scale`), at least
    ``FRAME_SCALE_FLOOR`` times the global ``scale``.

    Examples
    --------
    >>> import torch
    >>> c, s = snapshot_frames([torch.zeros(3, 2), torch.tensor([[0.0, 0.0], [2.0, 2.0]])], 1.0)
    >>> c.tolist(), [round(float(v), 4) for v in s]
    ([[0.0, 0.0], [1.0, 1.0]], [0.05, 1.0])
    """
    centers, scales = [], []
    for x in snaps:
        c, s = data_scale([x])
        centers.append(c)
        scales.append(max(s, FRAME_SCALE_FLOOR * scale))
    return torch.stack(centers), torch.tensor(scales, dtype=centers[0].dtype)


def data_scale(xs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, float]:
    """Centre (mean over all cells) and scale (root mean per-coordinate variance) of the data."""
    x = torch.cat(list(xs))
    center = x.mean(0)
    scale = float(((x - center) ** 2).mean().sqrt().clamp_min(1e-8))
    return center, scale


def _split(n: int, frac: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    n_val = int(round(n * frac)) if n >= 20 else 0
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _subset(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=gen)[:k] if n > k else torch.arange(n)


class _Stage1Loss:
    """Samples one matcher batch per interval and returns the regression loss.

    Pairs, times and noise for several steps are drawn in one vectorised call per interval
    (at most ``_BUFFER_ENTRIES`` numbers buffered) and handed out step by step, which removes
    most of the per-step Python overhead without changing what is sampled.
    """

    _BUFFER_ENTRIES = 4_000_000

    def __init__(self, snaps, times, couplings, sigma, batch_size, center, scale, t_span, growth,
                 routes: list[GraphRoutes] | None = None, speed: str = "constant",
                 noise_scales: Sequence[float] | None = None):
        self.snaps, self.times, self.couplings = snaps, times, couplings
        # per-snapshot noise sd (the frame's scales times the relative noise), or None: sigma
        self.noise_scales = noise_scales
        self.routes = routes
        self.samplers = [PairSampler(c) for c in couplings]
        self.matcher = VelocityGrowthMatcher(sigma, speed=speed if growth else "constant")
        self.batch_size = batch_size
        self.vel_unit = scale / t_span  # velocity targets are compared in standardised units
        self.growth_unit = 1.0 / t_span
        self.growth = growth
        dim = snaps[0].shape[1]
        per_step = batch_size * max(1, len(couplings)) * (2 * dim + 2)
        self._chunk = int(max(1, min(64, self._BUFFER_ENTRIES // per_step)))
        self._buffer: tuple[torch.Tensor, ...] | None = None
        self._pos = 0

    def _refill(self, gen: torch.Generator) -> None:
        n = self.batch_size * self._chunk
        parts = []
        for k, sampler in enumerate(self.samplers):
            i, j, g = sampler.sample(n, gen)
            b = self.matcher.sample(
                self.snaps[k][i], self.snaps[k + 1][j], g,
                t0=self.times[k], dt=self.times[k + 1] - self.times[k], generator=gen,
                path=None if self.routes is None else (
                    lambda x0, x1, s, dt, k=k, i=i, j=j: self.routes[k].interpolate(
                        0, i, 1, j, s, dt=dt, x0=x0, x1=x1)),
                noise_ends=None if self.noise_scales is None else (
                    self.noise_scales[k], self.noise_scales[k + 1]),
            )
            # (chunk, batch, ...) so that step s takes row s of every interval
            parts.append([z.reshape(self._chunk, self.batch_size, -1) for z in (b.t, b.x, b.u, b.g)])
        self._buffer = tuple(torch.cat([p[f] for p in parts], 1) for f in range(4))
        self._pos = 0

    def batch(self, gen: torch.Generator):
        if self._buffer is None or self._pos >= self._chunk:
            self._refill(gen)
        s = self._pos
        self._pos += 1
        return tuple(z[s] for z in self._buffer)

    def __call__(self, fld: VelocityGrowthField, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        t, x, u, g = self.last_batch = self.batch(gen)
        v_hat, g_hat = fld(t, x)
        lv = (((v_hat - u) / self.vel_unit) ** 2).mean()
        lg = (((g_hat - g) / self.growth_unit) ** 2).mean() if self.growth else lv * 0
        return lv + lg, lv, lg


def rollout_scores(
    fld: VelocityGrowthField,
    x0: torch.Tensor,
    times: Sequence[float],
    targets: Sequence[torch.Tensor | None],
    sizes: Sequence[float],
    ode_steps: int,
    distance: str = "w1",
    cache: dict[int, torch.Tensor] | None = None,
) -> tuple[list[float], list[float], list[float]]:
    """Roll out from ``x0`` (mass 1 each) without gradient; distance, RME and size per time.

    ``targets[k]`` are the observed cells at ``times[k]`` (``None``: skip the distance),
    ``sizes[k]`` the relative population sizes ``r_k``; index 0 is the start and is not scored.
    ``distance`` is ``"w1"`` (exact EMD) or ``"energy"`` (energy distance).  ``cache``: a dict
    kept between calls with the same ``targets``, where the energy distance's target-target
    term of each time is stored the first time and reused (same scores, less work).
    """
    with torch.no_grad():
        xs, lms = integrate(fld, x0, times, n_steps=ode_steps)
    w1s, rmes, pred = [], [], []
    for k in range(1, len(times)):
        m = lms[k].double().exp()
        pred.append(float(m.mean()))
        rmes.append(relative_mass_error(pred[-1], sizes[k]))
        y = targets[k]
        if y is None:
            w1s.append(math.nan)
        elif distance == "energy":
            wy = torch.ones(len(y), dtype=torch.float64, device=y.device)
            if cache is not None and k not in cache:
                cache[k] = energy_self_term(y, wy)
            w1s.append(float(energy_distance(xs[k], m, y, wy,
                                             y_term=None if cache is None else cache[k])))
        else:
            w1s.append(wasserstein1(xs[k], y, m).value)
    return w1s, rmes, pred


def train(
    snapshots: Sequence[np.ndarray | torch.Tensor],
    times: Sequence[float],
    *,
    population_size: Sequence[float] | None = None,
    holdout: int | None = None,
    source_prior: Sequence[np.ndarray | None] | None = None,
    config: TrainConfig | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a velocity-growth field on time-stamped snapshots.

    Parameters
    ----------
    snapshots
        One ``(n_k, d)`` array per time point, in time order.
    times
        Strictly increasing real times ``t_k`` (the user's unit, not indices).
    population_size
        Population sizes ``N_k`` (any scale); default the cell counts ``n_k``.
    holdout
        Index of an interior snapshot left out of training (trained across the gap).
    source_prior
        Optional prior on the relative growth of the cells, one positive array per snapshot
        (``None`` entries: no prior for that snapshot), e.g. from proliferation/apoptosis gene
        scores; it sets the reference of the relaxed source marginal of each interval (see
        :func:`vgfm._core.couplings.couple_interval`).  Ignored by methods without growth.
    config
        :class:`TrainConfig`; defaults when ``None``.
    seed
        Seed of every random draw (splits, blocks, pairs, noise, initialisation).
    device
        Torch device; ``None`` picks CUDA when available, else CPU.
    progress
        Show tqdm progress bars.

    Returns
    -------
    :class:`TrainResult` with the selected field (on CPU), training history and couplings.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> snaps = [rng.normal(size=(60, 2)), rng.normal(size=(90, 2)) + 1.0]
    >>> cfg = TrainConfig(stage1_steps=20, stage2_steps=0)
    >>> res = train(snaps, [0.0, 1.0], config=cfg, seed=0)
    >>> res.field.dim
    2
    """
    cfg = config or TrainConfig()
    start = _time.perf_counter()
    dev = resolve_device(device)
    times = [float(t) for t in times]
    k_all = len(times)
    if len(snapshots) != k_all or k_all < 2:
        raise ValueError("need one snapshot per time point and at least 2 time points")
    if any(b <= a for a, b in zip(times[:-1], times[1:])):
        raise ValueError(f"times must be strictly increasing, got {times}")
    counts = np.array([len(s) for s in snapshots], dtype=float)
    sizes = counts if population_size is None else np.asarray(population_size, dtype=float)
    if len(sizes) != k_all or np.any(~np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError("population_size must hold one positive finite value per time point")
    rel = sizes / sizes[0]
    if holdout is not None and not 0 < holdout < k_all - 1:
        raise ValueError("holdout must index an interior time point")
    if source_prior is not None:
        if len(source_prior) != k_all:
            raise ValueError(f"source_prior must hold one entry per snapshot ({k_all}), "
                             f"got {len(source_prior)}")
        source_prior = [None if p is None else np.asarray(p, dtype=np.float64).reshape(-1)
                        for p in source_prior]
        for k, p in enumerate(source_prior):
            if p is not None and (len(p) != len(snapshots[k]) or not np.all(np.isfinite(p))
                                  or np.any(p <= 0)):
                raise ValueError(
                    f"source_prior[{k}] must hold {len(snapshots[k])} positive finite values "
                    f"(one per cell of snapshot {k}), got {len(p)} values with "
                    f"min {np.min(p) if len(p) else float('nan'):.3g}")
    seed = _check_seed(seed)

    gen = torch.Generator().manual_seed(int(seed))
    snaps_all = [torch.as_tensor(np.asarray(s), dtype=torch.float32).to(dev) for s in snapshots]
    train_idx = [k for k in range(k_all) if k != holdout]
    tr_times = [times[k] for k in train_idx]
    tr_rel = [float(rel[k]) for k in train_idx]
    # with val_fraction > 0, cells are held back from training at every time point but the
    # first (they join the checkpoint score): the first snapshot only provides start points
    splits = [_split(len(snaps_all[k]), cfg.val_fraction if i > 0 else 0.0, gen)
              for i, k in enumerate(train_idx)]
    tr_snaps = [snaps_all[k][s[0].to(dev)] for k, s in zip(train_idx, splits)]
    val_snaps = [snaps_all[k][s[1].to(dev)] if len(s[1]) else None for k, s in zip(train_idx, splits)]

    spec = get_method(cfg.method)
    growth = spec.learns_growth
    center, scale = data_scale(tr_snaps)
    # distances in d dimensions are compared in units of the data's total RMS spread
    # (scale * sqrt(d)), so W1 terms weigh the same against the mass term in 2 or 1000 dims
    dist_unit = scale * math.sqrt(snaps_all[0].shape[1])
    t_span = times[-1] - times[0]
    # network initialisation from the seed without touching the caller's global torch RNG
    auto = cfg.growth_form == "auto" and growth

    frame = snapshot_frames(tr_snaps, scale) if cfg.input_frame == "global+time" else None

    def new_field(form: str, init_seed: int) -> VelocityGrowthField:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            f = VelocityGrowthField(
                snaps_all[0].shape[1], center=center, scale=scale, t_start=times[0],
                t_span=t_span, hidden=cfg.hidden, n_layers=cfg.n_layers, growth=growth,
                growth_form=form, input_frame=cfg.input_frame,
            ).to(dev)
        if frame is not None:
            f.set_input_frame(tr_times, *frame)
        return f

    fld = new_field("xt" if cfg.growth_form == "auto" else cfg.growth_form, int(seed))
    # growth_form="auto": a time-free growth network g(x), trained in stage 1 on the same
    # batches as fld's g(x, t) (its own initialisation, so fld trains exactly as without it)
    alt = new_field("x", int(seed) + 7_919) if auto else None

    # ---- couplings -------------------------------------------------------------------------
    t_setup = _time.perf_counter()
    priors = None
    if source_prior is not None and growth:
        priors = [torch.as_tensor(np.asarray(source_prior[train_idx[k]], dtype=np.float64))[
            splits[k][0]] for k in range(len(tr_snaps) - 1)]
    couplings, motion = fit_couplings(tr_snaps, tr_times, tr_rel, config=cfg, growth=growth,
                                      source_prior=priors, generator=gen, seed=seed)
    t_couplings = _time.perf_counter()
    logger.info("couplings ready for %d intervals (%.1fs)", len(couplings),
                t_couplings - start)

    # ---- stage 1 ---------------------------------------------------------------------------
    routes = None
    if cfg.interpolant == "routes":  # one graph per interval, of its two snapshots' cells
        routes = [GraphRoutes(tr_snaps[k : k + 2], generator=gen, chord_gap=cfg.chord_gap)
                  for k in range(len(tr_snaps) - 1)]
    s1 = _Stage1Loss(tr_snaps, tr_times, couplings, cfg.sigma * scale, cfg.batch_size,
                     center, scale, t_span, growth, routes=routes,
                     speed=cfg.interpolant_speed,
                     noise_scales=None if frame is None else [
                         cfg.sigma * float(v) for v in frame[1]])
    opt = adam(fld.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cfg.stage1_steps),
                                                       eta_min=cfg.lr * 0.05)
    if alt is not None:
        opt_alt = adam(alt.growth_parameters(), lr=cfg.lr)
        sched_alt = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt_alt, max(1, cfg.stage1_steps), eta_min=cfg.lr * 0.05)
    hist1 = np.zeros(cfg.stage1_steps)
    for step in tqdm(range(cfg.stage1_steps), disable=not progress, desc="VGFM stage 1",
                     leave=False):
        loss, _, _ = s1(fld, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hist1[step] = float(loss.detach())
        if alt is not None:  # the same pairs and growth targets, a growth rate without time
            t_b, x_b, _, g_b = s1.last_batch
            loss_alt = (((alt.growth_rate(t_b, x_b) - g_b) / s1.growth_unit) ** 2).mean()
            opt_alt.zero_grad(set_to_none=True)
            loss_alt.backward()
            opt_alt.step()
            sched_alt.step()
    t_stage1 = _time.perf_counter()
    bounds: dict[str, tuple[list[float], list[float]]] = {}
    if growth and cfg.bound_growth and couplings:
        # from here on (stage 2, checkpoint scores, every use of the field) g stays within the
        # range of rates the couplings implied on each interval; not in stage 1, whose
        # regression must be free to reach the targets from any initial output
        lows = [float(torch.cat(c.growth).min()) for c in couplings]
        highs = [float(torch.cat(c.growth).max()) for c in couplings]
        for f in (fld, alt):
            if f is None:
                continue
            if f.growth_form != "xt":  # differences between cells that hold at all times
                lo, hi = [min(lows)] * len(lows), [max(highs)] * len(highs)
                f.set_growth_bounds([tr_times[0], tr_times[-1]], lo[:1], hi[:1])
            else:
                lo, hi = lows, highs
                f.set_growth_bounds(tr_times, lo, hi)
            bounds[f.growth_form] = (lo, hi)

    # ---- stage 2 with checkpoint selection ---------------------------------------------------
    x_start = tr_snaps[0]
    val_start = x_start[_subset(len(x_start), cfg.val_particles, gen).to(dev)]
    # fixed, bounded scoring targets: every observed cell of the snapshot, held back or not (a
    # random draw happens only above the cap); a few held-back cells alone rank checkpoints by
    # chance (a 1,000-cell data set holds back 11-37 cells per time point)
    score_targets = [None] + [
        y if v is None else torch.cat([v, y])[_subset(len(v) + len(y), cfg.val_targets,
                                                      gen).to(dev)]
        for v, y in zip(val_snaps[1:], tr_snaps[1:])
    ]
    t_val = [0.0]

    stage2_loss = resolve_stage2_loss(cfg.stage2_loss, int(snaps_all[0].shape[1]))
    score_cache: dict[int, torch.Tensor] = {}  # the scoring targets' own energy terms

    def score_of(f: VelocityGrowthField) -> float:
        t0 = _time.perf_counter()
        w1s, rmes, _ = rollout_scores(f, val_start, tr_times, score_targets, tr_rel,
                                      cfg.ode_steps, distance=SCORE_DISTANCE,
                                      cache=score_cache)
        t_val[0] += _time.perf_counter() - t0
        return float(np.nanmean(w1s)) / dist_unit + float(np.mean(rmes))

    def score() -> float:
        return score_of(fld)

    if alt is not None:
        # growth_form="auto": the time-free growth with the same stage-1 velocity; keep the
        # form whose rollout fits the observed snapshots (positions and sizes) better
        alt.velocity_net.load_state_dict(fld.velocity_net.state_dict())
        form_scores = {"xt": score_of(fld), "x": score_of(alt)}
        if form_scores["x"] < form_scores["xt"]:
            fld = alt
        logger.info("growth_form='auto': g(%s) selected (checkpoint score of the stage-1 "
                    "fields: g(x, t) %.4g, g(x) %.4g)", "x" if fld is alt else "x, t",
                    form_scores["xt"], form_scores["x"])
        if motion is not None:
            motion["growth_form"] = fld.growth_form
            motion["growth_form_score"] = [form_scores["xt"], form_scores["x"]]
        alt = None
    if motion is not None and fld.growth_form in bounds:
        motion["growth_low"], motion["growth_high"] = bounds[fld.growth_form]

    best_state = copy.deepcopy(fld.state_dict())
    best_score, best_step = score(), 0
    hist2, hist_val, val_steps = [], [best_score], [0]
    if cfg.stage2_steps > 0:
        groups = [{"params": fld.velocity_net.parameters(), "lr": cfg.stage2_lr}]
        growth_lr = cfg.stage2_lr if cfg.stage2_growth_lr is None else cfg.stage2_growth_lr
        if fld.growth_net is not None and growth_lr > 0:
            groups.append({"params": fld.growth_parameters(), "lr": growth_lr})
        opt2 = adam(groups)
        log_rel = torch.log(torch.tensor(tr_rel, device=dev))
        for step in tqdm(range(1, cfg.stage2_steps + 1), disable=not progress,
                         desc="VGFM stage 2", leave=False):
            idx = _subset(len(x_start), cfg.stage2_particles, gen).to(dev)
            xs, lms = integrate(fld, x_start[idx], tr_times, n_steps=cfg.ode_steps)
            loss_w = xs.new_zeros(())
            loss_m = xs.new_zeros(())
            for k in range(1, len(tr_times)):
                y = tr_snaps[k][_subset(len(tr_snaps[k]), cfg.stage2_targets, gen).to(dev)]
                w = torch.softmax(lms[k].double(), 0) if growth else None
                b = torch.full((len(y),), 1.0 / len(y), dtype=torch.float64, device=dev)
                a = w if growth else torch.full((len(idx),), 1.0 / len(idx),
                                                dtype=torch.float64, device=dev)
                # |x|^2 + |y|^2 - 2 x.y: two (particles, targets) matrices instead of a
                # (particles, targets, d) difference tensor (~70x faster with its backward)
                if stage2_loss == "energy":
                    loss_w = loss_w + energy_distance(xs[k], a, y, b) / dist_unit
                else:
                    d2 = squared_distances(xs[k].double(), y.double())
                    cost = torch.sqrt(d2 + 1e-12 * scale**2)
                    loss_w = loss_w + ot.emd2(a, b, cost) / dist_unit
                if growth:
                    log_mean_m = torch.logsumexp(lms[k], 0) - math.log(len(idx))
                    loss_m = loss_m + (log_mean_m - log_rel[k]) ** 2
            fm, _, _ = s1(fld, gen)
            loss = loss_w + cfg.mass_weight * loss_m + cfg.fm_weight * fm
            fld.zero_grad(set_to_none=True)  # also the growth net's, when frozen
            loss.backward()
            opt2.step()
            hist2.append(float(loss.detach()))
            if step % cfg.val_every == 0 or step == cfg.stage2_steps:
                sc = score()
                hist_val.append(sc)
                val_steps.append(step)
                if sc < best_score:
                    best_score, best_step = sc, step
                    best_state = copy.deepcopy(fld.state_dict())
    t_stage2 = _time.perf_counter()
    fld.load_state_dict(best_state)
    fld = fld.cpu().eval()
    seconds = _time.perf_counter() - start
    logger.info("trained in %.1fs; checkpoint of stage-2 step %d selected (score %.4g)",
                seconds, best_step, best_score)
    history = {
        "stage1_loss": hist1,
        "stage2_loss": np.asarray(hist2, dtype=float),
        "val_score": np.asarray(hist_val, dtype=float),
        "val_step": np.asarray(val_steps, dtype=int),
    }
    timing = {  # wall seconds per phase (setup = data transfer, splits, scale)
        "seconds_couplings": t_couplings - t_setup,
        "seconds_stage1": t_stage1 - t_couplings,
        "seconds_stage2": t_stage2 - t_stage1,
        "seconds_validation": t_val[0],
        "stage2_loss": stage2_loss,
    }
    if motion is not None:
        timing["growth_vs_motion"] = motion
    return TrainResult(fld, history, couplings, best_step, seconds, extra=timing)


def _check_seed(seed: object) -> int:
    """Seeds are integers in ``[0, 2**63)`` (what ``torch.Generator.manual_seed`` accepts)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r} ({type(seed).__name__}); "
                        "pass e.g. seed=0")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed!r}; pass e.g. seed=0")
    return int(seed)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device ({err}); "
                         "pass None (automatic), 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available on this "
                         "machine; pass device=None or 'cpu'")
    return dev
