"""Growth targets net of motion (``net_of_motion``): the plan's targets minus those it gives
the same cells when none of them grows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vgfm._core.couplings import IntervalCoupling, cost_scale, couple_interval
from vgfm._core.sinkhorn import semi_relaxed_sinkhorn, squared_distances
from vgfm._core.train import TrainConfig, train

OPTS = {"reg": 0.01, "reg_m": 0.5}


def _couple(x0, x1, *, mass1=1.0, dt=1.0, **extra):
    return couple_interval(x0, x1, mass0=1.0, mass1=mass1, dt=dt, options={**OPTS, **extra},
                           max_block=4096, max_blocks=1)


def test_null_growth_is_the_plan_to_the_cells_moved_without_growth():
    # independent computation: each source cell sends its own mass along its row of the plan,
    # and the semi-relaxed plan to that population gives the null targets
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(80, 2, generator=gen, dtype=torch.float64)
    x1 = torch.randn(120, 2, generator=gen, dtype=torch.float64) * 1.3 + 0.5
    c = _couple(x0, x1, mass1=1.5, dt=0.5, net_of_motion=True)
    cost = squared_distances(x0, x1)
    cost = (cost - cost.min(0, keepdim=True).values) / cost_scale(x0, x1)
    a = torch.full((80,), 1 / 80, dtype=torch.float64)
    b = torch.full((120,), 1.5 / 120, dtype=torch.float64)
    plan = semi_relaxed_sinkhorn(cost, a, b, reg=0.01, reg_m=0.5)
    b0 = ((a / plan.sum(1))[:, None] * plan).sum(0)
    assert math.isclose(float(b0.sum()), 1.0, rel_tol=1e-9)  # every cell keeps its mass
    null = semi_relaxed_sinkhorn(cost, a, b0, reg=0.01, reg_m=0.5)
    expected = torch.log(null.sum(1) / a) / 0.5
    torch.testing.assert_close(c.null_growth[0].double(), expected, rtol=1e-4, atol=1e-4)
    # the real targets are unchanged by asking for the null
    plain = _couple(x0, x1, mass1=1.5, dt=0.5)
    assert plain.null_growth is None
    torch.testing.assert_close(c.growth[0], plain.growth[0])


def test_net_growth_keeps_the_total_mass_and_removes_the_null_differences():
    g = torch.tensor([0.9, 0.2, -0.4, 0.1])
    g0 = torch.tensor([0.5, 0.0, -0.2, 0.3])
    c = IntervalCoupling([torch.arange(4)], [torch.arange(3)], [torch.ones(4, 3)], [g], 0.5,
                         null_growth=[g0])
    net = c.net_growth()[0].double()
    diff = (g - g0).double()
    torch.testing.assert_close(net - net[0], diff - diff[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.exp(0.5 * net).sum(), torch.exp(0.5 * g.double()).sum(),
                               rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="net_of_motion"):
        IntervalCoupling([torch.arange(4)], [torch.arange(3)], [torch.ones(4, 3)], [g],
                         0.5).net_growth()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_shifting_cloud_without_growth_loses_most_of_its_edge_growth(seed):
    # a cloud that moves by one sd and spreads by a fifth, no cell divides: the plan gives
    # its leading edge growth and its trailing edge death.  The null (the plan's own motion,
    # which the plan has already shortened by growing the leading edge) accounts for more
    # than half of that spread, not all of it: the rest is left to the motion test
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(400, 2, generator=gen, dtype=torch.float64)
    x1 = 1.2 * torch.randn(400, 2, generator=gen, dtype=torch.float64) + torch.tensor([1.0, 0.0])
    c = _couple(x0, x1, net_of_motion=True)
    raw, net = c.growth[0].double(), c.net_growth()[0].double()
    lead = float(torch.corrcoef(torch.stack([raw, x0[:, 0]]))[0, 1])
    assert lead > 0.9  # the raw targets are the leading edge
    assert float(net.std()) < 0.5 * float(raw.std())
    assert float(c.null_growth[0].double().std()) > 0.4 * float(raw.std())


def test_growth_in_place_survives_the_correction():
    # two still clusters far apart, the first doubles: its cells' targets stay log 2 above
    rng = np.random.default_rng(2)
    ca, cb = np.array([0.0, 0.0]), np.array([6.0, 0.0])
    x0 = np.vstack([ca + 0.3 * rng.normal(size=(150, 2)), cb + 0.3 * rng.normal(size=(150, 2))])
    x1 = np.vstack([ca + 0.3 * rng.normal(size=(300, 2)), cb + 0.3 * rng.normal(size=(150, 2))])
    c = _couple(torch.as_tensor(x0), torch.as_tensor(x1), mass1=1.5, net_of_motion=True)
    net = c.net_growth()[0].double().numpy()
    diff = net[:150].mean() - net[150:].mean()
    assert abs(diff - math.log(2)) < 0.1 * math.log(2)
    # and the population grows by its total: mean growth factor 1.5
    assert math.isclose(float(np.exp(net).mean()), 1.5, rel_tol=1e-4)


def test_train_regresses_on_the_net_targets_with_the_same_pairing():
    rng = np.random.default_rng(3)
    snaps = [rng.normal(size=(120, 2)).astype(np.float32),
             (rng.normal(size=(150, 2)) * 1.2 + [1.0, 0.0]).astype(np.float32),
             (rng.normal(size=(200, 2)) * 1.4 + [2.0, 0.5]).astype(np.float32)]
    times = [0.0, 1.0, 2.0]
    kw = dict(stage1_steps=0, stage2_steps=0, growth_test=None, growth_noise_test=None,
              reg_m_motion=0.0)
    plain = train(snaps, times, config=TrainConfig(net_of_motion=False, **kw), seed=0).couplings
    net = train(snaps, times, config=TrainConfig(net_of_motion=True, **kw), seed=0).couplings
    for p, n in zip(plain, net):
        assert p.null_growth is None
        torch.testing.assert_close(n.plans[0], p.plans[0])  # the pairing is the same
        fresh = IntervalCoupling(p.source, p.target, p.plans, p.growth, p.dt,
                                 null_growth=n.null_growth)
        torch.testing.assert_close(n.growth[0], fresh.net_growth()[0])
        assert not torch.allclose(n.growth[0], p.growth[0])
    # without growth (OT-CFM) no null is computed
    bal = train(snaps, times, config=TrainConfig(method="otcfm", net_of_motion=True, **kw),
                seed=0).couplings
    assert all(c.null_growth is None for c in bal)


def test_net_of_motion_is_validated():
    with pytest.raises(TypeError, match="net_of_motion"):
        TrainConfig(net_of_motion="yes")
