"""Integration schemes of the SDE (vgfm._core.sde.integrate_sde): closed forms and orders."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import vgfm
from vgfm._core.sde import ScoreConfig, ScoreField, integrate_sde
from vgfm._core.train import TrainConfig
from vgfm._model import VGFM
from vgfm.tl._fates import score_to_dict


class _Linear(torch.nn.Module):
    """``v = -lam * x`` (Ornstein-Uhlenbeck drift), ``g = beta * x_1``."""

    def __init__(self, lam: float, beta: float = 0.0):
        super().__init__()
        self.lam, self.beta = lam, beta

    def forward(self, t, x):
        return -self.lam * x, self.beta * x[:, :1]


def _scheme_factors(method: str, u: float) -> tuple[float, float]:
    """One step of the scheme on ``dx = -lam x dt + sigma dW`` with ``u = lam h``:
    ``x' = a x + b sigma dW`` (Euler: ``a = 1 - u``, ``b = 1``; Heun: the predictor
    ``x~ = (1-u) x + sigma dW`` and the corrector ``x + h/2 (-lam x - lam x~) + sigma dW``)."""
    if method == "euler":
        return 1.0 - u, 1.0
    return 1.0 - u + 0.5 * u * u, 1.0 - 0.5 * u


def _ou_variance(method: str, lam: float, sigma: float, h: float, n: int) -> float:
    """Variance after ``n`` steps from a fixed start: ``sigma^2 h b^2 (1 - a^{2n}) / (1 - a^2)``."""
    a, b = _scheme_factors(method, lam * h)
    return sigma**2 * h * b * b * (1.0 - a ** (2 * n)) / (1.0 - a * a)


def test_heun_ou_variance_matches_the_closed_form_euler_does_not() -> None:
    """OU from x0 = 0 with coarse steps (lam h = 0.25): Var x_T = sigma^2/(2 lam)(1 - e^{-2 lam T}).

    Heun's variance equals its own discrete closed form and is within 2.5 % of the SDE's;
    Euler-Maruyama's is 12 % too wide (stationary variance sigma^2 / (lam (2 - lam h)))."""
    lam, sigma, T, n = 1.0, 0.6, 3.0, 12
    h = T / n
    exact = sigma**2 / (2 * lam) * (1 - math.exp(-2 * lam * T))
    x0 = torch.zeros(20000, 4, dtype=torch.float64)
    tol = 5 * math.sqrt(2 / (x0.numel() - 1))  # 5 sd of a pooled sample variance, relative
    got = {}
    for method in ("heun", "euler"):
        x, _ = integrate_sde(_Linear(lam), None, x0, [0.0, T], sigma=sigma, n_steps=n, seed=11,
                             method=method)
        var = float(x[-1].var(0).mean())
        assert var == pytest.approx(_ou_variance(method, lam, sigma, h, n), rel=tol)
        got[method] = var
    assert abs(got["heun"] / exact - 1) < 0.025
    assert got["euler"] / exact - 1 > 0.10


def test_brownian_variance_and_log_mass_under_heun() -> None:
    """Pure Brownian motion with a constant velocity: Var = sigma^2 t, mean c t; the log-mass
    of ``g = beta x_1`` follows the trapezoidal rule, exact in expectation: beta c t^2 / 2."""

    class _Const(torch.nn.Module):
        def forward(self, t, x):
            return torch.full_like(x, 0.3), 0.5 * x[:, :1]

    sigma, t1 = 0.4, 2.0
    x0 = torch.zeros(40000, 2, dtype=torch.float64)
    x, lm = integrate_sde(_Const(), None, x0, [0.0, 0.5, t1], sigma=sigma, n_steps=3, seed=2)
    for k, t in enumerate([0.5, t1], start=1):
        var = x[k].var(0).numpy()
        np.testing.assert_allclose(var, sigma**2 * t, rtol=5 * math.sqrt(2 / len(x0)))
        np.testing.assert_allclose(x[k].mean(0).numpy(), 0.3 * t,
                                   atol=5 * sigma * math.sqrt(t / len(x0)))
        # E log m = ∫ beta (c s) ds; sd of the mean: beta * sd(∫ W ds) / sqrt(n)
        sd = 0.5 * sigma * math.sqrt(t**3 / 3 / len(x0))
        assert float(lm[k].mean()) == pytest.approx(0.5 * 0.3 * t * t / 2, abs=5 * sd + 1e-3)


