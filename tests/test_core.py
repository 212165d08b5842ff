"""Numerical tests of :mod:`vgfm._core` against closed forms and independent computations."""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import ot
import pytest
import torch
from scipy import stats

import vgfm._core as core
from vgfm._core import (
    IntervalCoupling,
    PairSampler,
    TrainConfig,
    VelocityGrowthMatcher,
    couple_interval,
    grid_times,
    integrate,
    relative_mass_error,
    semi_relaxed_sinkhorn,
    train,
    wasserstein1,
)

CORE_DIR = Path(core.__file__).resolve().parent
FORBIDDEN = ("anndata", "pandas", "matplotlib", "scanpy", "mudata")
TINY = {"stage1_steps": 30, "stage2_steps": 2, "val_every": 1, "batch_size": 64, "hidden": 16}


def _random_problem(n=30, m=40, r0=1.0, r1=1.6, seed=0):
    """Small semi-relaxed problem: scaled squared-Euclidean cost, masses r0/n and r1/m."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = rng.normal(size=(m, 2)) + 0.5
    cost = ot.dist(x, y)  # squared Euclidean
    cost /= cost.mean()
    a = np.full(n, r0 / n)
    b = np.full(m, r1 / m)
    return cost, a, b


def _t(*arrays):
    return [torch.as_tensor(a, dtype=torch.float64) for a in arrays]


# =============================================================================================
# matcher
# =============================================================================================
class TestMatcher:
    def setup_method(self):
        g = torch.Generator().manual_seed(0)
        self.x0 = torch.randn(50, 3, generator=g, dtype=torch.float64)
        self.x1 = torch.randn(50, 3, generator=g, dtype=torch.float64) + 2.0
        self.growth = torch.linspace(-1, 1, 50, dtype=torch.float64)

    def test_endpoints(self):
        m = VelocityGrowthMatcher(sigma=0.0)
        b0 = m.sample(self.x0, self.x1, self.growth, t0=3.0, dt=2.5, s=torch.zeros(50))
        b1 = m.sample(self.x0, self.x1, self.growth, t0=3.0, dt=2.5, s=torch.ones(50))
        torch.testing.assert_close(b0.x, self.x0, rtol=0, atol=0)  # x_i at s = 0
        torch.testing.assert_close(b1.x, self.x1, rtol=0, atol=0)  # x_j at s = 1
        assert torch.all(b0.t == 3.0)
        assert torch.all(b1.t == 5.5)

    def test_targets_and_time(self):
        m = VelocityGrowthMatcher(sigma=0.0)
        s = torch.rand(50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        b = m.sample(self.x0, self.x1, self.growth, t0=3.0, dt=2.5, s=s)
        assert b.t.shape == (50, 1) and b.x.shape == (50, 3)
        assert b.u.shape == (50, 3) and b.g.shape == (50, 1)
        torch.testing.assert_close(b.t[:, 0], 3.0 + 2.5 * s)  # t = t_k + s * dt (real time)
        torch.testing.assert_close(b.x, (1 - s[:, None]) * self.x0 + s[:, None] * self.x1)
        torch.testing.assert_close(b.u, (self.x1 - self.x0) / 2.5)  # u = (x_j - x_i) / dt
        torch.testing.assert_close(b.g[:, 0], self.growth)

    def test_drawn_s_is_uniform_and_seeded(self):
        m = VelocityGrowthMatcher(sigma=0.0)
        x0 = torch.zeros(20000, 1)
        x1 = torch.ones(20000, 1)
        b = m.sample(x0, x1, torch.zeros(20000), t0=0.0, dt=1.0,
                     generator=torch.Generator().manual_seed(0))
        s = b.x[:, 0].numpy()
        assert 0.0 <= s.min() and s.max() <= 1.0
        assert stats.kstest(s, "uniform").pvalue > 1e-3
        b2 = m.sample(x0, x1, torch.zeros(20000), t0=0.0, dt=1.0,
                      generator=torch.Generator().manual_seed(0))
        assert torch.equal(b.x, b2.x)

    def test_noise_sd_matches_sigma(self):
        sigma = 0.3
        n = 40000
        g = torch.Generator().manual_seed(2)
        x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
        x1 = x0 + 1.0
        s = torch.full((n,), 0.25, dtype=torch.float64)
        b = VelocityGrowthMatcher(sigma=sigma).sample(
            x0, x1, torch.zeros(n), t0=0.0, dt=1.0, s=s, generator=g
        )
        resid = (b.x - (0.75 * x0 + 0.25 * x1)).numpy()
        # sd estimate of 80000 N(0, sigma^2) draws has relative se ~ 0.25 %
        assert abs(resid.std() / sigma - 1.0) < 0.02
        assert abs(resid.mean()) < 4 * sigma / math.sqrt(resid.size)
        assert abs(np.corrcoef(resid[:, 0], resid[:, 1])[0, 1]) < 0.03
        # noise does not touch the targets
        torch.testing.assert_close(b.u, x1 - x0)


# =============================================================================================
# couplings
# =============================================================================================
class TestSemiRelaxedSinkhorn:
    def test_columns_hard_and_mean_row_ratio(self):
        cost, a, b = _random_problem(r0=1.0, r1=1.6)
        plan = semi_relaxed_sinkhorn(*_t(cost, a, b), 0.05, 0.5).numpy()
        np.testing.assert_allclose(plan.sum(0), b, rtol=1e-6, atol=0)
        ratio = plan.sum(1) / a
        assert ratio.mean() == pytest.approx(1.6 / 1.0, rel=1e-6)
        assert np.all(plan >= 0)

    def test_rows_move_toward_uniform_ratio_as_reg_m_grows(self):
        cost, a, b = _random_problem(r0=1.0, r1=1.6)
        cvs = []
        for reg_m in (0.1, 1.0, 10.0):
            plan = semi_relaxed_sinkhorn(*_t(cost, a, b), 0.05, reg_m).numpy()
            ratio = plan.sum(1) / a
            assert ratio.mean() == pytest.approx(1.6, rel=1e-6)
            cvs.append(ratio.std() / ratio.mean())
        assert cvs[0] > cvs[1] > cvs[2] > 0
        assert cvs[2] < 0.1  # nearly the uniform ratio r_{k+1} / r_k

    @pytest.mark.parametrize(("reg", "reg_m"), [(0.1, 1.0), (0.05, 0.5), (0.2, 5.0)])
    def test_agrees_with_pot(self, reg, reg_m):
        cost, a, b = _random_problem(r0=1.0, r1=1.6)
        ref = ot.unbalanced.sinkhorn_unbalanced(
            a, b, cost, reg, reg_m=(reg_m, float("inf")), method="sinkhorn",
            numItermax=100_000, stopThr=1e-13,
        )
        plan = semi_relaxed_sinkhorn(*_t(cost, a, b), reg, reg_m).numpy()
        np.testing.assert_allclose(plan, ref, rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(plan.sum(1), ref.sum(1), rtol=1e-4)

    @pytest.mark.parametrize("reg_m", [0.5, float("inf")])
    def test_eps_scaling_reaches_the_plan_of_the_plain_iteration(self, reg_m):
        # small reg, where the coarse-to-fine start matters: the same plan as iterating at reg
        # from 0, and (relaxed case) as POT's unbalanced Sinkhorn, both to the tolerance
        cost, a, b = _random_problem(n=60, m=80, r0=1.0, r1=1.6 if math.isfinite(reg_m) else 1.0,
                                     seed=3)
        c, a_t, b_t = _t(cost / cost.max(), a, b)
        tight = {"tol": 1e-11, "max_iter": 200_000}
        plain = semi_relaxed_sinkhorn(c, a_t, b_t, 0.01, reg_m, eps_steps=(), **tight)
        scaled = semi_relaxed_sinkhorn(c, a_t, b_t, 0.01, reg_m, **tight)
        torch.testing.assert_close(scaled, plain, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(scaled.sum(0), b_t, rtol=1e-10, atol=0)  # hard target
        if math.isfinite(reg_m):
            ref = ot.unbalanced.sinkhorn_unbalanced(
                a, b, cost / cost.max(), 0.01, reg_m=(reg_m, float("inf")),
                method="sinkhorn", numItermax=200_000, stopThr=1e-14)
            np.testing.assert_allclose(scaled.numpy().sum(1), ref.sum(1), rtol=1e-5)
        # at the default tolerance the two starts differ by no more than the tolerance allows
        d = semi_relaxed_sinkhorn(c, a_t, b_t, 0.01, reg_m)
        assert float((d - plain).abs().sum() / plain.sum()) < 1e-4

    def test_stiff_rows_converge_within_the_default_iterations(self):
        # rows 50-500 times stiffer than reg: the common shift of the potentials contracts by
        # lam / (lam + reg) per plain iteration; with the best shift after every update the
        # default cap is enough, and the optimum's translation condition holds:
        # sum_i a_i exp(-f_i / lam_i) = sum_j b_j
        cost, a, b = _random_problem(n=80, m=90, r0=1.0, r1=1.6, seed=5)
        c, a_t, b_t = _t(cost / cost.max(), a, b)
        lam = torch.linspace(0.5, 5.0, len(a), dtype=torch.float64)
        ref = semi_relaxed_sinkhorn(c, a_t, b_t, 0.01, lam, tol=1e-12, max_iter=400_000)
        for steps in ((), (10.0, 3.0)):
            plan, f = semi_relaxed_sinkhorn(c, a_t, b_t, 0.01, lam, eps_steps=steps,
                                            return_potential=True)
            growth_err = torch.log(plan.sum(1) / ref.sum(1)).abs().max()
            assert float(growth_err) < 1e-4
            mass = torch.sum(a_t * torch.exp(-f / lam))
            assert float(mass) == pytest.approx(float(b_t.sum()), rel=1e-6)
        # the initial potential is taken as given: no coarse solves before it
        warm = semi_relaxed_sinkhorn(c, a_t, b_t, 0.01, lam, init=f, max_iter=1)
        torch.testing.assert_close(warm, plan, rtol=1e-4, atol=1e-10)

    def test_per_row_reg_m_equal_rows_match_scalar(self):
        cost, a, b = _random_problem(r0=1.0, r1=1.6)
        plan = semi_relaxed_sinkhorn(*_t(cost, a, b), 0.05, 0.5)
        rows = semi_relaxed_sinkhorn(*_t(cost, a, b), 0.05, torch.full((len(a),), 0.5))
        torch.testing.assert_close(rows, plan, rtol=1e-12, atol=1e-15)

    def test_per_row_reg_m_minimises_the_primal(self):
        # independent computation: minimise the primal objective directly over plans whose
        # columns sum to b (P = b_j * softmax_i(theta_ij)), with L-BFGS in float64
        cost, a, b = _random_problem(n=6, m=7, r0=1.0, r1=1.5, seed=4)
        c, a_t, b_t = _t(cost, a, b)
        lam = torch.tensor([0.1, 0.3, 1.0, 3.0, 10.0, 0.5], dtype=torch.float64)
        eps = 0.1
        plan = semi_relaxed_sinkhorn(c, a_t, b_t, eps, lam, max_iter=20_000, tol=1e-12)

        def objective(p):
            w = p.sum(1)
            kl_p = (p * torch.log(p / (a_t[:, None] * b_t[None, :])) - p).sum()
            kl_w = (lam * (w * torch.log(w / a_t) - w + a_t)).sum()
            return (c * p).sum() + eps * kl_p + kl_w

        theta = torch.zeros_like(c, requires_grad=True)
        opt = torch.optim.LBFGS([theta], lr=1, max_iter=500, tolerance_grad=1e-13,
                                tolerance_change=1e-15, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = objective(b_t[None, :] * torch.softmax(theta, 0))
            loss.backward()
            return loss

        for _ in range(5):
            opt.step(closure)
        ref = (b_t[None, :] * torch.softmax(theta, 0)).detach()
        assert float(objective(plan)) <= float(objective(ref)) + 1e-10
        torch.testing.assert_close(plan.sum(1), ref.sum(1), rtol=1e-5, atol=1e-9)
        # the stiffest row (lam = 10) stays closest to its own mass a_i
        dev = np.abs(np.log((plan.sum(1) / a_t).numpy()))
        assert dev[4] == dev.min() and dev[4] < 0.05

    def test_per_row_reg_m_rejects_bad_rows(self):
        cost, a, b = _random_problem()
        with pytest.raises(ValueError, match="per-row reg_m"):
            semi_relaxed_sinkhorn(*_t(cost, a, b), 0.05, torch.zeros(len(a)))
        with pytest.raises(ValueError, match="per-row reg_m"):
            semi_relaxed_sinkhorn(*_t(cost, a, b), 0.05, torch.ones(len(a) + 1))

    def test_balanced_rows_equal_a(self):
        cost, a, _ = _random_problem(n=30, m=40)
        b = np.full(40, 1.0 / 40)
        a = np.random.default_rng(3).uniform(0.5, 1.5, size=30)
        a /= a.sum()
        plan = semi_relaxed_sinkhorn(*_t(cost, a, b), 0.05, math.inf).numpy()
        np.testing.assert_allclose(plan.sum(0), b, rtol=1e-6, atol=0)
        np.testing.assert_allclose(plan.sum(1), a, rtol=1e-4)
        ref = ot.sinkhorn(a, b, cost, 0.05, numItermax=100_000, stopThr=1e-13)
        np.testing.assert_allclose(plan, ref, rtol=1e-3, atol=1e-9)

    def test_stable_at_small_reg_relaxed(self):
        cost, a, b = _random_problem(r0=1.0, r1=1.6)
        plan = semi_relaxed_sinkhorn(*_t(cost, a, b), 1e-3, 0.5).numpy()
        assert np.all(np.isfinite(plan)) and np.all(plan >= 0)
        np.testing.assert_allclose(plan.sum(0), b, rtol=1e-6, atol=0)
        assert (plan.sum(1) / a).mean() == pytest.approx(1.6, rel=1e-6)
        # the default iteration budget has converged: rows agree with a long run
        ref = semi_relaxed_sinkhorn(*_t(cost, a, b), 1e-3, 0.5, max_iter=20_000,
                                    tol=1e-9).numpy()
        np.testing.assert_allclose(plan.sum(1), ref.sum(1), rtol=1e-3)

    def test_stable_at_small_reg_balanced(self):
        cost, a, b = _random_problem(r0=1.0, r1=1.0)
        plan = semi_relaxed_sinkhorn(*_t(cost, a, b), 1e-3, math.inf).numpy()
        assert np.all(np.isfinite(plan))
        np.testing.assert_allclose(plan.sum(0), b, rtol=1e-6, atol=0)
        # balanced Sinkhorn converges slowly at small reg: give it the iterations it needs
        plan = semi_relaxed_sinkhorn(*_t(cost, a, b), 1e-3, math.inf, max_iter=20_000).numpy()
        assert np.all(np.isfinite(plan))
        np.testing.assert_allclose(plan.sum(0), b, rtol=1e-6, atol=0)
        np.testing.assert_allclose(plan.sum(1), a, rtol=1e-3)
        emd = ot.emd2(a, b, cost)  # exact OT cost: the entropic plan at reg=1e-3 is near it
        assert (plan * cost).sum() == pytest.approx(emd, rel=0.01)

    def test_balanced_coupling_is_exact_ot(self):
        # the OT-CFM baseline couples with the exact plan (ot.emd): both marginals hold exactly
        # and its cost equals ot.emd2 on the same (column-shifted, scaled) cost
        rng = np.random.default_rng(3)
        x0 = torch.tensor(rng.normal(size=(300, 2)))
        x1 = torch.tensor(rng.normal(size=(310, 2)) + 0.5)
        c = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, solver="exact",
                            max_block=2048, max_blocks=8)
        plan = c.plans[0].double().numpy()
        np.testing.assert_allclose(plan.sum(1), 1 / 300, rtol=1e-5)
        np.testing.assert_allclose(plan.sum(0), 1 / 310, rtol=1e-5)
        np.testing.assert_allclose(c.growth[0].numpy(), 0.0, atol=1e-5)

    def test_rejects_bad_regularisation(self):
        cost, a, b = _random_problem()
        with pytest.raises(ValueError, match="reg"):
            semi_relaxed_sinkhorn(*_t(cost, a, b), 0.0, 1.0)
        with pytest.raises(ValueError, match="reg_m"):
            semi_relaxed_sinkhorn(*_t(cost, a, b), 0.1, -1.0)


def _two_clusters(n=100, seed=0):
    """Cluster A (at the origin): n -> 2n cells; cluster B (at (10, 0)): n -> n."""
    rng = np.random.default_rng(seed)
    x0 = np.concatenate([rng.normal(0, 0.3, (n, 2)), rng.normal(0, 0.3, (n, 2)) + [10, 0]])
    x1 = np.concatenate([rng.normal(0, 0.3, (2 * n, 2)), rng.normal(0, 0.3, (n, 2)) + [10, 0]])
    return (torch.as_tensor(x0, dtype=torch.float32), torch.as_tensor(x1, dtype=torch.float32),
            np.arange(2 * n) < n)


class TestCoupleInterval:
    DT = 2.0

    def _full(self, x0, x1):
        return couple_interval(x0, x1, mass0=1.0, mass1=1.5, dt=self.DT, options={"reg": 0.01, "reg_m": 0.5},
                               max_block=4096, max_blocks=8,
                               generator=torch.Generator().manual_seed(0))

    def test_full_plan_marginals(self):
        x0, x1, _ = _two_clusters()
        c = self._full(x0, x1)
        assert len(c.plans) == 1 and c.plans[0].shape == (200, 300)
        torch.testing.assert_close(c.source[0], torch.arange(200))
        torch.testing.assert_close(c.target[0], torch.arange(300))
        plan = c.plans[0].double()
        torch.testing.assert_close(plan.sum(0), torch.full((300,), 1.5 / 300, dtype=torch.float64),
                                   rtol=1e-5, atol=0)
        ratio = c.row_ratio().double()
        assert float(ratio.mean()) == pytest.approx(1.5, rel=1e-4)  # r_{k+1} / r_k

    def test_growth_target_sign_on_doubling_cluster(self):
        x0, x1, is_a = _two_clusters()
        c = self._full(x0, x1)
        g = c.growth[0].numpy()
        # A doubles in place over dt: log 2 / dt; B keeps its size: 0
        assert g[is_a].mean() == pytest.approx(math.log(2) / self.DT, abs=0.05 * math.log(2))
        assert abs(g[~is_a].mean()) < 0.05 * math.log(2) / self.DT
        assert np.all(g[is_a] > 0)
        assert np.all(g[is_a] > g[~is_a].max())
        # no mass crosses between the clusters
        plan = c.plans[0].numpy()
        assert plan[:100, 200:].sum() < 1e-6 * plan.sum()
        assert plan[100:, :200].sum() < 1e-6 * plan.sum()

    def test_motion_stiffness_separates_moving_cloud_from_growing_cluster(self):
        # a cloud that moves by 1.5 without growing, and a cluster far away that doubles in
        # place; equal counts per cell, population sizes 1 -> 1.25 (the cluster's doubling)
        rng = np.random.default_rng(0)
        moving0 = rng.normal(size=(300, 2)) * 0.4
        moving1 = rng.normal(size=(300, 2)) * 0.4 + [1.5, 0.0]
        still0 = rng.normal(size=(100, 2)) * 0.3 + [0.0, 6.0]
        still1 = rng.normal(size=(200, 2)) * 0.3 + [0.0, 6.0]
        x0 = torch.tensor(np.vstack([moving0, still0]))
        x1 = torch.tensor(np.vstack([moving1, still1]))
        out = {}
        for stiff in (0.0, 10.0):
            c = couple_interval(x0, x1, mass0=1.0, mass1=1.25, dt=1.0,
                                options={"reg": 0.01, "reg_m": 0.5, "reg_m_motion": stiff},
                                max_block=2048, max_blocks=1)
            g = np.empty(400)
            g[c.source[0].numpy()] = c.growth[0].numpy()
            out[stiff] = g
        g0, g1 = out[0.0], out[10.0]
        # in place: the cluster doubled (ln 2) and the cloud did not grow
        assert g1[300:].mean() == pytest.approx(math.log(2), abs=0.1)
        assert abs(g1[:300].mean()) < 0.05
        # the leading-edge "growth" of the moving cloud shrinks several-fold
        assert g1[:300].std() < g0[:300].std() / 3
        edge0 = np.corrcoef(moving0[:, 0], g0[:300])[0, 1]
        assert edge0 > 0.8  # plain semi-relaxed OT grows the leading edge (METHOD §8)

    def test_blocked_coupling_matches_full_plan(self):
        x0, x1, is_a = _two_clusters()
        full = self._full(x0, x1)
        blocked = couple_interval(x0, x1, mass0=1.0, mass1=1.5, dt=self.DT, options={"reg": 0.01, "reg_m": 0.5},
                                  max_block=64, max_blocks=8,
                                  generator=torch.Generator().manual_seed(0))
        assert len(blocked.plans) > 1
        assert all(max(p.shape) <= 64 for p in blocked.plans)
        src = torch.cat(blocked.source)
        assert torch.equal(src.sort().values, torch.arange(200))  # every source cell once
        for s, t, p in zip(blocked.source, blocked.target, blocked.plans):
            assert p.shape == (len(s), len(t))
            assert len(set(t.tolist())) == len(t)
            torch.testing.assert_close(p.double().sum(0),
                                       torch.full((len(t),), 1.5 / len(t), dtype=torch.float64),
                                       rtol=1e-5, atol=0)
        g_blocked = np.empty(200)
        g_blocked[src.numpy()] = torch.cat(blocked.growth).numpy()
        g_full = full.growth[0].numpy()
        tol = 0.3 * math.log(2) / self.DT  # ~3 sd of the block-sampling noise here
        assert abs(g_blocked[is_a].mean() - g_full[is_a].mean()) < tol
        assert abs(g_blocked[~is_a].mean() - g_full[~is_a].mean()) < tol
        assert g_blocked[is_a].mean() > g_blocked[~is_a].mean() + 0.5 * math.log(2) / self.DT
        assert float(blocked.row_ratio().double().mean()) == pytest.approx(1.5, rel=0.1)

    def test_balanced_coupling_has_zero_growth(self):
        x0, x1, _ = _two_clusters()
        c = couple_interval(x0, x1, mass0=1.0, mass1=1.0, dt=1.0, solver="exact",
                            max_block=4096, max_blocks=8)
        assert float(c.growth[0].abs().max()) < 1e-3


# =============================================================================================
# pair sampling
# =============================================================================================
class TestPairSampler:
    def test_frequencies_match_plan(self):
        rng = np.random.default_rng(0)
        plan = rng.uniform(size=(3, 4))
        plan[1, 2] = 0.0
        plan = torch.as_tensor(plan / plan.sum(), dtype=torch.float32)
        src = torch.tensor([10, 11, 12])
        tgt = torch.tensor([20, 21, 22, 23])
        growth = torch.tensor([0.1, 0.2, 0.3])
        c = IntervalCoupling([src], [tgt], [plan], [growth], 1.0)
        n = 200_000
        i, j, g = PairSampler(c).sample(n, torch.Generator().manual_seed(0))
        assert i.shape == j.shape == g.shape == (n,)
        counts = np.zeros((3, 4))
        np.add.at(counts, ((i - 10).numpy(), (j - 20).numpy()), 1)
        assert counts[1, 2] == 0  # impossible pair never drawn
        expected = plan.double().numpy() * n
        mask = expected > 0
        chi2 = (((counts - expected) ** 2)[mask] / expected[mask]).sum()
        assert chi2 < stats.chi2.ppf(0.999, df=mask.sum() - 1)
        torch.testing.assert_close(g, growth[i - 10])  # growth of the *source* cell

    def test_blocks_map_to_global_indices(self):
        p1 = torch.tensor([[0.2, 0.0], [0.0, 0.3]])
        p2 = torch.tensor([[0.5]])
        c = IntervalCoupling(
            [torch.tensor([4, 7]), torch.tensor([1])],
            [torch.tensor([0, 5]), torch.tensor([3])],
            [p1, p2],
            [torch.tensor([1.0, 2.0]), torch.tensor([3.0])],
            1.0,
        )
        n = 100_000
        i, j, g = PairSampler(c).sample(n, torch.Generator().manual_seed(1))
        pairs = set(zip(i.tolist(), j.tolist()))
        assert pairs == {(4, 0), (7, 5), (1, 3)}
        freq = {p: float(((i == p[0]) & (j == p[1])).double().mean()) for p in pairs}
        for p, expect in {(4, 0): 0.2, (7, 5): 0.3, (1, 3): 0.5}.items():
            assert abs(freq[p] - expect) < 5 * math.sqrt(expect * (1 - expect) / n)
        lookup = {4: 1.0, 7: 2.0, 1: 3.0}
        assert all(lookup[a] == b for a, b in zip(i.tolist(), g.tolist()))

    def test_with_replacement_beyond_plan_size(self):
        plan = torch.full((2, 2), 0.25)
        c = IntervalCoupling([torch.arange(2)], [torch.arange(2)], [plan], [torch.zeros(2)], 1.0)
        i, j, _ = PairSampler(c).sample(1000, torch.Generator().manual_seed(0))
        assert len(i) == 1000  # far more pairs than the 4 entries / 2 cells
        counts = np.bincount((2 * i + j).numpy(), minlength=4)
        assert np.all(counts > 180) and counts.sum() == 1000

    def test_rejects_empty_coupling(self):
        with pytest.raises(ValueError, match="no blocks"):
            PairSampler(IntervalCoupling([], [], [], [], 1.0))
        zero = IntervalCoupling([torch.arange(2)], [torch.arange(2)], [torch.zeros(2, 2)],
                                [torch.zeros(2)], 1.0)
        with pytest.raises(ValueError, match="no mass"):
            PairSampler(zero)

    def test_seeded(self):
        x0, x1, _ = _two_clusters(n=20)
        c = couple_interval(x0, x1, mass0=1.0, mass1=1.5, dt=1.0, options={"reg": 0.05, "reg_m": 0.5},
                            max_block=100, max_blocks=8)
        s = PairSampler(c)
        a = s.sample(500, torch.Generator().manual_seed(3))
        b = s.sample(500, torch.Generator().manual_seed(3))
        assert all(torch.equal(u, v) for u, v in zip(a, b))


# =============================================================================================
# ODE integration
# =============================================================================================
class _Const(torch.nn.Module):
    def __init__(self, c, g):
        super().__init__()
        self.c = torch.as_tensor(c, dtype=torch.float64)
        self.g = float(g)

    def forward(self, t, x):
        return self.c.expand_as(x), torch.full((len(x), 1), self.g, dtype=x.dtype)


class _Linear(torch.nn.Module):
    """dx/dt = a x, d log m / dt = x[:, 0]."""

    def __init__(self, a):
        super().__init__()
        self.a = a

    def forward(self, t, x):
        return self.a * x, x[:, :1]


class _TimeDependent(torch.nn.Module):
    """dx/dt = t, d log m / dt = 2 t."""

    def forward(self, t, x):
        t = torch.as_tensor(t, dtype=x.dtype)
        return t * torch.ones_like(x), 2 * t * torch.ones(len(x), 1, dtype=x.dtype)


class TestIntegrate:
    X0 = torch.tensor([[0.5, -1.0], [2.0, 3.0], [0.0, 0.0]], dtype=torch.float64)

    @pytest.mark.parametrize("t", [[0.0, 1.0, 2.0], [0.0, 0.1, 0.5, 2.0, 2.05], [1.5, 4.0]])
    def test_constant_field(self, t):
        c = torch.tensor([0.7, -1.3], dtype=torch.float64)
        x, lm = integrate(_Const(c, 0.4), self.X0, t, n_steps=3)
        tt = torch.tensor(t, dtype=torch.float64) - t[0]
        assert x.shape == (len(t), 3, 2) and lm.shape == (len(t), 3)
        torch.testing.assert_close(x, self.X0[None] + tt[:, None, None] * c, rtol=1e-12,
                                   atol=1e-12)
        torch.testing.assert_close(lm, (0.4 * tt)[:, None].expand(len(t), 3), rtol=1e-12,
                                   atol=1e-12)

    @pytest.mark.parametrize("t", [[0.0, 0.5, 1.0], [0.0, 0.05, 0.3, 1.7, 2.0]])
    def test_linear_field_rk4(self, t):
        a = 0.8
        x, lm = integrate(_Linear(a), self.X0, t, n_steps=10)
        tt = torch.tensor(t, dtype=torch.float64)
        expect_x = self.X0[None] * torch.exp(a * tt)[:, None, None]
        expect_lm = self.X0[None, :, 0] * (torch.exp(a * tt)[:, None] - 1) / a
        # classical RK4, h <= 0.14: global error ~ (a h)^4 / 120 relative
        torch.testing.assert_close(x, expect_x, rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(lm, expect_lm, rtol=1e-5, atol=1e-9)

    def test_time_argument_is_real_time(self):
        t = [1.0, 2.0, 4.5]
        x, lm = integrate(_TimeDependent(), self.X0, t, n_steps=2)
        tt = torch.tensor(t, dtype=torch.float64)
        torch.testing.assert_close(x, self.X0[None] + ((tt**2 - 1) / 2)[:, None, None])
        torch.testing.assert_close(lm, (tt**2 - 1)[:, None].expand(3, 3))

    def test_euler_takes_n_steps_per_interval(self):
        a = 1.0
        t = [0.0, 1.0, 1.5]
        x, _ = integrate(_Linear(a), self.X0, t, n_steps=5, method="euler")
        f1 = (1 + a / 5) ** 5
        f2 = f1 * (1 + a * 0.5 / 5) ** 5
        torch.testing.assert_close(x[1], self.X0 * f1)
        torch.testing.assert_close(x[2], self.X0 * f2)

    def test_log_mass0_and_single_time(self):
        lm0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
        _, lm = integrate(_Const([0.0, 0.0], 1.0), self.X0, [0.0, 2.0], log_mass0=lm0)
        torch.testing.assert_close(lm[-1], lm0 + 2.0)
        x, lm = integrate(_Const([1.0, 1.0], 1.0), self.X0, [3.0])
        torch.testing.assert_close(x[0], self.X0)
        assert torch.all(lm == 0)

    def test_adaptive_solver(self):
        x, _ = integrate(_Linear(0.5), self.X0, [0.0, 1.0, 2.0], method="dopri5")
        torch.testing.assert_close(x[-1], self.X0 * math.exp(1.0), rtol=1e-4, atol=1e-6)

    def test_rejects_decreasing_times(self):
        with pytest.raises(ValueError, match="increasing"):
            integrate(_Const([0.0, 0.0], 0.0), self.X0, [0.0, 2.0, 1.0])

    def test_grid_times(self):
        assert grid_times([0.0, 1.0, 3.0], 2) == [0.0, 0.5, 1.0, 2.0, 3.0]
        g = grid_times([0.0, 0.3, 1.0], 10)
        assert len(g) == 21 and {0.0, 0.3, 1.0} <= set(g) and g == sorted(g)


# =============================================================================================
# metrics
# =============================================================================================
class TestMetrics:
    def test_w1_of_a_shift(self):
        y = np.random.default_rng(0).normal(size=(200, 3))
        shift = np.array([1.2, -0.9, 0.4])
        res = wasserstein1(y + shift, y)
        assert res.value == pytest.approx(np.linalg.norm(shift), rel=1e-9)
        assert res.se == 0 and res.n_subsamples == 1
        # torch inputs, identical answer
        assert wasserstein1(torch.as_tensor(y + shift), torch.as_tensor(y)).value == (
            pytest.approx(np.linalg.norm(shift), rel=1e-9)
        )

    def test_w1_weighted_1d_by_hand(self):
        # x = {0: 3/4, 1: 1/4}, y = {0: 1/2, 2: 1/2}: W1 = int |F - G| = 0.25 * 1 + 0.5 * 1
        x = np.array([[0.0], [1.0]])
        y = np.array([[0.0], [2.0]])
        assert wasserstein1(x, y, np.array([3.0, 1.0])).value == pytest.approx(0.75, abs=1e-12)
        assert wasserstein1(x, y, np.array([30.0, 10.0])).value == pytest.approx(0.75, abs=1e-12)
        assert wasserstein1(x, y).value == pytest.approx(0.5, abs=1e-12)  # uniform: 0->0, 1->2
        # weights concentrating on one particle
        assert wasserstein1(x, y, np.array([0.0, 1.0])).value == pytest.approx(1.0, abs=1e-12)
        # agrees with the 1-D closed form on random data
        rng = np.random.default_rng(1)
        xs, ys, w = rng.normal(size=50), rng.normal(size=70) + 0.3, rng.uniform(size=50)
        ref = stats.wasserstein_distance(xs, ys, u_weights=w)
        assert wasserstein1(xs[:, None], ys[:, None], w).value == pytest.approx(ref, rel=1e-9)

    def test_w1_subsampling_rule(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(600, 2)) + [3.0, 0.0]
        y = rng.normal(size=(500, 2))
        w = rng.uniform(0.5, 1.5, size=600)
        exact = wasserstein1(x, y, w, max_cells=10_000)
        assert exact.se == 0
        sub = wasserstein1(x, y, w, max_cells=200, n_subsamples=5, seed=0)
        assert sub.n_subsamples == 5
        assert sub.se > 0
        assert abs(sub.value - exact.value) < 0.1 * exact.value
        again = wasserstein1(x, y, w, max_cells=200, n_subsamples=5, seed=0)
        assert again.value == sub.value  # seeded

    def test_w1_rejects_bad_weights(self):
        x = np.zeros((3, 2))
        with pytest.raises(ValueError, match="weights"):
            wasserstein1(x, x, np.ones(2))
        with pytest.raises(ValueError, match="weights"):
            wasserstein1(x, x, np.array([1.0, -1.0, 1.0]))
        with pytest.raises(ValueError, match="weights"):
            wasserstein1(x, x, np.zeros(3))

    def test_relative_mass_error(self):
        assert relative_mass_error(2.2, 2.0) == pytest.approx(0.1, abs=1e-15)
        assert relative_mass_error(1.8, 2.0) == pytest.approx(0.1, abs=1e-15)
        assert relative_mass_error(1.5, 1.5) == 0.0
        assert relative_mass_error(3.0, 1.0) == pytest.approx(2.0)
        with pytest.raises(ValueError, match="observed_size"):
            relative_mass_error(1.0, 0.0)


# =============================================================================================
# training
# =============================================================================================
def _snapshots(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(40, 2)), rng.normal(size=(60, 2)) + [1.0, 0.0],
            rng.normal(size=(50, 2)) + [2.0, 0.0]]


class TestTrain:
    def test_same_seed_same_weights(self):
        cfg = TrainConfig(**TINY)
        r1 = train(_snapshots(), [0.0, 1.0, 3.0], config=cfg, seed=7, device="cpu")
        r2 = train(_snapshots(), [0.0, 1.0, 3.0], config=cfg, seed=7, device="cpu")
        s1, s2 = r1.field.state_dict(), r2.field.state_dict()
        assert s1.keys() == s2.keys()
        for k in s1:
            assert torch.equal(s1[k], s2[k]), k
        for k in r1.history:
            np.testing.assert_array_equal(r1.history[k], r2.history[k])
        r3 = train(_snapshots(), [0.0, 1.0, 3.0], config=cfg, seed=8, device="cpu")
        s3 = r3.field.state_dict()
        assert any(not torch.equal(s1[k], s3[k]) for k in s1 if k.endswith("weight"))

    def test_stage2_growth_lr_zero_keeps_the_stage1_growth(self):
        # stage 2 with the growth network frozen: its weights are those after stage 1 (a fit
        # without stage 2, same seed), while the velocity network goes on training; with the
        # default rate the growth network changes too (bounds off: a bounded rate clamped
        # everywhere would have no gradient)
        def params(f, growth):
            ps = f.growth_parameters() if growth else list(f.velocity_net.parameters())
            return torch.cat([p.detach().ravel() for p in ps])

        base = {**TINY, "bound_growth": False}
        ref = train(_snapshots(), [0.0, 1.0, 3.0], seed=3,
                    config=TrainConfig(**{**base, "stage2_steps": 0})).field
        frozen = train(_snapshots(), [0.0, 1.0, 3.0], seed=3,
                       config=TrainConfig(**{**base, "stage2_steps": 4,
                                             "stage2_growth_lr": 0.0}))
        free = train(_snapshots(), [0.0, 1.0, 3.0], seed=3,
                     config=TrainConfig(**{**base, "stage2_steps": 4}))
        assert frozen.best_step > 0 and free.best_step > 0
        assert torch.equal(params(frozen.field, True), params(ref, True))
        assert not torch.equal(params(frozen.field, False), params(ref, False))
        assert not torch.equal(params(free.field, True), params(ref, True))
        with pytest.raises(ValueError, match="stage2_growth_lr"):
            TrainConfig(stage2_growth_lr=-1.0)

    def test_result_contents(self):
        cfg = TrainConfig(**TINY)
        r = train(_snapshots(), [0.0, 1.0, 3.0], config=cfg, seed=0)
        assert r.history["stage1_loss"].shape == (30,)
        assert r.history["stage2_loss"].shape == (2,)
        assert np.all(np.isfinite(r.history["stage1_loss"]))
        np.testing.assert_array_equal(r.history["val_step"], [0, 1, 2])
        assert r.best_step in (0, 1, 2)
        assert len(r.couplings) == 2
        assert [c.dt for c in r.couplings] == [1.0, 2.0]  # real time, not indices
        # cell-count ratios 60/40 and 50/60 on the training cells (90 % kept)
        ratios = [float(c.row_ratio().double().mean()) for c in r.couplings]
        assert ratios[0] == pytest.approx(54 / 36, rel=1e-3)
        assert ratios[1] == pytest.approx(45 / 54, rel=1e-3)
        assert next(r.field.parameters()).device.type == "cpu"

    def test_population_size_sets_coupling_ratio(self):
        cfg = TrainConfig(**{**TINY, "stage1_steps": 1, "stage2_steps": 0})
        r = train(_snapshots(), [0.0, 1.0, 3.0], population_size=[10, 40, 20], config=cfg)
        ratios = [float(c.row_ratio().double().mean()) for c in r.couplings]
        assert ratios == pytest.approx([4.0, 0.5], rel=1e-3)

    def test_holdout_skips_the_time_point(self):
        cfg = TrainConfig(**{**TINY, "stage1_steps": 1, "stage2_steps": 0})
        r = train(_snapshots(), [0.0, 1.0, 3.0], holdout=1, config=cfg)
        assert len(r.couplings) == 1 and r.couplings[0].dt == 3.0

    def test_otcfm_has_no_growth(self):
        cfg = TrainConfig(method="otcfm", **TINY)
        r = train(_snapshots(), [0.0, 1.0, 3.0], config=cfg, seed=0)
        _, g = r.field(torch.zeros(10, 1), torch.randn(10, 2))
        assert torch.all(g == 0)
        assert all(float(c.row_ratio().double().mean()) == pytest.approx(1.0, abs=1e-4)
                   for c in r.couplings)

    def test_time_free_growth_is_the_same_rate_at_every_time(self):
        cfg = TrainConfig(growth_form="x", **TINY)
        r = train(_snapshots(), [0.0, 1.0, 3.0], config=cfg, seed=0)
        x = torch.randn(20, 2, generator=torch.Generator().manual_seed(1))
        g = [r.field(torch.full((20,), t), x)[1] for t in (0.0, 1.3, 3.0)]
        assert not torch.allclose(g[0], torch.zeros_like(g[0]))  # it learned some growth
        torch.testing.assert_close(g[0], g[1], rtol=0, atol=0)
        torch.testing.assert_close(g[0], g[2], rtol=0, atol=0)
        # the growth network has d inputs; the velocity still depends on time
        assert r.field.growth_net[0].in_features == 2
        v0, v3 = r.field(torch.zeros(20), x)[0], r.field(torch.full((20,), 3.0), x)[0]
        assert not torch.allclose(v0, v3)
        # with time as an input the rates differ between times
        r2 = train(_snapshots(), [0.0, 1.0, 3.0], config=TrainConfig(**TINY), seed=0)
        assert not torch.allclose(r2.field(torch.zeros(20), x)[1],
                                  r2.field(torch.full((20,), 3.0), x)[1])

    def test_additive_growth_differences_do_not_depend_on_time(self):
        cfg = TrainConfig(growth_form="x+t", **TINY)
        r = train(_snapshots(), [0.0, 1.0, 3.0], config=cfg, seed=0)
        x = torch.randn(20, 2, generator=torch.Generator().manual_seed(1))
        g = [r.field(torch.full((20,), t), x)[1][:, 0] for t in (0.0, 1.3, 3.0)]
        # g(x) + c(t): the rates move together, differences between cells are the same
        for gt in g[1:]:
            torch.testing.assert_close(gt - gt[0], g[0] - g[0][0], rtol=0, atol=1e-5)
        assert not torch.allclose(g[0], g[2])  # the shared rate c(t) does change
        n_growth = sum(p.numel() for p in r.field.growth_parameters())
        assert n_growth == sum(p.numel() for p in r.field.growth_net.parameters()) + sum(
            p.numel() for p in r.field.growth_offset.parameters())

    def test_input_validation(self):
        cfg = TrainConfig(**TINY)
        with pytest.raises(ValueError, match="increasing"):
            train(_snapshots(), [0.0, 2.0, 1.0], config=cfg)
        with pytest.raises(ValueError, match="population_size"):
            train(_snapshots(), [0.0, 1.0, 2.0], population_size=[1, 0, 2], config=cfg)
        with pytest.raises(ValueError, match="population_size"):
            train(_snapshots(), [0.0, 1.0, 2.0], population_size=[1, 2], config=cfg)
        with pytest.raises(ValueError, match="holdout"):
            train(_snapshots(), [0.0, 1.0, 2.0], holdout=0, config=cfg)
        with pytest.raises(ValueError, match="holdout"):
            train(_snapshots(), [0.0, 1.0, 2.0], holdout=2, config=cfg)
        with pytest.raises(ValueError, match="snapshot"):
            train(_snapshots()[:1], [0.0], config=cfg)


class TestTrainConfig:
    def test_rejects_bad_values(self):
        with pytest.raises(ValueError, match="method"):
            TrainConfig(method="sbirr")
        for name in ("reg", "reg_m", "lr", "stage2_lr"):
            for bad in (0.0, -1.0):
                with pytest.raises(ValueError, match=name):
                    TrainConfig(**{name: bad})
        with pytest.raises(ValueError, match="val_fraction"):
            TrainConfig(val_fraction=0.5)
        with pytest.raises(ValueError, match="growth_form"):
            TrainConfig(growth_form="t")

    def test_round_trip(self):
        cfg = TrainConfig(reg=0.02, hidden=8, method="otcfm")
        assert TrainConfig(**cfg.to_dict()) == cfg


# =============================================================================================
# layering: _core never imports AnnData-world libraries
# =============================================================================================
def test_core_has_no_forbidden_imports_static():
    files = sorted(CORE_DIR.glob("*.py"))
    assert {f.name for f in files} >= {"couplings.py", "matcher.py", "metrics.py", "ode.py",
                                       "networks.py", "train.py"}
    for f in files:
        tree = ast.parse(f.read_text(), filename=str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                if node.level == 0 and node.module and node.module.startswith("vgfm"):
                    assert node.module.startswith("vgfm._core"), f"{f.name} imports {node.module}"
                if node.level > 1:
                    pytest.fail(f"{f.name} imports from outside _core (relative level {node.level})")
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{f.name} imports {name}"
                assert not name.startswith(("vgfm.tl", "vgfm.pl", "vgfm.pp")), f.name


def _run_isolated(code: str) -> subprocess.CompletedProcess:
    prelude = textwrap.dedent(f"""
        import importlib, sys, types
        stub = types.ModuleType("vgfm")  # parent package without running vgfm/__init__.py
        stub.__path__ = [{str(CORE_DIR.parent)!r}]
        sys.modules["vgfm"] = stub
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_core_imports_without_anndata_world():
    mods = ["vgfm._core"] + [f"vgfm._core.{f.stem}" for f in sorted(CORE_DIR.glob("*.py"))
                             if f.stem != "__init__"]
    # with the forbidden packages made unimportable (sys.modules[name] = None), _core imports
    # and computes; a plain import cannot be checked for pandas, which POT loads through
    # scikit-learn whatever vgfm does
    code = f"""
        for name in {FORBIDDEN!r}:
            sys.modules[name] = None  # any import of it raises ImportError
        for m in {mods!r}:
            importlib.import_module(m)
        import numpy as np
        from vgfm._core import TrainConfig, train, wasserstein1
        rng = np.random.default_rng(0)
        r = train([rng.normal(size=(30, 2)), rng.normal(size=(40, 2)) + 1], [0.0, 1.0],
                  config=TrainConfig(stage1_steps=2, stage2_steps=1, hidden=8), device="cpu")
        print(round(wasserstein1(np.zeros((1, 2)), np.ones((1, 2))).value, 6))
        print(sorted(m for m, v in sys.modules.items()
                     if v is not None and m.split(".")[0] in {FORBIDDEN!r}))
        print("vgfm.tl" in sys.modules, "vgfm.pp" in sys.modules, "vgfm.pl" in sys.modules)
    """
    proc = _run_isolated(code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-3:] == ["1.414214", "[]", "False False False"]


