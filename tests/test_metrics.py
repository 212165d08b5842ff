"""Spread metrics of :mod:`vgfm._core.metrics` on samples of known laws (closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from vgfm._core.metrics import (
    energy_distance,
    energy_distance_floor,
    off_data_mass,
    spread,
    total_variance,
    variance_ratio,
)


def _gauss_quantiles(mu: float, sd: float, n: int) -> np.ndarray:
    """Deterministic 'sample' of N(mu, sd²): the n mid-quantiles (error O(1/n), no MC noise)."""
    return (mu + sd * norm.ppf((np.arange(n) + 0.5) / n))[:, None]


def _abs_normal_mean(delta: float, s: float) -> float:
    """E|Z| for Z ~ N(delta, s²) (folded normal)."""
    return s * math.sqrt(2 / math.pi) * math.exp(-(delta**2) / (2 * s**2)) + delta * (
        1 - 2 * norm.cdf(-delta / s)
    )


def _energy_closed_form(mu1: float, s1: float, mu2: float, s2: float) -> float:
    """½ (2E|X−Y| − E|X−X'| − E|Y−Y'|) for X ~ N(mu1, s1²), Y ~ N(mu2, s2²); E|X−X'| = 2s/√π."""
    exy = _abs_normal_mean(mu1 - mu2, math.hypot(s1, s2))
    return exy - s1 / math.sqrt(math.pi) - s2 / math.sqrt(math.pi)


@pytest.mark.parametrize(("mu1", "s1", "mu2", "s2"), [(0, 1, 1, 1), (0, 1, 0, 2), (-0.5, 0.5, 1, 1.5)])
def test_energy_distance_1d_gaussians_closed_form(mu1, s1, mu2, s2) -> None:
    x = _gauss_quantiles(mu1, s1, 2000)
    y = _gauss_quantiles(mu2, s2, 1500)
    ed = energy_distance(x, y, max_cells=2000)
    assert ed == pytest.approx(_energy_closed_form(mu1, s1, mu2, s2), abs=2e-3)


def test_energy_distance_weighted_sample_matches_law() -> None:
    # a uniform grid weighted by the N(1, 0.5²) density represents that law
    grid = np.linspace(-3.0, 5.0, 1600)[:, None]
    w = norm.pdf(grid[:, 0], loc=1.0, scale=0.5)
    y = _gauss_quantiles(0.0, 1.0, 1500)
    ed = energy_distance(grid, y, weights=w)
    assert ed == pytest.approx(_energy_closed_form(1.0, 0.5, 0.0, 1.0), abs=2e-3)
    # the same law on both sides, one weighted and one a quantile sample: ≈ 0
    assert energy_distance(grid, _gauss_quantiles(1.0, 0.5, 1500), weights=w) < 1e-3


def test_energy_distance_basic_laws() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=(300, 4))
    assert energy_distance(y, y) == 0.0
    # far apart point masses: E|X-Y| = shift, no within-spread
    a, b = np.zeros((5, 3)), np.zeros((7, 3)) + np.array([3.0, 4.0, 0.0])
    assert energy_distance(a, b) == pytest.approx(5.0)
    # symmetric in its two samples when both are uniform
    z = rng.normal(size=(200, 4)) + 0.3
    assert energy_distance(y, z) == pytest.approx(energy_distance(z, y), rel=1e-12)


def test_duplicating_a_point_equals_doubling_its_weight() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(60, 3)) + 0.5
    w = rng.uniform(0.5, 2.0, size=50)
    dup_x = np.concatenate([x, x[:10]])
    dup_w = np.concatenate([w, w[:10]])
    w2 = w.copy()
    w2[:10] *= 2
    assert energy_distance(dup_x, y, dup_w) == pytest.approx(energy_distance(x, y, w2), rel=1e-12)
    assert total_variance(dup_x, dup_w) == pytest.approx(total_variance(x, w2), rel=1e-12)
    assert variance_ratio(dup_x, y, dup_w) == pytest.approx(variance_ratio(x, y, w2), rel=1e-12)
    # weights are normalised: scaling all of them changes nothing
    assert energy_distance(x, y, 7.0 * w) == pytest.approx(energy_distance(x, y, w), rel=1e-12)


def test_total_variance_against_numpy_weighted_covariance() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 5)) * np.array([1, 2, 3, 0.5, 0.1])
    w = rng.uniform(size=400)
    cov = np.cov(x.T, aweights=w, ddof=0)
    assert total_variance(x, w) == pytest.approx(np.trace(cov), rel=1e-10)
    assert total_variance(x) == pytest.approx(x.var(axis=0).sum(), rel=1e-10)


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_variance_ratio_of_a_scaled_sample(scale: float) -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=(500, 10)) + 3.0
    w = rng.uniform(size=500)
    x = y.mean(axis=0) + scale * (y - y.mean(axis=0))  # scaled about its mean
    assert variance_ratio(x, y) == pytest.approx(scale**2, rel=1e-10)
    # a different law: N(0, s² I) against N(0, I) in 1000-D, ratio ≈ s² within MC error
    big_y = rng.normal(size=(400, 1000))
    big_x = scale * rng.normal(size=(300, 1000))
    assert variance_ratio(big_x, big_y, rng.uniform(0.5, 1.5, 300)) == pytest.approx(
        scale**2, rel=0.02
    )
    assert variance_ratio(x, y, w) != pytest.approx(scale**2, rel=1e-3)  # weights matter


