"""Velocity and growth networks: MLPs of ``(x, t)`` with built-in input normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def adam(params: Any, **kwargs: Any) -> torch.optim.Adam:
    """:class:`torch.optim.Adam` with the fused kernel where the parameters' device has one.

    The fused update is the same algorithm in one kernel per step instead of a dozen per
    parameter tensor (about half the optimiser's time for these small networks on a CPU); it
    differs from the loop only by the rounding of the last bits.  Torch versions without a
    fused kernel for the device get the loop.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1)
    >>> opt = adam(net.parameters(), lr=1e-3)
    >>> opt.param_groups[0]["lr"]
    0.001
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/version
        return torch.optim.Adam(params, **kwargs)


#: ``"xt"``: ``g(x, t)``; ``"x+t"``: ``g(x) + c(t)``; ``"x"``: ``g(x)``.
GROWTH_FORMS = ("xt", "x+t", "x")
#: What the networks see of ``x``: the globally standardised state, or beside it the state
#: relative to the population at ``t`` (:meth:`VelocityGrowthField.set_input_frame`).
INPUT_FRAMES = ("global", "global+time")


class VelocityGrowthField(nn.Module):
    """Joint field ``(v(x, t), g(x, t))`` in the user's units.

    Inputs are standardised internally, ``x~ = (x - center) / scale`` and
    ``t~ = (t - t_start) / t_span``; the velocity network predicts in standardised units, so
    ``v = v~ * scale / t_span`` and ``g = g~ / t_span``.  ``growth=False`` (the OT-CFM
    baseline) makes ``g`` identically zero.  ``growth_form`` sets what the growth rate may
    depend on: ``"xt"`` the state and time, ``"x+t"`` a state-dependent rate plus one rate
    shared by all cells at each time, ``"x"`` the state only.  ``input_frame`` sets what the
    networks see of ``x``: ``"global"`` the standardisation above; ``"global+time"`` beside
    it the state relative to the population at ``t`` (:meth:`set_input_frame`; until a frame
    is set, the population's frame is the global one). A time-free growth (``"x"``, ``"x+t"``)
    sees the global coordinates only.

    :meth:`set_growth_bounds` bounds the growth rate on each interval ``[t_k, t_{k+1})`` by
    the range of the growth targets of that interval's coupling (set by
    :func:`vgfm._core.train.train` after stage 1): the network then never reports a rate that
    no coupling implied, however far a trajectory strays from the observed cells.

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
        growth_form: str = "xt",
        input_frame: str = "global",
    ):
        super().__init__()
        self.dim = dim
        self.growth = growth
        if input_frame not in INPUT_FRAMES:
            raise ValueError(f"input_frame must be one of {INPUT_FRAMES}, got {input_frame!r}")
        self.input_frame = input_frame
        d_in = 2 * dim if input_frame == "global+time" else dim
        self.velocity_net = mlp(d_in + 1, dim, hidden, n_layers)
        if growth_form not in GROWTH_FORMS:
            raise ValueError(f"growth_form must be one of {GROWTH_FORMS}, got {growth_form!r}")
        self.growth_form = growth_form
        # a time-free growth ("x", "x+t") sees the global coordinates only: the population's
        # frame moves with t
        g_in = d_in + 1 if growth_form == "xt" else dim
        self.growth_net = mlp(g_in, 1, hidden, n_layers) if growth else None
        # "x+t": a rate common to all cells at time t, added to the state-dependent g(x)
        self.growth_offset = (mlp(1, 1, max(4, hidden // 4), 2)
                              if growth and growth_form == "x+t" else None)
        self.register_buffer("center", center.detach().clone().float().reshape(dim))
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("t_start", torch.tensor(float(t_start)))
        self.register_buffer("t_span", torch.tensor(float(t_span)))
        # optional per-interval bounds of g (user units); None: unbounded (older fields)
        self.register_buffer("growth_knots", None)
        self.register_buffer("growth_low", None)
        self.register_buffer("growth_high", None)
        # optional time-dependent input frame (set_input_frame); None: the global one above
        self.register_buffer("frame_knots", None)
        self.register_buffer("frame_center", None)
        self.register_buffer("frame_log_scale", None)

    def set_input_frame(self, knots: Sequence[float] | torch.Tensor | None,
                        centers: torch.Tensor | None = None,
                        scales: Sequence[float] | torch.Tensor | None = None) -> None:
        """Give the networks ``x`` relative to the population at time ``t`` (fields built with
        ``input_frame="global+time"``).

        With knots ``t_k``, centres ``c_k`` and scales ``s_k`` (one per snapshot) the networks
        see ``(x - c(t)) / s(t)`` beside the global ``(x - center) / scale``, with ``c`` and
        ``s`` interpolated linearly between knots (held constant outside them).  A tight early population and a wide late
        one then both fill the unit ball the networks see, so a field that must separate the
        cells of a tight cluster need not be sharper in its input than one that moves a wide
        cloud, while structure that stays in place keeps one input at all times in the global
        coordinates.  Outputs stay in user units.  ``knots=None`` removes the frame (the global
        coordinates are then given twice).

        Examples
        --------
        >>> import torch
        >>> f = VelocityGrowthField(1, center=torch.zeros(1), scale=1.0, t_start=0.0,
        ...                         t_span=2.0, input_frame="global+time")
        >>> f.set_input_frame([0.0, 2.0], torch.tensor([[0.0], [4.0]]), [1.0, 4.0])
        >>> z = f._inputs(torch.tensor(1.0), torch.tensor([[4.5]]))[1]  # c = 2, s = 2.5 at t = 1
        >>> [round(float(v), 4) for v in z[0]]  # global x, (x - c) / s, time
        [4.5, 1.0, 0.5]
        """
        if knots is None:
            self.frame_knots = self.frame_center = self.frame_log_scale = None
            return
        if self.input_frame != "global+time":
            raise ValueError(f"an input frame needs a field built with "
                             f"input_frame='global+time', this one has {self.input_frame!r}")
        ref = self.center
        knots = torch.as_tensor(knots, dtype=ref.dtype, device=ref.device).reshape(-1)
        centers = torch.as_tensor(centers, dtype=ref.dtype, device=ref.device)
        scales = torch.as_tensor(scales, dtype=ref.dtype, device=ref.device).reshape(-1)
        if (len(knots) < 1 or centers.shape != (len(knots), self.dim)
                or len(scales) != len(knots)):
            raise ValueError(f"an input frame needs K knots, (K, {self.dim}) centres and K "
                             f"scales, got {len(knots)}, {tuple(centers.shape)}, {len(scales)}")
        if bool(torch.any(knots[1:] <= knots[:-1])) or not bool(torch.all(scales > 0)):
            raise ValueError("an input frame needs increasing knots and positive scales")
        self.frame_knots, self.frame_center = knots, centers
        self.frame_log_scale = scales.log()

    def _frame(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre ``(N, d)`` and scale ``(N, 1)`` of the input frame at times ``t`` ``(N,)``."""
        knots = self.frame_knots
        if len(knots) == 1:
            return (self.frame_center[:1].expand(len(t), -1),
                    self.frame_log_scale[:1].exp().expand(len(t)).reshape(-1, 1))
        tk = t.to(knots.dtype)
        k = (torch.searchsorted(knots, tk.contiguous(), right=True) - 1).clamp(0, len(knots) - 2)
        u = ((tk - knots[k]) / (knots[k + 1] - knots[k])).clamp(0.0, 1.0).reshape(-1, 1)
        c = (1 - u) * self.frame_center[k] + u * self.frame_center[k + 1]
        sc = self.frame_log_scale.exp()
        return c, ((1 - u[:, 0]) * sc[k] + u[:, 0] * sc[k + 1]).reshape(-1, 1)

    def set_growth_bounds(self, knots: Sequence[float] | torch.Tensor | None,
                          low: Sequence[float] | torch.Tensor | None,
                          high: Sequence[float] | torch.Tensor | None) -> None:
        """Bound ``g`` on ``[knots[k], knots[k+1])`` to ``[low[k], high[k]]``.

        Times before the first knot use the first interval's bounds, times from the last knot
        on the last interval's.  ``low = high = None`` removes the bounds.

        Examples
        --------
        >>> import torch
        >>> f = VelocityGrowthField(1, center=torch.zeros(1), scale=1.0, t_start=0.0,
        ...                         t_span=2.0)
        >>> x = torch.zeros(3, 1)
        >>> t = torch.tensor([0.5, 1.5, 2.0])
        >>> g_raw = f(t, x)[1]
        >>> f.set_growth_bounds([0.0, 1.0, 2.0], [-0.1, 0.2], [0.1, 0.3])
        >>> g = f(t, x)[1]
        >>> torch.equal(g[0], g_raw[0].clamp(-0.1, 0.1)), torch.equal(g[1:], g_raw[1:].clamp(0.2, 0.3))
        (True, True)
        """
        if low is None and high is None:
            self.growth_knots = self.growth_low = self.growth_high = None
            return
        ref = self.center
        knots = torch.as_tensor(knots, dtype=ref.dtype, device=ref.device).reshape(-1)
        low = torch.as_tensor(low, dtype=ref.dtype, device=ref.device).reshape(-1)
        high = torch.as_tensor(high, dtype=ref.dtype, device=ref.device).reshape(-1)
        if len(knots) < 2 or len(low) != len(knots) - 1 or len(high) != len(low):
            raise ValueError(f"growth bounds need K knots and K - 1 lows and highs, got "
                             f"{len(knots)}, {len(low)}, {len(high)}")
        if bool(torch.any(low > high)) or bool(torch.any(knots[1:] <= knots[:-1])):
            raise ValueError("growth bounds need low <= high and increasing knots")
        self.growth_knots, self.growth_low, self.growth_high = knots, low, high

    def _bound_growth(self, t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``g`` clamped to the bounds of the interval holding each time ``t`` (shape ``(N,)``)."""
        knots = self.growth_knots
        k = torch.searchsorted(knots, t.contiguous().to(knots.dtype), right=True) - 1
        k = k.clamp(0, len(knots) - 2)
        return torch.clamp(g, min=self.growth_low[k].reshape(-1, 1).to(g.dtype),
                           max=self.growth_high[k].reshape(-1, 1).to(g.dtype))

    def growth_parameters(self) -> list[nn.Parameter]:
        """Parameters of the growth part (empty without growth)."""
        mods = [m for m in (self.growth_net, self.growth_offset) if m is not None]
        return [p for m in mods for p in m.parameters()]

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity ``(N, d)`` and growth rate ``(N, 1)`` at states ``x`` and times ``t``."""
        t, z = self._inputs(t, x)
        v = self.velocity_net(z) * (self.scale / self.t_span)
        if self.growth_net is None:
            g = torch.zeros(len(x), 1, dtype=x.dtype, device=x.device)
        else:
            g = self._growth_from(t, z)
        return v, g

    def growth_rate(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Growth rate ``(N, 1)`` alone (what :meth:`forward` returns second), without the
        cost of the velocity network.

        Examples
        --------
        >>> import torch
        >>> f = VelocityGrowthField(2, center=torch.zeros(2), scale=1.0, t_start=0.0,
        ...                         t_span=1.0)
        >>> x = torch.randn(4, 2)
        >>> torch.equal(f.growth_rate(torch.tensor(0.3), x), f(torch.tensor(0.3), x)[1])
        True
        """
        if self.growth_net is None:
            return torch.zeros(len(x), 1, dtype=x.dtype, device=x.device)
        t, z = self._inputs(t, x)
        return self._growth_from(t, z)

    def _inputs(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = (t.expand(len(x)) if t.dim() == 0 else t).reshape(len(x))  # one time per cell
        zx = (x - self.center) / self.scale
        if self.input_frame == "global+time":
            # until a frame is set, the population's frame is the global one
            zt = zx
            if self.frame_knots is not None:
                c, s = self._frame(t)
                zt = (x - c.to(x.dtype)) / s.to(x.dtype)
            zx = torch.cat([zx, zt], 1)
        z = torch.cat([zx, ((t - self.t_start) / self.t_span).reshape(-1, 1)], 1)
        return t, z

    def _growth_from(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.growth_form == "xt":
            g = self.growth_net(z)
        else:
            g = self.growth_net(z[:, : self.dim])
            if self.growth_offset is not None:
                g = g + self.growth_offset(z[:, -1:])
        g = g / self.t_span
        if self.growth_low is not None:
            g = self._bound_growth(t, g)
        return g
