"""Memory and cost bounds for atlas-size data (fast: small data, small bounds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import vgfm
from vgfm._core.couplings import IntervalCoupling, couple_interval
from vgfm._core.matcher import PairSampler
from vgfm._core.sinkhorn import semi_relaxed_sinkhorn


def _tensors(obj):
    """Every tensor reachable from the attributes of ``obj`` (one level into lists/tuples)."""
    for v in vars(obj).values():
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from (u for u in v if isinstance(u, torch.Tensor))


def _random_blocks(seed=0, shapes=((40, 30), (25, 50), (60, 10))):
    g = torch.Generator().manual_seed(seed)
    src, tgt, plans, growth = [], [], [], []
    offset_s = offset_t = 0
    for n, m in shapes:
        p = torch.rand(n, m, generator=g) ** 4  # uneven entries
        p[0, :] = 0.0  # a row without mass
        plans.append(p)
        src.append(torch.arange(n) + offset_s)
        tgt.append(torch.arange(m) + offset_t)
        growth.append(torch.randn(n, generator=g))
        offset_s, offset_t = offset_s + n, offset_t + m
    return IntervalCoupling(src, tgt, plans, growth, 1.0), offset_s, offset_t


def test_pair_sampler_memory_is_linear_in_plan_entries():
    c, n_rows, n_cols = _random_blocks()
    sampler = PairSampler(c)
    plan_entries = sum(p.numel() for p in c.plans)
    n_block_cols = sum(p.shape[1] for p in c.plans)
    big = [t for t in _tensors(sampler) if t.numel() > n_rows + n_block_cols]
    # one flat cumulative distribution of exactly one entry per plan entry, nothing else large
    assert len(big) == 1 and big[0].numel() == plan_entries
    assert sum(t.numel() for t in _tensors(sampler)) <= plan_entries + 2 * (n_rows + n_block_cols)


def test_hierarchical_frequencies_match_plan():
    c, n_rows, n_cols = _random_blocks(seed=1)
    n = 300_000
    i, j, g = PairSampler(c).sample(n, torch.Generator().manual_seed(0))
    counts = np.zeros((n_rows, n_cols))
    np.add.at(counts, (i.numpy(), j.numpy()), 1)
    expected = np.zeros((n_rows, n_cols))
    for s, t, p in zip(c.source, c.target, c.plans):
        expected[np.ix_(s.numpy(), t.numpy())] = p.double().numpy()
    expected *= n / expected.sum()
    assert counts[expected == 0].sum() == 0  # zero-mass pairs (and blocks' off-diagonal) never
    # pool sparse cells so the chi-square approximation holds
    mask = expected >= 5
    obs = np.append(counts[mask], counts[~mask].sum())
    exp = np.append(expected[mask], expected[~mask].sum())
    chi2 = ((obs - exp) ** 2 / exp).sum()
    assert chi2 < stats.chi2.ppf(0.999, df=len(obs) - 1)
    growth_of = torch.cat(c.growth)
    torch.testing.assert_close(g, growth_of[i])


def test_pair_sampler_is_deterministic():
    c, _, _ = _random_blocks(seed=2)
    s = PairSampler(c)
    a = s.sample(1000, torch.Generator().manual_seed(7))
    b = PairSampler(c).sample(1000, torch.Generator().manual_seed(7))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_blocked_couplings_never_exceed_block_size():
    rng = np.random.default_rng(0)
    x0 = torch.as_tensor(rng.normal(size=(1000, 5)), dtype=torch.float32)
    x1 = torch.as_tensor(rng.normal(size=(1300, 5)) + 0.5, dtype=torch.float32)
    block, max_blocks = 128, 3
    c = couple_interval(x0, x1, mass0=1.0, mass1=1.3, dt=1.0, options={"reg": 0.05, "reg_m": 0.5},
                        max_block=block, max_blocks=max_blocks,
                        generator=torch.Generator().manual_seed(0))
    assert 1 <= len(c.plans) <= max_blocks
    for s, t, p in zip(c.source, c.target, c.plans):
        assert p.shape[0] <= block and p.shape[1] <= block
        assert p.shape == (len(s), len(t))
    src = torch.cat(c.source)
    assert len(torch.unique(src)) == len(src)  # each source cell in at most one block
    assert torch.isfinite(c.row_ratio()).all()


def test_matvec_sinkhorn_matches_logsumexp_reference_with_outliers():
    # an outlying source row (all costs / reg > 745: its kernel row underflows to 0) must
    # fall back to the exact log-sum-exp and agree with a plain log-domain reference
    rng = np.random.default_rng(1)
    cost = torch.as_tensor(rng.uniform(0, 3, size=(30, 40)))
    cost[0] += 20.0
    cost = cost - cost.min(0, keepdim=True).values
    a = torch.full((30,), 1 / 30, dtype=torch.float64)
    b = torch.full((40,), 1.2 / 40, dtype=torch.float64)
    reg, reg_m = 0.01, 0.5
    fi = reg_m / (reg_m + reg)
    f = torch.zeros(30, dtype=torch.float64)
    nc = -cost / reg
    for _ in range(3000):
        g = -reg * torch.logsumexp(nc + (f / reg + a.log())[:, None], 0)
        f = -fi * reg * torch.logsumexp(nc + (g / reg + b.log())[None, :], 1)
    g = -reg * torch.logsumexp(nc + (f / reg + a.log())[:, None], 0)
    ref = torch.exp(nc + (f / reg + a.log())[:, None] + (g / reg + b.log())[None, :])
    plan = semi_relaxed_sinkhorn(cost, a, b, reg, reg_m, tol=1e-12, max_iter=3000)
    assert torch.isfinite(plan).all()
    torch.testing.assert_close(plan.sum(0), b)
    torch.testing.assert_close(plan.sum(1).log(), ref.sum(1).log(), rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def fitted():
    adata = vgfm.datasets.large_time_course(900, n_dims=4, n_times=3, seed=0)
    vgfm.tl.fit(adata, "time", use_rep="X", progress=False, stage1_steps=30, stage2_steps=0,
                hidden=16)
    return adata


def test_evaluate_bounded_on_large_snapshots(fitted):
    n0 = int((fitted.obs["time"] == fitted.obs["time"].min()).sum())
    assert n0 > 120
    df = vgfm.tl.evaluate(fitted, max_cells=100, max_start_cells=120)
    assert len(df) == 2
    assert (df["w1_se"] > 0).all() and np.isfinite(df["w1"]).all()
    again = vgfm.tl.evaluate(fitted, max_cells=100, max_start_cells=120)
    np.testing.assert_array_equal(df["w1"], again["w1"])  # fixed seed: reproducible
    exact = vgfm.tl.evaluate(fitted)  # small data: every cell, exact W1
    assert (exact["w1_se"] == 0).all()
    assert np.all(np.abs(df["w1"] - exact["w1"]) < 0.5 * exact["w1"] + 6 * df["w1_se"])


def test_fit_stores_phase_timing(fitted):
    timing = fitted.uns["vgfm"]["timing"]
    for k in ("seconds_couplings", "seconds_stage1", "seconds_stage2"):
        assert timing[k] >= 0 and math.isfinite(timing[k])
