"""Growth told from sampling noise: the split-half noise of the growth targets and the test."""

from __future__ import annotations

import logging
import math

import anndata
import numpy as np
import pytest
import torch

import vgfm
from vgfm._core.couplings import couple_interval
from vgfm._core.train import (
    TrainConfig,
    fit_couplings,
    growth_vs_motion,
    sampling_noise,
)

OPTS = {"reg": 0.01, "reg_m": 0.5}


def _two_clusters(n: int, g: torch.Generator, share: float = 0.3) -> torch.Tensor:
    """Two tight clusters, ``share`` of the cells in the upper one; every draw the same law."""
    side = (torch.rand(n, 1, generator=g) < share).double() * 4.0
    return side + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(("n0", "n1", "opts"), [
    (300, 300, OPTS),
    (200, 400, OPTS),
    (300, 300, {**OPTS, "reg_m_motion": 3.0}),
])
def test_split_half_noise_matches_independent_draws(n0: int, n1: int, opts: dict) -> None:
    """Nothing moves or grows, so every growth difference is sampling noise: the variance of
    the targets over independent draws of both snapshots is what the split-half estimate,
    computed from one draw at a time, should give."""
    real, est = [], []
    for r in range(24):
        g = torch.Generator().manual_seed(r)
        x0, x1 = _two_clusters(n0, g), _two_clusters(n1, g)
        c = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, options=opts,
                            max_block=4096, max_blocks=1, generator=g)
        real.append(float(c.growth[0].double().var()))
        w = None if c.row_weights is None else c.row_weights[0]
        est.append(sampling_noise(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, solver="semi_relaxed",
                                  options=opts, row_weights=w, splits=4, generator=g))
    ratio = np.mean(est) / np.mean(real)
    assert 0.6 < ratio < 1.6, ratio


def test_sampling_noise_shrinks_with_the_sample_and_validates() -> None:
    g = torch.Generator().manual_seed(0)
    small = [sampling_noise(_two_clusters(150, g), _two_clusters(150, g), mass0=1.0, mass1=1.0,
                            dt=1.0, solver="semi_relaxed", options=OPTS, splits=4, generator=g)
             for _ in range(6)]
    large = [sampling_noise(_two_clusters(600, g), _two_clusters(600, g), mass0=1.0, mass1=1.0,
                            dt=1.0, solver="semi_relaxed", options=OPTS, splits=4, generator=g)
             for _ in range(6)]
    # noise variance goes as one over the sample size: four times the cells, a quarter of it
    assert 2.0 < np.mean(small) / np.mean(large) < 8.0
    # a longer interval divides the same log-ratios by more
    x0, x1 = _two_clusters(200, g), _two_clusters(200, g)
    one, two = (sampling_noise(x0, x1, mass0=1.0, mass1=1.0, dt=dt, solver="semi_relaxed",
                               options=OPTS, splits=3, generator=torch.Generator().manual_seed(1))
                for dt in (1.0, 2.0))
    assert one == pytest.approx(4.0 * two, rel=1e-6)
    with pytest.raises(ValueError, match="splits must be >= 1"):
        sampling_noise(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, solver="semi_relaxed",
                       options=OPTS, splits=0)
    with pytest.raises(ValueError, match="folds must be >= 2"):
        sampling_noise(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, solver="semi_relaxed",
                       options=OPTS, folds=1)


def _snapshots(grow: bool, seed: int, n: int = 300) -> tuple[list[torch.Tensor], list[float]]:
    """Two clusters over three snapshots; with ``grow`` the upper one triples per interval."""
    g = torch.Generator().manual_seed(seed)
    snaps, sizes = [], []
    for k in range(3):
        share = 0.3 * 3.0 ** k / (0.3 * 3.0 ** k + 0.7) if grow else 0.3
        size = (0.3 * 3.0 ** k + 0.7) if grow else 1.0
        snaps.append(_two_clusters(n, g, share).float())
        sizes.append(size)
    return snaps, sizes


def test_signal_to_noise_separates_growth_from_noise() -> None:
    ratios = {}
    for grow in (False, True):
        snaps, sizes = _snapshots(grow, seed=3)
        cfg = TrainConfig(growth_noise_test=None)
        cs, _ = fit_couplings(snaps, [0.0, 1.0, 2.0], sizes, config=cfg,
                              generator=torch.Generator().manual_seed(0))
        motion = growth_vs_motion(snaps, cs, sizes, solver="semi_relaxed",
                                  options=cfg.to_dict(), seed=0, noise_splits=8)
        assert len(motion["signal_to_noise"]) == 2 and len(motion["sampling_sd"]) == 2
        ratios[grow] = motion["signal_to_noise"]
    # a cluster tripling per interval: growth differences far above the noise ...
    assert min(ratios[True]) > 10
    # ... two clusters keeping their shares: what is left is noise (each ratio is about a
    # chi-square with one degree of freedom over its mean, so the bound is loose)
    assert max(ratios[False]) < 6


