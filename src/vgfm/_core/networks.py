"""Velocity and growth networks: MLPs of ``(x, t)`` with built-in input normalisation."""

from __future__ import annotations

import torch
from torch import nn


def mlp(d_in: int, d_out: int, hidden: int, n_layers: int) -> nn.Sequential:
    """``n_layers`` hidden layers of width ``hidden`` with SiLU activations."""
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(n_layers):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class VelocityGrowthField(nn.Module):
    """Joint field ``(v(x, t), g(x, t))`` in the user's units.

    Inputs are standardised internally, ``x~ = (x - center) / scale`` and
    ``t~ = (t - t_start) / t_span``; the velocity network predicts in standardised units, so
    ``v = v~ * scale / t_span`` and ``g = g~ / t_span``.  ``growth=False`` (the OT-CFM
    baseline) makes ``g`` identically zero.

    Examples
    --------
    >>> import torch
    >>> f = VelocityGrowthField(2, center=torch.zeros(2), scale=1.0, t_start=0.0, t_span=1.0)
    >>> v, g = f(torch.zeros(5, 1), torch.zeros(5, 2))
    >>> v.shape, g.shape
    (torch.Size([5, 2]), torch.Size([5, 1]))
    """

    def __init__(
        self,
        dim: int,
        *,
        center: torch.Tensor,
        scale: float,
        t_start: float,
        t_span: float,
        hidden: int = 64,
        n_layers: int = 3,
        growth: bool = True,
        growth_time: bool = True,
    ):
        super().__init__()
        self.dim = dim
        self.growth = growth
        self.velocity_net = mlp(dim + 1, dim, hidden, n_layers)
        self.growth_time = bool(growth_time)
        g_in = dim + 1 if self.growth_time else dim
        self.growth_net = mlp(g_in, 1, hidden, n_layers) if growth else None
        self.register_buffer("center", center.detach().clone().float().reshape(dim))
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("t_start", torch.tensor(float(t_start)))
        self.register_buffer("t_span", torch.tensor(float(t_span)))

    def _inputs(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(len(x))
        t = t.reshape(len(x), 1)
        return torch.cat([(x - self.center) / self.scale, (t - self.t_start) / self.t_span], 1)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity ``(N, d)`` and growth rate ``(N, 1)`` at states ``x`` and times ``t``."""
        z = self._inputs(t, x)
        v = self.velocity_net(z) * (self.scale / self.t_span)
        if self.growth_net is None:
            g = torch.zeros(len(x), 1, dtype=x.dtype, device=x.device)
        else:
            g = self.growth_net(z if self.growth_time else z[:, : self.dim]) / self.t_span
        return v, g
