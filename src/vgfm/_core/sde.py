r"""Stochastic dynamics: a learned score, a noise level from the couplings, and an SDE.

Why this drift
--------------
VGFM's velocity ``v`` is a *probability-flow* field: it is regressed on the targets
``(x_j - x_i) / dt`` of the constant-noise interpolant ``x_s = (1-s) x_i + s x_j + σ_v ε``
between coupled pairs, whose conditional velocity is exactly that target, so ``v(x, t) =
E[(x_j - x_i)/dt | x_s = x]`` transports the interpolated population ``ρ_t`` deterministically
(and stage 2 refines it so that the ODE, with its growth ``g``, fits the snapshots):

    ∂_t ρ = −∇·(ρ v) + g ρ .

A stochastic particle ``dx = b dt + σ dW`` whose log-mass follows ``d log m = g dt`` has a
mass-weighted density that solves ``∂_t ρ = −∇·(ρ b) + (σ²/2) Δρ + g ρ``.  With

    b = v + (σ²/2) ∇ log ρ_t

the diffusion term cancels, ``−∇·(ρ (σ²/2) ∇log ρ) + (σ²/2) Δρ = 0``, and the SDE has exactly
the marginals (and the mass) of the ODE whatever σ: only the spread of individual paths
changes, which is what fate probabilities need.  ``∇ log ρ_t`` is the score of the
*mass-weighted* population, so it is learned from pairs drawn from the growth-aware plan
``π / |π|`` (its source marginal is the grown mass ``w``), not from unweighted cells.

The score is learned simulation-free, SF2M-style, by denoising score matching on the
Brownian-bridge interpolant between coupled pairs::

    x_s = (1-s) x_i + s x_j + τ_s ε,     τ_s² = τ_0² + σ² dt s (1-s),     t = t_k + s dt

(when VGFM was fitted with a curved or warped interpolant, ``options["interpolant"]`` and
``options["interpolant_speed"]``, the chord ``(1-s) x_i + s x_j`` is replaced by the same
path and clock, so the score describes the population the flow transports between snapshots)

with the conditional target ``∇ log N(x_s; μ_s, τ_s²) = −ε / τ_s``.  The bridge term is the
spread a Brownian motion of diffusion σ adds between two fixed end points; ``τ_0`` is a floor
(``vgfm.tl`` passes VGFM's own interpolant noise σ_v, capped at 0.05 data scales, so that at
the snapshot times the score is that of the data smoothed about as ``v`` saw it, and the target
stays bounded).  Since ``τ_s``
depends on ``t`` only, the network predicts ``−ε`` and the score is ``net(x, t) / τ(t)``
(noise-prediction parametrisation: well conditioned whatever τ).  The learned score is that of
``ρ_t`` smoothed by the bridge, slightly wider than ``ρ_t`` between snapshots; for a Gaussian
population of variance ``V`` this adds variance at rate ``σ² (τ_s² − τ_0²) / (V + τ_s²)``,
i.e. about ``σ⁴ dt² / (6 V)`` per interval — negligible when ``σ² dt ≪ V`` (diffusion small
against the population's spread), which is the regime the noise estimate below produces.

Noise level
-----------
:func:`estimate_sigma` reads σ from the couplings: for each source cell ``i`` the normalised
row ``π_i· / w_i`` is the distribution of where its mass goes; its covariance is the spread of
one cell's descendants over ``dt``.  A Brownian motion of diffusion σ spreads a cell by
``σ² dt`` per coordinate, so ``σ² = Σ_k Σ_i w_i tr Cov(x_j | i) / (d Σ_k Δ_k Σ_i w_i)``
(mass-weighted pooled conditional variance per coordinate and unit time).  This is the
Schrödinger-bridge reading of the entropic plan (entropic OT with blur ε is the bridge of a
Brownian motion with ``σ² dt = ε/2``), measured on the plan itself, so it follows the
coupling options the model was fitted with.  Users can pass σ explicitly instead.

Integration
-----------
:func:`integrate_sde` integrates ``dx = [v + (σ²/2) s_θ] dt + σ dW``, ``d log m = g dt``
with ``torchsde`` (a seeded Brownian interval), hitting every output time exactly.  The noise
is additive (σ does not depend on the state), so the Itô and Stratonovich readings of the SDE
coincide and Stratonovich solvers apply unchanged.  The default scheme is the stochastic Heun
(predictor–corrector) method: an Euler–Maruyama predictor ``y' = y + f(y) h + σ ΔW`` and the
corrector ``y + (f(y) + f(y')) h / 2 + σ ΔW``, applied to the state and the log-mass alike.
For additive noise it has strong order 1 and weak order 2 (the drift is integrated by the
trapezoidal rule), against weak order 1 for Euler–Maruyama, at two drift evaluations per step;
e.g. on ``dx = −λ x dt + σ dW`` Euler–Maruyama's stationary variance is
``σ² / (λ (2 − λh))`` (relative error ``λh/2``) and Heun's ``σ²/(2λ) (1 + O((λh)²))``.
``method="euler"`` keeps Itô Euler–Maruyama (one drift evaluation per step).
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .couplings import IntervalCoupling, couple_interval
from .matcher import PairSampler, least_action_clock
from .networks import adam, mlp
from .routes import GraphRoutes

__all__ = [
    "DRIFT_EVALUATIONS",
    "SDE_METHODS",
    "ScoreConfig",
    "ScoreField",
    "ScoreResult",
    "check_sde_method",
    "estimate_sigma",
    "integrate_sde",
    "train_score",
]


@dataclass
class ScoreConfig:
    """Options of :func:`train_score`.

    Attributes
    ----------
    steps, batch_size, lr
        Adam steps, pairs per interval per step, learning rate (cosine decay to 5 %).  The
        denoising target ``−ε`` is mostly noise around the score (its conditional mean), so
        the regression needs many pairs: with 800 steps the loss was still falling and the
        under-fitted score (too weak a pull back towards the population) let the SDE spread
        too far (Gaussian 50-D: energy distance 1.7–2.1 × the two-half floor, 0.9–1.2 with
        3200 steps; ``benchmarks/fates.py`` table 6).
    hidden, n_layers
        Width and depth of the score MLP.
    """

    steps: int = 3200
    batch_size: int = 256
    lr: float = 2e-3
    hidden: int = 64
    n_layers: int = 3

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(
                f"steps must be >= 0, batch_size >= 1 and lr > 0; got steps={self.steps}, "
                f"batch_size={self.batch_size}, lr={self.lr}"
            )

    def to_dict(self) -> dict:
        """Plain-dict view."""
        return asdict(self)


class ScoreField(nn.Module):
    """Score ``∇ log ρ_t(x)`` of the bridge-smoothed population, ``net(x~, t~) / τ(t)``.

    ``x~ = (x - center) / scale`` and ``t~ = (t - t_start) / t_span`` as in
    :class:`~vgfm._core.networks.VelocityGrowthField`; ``τ(t)² = τ_0² + σ² Δ_k s (1 - s)``
    with ``s`` the position of ``t`` in its interval ``[t_k, t_k + Δ_k]`` of ``knots``
    (constant ``τ_0`` outside).

    Examples
    --------
    >>> import torch
    >>> f = ScoreField(2, center=torch.zeros(2), scale=1.0, t_start=0.0, t_span=1.0,
    ...                knots=[0.0, 1.0], sigma=0.5, floor=0.1)
    >>> round(float(f.tau(torch.tensor([0.5]))[0]), 4)  # sqrt(0.01 + 0.25 * 0.25)
    0.2693
    >>> f(torch.zeros(3), torch.zeros(3, 2)).shape
    torch.Size([3, 2])
    """

    def __init__(
        self,
        dim: int,
        *,
        center: torch.Tensor,
        scale: float,
        t_start: float,
        t_span: float,
        knots: Sequence[float],
        sigma: float,
        floor: float,
        hidden: int = 64,
        n_layers: int = 3,
    ):
        super().__init__()
        if not floor > 0:
            raise ValueError(f"the score's noise floor must be > 0, got {floor}")
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.dim = dim
        self.net = mlp(dim + 1, dim, hidden, n_layers)
        self.register_buffer("center", torch.as_tensor(center).detach().clone().float().reshape(dim))
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("t_start", torch.tensor(float(t_start)))
        self.register_buffer("t_span", torch.tensor(float(t_span)))
        self.register_buffer("knots", torch.as_tensor(list(knots), dtype=torch.float32))
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.register_buffer("floor", torch.tensor(float(floor)))

    def tau(self, t: torch.Tensor) -> torch.Tensor:
        """Noise scale ``τ(t)`` of the interpolant at times ``t`` (any shape)."""
        t = torch.as_tensor(t, dtype=self.knots.dtype, device=self.knots.device)
        k = torch.searchsorted(self.knots, t.contiguous(), right=True).clamp(1, len(self.knots) - 1)
        lo, hi = self.knots[k - 1], self.knots[k]
        dt = hi - lo
        s = ((t - lo) / dt).clamp(0.0, 1.0)
        return torch.sqrt(self.floor**2 + self.sigma**2 * dt * s * (1.0 - s))

    def noise_prediction(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The network output, ``≈ −ε`` (``τ(t) ×`` score)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(len(x))
        t = t.reshape(len(x), 1)
        z = torch.cat([(x - self.center) / self.scale, (t - self.t_start) / self.t_span], 1)
        return self.net(z)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Score ``(N, d)`` at states ``x`` and times ``t``."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(len(x))
        tau = self.tau(t.reshape(-1)).to(x.dtype).reshape(len(x), 1)
        return self.noise_prediction(t, x) / tau


@dataclass
class ScoreResult:
    """Outcome of :func:`train_score`: the score field, σ, loss curve and seconds."""

    field: ScoreField
    sigma: float
    sigma_estimated: float
    history: np.ndarray
    seconds: float
    extra: dict = field(default_factory=dict)


def estimate_sigma(
    couplings: Sequence[IntervalCoupling], targets: Sequence[torch.Tensor]
) -> float:
    """Diffusion σ from the conditional spread of the couplings (see the module docstring).

    Parameters
    ----------
    couplings
        One coupling per interval.
    targets
        The target snapshot of each interval (the rows the couplings' ``target`` index).

    Returns
    -------
    ``σ`` in data units per square root of time.

    Examples
    --------
    >>> import torch
    >>> from vgfm._core.couplings import IntervalCoupling
    >>> plan = torch.full((1, 2), 0.5)  # one cell spread evenly over two targets
    >>> c = IntervalCoupling([torch.arange(1)], [torch.arange(2)], [plan], [torch.zeros(1)], 2.0)
    >>> y = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # conditional variance 1 along axis 0
    >>> round(estimate_sigma([c], [y]), 6)  # sqrt(1 / (d=2 * dt=2))
    0.5
    """
    num, den = 0.0, 0.0
    for cp, y in zip(couplings, targets):
        y = y.double()
        d = y.shape[1]
        tot_w, tot_v = 0.0, 0.0
        for t_idx, plan in zip(cp.target, cp.plans):
            p = plan.double().to(y.device)
            yt = y[t_idx.to(y.device)]
            w = p.sum(1)
            ok = w > 0
            mean = (p @ yt)[ok] / w[ok, None]
            second = (p @ (yt * yt).sum(1))[ok] / w[ok]
            var = (second - (mean * mean).sum(1)).clamp_min(0.0)
            tot_v += float((w[ok] * var).sum())
            tot_w += float(w[ok].sum())
        if tot_w > 0:
            num += tot_v / tot_w
            den += d * cp.dt
    if den <= 0:
        raise ValueError("the couplings carry no mass; cannot estimate sigma")
    return math.sqrt(num / den)


def train_score(
    snapshots: Sequence[np.ndarray | torch.Tensor],
    times: Sequence[float],
    *,
    solver: str = "semi_relaxed",
    options: Mapping[str, Any] | None = None,
    population_size: Sequence[float] | None = None,
    sigma: float | None = None,
    floor: float,
    center: torch.Tensor | np.ndarray,
    scale: float,
    t_start: float | None = None,
    t_span: float | None = None,
    max_block: int = 2048,
    max_blocks: int = 8,
    config: ScoreConfig | None = None,
    couplings: Sequence[IntervalCoupling] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> ScoreResult:
    """Learn the score of the bridge interpolant between coupled snapshots (simulation-free).

    The couplings are those of VGFM: pass ``couplings`` to reuse the fit's
    (:func:`vgfm.tl.fit_stochastic` passes those of :func:`vgfm._core.train.fit_couplings`);
    without, one plain :func:`~vgfm._core.couplings.couple_interval` per interval with the
    same solver, options and block bounds.  Pairs are drawn with
    :class:`~vgfm._core.matcher.PairSampler`, and the loss is ``mean ||net(x_s, t) + ε||²``
    on the interpolant of the module docstring.

    Parameters
    ----------
    snapshots, times
        Training snapshots (``(n_k, d)``) and their increasing real times.
    solver, options
        Coupling solver name and its options (e.g. ``reg``, ``reg_m``): read them from the
        fitted model (its method's solver and ``config.to_dict()``).
    population_size
        Population sizes ``N_k`` (any scale; default the cell counts).
    sigma
        Diffusion σ; ``None`` estimates it with :func:`estimate_sigma`.
    floor
        ``τ_0`` (> 0), in data units.
    center, scale, t_start, t_span
        Input standardisation (use the velocity field's); times default to the snapshots'.
    max_block, max_blocks
        Coupling block bounds.
    config
        :class:`ScoreConfig`.
    couplings
        Precomputed couplings of these snapshots (one per interval).
    seed
        Seed of the couplings' blocks, the pairs, the noise and the initialisation.
    device
        Torch device (default CPU).

    Returns
    -------
    :class:`ScoreResult` (field on CPU, in eval mode).

    Examples
    --------
    >>> import numpy as np, torch
    >>> rng = np.random.default_rng(0)
    >>> snaps = [rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 1]
    >>> res = train_score(snaps, [0.0, 1.0], options={"reg": 0.05, "reg_m": 1.0}, floor=0.05,
    ...                   center=torch.zeros(2), scale=1.0, config=ScoreConfig(steps=5))
    >>> res.sigma > 0
    True
    """
    cfg = config or ScoreConfig()
    start = _time.perf_counter()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    times = [float(t) for t in times]
    if len(snapshots) != len(times) or len(times) < 2:
        raise ValueError("need one snapshot per time point and at least 2 time points")
    if any(b <= a for a, b in zip(times[:-1], times[1:])):
        raise ValueError(f"times must be strictly increasing, got {times}")
    gen = torch.Generator().manual_seed(int(seed))
    snaps = [torch.as_tensor(np.asarray(s), dtype=torch.float32).to(dev) for s in snapshots]
    counts = np.array([len(s) for s in snaps], dtype=float)
    sizes = counts if population_size is None else np.asarray(population_size, dtype=float)
    if len(sizes) != len(times) or np.any(~np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError("population_size must hold one positive finite value per time point")
    rel = sizes / sizes[0]
    if couplings is None:
        couplings = [
            couple_interval(
                snaps[k], snaps[k + 1], mass0=float(rel[k]), mass1=float(rel[k + 1]),
                dt=times[k + 1] - times[k], solver=solver, options=dict(options or {}),
                max_block=max_block, max_blocks=max_blocks, generator=gen,
            )
            for k in range(len(snaps) - 1)
        ]
    if len(couplings) != len(snaps) - 1:
        raise ValueError(f"expected {len(snaps) - 1} couplings, got {len(couplings)}")
    sigma_est = estimate_sigma(couplings, snaps[1:])
    sig = sigma_est if sigma is None else float(sigma)
    if not sig >= 0 or not math.isfinite(sig):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    dim = snaps[0].shape[1]
    with torch.random.fork_rng(devices=[]):  # initialisation from the seed, global RNG untouched
        torch.manual_seed(int(seed))
        fld = ScoreField(
            dim, center=torch.as_tensor(center), scale=float(scale),
            t_start=times[0] if t_start is None else float(t_start),
            t_span=(times[-1] - times[0]) if t_span is None else float(t_span),
            knots=times, sigma=sig, floor=float(floor), hidden=cfg.hidden,
            n_layers=cfg.n_layers,
        ).to(dev)
    samplers = [PairSampler(c) for c in couplings]
    # the bridge's mean follows the velocity's interpolant (path and speed), so that between
    # snapshots the score describes the population the flow transports
    opts = dict(options or {})
    routes = ([GraphRoutes(snaps[k : k + 2], generator=gen, chord_gap=opts.get("chord_gap"))
               for k in range(len(snaps) - 1)]
              if opts.get("interpolant") == "routes" else None)
    least_action = opts.get("interpolant_speed") == "least_action"
    opt = adam(fld.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cfg.steps),
                                                       eta_min=cfg.lr * 0.05)
    hist = np.zeros(cfg.steps)
    b = cfg.batch_size
    for step in range(cfg.steps):
        ts, xs, eps = [], [], []
        for k, sampler in enumerate(samplers):
            i, j, g = sampler.sample(b, gen)
            dt = times[k + 1] - times[k]
            s = torch.rand(b, 1, generator=gen).to(dev)
            e = torch.randn(b, dim, generator=gen).to(dev)
            tau = torch.sqrt(fld.floor**2 + fld.sigma**2 * dt * s * (1 - s))
            frac = (least_action_clock(s, g.reshape(b, 1).to(s.dtype) * dt)[0]
                    if least_action else s)
            x0, x1 = snaps[k][i], snaps[k + 1][j]
            if routes is None:
                mean = (1 - frac) * x0 + frac * x1
            else:
                mean, _ = routes[k].interpolate(0, i, 1, j, frac.reshape(b), dt=dt, x0=x0,
                                                x1=x1)
            xs.append(mean + tau * e)
            ts.append(times[k] + s * dt)
            eps.append(e)
        t_b, x_b, e_b = torch.cat(ts), torch.cat(xs), torch.cat(eps)
        loss = ((fld.noise_prediction(t_b, x_b) + e_b) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hist[step] = float(loss.detach())
    fld = fld.cpu().eval()
    return ScoreResult(fld, sig, sigma_est, hist, _time.perf_counter() - start)


#: Integration schemes of :func:`integrate_sde`: name -> (torchsde method, SDE type).  The noise
#: is additive, so the Stratonovich scheme integrates the same SDE as the Itô one.
SDE_METHODS: dict[str, tuple[str, str]] = {
    "heun": ("heun", "stratonovich"),
    "euler": ("euler", "ito"),
}

#: Drift evaluations per step of each scheme (cost accounting).
DRIFT_EVALUATIONS: dict[str, int] = {"heun": 2, "euler": 1}


def check_sde_method(method: str, name: str = "method") -> str:
    """Validate an integration scheme name of :data:`SDE_METHODS` and return it.

    Examples
    --------
    >>> check_sde_method("heun")
    'heun'
    """
    if not isinstance(method, str) or method not in SDE_METHODS:
        raise ValueError(
            f"{name} must be one of {sorted(SDE_METHODS)}, got {method!r}; use 'heun' "
            "(second order in the drift, the default) or 'euler' (Euler-Maruyama)."
        )
    return method


class _SDE(nn.Module):
    noise_type = "diagonal"

    def __init__(self, field: nn.Module | None, score: nn.Module | None, sigma: float, dim: int,
                 sde_type: str = "ito"):
        super().__init__()
        self.field, self.score, self.sigma, self.dim = field, score, float(sigma), dim
        self.sde_type = sde_type

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = y[:, : self.dim]
        if self.field is None:
            v, g = torch.zeros_like(x), torch.zeros(len(x), 1, dtype=x.dtype, device=x.device)
        else:
            v, g = self.field(t, x)
        if self.score is not None and self.sigma > 0:
            v = v + 0.5 * self.sigma**2 * self.score(t, x)
        return torch.cat([v, g], 1)

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(y, self.sigma)
        out[:, self.dim] = 0.0  # the log-mass is not diffused
        return out


def integrate_sde(
    field: nn.Module | None,
    score: nn.Module | None,
    x0: torch.Tensor,
    t: Sequence[float] | torch.Tensor,
    *,
    sigma: float,
    log_mass0: torch.Tensor | None = None,
    n_steps: int = 10,
    max_step: float | None = None,
    seed: int = 0,
    method: str = "heun",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate ``dx = [v + (σ²/2) s] dt + σ dW``, ``d log m = g dt`` with torchsde.

    ``n_steps`` equal steps between consecutive output times (more when ``max_step`` asks for
    shorter ones), so every output time is hit exactly; the Brownian motion is a
    ``torchsde.BrownianInterval`` seeded with ``seed`` (same seed, same paths whatever the
    scheme).  The state and the log-mass are advanced by the same scheme.  No gradient is
    tracked.

    Parameters
    ----------
    field
        Module ``field(t, x) -> (v, g)``; ``None``: zero velocity and growth.
    score
        Module ``score(t, x) -> ∇ log ρ``; ``None``: no score term.
    x0
        ``(N, d)`` states at ``t[0]``.
    t
        Increasing output times.
    sigma
        Diffusion σ (data units per square-root time).
    log_mass0
        ``(N,)`` initial log-masses (default 0).
    n_steps, max_step
        Steps per output interval and an upper bound on the step length.
    seed
        Entropy of the Brownian motion.
    method
        ``"heun"`` (default): stochastic Heun predictor–corrector (torchsde's Stratonovich
        ``heun``; the noise is additive, so it solves the same SDE as Itô), second order in
        the drift, two drift evaluations per step. ``"euler"``: Itô Euler–Maruyama, first
        order, one evaluation per step.

    Returns
    -------
    ``x`` ``(T, N, d)`` and ``log_mass`` ``(T, N)``.

    Examples
    --------
    >>> import torch
    >>> x, lm = integrate_sde(None, None, torch.zeros(20000, 1), [0.0, 2.0], sigma=0.5)
    >>> round(float(x[-1].var()), 1)  # sigma^2 t
    0.5
    >>> x_e, _ = integrate_sde(None, None, torch.zeros(5, 1), [0.0, 1.0], sigma=0.5,
    ...                        method="euler")
    >>> bool(torch.allclose(x_e, integrate_sde(None, None, torch.zeros(5, 1), [0.0, 1.0],
    ...                                        sigma=0.5)[0]))  # same noise, zero drift
    True
    """
    try:
        import torchsde
    except ImportError as err:  # pragma: no cover - torchsde is a dependency
        raise ImportError(
            "stochastic simulation needs the `torchsde` package: pip install torchsde"
        ) from err
    solver, sde_type = SDE_METHODS[check_sde_method(method)]
    t = torch.as_tensor(t, dtype=x0.dtype).reshape(-1).tolist()
    if any(b <= a for a, b in zip(t[:-1], t[1:])):
        raise ValueError(f"output times must be strictly increasing, got {t}")
    n, d = x0.shape
    lm0 = torch.zeros(n, dtype=x0.dtype, device=x0.device) if log_mass0 is None else log_mass0
    y = torch.cat([x0, lm0.reshape(n, 1).to(x0.dtype)], 1)
    sde = _SDE(field, score, sigma, d, sde_type=sde_type)
    out = [y]
    if len(t) > 1:
        bm = torchsde.BrownianInterval(
            t0=t[0], t1=t[-1], size=y.shape, dtype=y.dtype, device=y.device,
            entropy=int(seed), levy_area_approximation="none",
        )
        with torch.no_grad():
            for a, b in zip(t[:-1], t[1:]):
                steps = max(1, int(n_steps))
                if max_step is not None and max_step > 0:
                    steps = max(steps, math.ceil((b - a) / max_step - 1e-9))
                ys = torchsde.sdeint(sde, y, torch.tensor([a, b], dtype=y.dtype), bm=bm,
                                     method=solver, dt=(b - a) / steps)
                y = ys[-1]
                out.append(y)
    ys = torch.stack(out)
    return ys[..., :d], ys[..., d]