def test_stage2_loss_auto_follows_the_dimension():
    """``stage2_loss="auto"`` fits high-dimensional snapshots with the energy distance (which
    does not reward shrinking a cloud to its mean) and low-dimensional ones with W1."""
    from vgfm._core.train import AUTO_ENERGY_DIM, TrainConfig, resolve_stage2_loss, train

    assert TrainConfig().stage2_loss == "auto"
    assert resolve_stage2_loss("auto", AUTO_ENERGY_DIM - 1) == "w1"
    assert resolve_stage2_loss("auto", AUTO_ENERGY_DIM) == "energy"
    rng = np.random.default_rng(0)
    cfg = TrainConfig(stage1_steps=5, stage2_steps=2, val_every=1)
    for dim, expected in ((3, "w1"), (AUTO_ENERGY_DIM, "energy")):
        snaps = [rng.normal(size=(40, dim)), rng.normal(size=(40, dim)) + 1.0]
        res = train(snaps, [0.0, 1.0], config=cfg, seed=0)
        assert res.extra["stage2_loss"] == expected


def test_checkpoint_score_is_proper_where_w1_to_few_cells_is_not():
    """The stage-2 checkpoint score uses the energy distance: against a few observed cells it
    prefers, on average, a prediction drawn from their law, whereas W1 to the same cells prefers
    one shrunk towards them (why scoring on a handful of held-back cells picked collapsed fits)."""
    from vgfm._core.metrics import wasserstein1
    from vgfm._core.train import SCORE_DISTANCE, energy_distance

    assert SCORE_DISTANCE == "energy"
    g = torch.Generator().manual_seed(0)
    dim, n_obs, n_pred = 6, 12, 1024
    good = torch.randn(n_pred, dim, generator=g, dtype=torch.float64)
    shrunk = 0.5 * torch.randn(n_pred, dim, generator=g, dtype=torch.float64)
    w = torch.ones(n_pred, dtype=torch.float64)
    e_good, e_shrunk, w1_good, w1_shrunk = [], [], [], []
    for _ in range(30):
        y = torch.randn(n_obs, dim, generator=g, dtype=torch.float64)
        wy = torch.ones(n_obs, dtype=torch.float64)
        e_good.append(float(energy_distance(good, w, y, wy)))
        e_shrunk.append(float(energy_distance(shrunk, w, y, wy)))
        w1_good.append(wasserstein1(good.numpy(), y.numpy()).value)
        w1_shrunk.append(wasserstein1(shrunk.numpy(), y.numpy()).value)
    assert np.mean(w1_shrunk) < np.mean(w1_good)  # W1 to 12 cells rewards the shrunk cloud
    assert np.mean(e_good) < np.mean(e_shrunk)  # the energy score does not
    # and the energy of the right law is close to its closed-form expectation E|Y-Y'| / n_obs
    # (the zero diagonal of the observed cells' self term; 0 for an infinite sample)
    e_yy = float(torch.cdist(good[:500], good[500:1000]).mean())
    assert abs(np.mean(e_good) - e_yy / n_obs) < 0.5 * e_yy / n_obs


