"""ODE integration of ``dx/dt = v(x, t)``, ``d log m / dt = g(x, t)`` with torchdiffeq."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchdiffeq import odeint


class _Rhs(nn.Module):
    def __init__(self, field: nn.Module, dim: int):
        super().__init__()
        self.field = field
        self.dim = dim

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        v, g = self.field(t, y[:, : self.dim])
        return torch.cat([v, g], 1)


def integrate(
    field: nn.Module,
    x0: torch.Tensor,
    t: Sequence[float] | torch.Tensor,
    *,
    log_mass0: torch.Tensor | None = None,
    n_steps: int = 10,
    method: str = "rk4",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate particles through a velocity-growth field.

    Between consecutive output times the solver takes ``n_steps`` equal steps (fixed-grid
    ``method``, default classical Runge-Kutta), so every output time is hit exactly, whatever
    the spacing of ``t``.

    Parameters
    ----------
    field
        Module with ``field(t, x) -> (v, g)`` (e.g. :class:`~vgfm._core.networks.VelocityGrowthField`).
    x0
        ``(N, d)`` initial states at ``t[0]``.
    t
        Increasing output times (at least one).
    log_mass0
        ``(N,)`` initial log-masses (default 0).
    n_steps
        Solver steps per output interval.
    method
        Any fixed-grid torchdiffeq method (``"rk4"``, ``"midpoint"``, ``"euler"``) or an adaptive
        one (``"dopri5"``), for which ``n_steps`` is ignored.

    Returns
    -------
    ``x`` of shape ``(T, N, d)`` and ``log_mass`` of shape ``(T, N)``.

    Examples
    --------
    >>> import torch
    >>> class Const(torch.nn.Module):
    ...     def forward(self, t, x):
    ...         return torch.ones_like(x), torch.full((len(x), 1), 0.5)
    >>> x, lm = integrate(Const(), torch.zeros(3, 2), [0.0, 2.0])
    >>> x[-1, 0].tolist(), round(float(lm[-1, 0]), 6)
    ([2.0, 2.0], 1.0)
    """
    t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device).reshape(-1)
    n, d = x0.shape
    lm0 = torch.zeros(n, dtype=x0.dtype, device=x0.device) if log_mass0 is None else log_mass0
    y = torch.cat([x0, lm0.reshape(n, 1).to(x0.dtype)], 1)
    rhs = _Rhs(field, d)
    if len(t) == 1:
        ys = y[None]
    elif method in ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2"):
        ys = odeint(rhs, y, t, method=method, rtol=1e-5, atol=1e-6)
    else:
        if bool((t[1:] <= t[:-1]).any()):
            raise ValueError("integration times must be strictly increasing")
        steps = max(1, int(n_steps))
        frac = torch.arange(steps, dtype=t.dtype, device=t.device) / steps
        grid = torch.cat([(t[:-1, None] + (t[1:] - t[:-1])[:, None] * frac).reshape(-1), t[-1:]])

        def _grid(func, y0, t_out):  # every output time is a grid node: no interpolation
            return grid

        ys = odeint(rhs, y, t, method=method, options={"grid_constructor": _grid})
    return ys[..., :d], ys[..., d]


def grid_times(observed: Sequence[float], n_per_interval: int) -> list[float]:
    """Observed times plus ``n_per_interval - 1`` equally spaced points inside each interval."""
    obs = [float(v) for v in observed]
    out: list[float] = []
    for a, b in zip(obs[:-1], obs[1:]):
        out += [a + (b - a) * i / n_per_interval for i in range(n_per_interval)]
    out.append(obs[-1])
    return sorted(set(out), key=lambda v: (v, math.copysign(1, v)))
