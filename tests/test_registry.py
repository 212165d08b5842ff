"""Solver registry, method table, training-option validation and seeding of the core."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from vgfm._core import couplings as cp
from vgfm._core.methods import (
    MethodSpec,
    get_method,
    method_names,
    register_method,
    unregister_method,
)
from vgfm._core.solvers import available_solvers, get_solver, register_solver, unregister_solver
from vgfm._core.train import TrainConfig, train


def _toy(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(40, 2)), rng.normal(size=(50, 2)) + 1.0]


def test_builtin_solvers_and_methods():
    assert {"semi_relaxed", "exact"} <= set(available_solvers())
    assert method_names()[:2] == ("vgfm", "otcfm")
    assert get_method("vgfm").learns_growth and not get_method("otcfm").learns_growth
    with pytest.raises(ValueError, match="registered solvers"):
        get_solver("nope")
    with pytest.raises(ValueError, match="method must be one of"):
        TrainConfig(method="nope")


def test_exact_solver_matches_pot():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(9, 2))
    c = torch.as_tensor(ot.dist(x, y))
    a = torch.full((7,), 1 / 7, dtype=torch.float64)
    b = torch.full((9,), 1 / 9, dtype=torch.float64)
    plan = get_solver("exact")(c, a, b, {})
    np.testing.assert_allclose(float((plan * c).sum()), ot.emd2(a.numpy(), b.numpy(), c.numpy()),
                               rtol=1e-10)


def test_registered_toy_solver_and_method_train_end_to_end():
    """Adding a method is one solver function plus one table row; training uses both."""
    calls = []

    def independent(cost, a, b, options):
        calls.append(options["reg"])
        # product coupling with the target hard: every source cell keeps its share
        return a[:, None] * b[None, :] / a.sum()

    register_solver("toy_independent", independent, description="product coupling")
    register_method(MethodSpec("toy", "toy_independent", True, "Toy"))
    try:
        x0, x1 = (torch.as_tensor(s, dtype=torch.float32) for s in _toy())
        c = cp.couple_interval(x0, x1, mass0=1.0, mass1=2.0, dt=0.5, solver="toy_independent",
                               options={"reg": 0.3}, max_block=100, max_blocks=1)
        # product coupling: every row grows by exactly mass1/mass0 -> growth log(2)/0.5
        np.testing.assert_allclose(c.growth[0].numpy(), math.log(2.0) / 0.5, rtol=1e-6)
        cfg = TrainConfig(method="toy", reg=0.3, stage1_steps=5, stage2_steps=0)
        res = train(_toy(), [0.0, 0.5], config=cfg, seed=0)
        assert calls[-1] == 0.3
        assert res.field.growth_net is not None
        with pytest.raises(ValueError, match="already registered"):
            register_solver("toy_independent", independent)
    finally:
        unregister_method("toy")
        unregister_solver("toy_independent")
    assert "toy" not in method_names()


def test_source_prior_shifts_growth_towards_prior():
    rng = np.random.default_rng(0)
    x0 = torch.as_tensor(rng.normal(size=(60, 2)), dtype=torch.float32)
    x1 = torch.as_tensor(rng.normal(size=(60, 2)), dtype=torch.float32)
    opts = {"reg": 0.05, "reg_m": 1.0}
    base = cp.couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, options=opts,
                              max_block=100, max_blocks=1)
    prior = torch.ones(60, dtype=torch.float64)
    prior[:30] = 4.0
    pri = cp.couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, options=opts,
                             max_block=100, max_blocks=1, source_prior=prior)
    d_base = base.growth[0][:30].mean() - base.growth[0][30:].mean()
    d_pri = pri.growth[0][:30].mean() - pri.growth[0][30:].mean()
    assert float(d_pri - d_base) > 0.3  # the favoured half grows more
    # the target stays hard whatever the prior: columns sum to the target masses
    np.testing.assert_allclose(pri.plans[0].double().sum(0).numpy(), 1 / 60, rtol=1e-4)
    with pytest.raises(ValueError, match="source_prior must hold 60 positive"):
        cp.couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, options=opts, max_block=100,
                           max_blocks=1, source_prior=-prior)


@pytest.mark.parametrize(
    ("name", "value", "exc", "match"),
    [
        ("batch_size", 0, ValueError, "batch_size must be >= 1"),
        ("val_every", 0, ValueError, "val_every must be >= 1"),
        ("coupling_block", 0, ValueError, "coupling_block must be >= 2"),
        ("stage2_particles", 0, ValueError, "stage2_particles must be >= 2"),
        ("hidden", 0, ValueError, "hidden must be >= 1"),
        ("sigma", -0.1, ValueError, "sigma must be >= 0"),
        ("stage2_steps", -1, ValueError, "stage2_steps must be >= 0"),
        ("mass_weight", -1.0, ValueError, "mass_weight must be >= 0"),
        ("reg", "0.1", TypeError, "reg must be a number"),
        ("hidden", 8.5, TypeError, "hidden must be an integer"),
        ("lr", float("nan"), ValueError, "lr must be finite"),
    ],
)
def test_training_options_are_validated(name, value, exc, match):
    with pytest.raises(exc, match=match):
        TrainConfig(**{name: value})


def test_seed_validation_and_global_rng_untouched():
    cfg = TrainConfig(stage1_steps=3, stage2_steps=0)
    with pytest.raises(TypeError, match="seed must be an integer"):
        train(_toy(), [0.0, 1.0], config=cfg, seed=None)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*63\)"):
        train(_toy(), [0.0, 1.0], config=cfg, seed=2**70)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = train(_toy(), [0.0, 1.0], config=cfg, seed=5)
    after = torch.rand(3)
    assert torch.equal(expected, after)  # the caller's global RNG stream is not reseeded
    b = train(_toy(), [0.0, 1.0], config=cfg, seed=5)
    for p, q in zip(a.field.parameters(), b.field.parameters()):
        assert torch.equal(p, q)


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available on this machine")
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(_toy(), [0.0, 1.0], config=TrainConfig(stage1_steps=1, stage2_steps=0),
              device="cuda")


def test_motion_weights_only_for_solvers_that_read_them(monkeypatch):
    x0, x1 = (torch.tensor(x) for x in _toy())
    opts = {"reg": 0.05, "reg_m": 0.5, "reg_m_motion": 3.0}
    seen = []

    def rows_solver(cost, a, b, options):
        seen.append(options.get("reg_m_rows"))
        return get_solver("semi_relaxed")(cost, a, b, options)

    register_solver("test_rows", rows_solver, row_weights=True)
    register_solver("test_no_rows", rows_solver)
    try:
        cp.couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, solver="test_rows",
                           options=opts, max_block=128, max_blocks=1)
        rows = seen.pop()
        assert rows is not None and rows.shape == (len(x0),)
        expected = cp.motion_reg_m(
            x0.double(), x1.double(), *_scaled_cost_and_masses(x0, x1), reg=0.05,
            reg_m=0.5, stiffness=3.0)
        torch.testing.assert_close(rows, expected)
        # a solver registered without row_weights (like the exact one) never pays for them
        monkeypatch.setattr(cp, "motion_reg_m", lambda *a, **k: pytest.fail("computed"))
        cp.couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, solver="test_no_rows",
                           options=opts, max_block=128, max_blocks=1)
        assert seen.pop() is None
        cp.couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, solver="exact",
                           options=opts, max_block=128, max_blocks=1)
    finally:
        unregister_solver("test_rows")
        unregister_solver("test_no_rows")


def _scaled_cost_and_masses(x0, x1):
    c = cp.squared_distances(x0.double(), x1.double())
    c = (c - c.min(0, keepdim=True).values) / cp.cost_scale(x0, x1)
    a = torch.full((len(x0),), 1.0 / len(x0), dtype=torch.float64)
    b = torch.full((len(x1),), 1.0 / len(x1), dtype=torch.float64)
    return c, a, b