def test_heun_is_second_order_in_the_drift_euler_first() -> None:
    """Weak error of the mean (and of the log-mass) on a linear drift with coarse steps.

    For ``dx = -lam x dt + sigma dW`` the mean of every scheme follows its deterministic
    recursion, so sigma = 0 measures it exactly: halving the step divides Heun's error by
    about 4 (order 2) and Euler's by about 2 (order 1), for ``x`` and for ``log m`` alike."""
    lam, beta, T = 1.0, 0.7, 2.0
    x0 = torch.ones(3, 2, dtype=torch.float64)
    x_true = math.exp(-lam * T)
    lm_true = beta * (1 - math.exp(-lam * T)) / lam
    err = {m: [] for m in ("heun", "euler")}
    for m in err:
        for n in (4, 8, 16, 32):
            x, lm = integrate_sde(_Linear(lam, beta), None, x0, [0.0, T], sigma=0.0, n_steps=n,
                                  method=m)
            err[m].append((abs(float(x[-1, 0, 0]) - x_true), abs(float(lm[-1, 0]) - lm_true)))
    for which in (0, 1):
        e_h = np.array([e[which] for e in err["heun"]])
        e_e = np.array([e[which] for e in err["euler"]])
        order_h = np.log2(e_h[:-1] / e_h[1:])
        order_e = np.log2(e_e[:-1] / e_e[1:])
        assert np.all(order_h > 1.8), order_h
        assert np.all((order_e > 0.8) & (order_e < 1.3)), order_e
        assert np.all(e_h < e_e / 4) and e_h[-1] < e_e[-1] / 20
    # the scheme's own closed form: x_n = a^n x0
    a, _ = _scheme_factors("heun", lam * T / 8)
    x, _ = integrate_sde(_Linear(lam), None, x0, [0.0, T], sigma=0.0, n_steps=8)
    assert float(x[-1, 0, 0]) == pytest.approx(a**8, rel=1e-12)


def test_noisy_mean_follows_the_heun_recursion() -> None:
    """With noise the sample mean matches Heun's ``a^n x0`` within its Monte-Carlo error and
    is far from Euler's ``(1 - u)^n x0`` (coarse steps, u = 0.5)."""
    lam, sigma, T, n = 1.0, 0.5, 2.0, 4
    x0 = torch.ones(20000, 2, dtype=torch.float64)
    x, _ = integrate_sde(_Linear(lam), None, x0, [0.0, T], sigma=sigma, n_steps=n, seed=5)
    mean = float(x[-1].mean())
    sd = math.sqrt(_ou_variance("heun", lam, sigma, T / n, n) / x0.numel())
    a_h, _ = _scheme_factors("heun", lam * T / n)
    a_e, _ = _scheme_factors("euler", lam * T / n)
    assert mean == pytest.approx(a_h**n, abs=5 * sd)
    assert abs(mean - a_e**n) > 20 * sd
    assert abs(mean - math.exp(-lam * T)) < abs(a_e**n - math.exp(-lam * T)) / 3


def test_seeded_determinism_and_shared_noise_across_schemes() -> None:
    f = _Linear(0.5)
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    a, la = integrate_sde(f, None, x0, [0.0, 0.4, 1.0], sigma=0.3, seed=3, n_steps=5)
    b, lb = integrate_sde(f, None, x0, [0.0, 0.4, 1.0], sigma=0.3, seed=3, n_steps=5)
    c, _ = integrate_sde(f, None, x0, [0.0, 0.4, 1.0], sigma=0.3, seed=4, n_steps=5)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    # with no drift both schemes add the same Brownian increments: identical paths
    h, _ = integrate_sde(None, None, x0, [0.0, 1.0], sigma=0.3, seed=3, method="heun")
    e, _ = integrate_sde(None, None, x0, [0.0, 1.0], sigma=0.3, seed=3, method="euler")
    torch.testing.assert_close(h, e)


def test_bad_method_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"method must be one of \['euler', 'heun'\].*'rk4'"):
        integrate_sde(None, None, torch.zeros(2, 1), [0.0, 1.0], sigma=0.1, method="rk4")


class _Decay(torch.nn.Module):
    dim = 2

    def forward(self, t, x):
        return -x, torch.zeros(len(x), 1, dtype=x.dtype)


