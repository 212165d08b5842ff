"""Vectorised pair sampling from couplings and the velocity-growth matcher."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .couplings import IntervalCoupling


class PairSampler:
    """Draw ``(i, j)`` pairs from the blocks of an :class:`IntervalCoupling` with ``pi / |pi|``.

    All block plans are flattened into one cumulative distribution once; a batch is then one
    ``torch.searchsorted`` on uniforms (with replacement, so batches may exceed the number of
    cells).

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
        probs, src, tgt, grw = [], [], [], []
        for s, t, p, g in zip(coupling.source, coupling.target, coupling.plans, coupling.growth):
            m = p.shape[1]
            flat = p.reshape(-1)
            probs.append(flat)
            rows = torch.arange(p.shape[0], device=p.device).repeat_interleave(m)
            cols = torch.arange(m, device=p.device).repeat(p.shape[0])
            src.append(s[rows])
            tgt.append(t[cols])
            grw.append(g[rows])
        probs_all = torch.cat(probs).double()
        keep = probs_all > probs_all.max() * 1e-12
        cdf = torch.cumsum(probs_all[keep], 0)
        self._cdf = (cdf / cdf[-1]).float()
        self._src = torch.cat(src)[keep]
        self._tgt = torch.cat(tgt)[keep]
        self._growth = torch.cat(grw)[keep]

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return source indices, target indices and the growth targets of the source cells."""
        u = torch.rand(n, generator=generator, device="cpu").to(self._cdf.device)
        k = torch.searchsorted(self._cdf, u).clamp_max_(len(self._cdf) - 1)
        return self._src[k], self._tgt[k], self._growth[k]


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
