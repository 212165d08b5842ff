"""Vectorised pair sampling from couplings and the velocity-growth matcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .couplings import IntervalCoupling


class PairSampler:
    """Draw ``(i, j)`` pairs from the blocks of an :class:`IntervalCoupling` with ``pi / |pi|``.

    All block plans are laid end to end in one float64 cumulative distribution (built once);
    a batch is one ``torch.searchsorted`` of uniforms followed by integer arithmetic that turns
    the flat position into (block, row, column) and then into global cell indices.  Sampling
    is with replacement, so batches may exceed the number of cells, and fully vectorised.

    Memory: 8 bytes per plan entry plus one entry per source row and target column of every
    block, i.e. ``O(sum of plan sizes)``, bounded by ``coupling_max_blocks * coupling_block**2``
    whatever the number of cells; a batch of ``n`` pairs costs ``O(n log(plan entries))``.

    Uniforms are drawn in float64 on the CPU from the given generator, so results are
    deterministic for a seed and identical on every device.

    Examples
    --------
    >>> import torch
    >>> from vgfm._core.couplings import IntervalCoupling
    >>> plan = torch.tensor([[0.5, 0.0], [0.0, 0.5]])
    >>> c = IntervalCoupling([torch.arange(2)], [torch.arange(2)], [plan], [torch.zeros(2)], 1.0)
    >>> i, j, g = PairSampler(c).sample(8, torch.Generator().manual_seed(0))
    >>> bool((i == j).all())
    True
    """

    def __init__(self, coupling: IntervalCoupling):
        plans = list(coupling.plans)
        if not plans:
            raise ValueError("the coupling has no blocks")
        device = plans[0].device
        cdf = torch.cumsum(torch.cat([p.reshape(-1).double() for p in plans]), 0)
        if not bool(cdf[-1] > 0):
            raise ValueError("the coupling has no mass")
        self._cdf = cdf / cdf[-1]
        sizes = torch.tensor([p.numel() for p in plans], device=device)
        self._entry_end = torch.cumsum(sizes, 0)  # flat position where each block ends
        self._entry_start = self._entry_end - sizes
        self._n_cols = torch.tensor([p.shape[1] for p in plans], device=device)
        rows = torch.tensor([p.shape[0] for p in plans], device=device)
        self._row_start = torch.cumsum(rows, 0) - rows
        self._col_start = torch.cumsum(self._n_cols, 0) - self._n_cols
        self._source = torch.cat(list(coupling.source)).to(device)
        self._target = torch.cat(list(coupling.target)).to(device)
        self._growth = torch.cat(list(coupling.growth)).to(device)

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return source indices, target indices and the growth targets of the source cells."""
        dev = self._cdf.device
        # uniforms on (0, 1]: an entry of zero mass is never chosen
        u = (1.0 - torch.rand(n, generator=generator, device="cpu", dtype=torch.float64)).to(dev)
        flat = torch.searchsorted(self._cdf, u).clamp_max_(len(self._cdf) - 1)
        blk = torch.searchsorted(self._entry_end, flat, right=True)
        local = flat - self._entry_start[blk]
        m = self._n_cols[blk]
        row = self._row_start[blk] + torch.div(local, m, rounding_mode="floor")
        col = self._col_start[blk] + local % m
        return self._source[row], self._target[col], self._growth[row]


#: Speed profiles of the interpolant along its path (see :func:`least_action_clock`).
SPEEDS = ("constant", "least_action")

#: Largest log-growth ``|g dt|`` over one interval that shapes the least-action clock.
MAX_LOG_GROWTH = 4.0


