"""Growth told from motion: the growth-free null of a coupling and the per-interval test."""

from __future__ import annotations

import logging
import math

import anndata
import numpy as np
import pytest
import torch

import vgfm
from vgfm._core.couplings import couple_interval, motion_null_growth
from vgfm._core.train import (
    TrainConfig,
    growth_vs_motion,
    relaxation_factor,
    train,
    uniform_growth_coupling,
)

OPTS = {"reg": 0.01, "reg_m": 0.5, "reg_m_motion": 3.0}


def _shift_and_spread(seed: int, n: int = 300):
    """A Gaussian cloud that moves and widens, without any growth (equal masses)."""
    g = torch.Generator().manual_seed(seed)
    x0 = 0.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x1 = 0.9 * torch.randn(n, 2, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0.0],
                                                                                dtype=torch.float64)
    return x0, x1, g


def _growth_in_place(seed: int, n: int = 300, factor: float = 5.0):
    """Two separate clusters that stay where they are; the right one grows ``factor``-fold."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    x0 = torch.cat([centres[0] + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64),
                    centres[1] + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)])
    n_right = int(round(factor * n))
    x1 = torch.cat([centres[0] + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64),
                    centres[1] + 0.3 * torch.randn(n_right, 2, generator=g,
                                                   dtype=torch.float64)])
    mass1 = (n + n_right) / (2 * n)
    return x0, x1, mass1, g


def test_null_of_a_growth_free_motion_reproduces_the_false_growth():
    x0, x1, g = _shift_and_spread(0)
    c = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, options=OPTS, max_block=1024,
                        max_blocks=1, generator=g)
    real = torch.cat(c.growth).double()
    null = motion_null_growth(x0, x1, c, mass0=1.0, options=OPTS, generator=g)
    assert float(real.std()) > 0.1  # the coupling does report false growth here ...
    explained = 1 - float((real - null).var() / real.var())
    assert explained > 0.9  # ... and a growth-free population with its motion shows the same
    # the null target carries the source's mass: the null plan's rows sum to it
    assert math.isclose(float((torch.exp(null) / len(x0)).sum()), 1.0, rel_tol=1e-6)


def test_null_of_growth_in_place_is_flat():
    x0, x1, mass1, g = _growth_in_place(1)
    c = couple_interval(x0, x1, mass0=1.0, mass1=mass1, dt=1.0, options=OPTS, max_block=4096,
                        max_blocks=1, generator=g)
    real = torch.cat(c.growth).double().numpy()
    null = motion_null_growth(x0, x1, c, mass0=1.0, options=OPTS, generator=g).numpy()
    right = np.arange(len(x0)) >= len(x0) // 2
    # the coupling finds the fivefold growth of the right cluster (log 5 = 1.61 between them)
    assert real[right].mean() - real[~right].mean() == pytest.approx(math.log(5.0), abs=0.15)
    # without growth nothing crosses between the clusters, so the null has no such difference
    assert abs(null[right].mean() - null[~right].mean()) < 0.1
    assert 1 - np.var(real - null) / np.var(real) < 0.1


def test_motion_null_growth_covers_every_block_and_validates_draws():
    x0, x1, g = _shift_and_spread(2, n=200)
    c = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=0.5, options=OPTS, max_block=64,
                        max_blocks=8, generator=g)
    assert len(c.plans) > 1
    null = motion_null_growth(x0, x1, c, mass0=1.0, options=OPTS, generator=g)
    covered = torch.zeros(len(x0), dtype=torch.bool)
    for s in c.source:
        covered[s] = True
    assert bool(torch.isfinite(null[covered]).all()) and bool(torch.isnan(null[~covered]).all())
    with pytest.raises(ValueError, match="draws must be >= 1"):
        motion_null_growth(x0, x1, c, mass0=1.0, options=OPTS, draws=0)


def test_growth_vs_motion_separates_the_two_cases():
    x0, x1, g = _shift_and_spread(3)
    y0, y1, mass1, _ = _growth_in_place(3)
    stats = []
    for a, b, m1 in ((x0, x1, 1.0), (y0, y1, mass1)):
        c = couple_interval(a, b, mass0=1.0, mass1=m1, dt=1.0, options=OPTS, max_block=4096,
                            max_blocks=1, generator=g)
        stats.append(growth_vs_motion([a, b], [c], [1.0, m1], solver="semi_relaxed",
                                      options=OPTS, seed=0))
    assert stats[0]["motion_explained"][0] > 0.9
    assert stats[1]["motion_explained"][0] < 0.1
    # seeded: the same numbers again
    c = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, options=OPTS, max_block=4096,
                        max_blocks=1, generator=torch.Generator().manual_seed(5))
    again = [growth_vs_motion([x0, x1], [c], [1.0, 1.0], solver="semi_relaxed", options=OPTS,
                              seed=7)["motion_explained"][0] for _ in range(2)]
    assert again[0] == again[1]


def test_relaxation_factor_and_uniform_growth_coupling():
    assert relaxation_factor(float("nan"), 0.8) == 1.0
    assert relaxation_factor(0.8, 0.8) == 1.0
    assert relaxation_factor(0.9, 0.8) == pytest.approx(2.0)
    assert relaxation_factor(0.9995, 0.8) == math.inf
    x0, x1, g = _shift_and_spread(4, n=120)
    c = uniform_growth_coupling(x0, x1[:90], mass0=1.0, mass1=1.5, dt=2.0,
                                solver="semi_relaxed", options=OPTS, max_block=512,
                                max_blocks=1, generator=g)
    plan = c.plans[0].double()
    # balanced: every source cell carries 1.5 / 120, every target cell 1.5 / 90
    assert torch.allclose(plan.sum(1), torch.full((120,), 1.5 / 120, dtype=torch.float64),
                          rtol=1e-3)
    assert torch.allclose(plan.sum(0), torch.full((90,), 1.5 / 90, dtype=torch.float64),
                          rtol=1e-3)
    assert torch.allclose(c.growth[0].double(), torch.full((120,), math.log(1.5) / 2.0,
                                                           dtype=torch.float64))


def test_training_makes_growth_free_motion_grow_alike():
    """A cloud that moves and widens over three snapshots without growth: with the test the
    learned growth is far smaller than without it, and the record says why."""
    g = torch.Generator().manual_seed(0)
    snaps = [0.4 * (1 + 0.5 * k) * torch.randn(250, 2, generator=g) + torch.tensor([k, 0.0])
             for k in range(3)]
    spans = {}
    for test in (0.8, None):
        # the motion test alone (the sampling-noise test is tests/test_noise_test.py's)
        cfg = TrainConfig(stage1_steps=300, stage2_steps=0, growth_test=test,
                          growth_noise_test=None)
        res = train(snaps, [0.0, 1.0, 2.0], population_size=[1.0, 1.0, 1.0], config=cfg,
                    seed=0)
        x = torch.cat(snaps[:2])
        t = torch.cat([torch.full((250,), 0.0), torch.full((250,), 1.0)])
        with torch.no_grad():
            growth = res.field(t, x)[1].reshape(-1)
        spans[test] = float(growth.abs().mean()) * 2.0
        motion = res.extra["growth_vs_motion"]
        assert min(motion["motion_explained"]) > 0.9
        assert all(f > 1 for f in motion["reg_m_factor"]) == (test is not None)
    assert spans[0.8] < 0.2
    assert spans[0.8] < 0.5 * spans[None]


def test_fit_records_the_test_and_warns(caplog: pytest.LogCaptureFixture, tmp_path) -> None:
    adata = vgfm.datasets.two_gene_grn(n_cells_0=80, birth_rate=0.0, death_rate=0.0, seed=0)
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        vgfm.tl.fit(adata, "time", use_rep="X", population_size=[1, 1, 1, 1, 1],
                    stage1_steps=20, stage2_steps=0, progress=False)
    entry = adata.uns["vgfm"]["growth_vs_motion"]
    assert list(entry["start"]) == ["0", "0.5", "1", "1.5"]
    assert list(entry["end"]) == ["0.5", "1", "1.5", "2"]
    assert entry["motion_explained"][0] > 0.9 and entry["reg_m_factor"][0] > 1
    assert "signal_to_noise" not in entry  # the sampling-noise test is opt-in
    warned = [r.getMessage() for r in caplog.records if "stiffer relaxation" in r.getMessage()]
    assert len(warned) == 1 and "0 -> 0.5" in warned[0]
    path = tmp_path / "fit.h5ad"
    adata.write_h5ad(path)
    again = anndata.read_h5ad(path).uns["vgfm"]["growth_vs_motion"]
    np.testing.assert_allclose(again["motion_explained"], entry["motion_explained"])
    np.testing.assert_allclose(again["reg_m_factor"], entry["reg_m_factor"])


def test_coupling_records_its_row_weights_and_the_null_reuses_them():
    from vgfm._core.couplings import IntervalCoupling, cost_scale, motion_reg_m
    from vgfm._core.sinkhorn import squared_distances

    x0, x1, _ = _shift_and_spread(3, n=200)
    c = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, options=OPTS, max_block=1024,
                        max_blocks=1, generator=torch.Generator().manual_seed(0))
    # the recorded weights are motion_reg_m's, recomputed independently here
    cost = squared_distances(x0, x1)
    cost = (cost - cost.min(0, keepdim=True).values) / cost_scale(
        x0, x1, generator=torch.Generator().manual_seed(0))
    a = torch.full((len(x0),), 1.0 / len(x0), dtype=torch.float64)
    expect = motion_reg_m(x0, x1, cost, a, a, reg=OPTS["reg"], reg_m=OPTS["reg_m"],
                          stiffness=OPTS["reg_m_motion"])
    assert c.row_weights is not None and len(c.row_weights) == 1
    torch.testing.assert_close(c.row_weights[0], expect)
    assert float(c.row_weights[0].max()) > 3 * float(c.row_weights[0].min())
    # the null solves with those weights: giving it uniform weights equals a null solved
    # without per-cell stiffening, and differs from the one with the recorded weights
    flat = IntervalCoupling(c.source, c.target, c.plans, c.growth, c.dt,
                            [torch.full_like(expect, OPTS["reg_m"])])
    null_flat = motion_null_growth(x0, x1, flat, mass0=1.0, options=OPTS,
                                   generator=torch.Generator().manual_seed(5))
    no_motion = IntervalCoupling(c.source, c.target, c.plans, c.growth, c.dt)
    null_plain = motion_null_growth(x0, x1, no_motion, mass0=1.0,
                                    options={**OPTS, "reg_m_motion": 0.0},
                                    generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(null_flat, null_plain)
    null_real = motion_null_growth(x0, x1, c, mass0=1.0, options=OPTS,
                                   generator=torch.Generator().manual_seed(5))
    assert float((null_real - null_plain).abs().max()) > 1e-3
    # without per-cell stiffening nothing is recorded
    plain = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0,
                            options={**OPTS, "reg_m_motion": 0.0}, max_block=1024, max_blocks=1)
    assert plain.row_weights is None


def test_shrunk_targets_keep_the_loose_plans_differences_divided_by_the_factor():
    """``stiffened_targets="shrunk"``: a stiffened interval regresses on the net targets of the
    coupling the test measured, their differences divided by the stiffening, with the stiff
    plan's pairs and total mass (checked against the loose coupling computed here)."""
    from vgfm._core.train import fit_couplings

    x0, x1, _ = _shift_and_spread(1)
    snaps = [x0.float(), x1.float()]
    out = {}
    for mode in ("plan", "shrunk"):
        cfg = TrainConfig(stiffened_targets=mode, growth_noise_test=None)
        out[mode] = fit_couplings(snaps, [0.0, 1.0], [1.0, 1.0], config=cfg,
                                  generator=torch.Generator().manual_seed(0))
    (shrunk, motion), (plain, _) = out["shrunk"], out["plan"]
    factor = motion["reg_m_factor"][0]
    assert 1.0 < factor < math.inf
    loose = couple_interval(snaps[0], snaps[1], mass0=1.0, mass1=1.0, dt=1.0,
                            options={**TrainConfig().to_dict(), "net_of_motion": True},
                            max_block=2048, max_blocks=8)
    net = loose.net_growth()[0].double()
    got = shrunk[0].growth[0].double()
    torch.testing.assert_close(got - got.mean(), (net - net.mean()) / factor, atol=1e-5,
                               rtol=1e-4)
    torch.testing.assert_close(shrunk[0].plans[0], plain[0].plans[0])  # the same pairs
    plan_mass = float(shrunk[0].plans[0].double().sum())
    assert float(torch.exp(got).mean()) == pytest.approx(plan_mass, rel=1e-5)
    assert not torch.allclose(got, plain[0].growth[0].double(), atol=1e-4)


