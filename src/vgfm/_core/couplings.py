"""Semi-relaxed entropic optimal transport between consecutive snapshots.

The coupling between the cells of ``t_k`` (source) and ``t_{k+1}`` (target) solves::

    min_pi <C, pi> + eps * KL(pi | a b^T) + lam * KL(pi 1 | a)   s.t.  pi^T 1 = b

(source marginal relaxed, target marginal hard).  The row sums ``w = pi 1`` give the mass each
source cell grows to; ``log(w / a) / dt`` is its growth target.

The plan of each block comes from a registered solver (:mod:`vgfm._core.solvers`); the
default semi-relaxed solver is the log-domain Sinkhorn of :mod:`vgfm._core.sinkhorn`.

Masses are normalised per snapshot: a source cell at ``t_k`` carries ``r_k / n_k`` where ``r_k``
is the relative population size, so the problem is a discretisation of the underlying
populations and ``reg``/``reg_m`` mean the same thing whatever the number of cells.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .sinkhorn import semi_relaxed_sinkhorn, squared_distances
from .solvers import get_solver, uses_row_weights

logger = logging.getLogger("vgfm")

__all__ = [
    "IntervalCoupling",
    "affine_align",
    "cost_scale",
    "couple_interval",
    "motion_null_growth",
    "motion_reg_m",
    "displacement_floor",
]


@dataclass
class IntervalCoupling:
    """Sampled coupling of one interval ``[t_k, t_{k+1}]``.

    Attributes
    ----------
    source, target
        Global row indices (into the source / target snapshot) of the cells in each block.
    plans
        One plan per block, ``plans[b]`` of shape ``(len(source[b]), len(target[b]))``.
    growth
        Growth target ``log(w_i / a_i) / dt`` of every source cell of each block.
    dt
        Length of the interval in the user's time unit.
    row_weights
        The KL weight of every source row of each block when the solver used per-row weights
        (:func:`motion_reg_m`), else ``None``.
    null_growth
        With ``net_of_motion`` in the coupling options: the growth target the same plan gives
        each source cell of each block when no cell grows (:func:`couple_interval`), else
        ``None``; :meth:`net_growth` subtracts it.
    """

    source: list[torch.Tensor]
    target: list[torch.Tensor]
    plans: list[torch.Tensor]
    growth: list[torch.Tensor]
    dt: float
    row_weights: list[torch.Tensor] | None = None
    null_growth: list[torch.Tensor] | None = None

    def row_ratio(self) -> torch.Tensor:
        """``w_i / a_i`` for all source cells of all blocks, concatenated."""
        return torch.cat([torch.exp(g * self.dt) for g in self.growth])

    def net_growth(self) -> list[torch.Tensor]:
        """Growth targets net of motion, one tensor per block.

        ``γ_i - γ0_i + c``: the plan's target minus the one it gives the same cells when none
        grows (``null_growth``), plus the constant ``c`` that keeps the block's total mass,
        ``Σ_i exp(γ'_i dt) = Σ_i exp(γ_i dt)`` (the source cells of a block carry equal mass),
        so the population grows as much as before and only the differences between cells
        change.  Raises when the coupling was made without ``net_of_motion``.

        Examples
        --------
        >>> import torch
        >>> c = IntervalCoupling([torch.arange(2)], [torch.arange(2)], [torch.eye(2)],
        ...                      [torch.tensor([0.5, 0.1])], 1.0,
        ...                      null_growth=[torch.tensor([0.3, -0.1])])
        >>> net = c.net_growth()[0]
        >>> bool(abs(float(net[0] - net[1])) < 1e-6)  # the null's difference (0.4) is removed
        True
        >>> round(float(torch.exp(net).sum()), 6) == round(float(torch.exp(c.growth[0]).sum()), 6)
        True
        """
        if self.null_growth is None:
            raise ValueError("this coupling holds no null growth targets; couple it with "
                             "options={'net_of_motion': True}")
        out = []
        for g, g0 in zip(self.growth, self.null_growth):
            g, g0 = g.double(), g0.double().to(g.device)
            net = (g - g0) * self.dt
            shift = torch.logsumexp(g * self.dt, 0) - torch.logsumexp(net, 0)
            out.append(((net + shift) / self.dt).float())
        return out


def cost_scale(x0: torch.Tensor, x1: torch.Tensor, max_cells: int = 2000, generator=None) -> float:
    """Data-driven cost scale: the mean *excess* squared distance over the nearest source.

    ``mean_ij (C_ij - min_i' C_i'j)`` on at most ``max_cells`` random cells a side.  Removing the
    column minimum (which does not change a plan whose target marginal is hard) discards the
    noise floor ``2 sigma^2 d`` that isotropic noise adds to every squared distance in high
    dimension, so ``reg``/``reg_m`` keep their meaning from 2 to 1000 dimensions.
    """
    if len(x0) > max_cells:
        x0 = x0[torch.randperm(len(x0), generator=generator)[:max_cells].to(x0.device)]
    if len(x1) > max_cells:
        x1 = x1[torch.randperm(len(x1), generator=generator)[:max_cells].to(x1.device)]
    c = squared_distances(x0.double(), x1.double())
    excess = c - c.min(0, keepdim=True).values
    return float(excess.mean().clamp_min(1e-12))


def affine_align(x0: torch.Tensor, x1: torch.Tensor, *, rank: int = 10,
                 max_cells: int = 4000, generator: torch.Generator | None = None) -> torch.Tensor:
    """Map the target cloud ``x1`` onto the mean and covariance of the source cloud ``x0``.

    Semi-relaxed OT lowers its cost by giving mass to the source cells closest to the target,
    so a global translation or expansion of the population between two snapshots shows up as
    "growth" of the leading edge or of the rim (METHOD §8).  A global affine motion moves every
    cell alike and says nothing about which cells proliferate, so the plan's *weights* are
    computed after removing it: ``x1`` is mapped by the Gaussian optimal-transport map from
    ``N(mean1, cov1)`` to ``N(mean0, cov0)`` in the ``rank`` leading principal directions of
    the pooled, centred cells (ridge ``1e-3 * mean eigenvalue``), with an isotropic rescaling of
    the remaining directions (a full covariance is not estimable in 1000 dimensions from a
    thousand cells).  Only the coupling uses the aligned cloud; velocity targets use the real
    positions.  For exactly Gaussian clouds the aligned target is a sample of the source law,
    so the relaxed marginal has nothing to explain; mass imbalances between separated regions
    (branches, clusters) survive the alignment, since an affine map cannot change them.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x0 = torch.randn(500, 2, generator=g, dtype=torch.float64)
    >>> x1 = 3.0 * torch.randn(400, 2, generator=g, dtype=torch.float64) + 5.0
    >>> y = affine_align(x0, x1)
    >>> bool((y.mean(0) - x0.mean(0)).abs().max() < 1e-6)
    True
    >>> bool(((y.var(0) / x0.var(0)) - 1).abs().max() < 0.01)
    True
    """
    a, b = x0.double(), x1.double()
    if len(a) > max_cells:
        a = a[torch.randperm(len(a), generator=generator)[:max_cells].to(a.device)]
    if len(b) > max_cells:
        b = b[torch.randperm(len(b), generator=generator)[:max_cells].to(b.device)]
    m0, m1 = a.mean(0), b.mean(0)
    a_c, b_c = a - m0, b - m1
    d = a.shape[1]
    r = int(max(1, min(rank, d, len(a) - 1, len(b) - 1)))
    pooled = torch.cat([a_c, b_c])
    if r < d:
        _, _, vh = torch.linalg.svd(pooled, full_matrices=False)
        basis = vh[:r].T  # (d, r)
    else:
        basis = torch.eye(d, dtype=a.dtype, device=a.device)

    def cov(z: torch.Tensor) -> torch.Tensor:
        s = z.T @ z / max(1, len(z) - 1)
        ridge = 1e-3 * float(torch.diagonal(s).mean().clamp_min(1e-12))
        return s + ridge * torch.eye(len(s), dtype=s.dtype, device=s.device)

    def sqrtm(s: torch.Tensor) -> torch.Tensor:
        ev, vec = torch.linalg.eigh(s)
        return (vec * ev.clamp_min(0).sqrt()) @ vec.T

    s0, s1 = cov(a_c @ basis), cov(b_c @ basis)
    r1 = sqrtm(s1)
    r1_inv = torch.linalg.inv(r1)
    amap = r1_inv @ sqrtm(r1 @ s0 @ r1) @ r1_inv  # Gaussian OT map N(0, s1) -> N(0, s0)
    full = x1.double() - m1
    proj = full @ basis
    out = m0 + proj @ amap.T @ basis.T
    if r < d:
        res_a = a_c - (a_c @ basis) @ basis.T
        res_b = b_c - (b_c @ basis) @ basis.T
        s = torch.sqrt((res_a**2).sum(1).mean() / (res_b**2).sum(1).mean().clamp_min(1e-300))
        out = out + s * (full - proj @ basis.T)
    return out


#: Largest shift of a target cell by :func:`momentum_targets`, as a fraction of its distance to
#: the nearest source cell.
MOMENTUM_REACH = 0.5


def momentum_targets(x0: torch.Tensor, x1: torch.Tensor, velocity: torch.Tensor, lag: float, *,
                     max_sources: int = 4096, chunk: int = 8192,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Target cells moved back along their velocity, for the pairing of the interval before.

    Each target ``x1[j]`` becomes ``x1[j] - s_j``, where the shift ``s_j = lag * velocity[j]``
    is shortened, when needed, to :data:`MOMENTUM_REACH` (one half) times the distance from
    ``x1[j]`` to its nearest source cell (among at most ``max_sources`` random ones of
    ``x0``), so that a target cell never moves more than halfway to the source population.
    Without a cap the growth at the first intervals of branching generators came out
    reversed; with the whole distance allowed, iPSC's prediction narrowed and the ranking of
    cells by descendants dropped (measured in ``docs/method.md``).

    Examples
    --------
    >>> import torch
    >>> x0 = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    >>> x1 = torch.tensor([[1.0, 0.0], [10.0, 2.0]])
    >>> v = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
    >>> momentum_targets(x0, x1, v, 1.0).tolist()  # both shifts capped at half the distance
    [[0.5, 0.0], [10.0, 1.0]]
    """
    src = x0
    if len(src) > max_sources:
        src = src[torch.randperm(len(src), generator=generator)[:max_sources].to(src.device)]
    src = src.double()
    near = torch.cat([torch.cdist(part.double(), src).min(1).values
                      for part in torch.split(x1, chunk)])
    shift = lag * velocity.double()
    norm = shift.norm(dim=1).clamp_min(1e-300)
    shift = shift * (MOMENTUM_REACH * near / norm).clamp(max=1.0)[:, None]
    return (x1.double() - shift).to(x1.dtype)


def outgoing_velocity(x: torch.Tensor, y: torch.Tensor, coupling: IntervalCoupling) -> torch.Tensor:
    """Velocity of every source cell ``x`` on its interval: barycentric image under the plan
    minus the cell, over the interval length (``0`` for cells in no block).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0], [1.0]]); y = torch.tensor([[0.5], [3.0]])
    >>> plan = torch.tensor([[0.5, 0.0], [0.0, 0.5]])
    >>> c = IntervalCoupling([torch.arange(2)], [torch.arange(2)], [plan],
    ...                      [torch.zeros(2), torch.zeros(2)], 0.5)
    >>> outgoing_velocity(x, y, c).flatten().tolist()
    [1.0, 4.0]
    """
    u = torch.zeros_like(x)
    for src, tgt, plan in zip(coupling.source, coupling.target, coupling.plans):
        p = plan.to(x.dtype)
        image = (p @ y[tgt.to(y.device)]) / p.sum(1, keepdim=True).clamp_min(1e-30)
        u[src.to(x.device)] = (image - x[src.to(x.device)]) / coupling.dt
    return u


def displacement_floor(x0: torch.Tensor) -> torch.Tensor:
    """Squared displacement that noise alone gives a cell that does not move.

    Half the median squared distance from each cell of ``x0`` to its nearest other cell.  With
    isotropic noise of variance ``sigma**2`` per coordinate in ``d`` dimensions, two cells of
    one tight cluster are about ``2 sigma**2 d`` apart in squared distance, and a cell is about
    ``sigma**2 d`` from the mean of the cells around it -- which is where the balanced plan's
    barycentric image of a cell that stays puts it.  In low dimension or on dense data the
    nearest neighbour is much closer than that, and the floor is small.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = 0.1 * torch.randn(400, 1000, generator=g, dtype=torch.float64)  # sigma^2 d = 10
    >>> round(float(displacement_floor(x)), 1)  # a little below sigma^2 d: the nearest of 399
    8.9
    """
    xs = x0.double()
    d = squared_distances(xs, xs)
    d.fill_diagonal_(math.inf)
    return 0.5 * d.min(1).values.median()


def motion_reg_m(x0: torch.Tensor, x1: torch.Tensor, cost: torch.Tensor, a: torch.Tensor,
                 b: torch.Tensor, *, reg: float, reg_m: float, stiffness: float,
                 tol: float = 1e-5, max_iter: int = 2000,
                 noise_floor: bool = False) -> torch.Tensor:
    """Per-source-cell KL weight: stiff where the cell has to move, soft where it stays.

    Semi-relaxed OT reads motion as growth: when a cloud moves or spreads, the cells at its
    leading edge or rim are closer to the target and the plan gives them more mass (METHOD §8).
    That false growth is proportional to how far cells travel, whereas a population that
    gains or loses cells *in place* (a stationary cluster that proliferates) needs no
    transport at all.  So each source cell ``i`` gets the weight

        ``reg_m_i = reg_m * (1 + stiffness * d_i**2 / mean(d**2))``

    where ``d_i`` is the distance from ``x0[i]`` to its barycentric image under the
    *balanced* entropic plan (same cost and ``reg``, source mass rescaled to the target's
    total).  Cells that must travel far keep their mass unless the data strongly demand
    otherwise; cells that stay put can grow or shrink as freely as ``reg_m`` allows.  With
    ``stiffness=0`` every cell gets ``reg_m``.

    With ``noise_floor=True`` only the displacement beyond what noise gives a cell that stays
    (:func:`displacement_floor`, ``f``) counts:

        ``reg_m_i = reg_m * (1 + stiffness * max(d_i**2 - f, 0) / mean(d**2))``.

    In high dimension noise dominates every displacement (1000 coordinates with variance
    0.005 put a cell that stays about 5 from its image, against 1 for a cell that travels one
    unit), so the raw weights are nearly the same for all cells -- a uniform stiffening that
    pushes growth into transport.  Net of the floor, a cell is stiffened only for how far it
    travels beyond the noise, and where noise is most of every displacement the stiffening
    fades (the mean of ``d**2`` stays the unit).  On dense low-dimensional data ``f`` is small
    and the weights barely change.

    Examples
    --------
    >>> import torch
    >>> from vgfm._core.sinkhorn import squared_distances
    >>> x0 = torch.tensor([[0.0], [0.1], [5.0]], dtype=torch.float64)
    >>> x1 = torch.tensor([[0.0], [0.1], [0.05]], dtype=torch.float64)
    >>> c = squared_distances(x0, x1); c = c / c.mean()
    >>> a = torch.full((3,), 1 / 3, dtype=torch.float64)
    >>> lam = motion_reg_m(x0, x1, c, a, a, reg=0.01, reg_m=0.5, stiffness=10.0)
    >>> bool(lam[2] > 10 * lam[0])  # the cell that must travel is much stiffer
    True
    """
    if stiffness <= 0:
        return torch.full_like(a, reg_m)
    balanced = semi_relaxed_sinkhorn(cost, a * (b.sum() / a.sum()), b, reg, math.inf, tol=tol,
                                     max_iter=max_iter)
    image = (balanced @ x1.to(balanced.dtype)) / balanced.sum(1, keepdim=True).clamp_min(1e-300)
    d2 = ((image - x0.to(balanced.dtype)) ** 2).sum(1)
    excess = (d2 - displacement_floor(x0)).clamp_min(0.0) if noise_floor else d2
    return reg_m * (1.0 + stiffness * excess / d2.mean().clamp_min(1e-300))


def couple_interval(
    x0: torch.Tensor,
    x1: torch.Tensor,
    *,
    mass0: float,
    mass1: float,
    dt: float,
    solver: str = "semi_relaxed",
    options: Mapping[str, Any] | None = None,
    max_block: int,
    max_blocks: int,
    source_prior: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> IntervalCoupling:
    """Couplings of one interval, in blocks of at most ``max_block`` cells a side.

    When both snapshots have at most ``max_block`` cells the plan is the full-data plan.
    Otherwise the source cells are split at random into ``min(ceil(n0 / max_block), max_blocks)``
    blocks and each is coupled to a random target subset of proportional size; masses are
    normalised per block (``mass0 / |block|``, ``mass1 / |target subset|``) so every block is
    a discretisation of the same two populations and its row ratios estimate the full plan's.
    Memory is bounded by ``max_blocks * max_block**2``, whatever the number of cells: the
    kept plans are float32 (defaults 2048 and 8: 134 MB per interval), and one block at a time
    needs a few float64 ``max_block**2`` work matrices (~32 MB each).  Time is
    ``O(max_blocks * max_block**2)`` per Sinkhorn iteration, also independent of the number of
    cells; ``benchmarks/coupling_blocks.py`` compares the blocked growth targets with those
    of the full plan.

    Parameters
    ----------
    x0, x1
        Source and target cells.
    mass0, mass1
        Relative population sizes ``r_k`` and ``r_{k+1}`` (the totals of the two marginals).
    dt
        Interval length; growth targets are ``log(w/a) / dt``.
    solver, options
        Name of a registered coupling solver (:mod:`vgfm._core.solvers`) and its options
        (e.g. ``{"reg": 0.01, "reg_m": 0.5}`` for ``"semi_relaxed"``). With
        ``"reg_m_motion" > 0`` and a solver registered with ``row_weights=True`` each block's
        source rows get the weights of :func:`motion_reg_m` (net of the noise floor with
        ``"motion_noise_floor": True``).  With ``"net_of_motion": True``
        (and a finite ``reg_m``) each block is solved a second time, to the target cells
        reweighted by the plan's own rows with every source cell keeping its mass, and that
        plan's growth targets are kept as ``null_growth`` (:meth:`IntervalCoupling.net_growth`).
    max_block, max_blocks
        Bounds on the block size and count.
    source_prior
        Optional positive prior on the relative growth of each source cell (e.g. from
        proliferation/apoptosis gene scores).  The relaxed source marginal is penalised for
        deviating from ``a_i * prior_i`` (prior rescaled to keep the total ``mass0``) instead of
        from ``a_i``; growth targets stay ``log(w_i / a_i) / dt``, so a prior shifts them.
    generator
        Torch generator (CPU) for the random blocks.

    Examples
    --------
    >>> import torch
    >>> x0 = torch.tensor([[0.0], [1.0]]); x1 = torch.tensor([[0.1], [1.1], [1.2]])
    >>> c = couple_interval(x0, x1, mass0=1.0, mass1=1.5, dt=1.0, solver="semi_relaxed",
    ...                     options={"reg": 0.05, "reg_m": 1.0}, max_block=64, max_blocks=1)
    >>> round(float(c.row_ratio().mean()), 4)  # mean growth factor = population ratio
    1.5
    """
    fn = get_solver(solver)
    opts = dict(options or {})
    n0, n1 = len(x0), len(x1)
    if source_prior is not None:
        source_prior = torch.as_tensor(source_prior, dtype=torch.float64).reshape(-1)
        if len(source_prior) != n0 or not bool((source_prior > 0).all()) or not bool(
                torch.isfinite(source_prior).all()):
            raise ValueError(
                f"source_prior must hold {n0} positive finite values (one per source cell), "
                f"got shape {tuple(source_prior.shape)}")
    net = bool(opts.get("net_of_motion", False)) and math.isfinite(
        float(opts.get("reg_m", math.inf)))
    geometry = opts.get("coupling_geometry", "euclidean")
    if geometry == "affine":
        x1 = affine_align(x0, x1, generator=generator).to(x1.dtype)
    elif geometry != "euclidean":
        raise ValueError(f"coupling_geometry must be 'euclidean' or 'affine', got {geometry!r}")
    motion = float(opts.get("reg_m_motion", 0.0) or 0.0)
    if not (uses_row_weights(solver) and math.isfinite(float(opts.get("reg_m", math.inf)))):
        motion = 0.0  # the solver ignores per-row weights, or the coupling is balanced
    scale = cost_scale(x0, x1, generator=generator)
    n_blocks = max(1, min(math.ceil(max(n0, n1) / max_block), max_blocks))
    if n_blocks == 1 and n0 <= max_block and n1 <= max_block:
        src_blocks = [torch.arange(n0)]
        tgt_blocks = [torch.arange(n1)]
    else:
        perm0 = torch.randperm(n0, generator=generator)
        size0 = min(max_block, math.ceil(n0 / n_blocks))
        size1 = min(max_block, max(2, round(size0 * n1 / n0)))
        if size1 == max_block:  # keep the ratio when the target side is the larger one
            size0 = min(size0, max(2, round(size1 * n0 / n1)))
        src_blocks = [perm0[i * size0 : (i + 1) * size0] for i in range(n_blocks)]
        src_blocks = [s for s in src_blocks if len(s) > 1]
        tgt_blocks = [torch.randperm(n1, generator=generator)[:size1] for _ in src_blocks]
    sources, targets, plans, growth, rows, nulls = [], [], [], [], [], []
    for s_idx, t_idx in zip(src_blocks, tgt_blocks):
        s_dev, t_dev = s_idx.to(x0.device), t_idx.to(x1.device)
        xs, xt = x0[s_dev], x1[t_dev]
        c = squared_distances(xs.double(), xt.double())
        c = (c - c.min(0, keepdim=True).values) / scale
        a = torch.full((len(s_idx),), mass0 / len(s_idx), dtype=torch.float64, device=x0.device)
        b = torch.full((len(t_idx),), mass1 / len(t_idx), dtype=torch.float64, device=x0.device)
        a_ref = a
        if source_prior is not None:
            p = source_prior[s_idx].to(x0.device)
            a_ref = a * p / p.mean()
        block_opts = opts
        if motion > 0:
            block_opts = {**opts, "reg_m_rows": motion_reg_m(
                xs.double(), xt.double(), c, a_ref, b, reg=float(opts["reg"]),
                reg_m=float(opts["reg_m"]), stiffness=motion,
                tol=float(opts.get("sinkhorn_tol", 1e-5)),
                max_iter=int(opts.get("sinkhorn_max_iter", 2000)),
                noise_floor=bool(opts.get("motion_noise_floor", False)))}
            rows.append(block_opts["reg_m_rows"])
        plan = fn(c, a_ref, b, block_opts)
        w = plan.sum(1)
        if net:
            # the same cells moving as the plan says without growing: each source cell sends
            # its own reference mass along its row, and the plan to that population is what
            # the coupling reports when nothing grows
            b0 = (a_ref[:, None] * plan / w[:, None].clamp_min(1e-300)).sum(0)
            w0 = fn(c, a_ref, b0, block_opts).sum(1)
            nulls.append((torch.log(w0.clamp_min(1e-300) / a_ref) / dt).float())
        sources.append(s_dev)
        targets.append(t_dev)
        plans.append(plan.float())
        growth.append((torch.log(w.clamp_min(1e-300) / a) / dt).float())
    return IntervalCoupling(sources, targets, plans, growth, float(dt),
                            rows if motion > 0 else None, nulls if net else None)


def motion_null_growth(
    x0: torch.Tensor,
    x1: torch.Tensor,
    coupling: IntervalCoupling,
    *,
    mass0: float,
    solver: str = "semi_relaxed",
    options: Mapping[str, Any] | None = None,
    draws: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Growth targets the same coupling reports for the same motion *without* growth.

    The semi-relaxed plan reads motion as growth (METHOD §8): when a cloud shifts or spreads,
    the cells nearest the next snapshot receive more mass even if no cell divides or dies.
    This builds the population that the plan's motion would give without growth -- each source
    cell ``i`` leaves its own mass ``a_i``, split over ``draws`` end points drawn from its row of
    the plan, ``π_ij / w_i`` -- and couples the source cells to it again, with the same solver,
    options and interval and, when the plan has them, the same per-cell KL weights
    (``coupling.row_weights``: the null moves every cell as far as the real plan does, so its
    relaxation is the same; this also spares recomputing them).  The growth targets of that
    second plan are what the method reports when there is nothing to report: where the real
    targets look like them, the data do not tell growth from motion.  Growth *between* separate
    regions (a cluster that proliferates in place) survives, because each cell's end points
    stay in its own region.

    Parameters
    ----------
    x0, x1
        Source and target cells of the interval.
    coupling
        The interval's coupling (:func:`couple_interval` on ``x0``, ``x1``), one block or more.
    mass0
        Relative population size of the source; the null target gets the same total.
    solver, options
        As for :func:`couple_interval`.
    draws
        End points drawn per source cell (the null target has ``draws`` times as many cells).
    generator
        Torch generator (CPU) for the draws and the blocks.

    Returns
    -------
    Null growth target of every source cell (``NaN`` for cells in no block), float64.

    Examples
    --------
    A cloud that shifts and spreads without growth: the real targets *are* the null ones.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x0 = torch.randn(300, 2, generator=g, dtype=torch.float64)
    >>> x1 = 1.5 * torch.randn(300, 2, generator=g, dtype=torch.float64) + 1.0
    >>> opts = {"reg": 0.01, "reg_m": 0.5}
    >>> c = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, options=opts,
    ...                     max_block=512, max_blocks=1, generator=g)
    >>> null = motion_null_growth(x0, x1, c, mass0=1.0, options=opts, generator=g)
    >>> real = torch.cat(c.growth).double()
    >>> bool(torch.corrcoef(torch.stack([real, null]))[0, 1] > 0.9)
    True
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    null = torch.full((len(x0),), float("nan"), dtype=torch.float64)
    weights = coupling.row_weights or [None] * len(coupling.plans)
    for s_idx, t_idx, plan, w in zip(coupling.source, coupling.target, coupling.plans, weights):
        p = plan.double().cpu()
        rows = p / p.sum(1, keepdim=True).clamp_min(1e-300)
        pick = torch.multinomial(rows, draws, replacement=True, generator=generator)
        ends = x1[t_idx.to(x1.device)][pick.reshape(-1).to(x1.device)]
        # the same per-cell relaxation as the real plan: the null moves the cells alike
        opts = dict(options or {}) if w is None else {**(options or {}), "reg_m_rows": w,
                                                       "reg_m_motion": 0.0}
        opts["net_of_motion"] = False  # the raw targets of the null are what is compared
        c = couple_interval(x0[s_idx.to(x0.device)], ends, mass0=mass0, mass1=mass0,
                            dt=coupling.dt, solver=solver, options=opts,
                            max_block=max(len(s_idx), len(ends)), max_blocks=1,
                            generator=generator)
        null[s_idx.cpu()] = c.growth[0].double().cpu()
    return null
