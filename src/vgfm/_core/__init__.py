"""Numerical core of VGFM: pure torch / numpy / POT / torchdiffeq, no AnnData."""

from .couplings import IntervalCoupling, cost_scale, couple_interval
from .matcher import MatcherBatch, PairSampler, VelocityGrowthMatcher
from .methods import MethodSpec, get_method, method_names, register_method
from .metrics import W1Result, relative_mass_error, wasserstein1
from .networks import VelocityGrowthField
from .ode import grid_times, integrate
from .sinkhorn import semi_relaxed_sinkhorn
from .solvers import available_solvers, get_solver, register_solver
from .train import TrainConfig, TrainResult, resolve_device, train

__all__ = [
    "IntervalCoupling",
    "MatcherBatch",
    "MethodSpec",
    "PairSampler",
    "TrainConfig",
    "TrainResult",
    "VelocityGrowthField",
    "VelocityGrowthMatcher",
    "W1Result",
    "available_solvers",
    "cost_scale",
    "couple_interval",
    "get_method",
    "get_solver",
    "grid_times",
    "integrate",
    "method_names",
    "register_method",
    "register_solver",
    "relative_mass_error",
    "resolve_device",
    "semi_relaxed_sinkhorn",
    "train",
    "wasserstein1",
]