def test_energy_floor_matches_its_expectation() -> None:
    # two halves of m iid draws: E[ED] = ½ E|Y−Y'| (2/h) = 2 E|Y−Y'| / m, E|Y−Y'| = 2/√π in 1-D
    m = 800
    expected = 2 * (2 / math.sqrt(math.pi)) / m
    vals = [
        energy_distance_floor(np.random.default_rng(s).normal(size=(m, 1)), n_splits=10, seed=s)
        for s in range(8)
    ]
    assert np.mean(vals) == pytest.approx(expected, rel=0.2)


def test_spread_perfect_vs_collapsed_in_high_dimension() -> None:
    rng = np.random.default_rng(5)
    d = 200
    y = rng.normal(size=(600, d))
    perfect = rng.normal(size=(600, d))
    collapsed = 0.3 * rng.normal(size=(600, d))
    good, bad = spread(perfect, y, seed=0), spread(collapsed, y, seed=0)
    assert good.variance_ratio == pytest.approx(1.0, abs=0.03)
    # a fresh sample of the law scores about half the two-half floor (equal sizes, see docs)
    assert 0.3 < good.energy_ratio < 0.8
    assert bad.variance_ratio == pytest.approx(0.09, abs=0.01)
    assert bad.energy_ratio > 20
    assert good.energy_floor == bad.energy_floor  # the floor depends on y and the seed only


def test_subsampling_is_seeded_and_close_to_exact() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(3000, 2)), rng.normal(size=(2500, 2)) + 1.0
    exact = energy_distance(x, y, max_cells=3000)
    sub = energy_distance(x, y, max_cells=1000, seed=3)
    assert sub == energy_distance(x, y, max_cells=1000, seed=3)
    assert sub == pytest.approx(exact, rel=0.05)


def test_spread_metric_errors() -> None:
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="coordinates"):
        energy_distance(x, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="weights has 3 entries"):
        energy_distance(x, x, weights=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        total_variance(x, weights=-np.ones(5))
    with pytest.raises(ValueError, match="total variance 0"):
        variance_ratio(np.ones((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 4"):
        energy_distance_floor(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        energy_distance(np.full((3, 2), np.nan), x)


def test_off_data_mass_of_a_sample_of_the_law_is_one_minus_the_quantile() -> None:
    # the threshold is the 99 % quantile of the half-to-half nearest distances, and a fresh
    # sample of the same law is compared with the same half: on average 1 % lies beyond it,
    # in 2-D and in 300-D alike
    for d in (2, 300):
        vals = []
        for s in range(12):
            rng = np.random.default_rng(100 + s)
            y, x = rng.normal(size=(1200, d)), rng.normal(size=(600, d))
            vals.append(off_data_mass(x, y, seed=s))
        assert np.mean(vals) == pytest.approx(0.01, abs=0.006)


def test_off_data_mass_counts_the_mass_put_in_empty_space() -> None:
    # observed cells on a thin ring; the prediction puts mass p (weights, not counts) in the
    # hole, where no cell is: the measure returns that mass, whatever the variance does
    rng = np.random.default_rng(7)

    def ring(n: int) -> np.ndarray:
        a = rng.uniform(0, 2 * np.pi, n)
        return np.c_[np.cos(a), np.sin(a)] + 0.02 * rng.normal(size=(n, 2))

    y = ring(1500)
    x = np.r_[ring(900), 0.15 * rng.normal(size=(100, 2))]
    w = np.r_[np.ones(900), np.full(100, 3.0)]  # the hole holds 300 / 1200 = 0.25 of the mass
    assert off_data_mass(x, y, w) == pytest.approx(0.25, abs=0.02)
    assert off_data_mass(x, y) == pytest.approx(0.10, abs=0.02)  # unweighted: 100 / 1000
    # agreement with an independent nearest-neighbour search on the same halves
    from scipy.spatial import cKDTree

    sub = np.random.default_rng(3)
    yy = y[sub.choice(len(y), 1000, replace=False)]
    perm = sub.permutation(len(yy))
    a, b = yy[perm[:500]], yy[perm[500:]]
    tau = np.quantile(cKDTree(b).query(a)[0], 0.99)
    ref = float((cKDTree(b).query(x)[0] > tau).mean())
    # max_cells=1000 draws the same subsample and split as above (x is not subsampled)
    assert off_data_mass(x, y, max_cells=1000, seed=3) == pytest.approx(ref, abs=1e-12)
    r = spread(x, y, w)
    assert r.off_data_mass == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError, match="quantile"):
        off_data_mass(x, y, quantile=1.0)
    with pytest.raises(ValueError, match="columns"):
        off_data_mass(x, y[:, :1])