def test_energy_self_term_cache_gives_the_same_scores():
    """The checkpoint score computes the observed cells' own term once per time point and
    reuses it: the distance is then bit-for-bit the one computed in full, which in turn agrees
    with an independent computation of 2E|X-Y| - E|X-X'| - E|Y-Y'| from scipy's distances."""
    from scipy.spatial.distance import cdist

    from vgfm._core.networks import VelocityGrowthField
    from vgfm._core.train import energy_distance, energy_self_term, rollout_scores

    g = torch.Generator().manual_seed(3)
    x = torch.randn(70, 4, generator=g, dtype=torch.float64)
    y = torch.randn(90, 4, generator=g, dtype=torch.float64) + 0.5
    wx = torch.rand(70, generator=g, dtype=torch.float64) + 0.1
    wy = torch.ones(90, dtype=torch.float64)
    full = energy_distance(x, wx, y, wy)
    cached = energy_distance(x, wx, y, wy, y_term=energy_self_term(y, wy))
    assert float(full) == float(cached)
    a, b = (wx / wx.sum()).numpy(), (wy / wy.sum()).numpy()
    xn, yn = x.numpy(), y.numpy()
    ref = 2 * a @ cdist(xn, yn) @ b - a @ cdist(xn, xn) @ a - b @ cdist(yn, yn) @ b
    assert abs(float(full) - ref) < 1e-10

    fld = VelocityGrowthField(4, center=torch.zeros(4), scale=1.0, t_start=0.0, t_span=2.0)
    x0 = torch.randn(50, 4, generator=g)
    targets = [None, torch.randn(60, 4, generator=g), torch.randn(80, 4, generator=g) + 1]
    plain = rollout_scores(fld, x0, [0.0, 1.0, 2.0], targets, [1.0, 1.2, 1.5], 3,
                           distance="energy")
    cache: dict = {}
    for _ in range(2):  # the first call fills the cache, the second reads it
        again = rollout_scores(fld, x0, [0.0, 1.0, 2.0], targets, [1.0, 1.2, 1.5], 3,
                               distance="energy", cache=cache)
        assert again == plain
    assert sorted(cache) == [1, 2]


def test_adam_helper_matches_the_loop_update():
    # vgfm._core.networks.adam uses torch's fused kernel where the device has one; it is the
    # same algorithm as the per-tensor loop, so after many steps the weights agree to rounding
    from vgfm._core.networks import adam, mlp

    def run(make):
        torch.manual_seed(0)
        net = mlp(3, 2, 16, 2)
        opt = make(net.parameters())
        gen = torch.Generator().manual_seed(1)
        x, y = torch.randn(64, 3, generator=gen), torch.randn(64, 2, generator=gen)
        for _ in range(50):
            loss = ((net(x) - y) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return opt, torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    opt_f, w_f = run(lambda p: adam(p, lr=1e-2))
    _, w_l = run(lambda p: torch.optim.Adam(p, lr=1e-2))
    torch.testing.assert_close(w_f, w_l, rtol=1e-5, atol=1e-6)
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):  # fused CPU Adam exists from torch 2.4 on
        assert opt_f.defaults["fused"] is True
    with pytest.raises(ValueError, match="learning rate"):
        adam(torch.nn.Linear(2, 1).parameters(), lr=-1.0)