def test_the_test_makes_noise_intervals_grow_alike() -> None:
    snaps, sizes = _snapshots(False, seed=4)
    factors = {}
    for test in (1e9, None):
        cfg = TrainConfig(growth_noise_test=test, growth_test=None)
        cs, motion = fit_couplings(snaps, [0.0, 1.0, 2.0], sizes, config=cfg,
                                   generator=torch.Generator().manual_seed(0))
        factors[test] = motion["reg_m_factor"]
        if test is not None:
            # an impossible bar: every interval is coupled with uniform growth (the balanced
            # plan at the population ratio, here 1: every target exactly 0)
            for c in cs:
                torch.testing.assert_close(c.growth[0].double(),
                                           torch.zeros(len(c.growth[0]), dtype=torch.float64))
    assert factors[1e9] == [math.inf, math.inf]
    assert factors[None] == [1.0, 1.0]


def test_growth_noise_test_is_validated() -> None:
    with pytest.raises(ValueError, match="growth_noise_test"):
        TrainConfig(growth_noise_test=-1.0)
    with pytest.raises(TypeError, match="growth_noise_test"):
        TrainConfig(growth_noise_test="3")


def test_fit_records_the_noise_test_and_warns(caplog: pytest.LogCaptureFixture,
                                             tmp_path) -> None:
    adata = vgfm.datasets.two_gene_grn(n_cells_0=80, birth_rate=0.0, death_rate=0.0, seed=0)
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        vgfm.tl.fit(adata, "time", use_rep="X", population_size=[1, 1, 1, 1, 1],
                    stage1_steps=20, stage2_steps=0, growth_noise_test=1e9, progress=False)
    entry = adata.uns["vgfm"]["growth_vs_motion"]
    assert entry["signal_to_noise"].shape == (4,) and entry["sampling_sd"].shape == (4,)
    assert np.all(np.isinf(entry["reg_m_factor"]))
    warned = [r.getMessage() for r in caplog.records if "sampling noise" in r.getMessage()]
    assert len(warned) == 1 and "0 -> 0.5" in warned[0] and "1.5 -> 2" in warned[0]
    assert "Every cell of these intervals grows alike" in warned[0]
    # every cell grows alike: the population sizes are equal, so the learned rate is ~0
    assert float(np.abs(adata.obs["vgfm_growth"]).max()) < 0.05
    path = tmp_path / "fit.h5ad"
    adata.write_h5ad(path)
    again = anndata.read_h5ad(path)
    np.testing.assert_allclose(again.uns["vgfm"]["growth_vs_motion"]["signal_to_noise"],
                               entry["signal_to_noise"])
    assert vgfm.get_model(again).config.growth_noise_test == 1e9


def test_warm_started_sinkhorn_reaches_the_same_plan() -> None:
    """The noise test starts each half's Sinkhorn from another half's source potential: the
    plan is the cold start's to the solver's tolerance."""
    from vgfm._core.sinkhorn import semi_relaxed_sinkhorn, squared_distances

    g = torch.Generator().manual_seed(2)
    x0, y1, y2 = (_two_clusters(n, g) for n in (200, 150, 150))
    a = torch.full((200,), 1 / 200, dtype=torch.float64)
    b = torch.full((150,), 1 / 150, dtype=torch.float64)
    c1, c2 = (squared_distances(x0, y) / 4.0 for y in (y1, y2))
    _, f1 = semi_relaxed_sinkhorn(c1, a, b, 0.01, 0.5, return_potential=True)
    cold = semi_relaxed_sinkhorn(c2, a, b, 0.01, 0.5)
    warm, f2 = semi_relaxed_sinkhorn(c2, a, b, 0.01, 0.5, init=f1, return_potential=True)
    torch.testing.assert_close(warm.sum(1), cold.sum(1), rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(warm.sum(0), b)  # the target marginal is hard
    # the returned potential is the plan's: a start from it stops at once, on the same plan
    again = semi_relaxed_sinkhorn(c2, a, b, 0.01, 0.5, init=f2)
    torch.testing.assert_close(again, warm, rtol=1e-6, atol=1e-12)