def _decay_adata() -> tuple[ad.AnnData, VGFM]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2)).astype(np.float32)
    t = np.r_[np.zeros(40), np.ones(40)]
    adata = ad.AnnData(x, obs=pd.DataFrame({"time": t, "kind": pd.Categorical(["a", "b"] * 40)},
                                           index=[f"c{i}" for i in range(80)]))
    info = {"use_rep": "X", "dim": 2, "time_key": "time", "times": [0.0, 1.0],
            "time_labels": ["0", "1"], "relative_size": [1.0, 1.0], "n_cells": [40, 40],
            "held_out": [False, False], "seed": 0}
    score = ScoreField(2, center=torch.zeros(2), scale=1.0, t_start=0.0, t_span=1.0,
                       knots=[0.0, 1.0], sigma=0.0, floor=0.25)
    for p in score.parameters():
        torch.nn.init.zeros_(p)
    adata.uns["vgfm"] = {"stochastic": score_to_dict(
        score, sigma_estimated=0.0, config=ScoreConfig(), history=np.zeros(0), seconds=0.0,
        seed=0)}
    return adata, VGFM(_Decay(), config=TrainConfig(), info=info)


def test_tl_sde_method_default_is_heun_and_is_validated() -> None:
    """``simulate_stochastic`` integrates with Heun by default, at the drift step bound of
    ``τ_0`` per drift evaluation: with sigma = 0 and v = -x, Heun takes
    ``n_h = ceil(q99|x0| / (2 τ_0))`` steps and gives ``x0 a^n_h`` (``a = 1 - h + h²/2``), Euler
    ``n_e = ceil(q99|x0| / τ_0)`` steps and ``x0 (1 - h)^n_e``: the same number of drift
    evaluations, and Heun is several times closer to ``x0 e^{-1}``."""
    adata, model = _decay_adata()
    before = adata.copy()
    with pytest.raises(ValueError, match="sde_method must be one of"):
        vgfm.tl.simulate_stochastic(adata, model=model, t_eval=[0.0, 1.0], sigma=0.0,
                                    sde_method="milstein")
    with pytest.raises(ValueError, match="sde_method must be one of"):
        vgfm.tl.fates(adata, "kind", model=model, sigma=0.0, sde_method="milstein")
    assert set(adata.uns) == set(before.uns) and adata.obsm.keys() == before.obsm.keys()
    floor = 0.25  # the score's floor (the toy field has no data scale, so no cap applies)
    start = adata.X[(adata.obs["time"] == 0).to_numpy()]
    q = float(np.quantile(np.linalg.norm(start, axis=1), 0.99))  # speed |v| = |x| at t = 0
    n_h, n_e = math.ceil(q / (2 * floor)), math.ceil(q / floor)
    assert n_h >= 3 and n_e >= 2 * n_h - 1
    factor = {"heun": _scheme_factors("heun", 1 / n_h)[0] ** n_h,
              "euler": _scheme_factors("euler", 1 / n_e)[0] ** n_e}
    factor["default"] = factor["heun"]
    err = {}
    for m in ("default", "heun", "euler"):
        kw = {} if m == "default" else {"sde_method": m}
        vgfm.tl.simulate_stochastic(adata, model=model, t_eval=[0.0, 1.0], sigma=0.0, **kw)
        tr = adata.uns["vgfm_trajectories"]
        x0, x1 = tr["x"][0].astype(np.float64), tr["x"][1].astype(np.float64)
        np.testing.assert_allclose(x1, x0 * factor[m], rtol=1e-5, atol=1e-6)
        err[m] = np.abs(x1 - x0 * math.exp(-1.0)).max()
    assert err["heun"] < err["euler"] / 5


def test_tl_simulate_forwards_sde_method() -> None:
    """``tl.simulate(stochastic=True, sde_method=...)`` integrates with that scheme (the same
    paths as ``simulate_stochastic``), and refuses ``sde_method`` for the deterministic ODE."""
    adata, model = _decay_adata()
    for m in ("euler", "heun"):
        a = vgfm.tl.simulate(adata, model=model, t_eval=[0.0, 1.0], stochastic=True, sigma=0.0,
                             sde_method=m, copy=True)
        b = vgfm.tl.simulate_stochastic(adata, model=model, t_eval=[0.0, 1.0], sigma=0.0,
                                        sde_method=m, copy=True)
        np.testing.assert_array_equal(a.uns["vgfm_trajectories"]["x"],
                                      b.uns["vgfm_trajectories"]["x"])
    e = vgfm.tl.simulate(adata, model=model, t_eval=[0.0, 1.0], stochastic=True, sigma=0.0,
                         sde_method="euler", copy=True).uns["vgfm_trajectories"]["x"][1]
    h = vgfm.tl.simulate(adata, model=model, t_eval=[0.0, 1.0], stochastic=True, sigma=0.0,
                         copy=True).uns["vgfm_trajectories"]["x"][1]
    assert not np.allclose(e, h)  # the default (Heun) differs from Euler at the same bound
    with pytest.raises(ValueError, match="stochastic=True only"):
        vgfm.tl.simulate(adata, model=model, sde_method="euler")


