"""Couplings that look at where the target cells go next (``coupling_momentum``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vgfm._core.couplings import (
    MOMENTUM_REACH,
    IntervalCoupling,
    couple_interval,
    momentum_targets,
    outgoing_velocity,
)
from vgfm._core.train import TrainConfig, train


def _couplings_only(snaps, times, **options):
    cfg = TrainConfig(stage1_steps=0, stage2_steps=0, **options)
    return train(snaps, times, config=cfg, seed=0)


def test_outgoing_velocity_is_the_barycentric_displacement_per_time():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(7, 3, generator=gen)
    y = torch.randn(5, 3, generator=gen)
    plan = torch.rand(4, 5, generator=gen)
    src = torch.tensor([0, 2, 3, 6])  # cells 1, 4 and 5 are in no block
    c = IntervalCoupling([src], [torch.arange(5)], [plan], [torch.zeros(4)], 0.25)
    u = outgoing_velocity(x, y, c)
    for row, i in enumerate(src.tolist()):
        image = sum(plan[row, j] * y[j] for j in range(5)) / plan[row].sum()
        torch.testing.assert_close(u[i], (image - x[i]) / 0.25, rtol=1e-5, atol=1e-5)
    assert torch.equal(u[[1, 4, 5]], torch.zeros(3, 3))


def test_momentum_tells_apart_two_populations_at_equal_distances():
    # population A moves at constant velocity from (2, 0) through (1, sqrt 3) and grows 1.6-fold
    # per interval; population B sits at the origin and does not grow.  A's cells at t = 1 are
    # as far from B's cells at t = 0 as from A's, so distances alone cannot say who grew.
    rng = np.random.default_rng(0)
    a0, a1 = np.array([2.0, 0.0]), np.array([1.0, 3**0.5])
    a2 = 2 * a1 - a0

    def snap(centre, n_a, n_b=100):
        return np.vstack([centre + 0.15 * rng.normal(size=(n_a, 2)),
                          0.15 * rng.normal(size=(n_b, 2))]).astype(np.float32)

    snaps = [snap(a0, 100), snap(a1, 160), snap(a2, 256)]
    truth = np.log(1.6)
    # the plan's own growth targets with the stiffening of the version that introduced the
    # option, then the current defaults (growth targets net of motion)
    for opts in ({"net_of_motion": False, "reg_m_motion": 3.0}, {}):
        shares, growth = {}, {}
        for mom in (0.0, 1.0):
            c = _couplings_only(snaps, [0.0, 1.0, 2.0], coupling_momentum=mom,
                                **opts).couplings[0]
            plan = c.plans[0].double()
            from_b = c.source[0].numpy() >= 100
            to_a = c.target[0].numpy() < 160
            shares[mom] = float(plan[from_b][:, to_a].sum() / plan.sum())
            g = c.growth[0].double().numpy()
            growth[mom] = (g[~from_b].mean(), g[from_b].mean())
        # without momentum B's cells feed A's target and B comes out growing faster than A
        assert shares[0.0] > 0.15
        assert growth[0.0][1] > growth[0.0][0] + truth / 3
        # with it (each target moved back at most halfway to its nearest source cell) the
        # share is about halved and the growth moves towards the truth on both sides
        assert shares[1.0] < 0.6 * shares[0.0]
        step = truth / 3 if opts else truth / 6
        assert growth[1.0][0] > growth[0.0][0] + step
        assert growth[1.0][1] < growth[0.0][1] - step
        if opts:  # the plain targets read the growth reversed
            assert growth[0.0][1] > 0.8 * truth and growth[0.0][0] < 0.2 * truth


def test_momentum_pairs_with_the_shifted_targets_and_keeps_the_last_interval():
    # the pipeline's coupling equals the coupling of the source with the targets moved back
    # along the next interval's velocities (computed here step by step), and the last interval
    # (no next one) is the plain coupling
    rng = np.random.default_rng(1)
    v = np.array([1.5, 0.0])
    snaps = [(0.5 * rng.normal(size=(120, 2)) + k * v).astype(np.float32) for k in range(3)]
    opts = dict(growth_test=None, growth_noise_test=None, reg_m_motion=0.0)
    plain = _couplings_only(snaps, [0.0, 1.0, 2.0], coupling_momentum=0.0, **opts)
    mom = _couplings_only(snaps, [0.0, 1.0, 2.0], coupling_momentum=0.7, **opts)
    torch.testing.assert_close(plain.couplings[1].plans[0], mom.couplings[1].plans[0])
    x = [torch.as_tensor(s) for s in snaps]
    u = outgoing_velocity(x[1], x[2], mom.couplings[1])
    shifted = momentum_targets(x[0], x[1], u, 0.7 * 1.0)
    cfg = TrainConfig(**opts).to_dict()
    direct = couple_interval(x[0], shifted, mass0=1.0, mass1=1.0, dt=1.0, options=cfg,
                             max_block=2048, max_blocks=8)
    torch.testing.assert_close(direct.plans[0], mom.couplings[0].plans[0])
    assert not torch.allclose(plain.couplings[0].plans[0], mom.couplings[0].plans[0])


def test_momentum_targets_shift_back_at_most_halfway_to_the_nearest_source():
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(300, 3, generator=gen, dtype=torch.float64)
    x1 = torch.randn(200, 3, generator=gen, dtype=torch.float64) + 1.0
    v = torch.randn(200, 3, generator=gen, dtype=torch.float64)
    out = momentum_targets(x0, x1, v, 0.5)
    shift = x1 - out
    near = MOMENTUM_REACH * torch.cdist(x1, x0).min(1).values
    free = (0.5 * v).norm(dim=1) <= near
    # where the velocity's shift is shorter than the nearest source, it is applied as is
    torch.testing.assert_close(shift[free], 0.5 * v[free])
    # elsewhere it keeps its direction and its length is half the nearest source's distance
    torch.testing.assert_close(shift[~free].norm(dim=1), near[~free])
    cos = torch.nn.functional.cosine_similarity(shift[~free], v[~free], dim=1)
    torch.testing.assert_close(cos, torch.ones_like(cos))
    assert 0 < int(free.sum()) < 200


def test_momentum_option_is_checked():
    with pytest.raises(ValueError, match="coupling_momentum"):
        TrainConfig(coupling_momentum=-1.0)