def test_stiffened_targets_option_is_checked():
    with pytest.raises(ValueError, match="stiffened_targets"):
        TrainConfig(stiffened_targets="loose")


def test_fit_couplings_with_recorded_factors_equal_a_run_of_the_test():
    """Passing the factors a run of the growth test recorded skips the test and gives the same
    couplings (the test draws from its own generator); a wrong count is refused."""
    from vgfm._core.train import fit_couplings

    g = torch.Generator().manual_seed(0)
    snaps = [0.4 * (1 + 0.5 * k) * torch.randn(200, 2, generator=g) + torch.tensor([k, 0.0])
             for k in range(3)]
    cfg = TrainConfig()
    ran, motion = fit_couplings(snaps, [0.0, 1.0, 2.0], [1.0, 1.0, 1.0], config=cfg,
                                generator=torch.Generator().manual_seed(1))
    assert any(f > 1 for f in motion["reg_m_factor"])  # the test stiffened something
    given, rec = fit_couplings(snaps, [0.0, 1.0, 2.0], [1.0, 1.0, 1.0], config=cfg,
                               generator=torch.Generator().manual_seed(1),
                               reg_m_factors=motion["reg_m_factor"])
    assert rec == {"reg_m_factor": motion["reg_m_factor"]}
    for a, b in zip(ran, given):
        torch.testing.assert_close(a.plans[0], b.plans[0])
        torch.testing.assert_close(a.growth[0], b.growth[0])
    with pytest.raises(ValueError, match="one factor per interval"):
        fit_couplings(snaps, [0.0, 1.0, 2.0], [1.0, 1.0, 1.0], config=cfg,
                      generator=torch.Generator().manual_seed(1), reg_m_factors=[1.0])
