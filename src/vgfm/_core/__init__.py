"""Numerical core of VGFM: pure torch / numpy / POT / torchdiffeq, no AnnData."""

from .couplings import IntervalCoupling, cost_scale, couple_interval, semi_relaxed_sinkhorn
from .matcher import MatcherBatch, PairSampler, VelocityGrowthMatcher
from .metrics import W1Result, relative_mass_error, wasserstein1
from .networks import VelocityGrowthField
from .ode import grid_times, integrate
from .train import TrainConfig, TrainResult, resolve_device, train

__all__ = [
    "IntervalCoupling",
    "MatcherBatch",
    "PairSampler",
    "TrainConfig",
    "TrainResult",
    "VelocityGrowthField",
    "VelocityGrowthMatcher",
    "W1Result",
    "cost_scale",
    "couple_interval",
    "grid_times",
    "integrate",
    "relative_mass_error",
    "resolve_device",
    "semi_relaxed_sinkhorn",
    "train",
    "wasserstein1",
]
