"""The motion stiffening net of the noise floor (``motion_noise_floor``)."""

from __future__ import annotations

import math

import pytest
import torch

from vgfm._core.couplings import (
    cost_scale,
    couple_interval,
    displacement_floor,
    motion_reg_m,
)
from vgfm._core.sinkhorn import semi_relaxed_sinkhorn, squared_distances
from vgfm._core.train import TrainConfig

REG, REG_M, STIFF = 0.01, 0.5, 1.0


def _cloud(gen, n, dim, sd, centre=()):
    x = sd * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    for k, c in enumerate(centre):
        x[:, k] += c
    return x


def _weights(x0, x1, noise_floor):
    cost = squared_distances(x0, x1)
    cost = (cost - cost.min(0, keepdim=True).values) / cost_scale(x0, x1)
    a = torch.full((len(x0),), 1.0 / len(x0), dtype=torch.float64)
    b = torch.full((len(x1),), 1.0 / len(x1), dtype=torch.float64)
    return motion_reg_m(x0, x1, cost, a, b, reg=REG, reg_m=REG_M, stiffness=STIFF,
                        noise_floor=noise_floor)


@pytest.mark.parametrize("dim, sd", [(1000, math.sqrt(0.005)), (200, 0.2)])
def test_floor_is_the_squared_distance_of_a_cell_to_its_cluster(dim, sd):
    """In high dimension half the squared distance between two cells of a cluster is
    ``sigma^2 d`` (a cell's squared distance from its cluster's mean), with relative sd
    ``sqrt(2 / d)``; the nearest of 299 others lies about 2.8 sd below: ``f`` is about
    ``sigma^2 d (1 - 2.8 sqrt(2 / d))``."""
    x = _cloud(torch.Generator().manual_seed(1), 300, dim, sd)
    f = float(displacement_floor(x))
    rel = math.sqrt(2.0 / dim)
    assert sd**2 * dim * (1 - 3.5 * rel) < f < sd**2 * dim * (1 - 2.0 * rel)


def test_floor_is_negligible_on_dense_low_dimensional_data():
    x = _cloud(torch.Generator().manual_seed(2), 1000, 2, 1.0)
    assert float(displacement_floor(x)) < 0.01 * 2.0  # against the total variance 2


def test_noise_floor_weights_never_exceed_the_raw_ones_and_keep_reg_m_as_floor():
    g = torch.Generator().manual_seed(3)
    x0 = torch.cat([_cloud(g, 150, 1000, 0.07), _cloud(g, 60, 1000, 0.07, (0.0, 2.5))])
    x1 = torch.cat([_cloud(g, 150, 1000, 0.07, (1.0,)), _cloud(g, 60, 1000, 0.07, (0.0, 2.5))])
    raw = _weights(x0, x1, False)
    net = _weights(x0, x1, True)
    assert bool((net <= raw + 1e-12).all()) and bool((net >= REG_M - 1e-12).all())
    # the raw weights average reg_m * (1 + stiffness) exactly: d^2 / mean(d^2) averages 1
    assert float(raw.mean()) == pytest.approx(REG_M * (1 + STIFF), rel=1e-9)


def test_in_high_dimension_the_noise_no_longer_stiffens_every_cell():
    """1000-D, noise variance 0.005 per coordinate: one cluster moves one unit, the other
    stays.  Noise puts every cell about 5 or more from its barycentric image, so the raw
    weights stiffen both clusters about twofold.  Net of the floor ``f`` every weight drops by
    exactly ``reg_m * stiffness * f / mean(d^2)`` (every ``d_i^2`` exceeds ``f`` here), checked
    against displacements computed here from the balanced plan; the cluster that travels
    stays the stiffer one."""
    g = torch.Generator().manual_seed(4)
    sd = math.sqrt(0.005)
    x0 = torch.cat([_cloud(g, 200, 1000, sd), _cloud(g, 100, 1000, sd, (0.0, 2.5))])
    x1 = torch.cat([_cloud(g, 200, 1000, sd, (1.0,)), _cloud(g, 100, 1000, sd, (0.0, 2.5))])
    raw = _weights(x0, x1, False)
    net = _weights(x0, x1, True)
    moving, still = slice(0, 200), slice(200, 300)
    assert float(raw[still].mean()) > 1.7 * REG_M  # the raw weights stiffen every cell
    assert float(raw[moving].mean()) / float(raw[still].mean()) < 1.1
    assert float(net[still].mean()) < 1.45 * REG_M
    assert float(net[moving].mean()) > float(net[still].mean())
    # independent displacements: barycentric images under the balanced plan
    cost = squared_distances(x0, x1)
    cost = (cost - cost.min(0, keepdim=True).values) / cost_scale(x0, x1)
    a = torch.full((len(x0),), 1.0 / len(x0), dtype=torch.float64)
    plan = semi_relaxed_sinkhorn(cost, a, a, REG, math.inf)
    d2 = (((plan @ x1) / plan.sum(1, keepdim=True) - x0) ** 2).sum(1)
    f = float(displacement_floor(x0))
    assert float(d2.min()) > f
    drop = REG_M * STIFF * f / float(d2.mean())
    torch.testing.assert_close(raw - net, torch.full_like(raw, drop), rtol=1e-5, atol=1e-8)


def test_on_dense_low_dimensional_data_the_floor_changes_almost_nothing():
    g = torch.Generator().manual_seed(5)
    x0 = _cloud(g, 400, 2, 1.0)
    x1 = _cloud(g, 400, 2, 1.0, (1.5, 0.0))
    raw = _weights(x0, x1, False)
    net = _weights(x0, x1, True)
    torch.testing.assert_close(net, raw, rtol=0.03, atol=0.0)


def test_couple_interval_applies_the_option_of_the_training_config():
    g = torch.Generator().manual_seed(6)
    sd = math.sqrt(0.005)
    x0 = torch.cat([_cloud(g, 80, 1000, sd), _cloud(g, 40, 1000, sd, (0.0, 2.5))])
    x1 = torch.cat([_cloud(g, 80, 1000, sd, (1.0,)), _cloud(g, 40, 1000, sd, (0.0, 2.5))])
    cfg = TrainConfig()
    assert cfg.motion_noise_floor is False  # opt-in
    rows = {}
    for flag in (True, False):
        c = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0,
                            options={**cfg.to_dict(), "motion_noise_floor": flag},
                            max_block=1024, max_blocks=1,
                            generator=torch.Generator().manual_seed(0))
        rows[flag] = c.row_weights[0]
        torch.testing.assert_close(rows[flag], _weights(x0, x1, flag))
    assert float((rows[False] - rows[True]).min()) > 0.1 * REG_M


def test_motion_noise_floor_must_be_a_bool():
    with pytest.raises(TypeError, match="motion_noise_floor"):
        TrainConfig(motion_noise_floor="yes")
