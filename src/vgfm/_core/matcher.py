"""Vectorised pair sampling from couplings and the velocity-growth matcher."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .couplings import IntervalCoupling


class PairSampler:
    """Draw ``(i, j)`` pairs from the blocks of an :class:`IntervalCoupling` with ``pi / |pi|``.

    Sampling is hierarchical and vectorised over the batch (with replacement, so batches may
    exceed the number of cells):

    1. a source row of all blocks together, with probability proportional to its row sum
       (this picks a block with probability proportional to its mass, then a row within it
       proportional to the row sums): one ``torch.searchsorted`` on the cumulative row sums;
    2. a column of the chosen row, with probability proportional to the plan entries of that
       row: the selected rows are gathered (``batch x block columns``), cumulated and searched,
       one vectorised call per block (at most ``coupling_max_blocks`` blocks).

    Memory: the sampler keeps references to the block plans (no copy) plus three tensors with
    one entry per source row of all blocks, i.e. ``O(sum of plan sizes)`` in total and
    ``O(rows)`` on top of the plans; a batch of ``n`` pairs allocates ``O(n * block columns)``
    temporarily.  (Flattening every plan into index arrays would cost ~24 bytes per plan
    entry: ~800 MB per interval for 8 blocks of 2048 x 2048.)

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
        self._source = list(coupling.source)
        self._target = list(coupling.target)
        self._plans = list(coupling.plans)
        self._growth = list(coupling.growth)
        if not self._plans:
            raise ValueError("the coupling has no blocks")
        device = self._plans[0].device
        row_mass = torch.cat([p.double().sum(1) for p in self._plans])
        if not bool(row_mass.sum() > 0):
            raise ValueError("the coupling has no mass")
        cdf = torch.cumsum(row_mass, 0)
        self._row_cdf = cdf / cdf[-1]  # (total rows,) float64
        sizes = [p.shape[0] for p in self._plans]
        self._row_block = torch.repeat_interleave(
            torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device)
        )
        self._row_local = torch.cat([torch.arange(s, device=device) for s in sizes])

    @staticmethod
    def _uniform(n: int, generator, device) -> torch.Tensor:
        """Uniforms on ``(0, 1]`` (never 0, so an entry of zero mass is never chosen)."""
        u = torch.rand(n, generator=generator, device="cpu", dtype=torch.float64)
        return (1.0 - u).to(device)

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return source indices, target indices and the growth targets of the source cells."""
        dev = self._row_cdf.device
        u_row = self._uniform(n, generator, dev)
        u_col = self._uniform(n, generator, dev)
        r = torch.searchsorted(self._row_cdf, u_row).clamp_max_(len(self._row_cdf) - 1)
        blk, loc = self._row_block[r], self._row_local[r]
        src = torch.empty(n, dtype=self._source[0].dtype, device=dev)
        tgt = torch.empty(n, dtype=self._target[0].dtype, device=dev)
        grw = torch.empty(n, dtype=self._growth[0].dtype, device=dev)
        for b, plan in enumerate(self._plans):
            sel = (blk == b).nonzero().squeeze(1) if len(self._plans) > 1 else None
            rows = loc if sel is None else loc[sel]
            if len(rows) == 0:
                continue
            cum = torch.cumsum(plan[rows], 1, dtype=torch.float64)  # (pairs in block, columns)
            val = (u_col if sel is None else u_col[sel]) * cum[:, -1]
            col = torch.searchsorted(cum, val[:, None]).squeeze(1).clamp_max_(plan.shape[1] - 1)
            if sel is None:
                src, tgt, grw = self._source[b][rows], self._target[b][col], self._growth[b][rows]
            else:
                src[sel] = self._source[b][rows]
                tgt[sel] = self._target[b][col]
                grw[sel] = self._growth[b][rows]
        return src, tgt, grw


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

    def __init__(self, sigma: float = 0.0):
        self.sigma = float(sigma)

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
    ) -> MatcherBatch:
        """Interpolate paired cells ``x0[b] -> x1[b]`` at times ``s`` (drawn when ``None``)."""
        n = len(x0)
        if s is None:
            s = torch.rand(n, generator=generator, device="cpu").to(x0.device)
        s = s.to(x0.dtype).reshape(n, 1)
        xs = (1.0 - s) * x0 + s * x1
        if self.sigma > 0:
            noise = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device)
            xs = xs + self.sigma * noise
        return MatcherBatch(
            t=t0 + s * dt, x=xs, u=(x1 - x0) / dt, g=growth.reshape(n, 1).to(x0.dtype)
        )