def test_score_floor_capped_at_step_length() -> None:
    """The stochastic model's floor ``τ_0`` (which also bounds the SDE's steps) is the fit's
    interpolant noise, capped at ``STEP_LENGTH`` data scales: the default fit's noise (0.15)
    gives ``0.05 * scale``, a smaller noise gives itself."""
    from vgfm.tl._fates import STEP_LENGTH

    for sigma, expected in ((0.15, STEP_LENGTH), (0.02, 0.02)):
        adata = vgfm.datasets.two_gene_grn(n_cells_0=40, seed=0)
        vgfm.tl.fit(adata, "time", use_rep="X", sigma=sigma, stage1_steps=5, stage2_steps=0,
                    progress=False)
        model = vgfm.VGFM.from_adata(adata)
        vgfm.tl.fit_stochastic(adata, steps=5)
        floor = float(adata.uns["vgfm"]["stochastic"]["floor"])
        assert floor == pytest.approx(expected * float(model.field.scale), rel=1e-6)


def test_train_score_leaves_the_global_rng_alone_and_follows_its_seed() -> None:
    """The score network is initialised from ``seed`` inside a forked RNG: the caller's global
    torch state is unchanged, and the result does not depend on it."""
    from vgfm._core.sde import train_score

    rng = np.random.default_rng(0)
    snaps = [rng.normal(size=(40, 2)), rng.normal(size=(50, 2)) + 1.0]
    kw = dict(options={"reg": 0.05, "reg_m": 1.0}, floor=0.05, center=np.zeros(2), scale=1.0,
              config=ScoreConfig(steps=3), seed=4)
    params = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        res = train_score(snaps, [0.0, 1.0], **kw)
        assert torch.equal(torch.get_rng_state(), before)
        params.append(torch.cat([p.detach().reshape(-1) for p in res.field.parameters()]))
    assert torch.equal(params[0], params[1])


def test_score_pairs_the_cells_the_fit_pairs(monkeypatch) -> None:
    """The stochastic model's score regresses on the fit's coupling pipeline: with
    ``coupling_momentum`` the first interval pairs the source with the target cells moved back
    along their next-interval velocity (rebuilt here step by step), not with the plain
    targets."""
    from vgfm._core.couplings import couple_interval, momentum_targets, outgoing_velocity
    from vgfm.tl import _fates

    rng = np.random.default_rng(1)
    v = np.array([1.5, 0.0])
    snaps = [(0.5 * rng.normal(size=(60, 2)) + k * v).astype(np.float32) for k in range(3)]
    adata = ad.AnnData(np.vstack(snaps), obs=pd.DataFrame(
        {"time": np.repeat([0.0, 1.0, 2.0], 60)}, index=[f"c{i}" for i in range(180)]))
    opts = dict(growth_test=None, growth_noise_test=None, reg_m_motion=0.0,
                coupling_momentum=0.7)
    vgfm.tl.fit(adata, "time", use_rep="X", stage1_steps=5, stage2_steps=0, progress=False,
                **opts)
    model = vgfm.VGFM.from_adata(adata)
    seen = {}
    real = _fates.train_score

    def spy(*args, **kwargs):
        seen["couplings"] = kwargs["couplings"]
        return real(*args, **kwargs)

    monkeypatch.setattr(_fates, "train_score", spy)
    vgfm.tl.fit_stochastic(adata, steps=2)
    used = seen["couplings"]
    x = [torch.as_tensor(s) for s in snaps]
    t = model.to_model_times(np.array([0.0, 1.0, 2.0])).tolist()
    cfg = model.config.to_dict()
    plain = [couple_interval(x[k], x[k + 1], mass0=1.0, mass1=1.0, dt=t[k + 1] - t[k],
                             options=cfg, max_block=2048, max_blocks=8) for k in range(2)]
    torch.testing.assert_close(used[1].plans[0], plain[1].plans[0])  # last interval: plain
    u = outgoing_velocity(x[1], x[2], plain[1])
    shifted = momentum_targets(x[0], x[1], u, 0.7 * (t[1] - t[0]))
    direct = couple_interval(x[0], shifted, mass0=1.0, mass1=1.0, dt=t[1] - t[0], options=cfg,
                             max_block=2048, max_blocks=8)
    torch.testing.assert_close(used[0].plans[0], direct.plans[0])
    assert not torch.allclose(used[0].plans[0], plain[0].plans[0], atol=1e-4)