def least_action_clock(s: torch.Tensor, log_growth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fraction of the path covered at time fraction ``s`` by a cell whose mass grows by
    ``exp(G)`` over the interval, and its rate ``dτ/ds``.

    A cell of mass ``m(s) = exp(G s)`` that travels a fixed path in a fixed time with the least
    mass-weighted kinetic energy ``∫ m(s) |ẋ|² ds`` (the action of unbalanced dynamic optimal
    transport, where moving a large mass costs more) keeps ``m ẋ`` constant, so it moves fast
    while it is small::

        τ(s) = (1 - exp(-G s)) / (1 - exp(-G)),     dτ/ds = G exp(-G s) / (1 - exp(-G)).

    A growing cell covers most of its way early, a shrinking one late; ``G = 0`` is the
    constant speed of the straight interpolant.  ``G`` is clipped to
    ``±MAX_LOG_GROWTH`` (a 55-fold change), beyond which the speed profile is a jump.

    Examples
    --------
    >>> import torch
    >>> tau, rate = least_action_clock(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 2.0]))
    >>> [round(v, 4) for v in tau.tolist()]  # (1 - e^-1) / (1 - e^-2) for G = 2
    [0.5, 0.7311]
    """
    g = log_growth.clamp(-MAX_LOG_GROWTH, MAX_LOG_GROWTH)
    small = g.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(g), g)
    denom = -torch.expm1(-safe)
    tau = torch.where(small, s, -torch.expm1(-safe * s) / denom)
    rate = torch.where(small, torch.ones_like(s), safe * torch.exp(-safe * s) / denom)
    return tau, rate


@dataclass
class MatcherBatch:
    """One batch of the velocity-growth matching problem (all tensors on one device)."""

    t: torch.Tensor  #: (B, 1) real times t_k + s * dt
    x: torch.Tensor  #: (B, d) interpolated states
    u: torch.Tensor  #: (B, d) velocity targets
    g: torch.Tensor  #: (B, 1) growth targets


class VelocityGrowthMatcher:
    """Interpolant and regression targets of velocity-growth flow matching.

    For a pair ``(x_i, x_j)`` from interval ``[t_k, t_k + dt]`` and ``s ~ U[0, 1]``::

        x_s = (1 - s) x_i + s x_j + sigma * noise     (x_i at s = 0, x_j at s = 1)
        t   = t_k + s dt
        u   = (x_j - x_i) / dt
        g   = growth target of source cell i  (log(w_i / a_i) / dt)

    Parameters
    ----------
    sigma
        Standard deviation of the Gaussian noise, in the units of the data (the trainer passes
        ``sigma_rel * data_scale``).

    Examples
    --------
    >>> import torch
    >>> m = VelocityGrowthMatcher(sigma=0.0)
    >>> b = m.sample(torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1), t0=1.0, dt=2.0,
    ...              s=torch.tensor([0.5]))
    >>> b.x.tolist(), b.t.tolist(), b.u.tolist()
    ([[0.5, 0.5]], [[2.0]], [[0.5, 0.5]])
    """

    def __init__(self, sigma: float = 0.0, speed: str = "constant"):
        if speed not in SPEEDS:
            raise ValueError(f"speed must be one of {SPEEDS}, got {speed!r}")
        self.sigma = float(sigma)
        self.speed = speed

    def sample(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        growth: torch.Tensor,
        *,
        t0: float,
        dt: float,
        s: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        path: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
        noise_ends: tuple[float, float] | None = None,
    ) -> MatcherBatch:
        """Interpolate paired cells ``x0[b] -> x1[b]`` at times ``s`` (drawn when ``None``).

        ``path(x0, x1, s, dt)``, when given, returns the positions and velocities of a curved
        path between the pairs (e.g. :meth:`vgfm._core.routes.GraphRoutes.interpolate`) in
        place of the chord and its constant velocity; the noise is added to it alike.
        With ``sigma > 0``, ``noise_ends=(a, b)`` replaces the constant noise sd ``sigma`` by
        ``(1 - s) a + s b``
        (the noise follows the spread of the population from one snapshot to the next; the
        same random draws are used).
        """
        n = len(x0)
        if s is None:
            s = torch.rand(n, generator=generator, device="cpu").to(x0.device)
        s = s.to(x0.dtype).reshape(n, 1)
        if self.speed == "least_action":
            tau, rate = least_action_clock(s, growth.reshape(n, 1).to(x0.dtype) * dt)
        else:
            tau, rate = s, torch.ones_like(s)
        if path is None:
            xs, u = (1.0 - tau) * x0 + tau * x1, (x1 - x0) / dt
        else:
            xs, u = path(x0, x1, tau.reshape(n), dt)
        u = u * rate
        if self.sigma > 0:
            noise = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device)
            if noise_ends is None:
                xs = xs + self.sigma * noise
            else:
                xs = xs + ((1.0 - s) * noise_ends[0] + s * noise_ends[1]) * noise
        return MatcherBatch(
            t=t0 + s * dt, x=xs, u=u, g=growth.reshape(n, 1).to(x0.dtype)
        )
