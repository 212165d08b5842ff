"""Numerical checks of lineage truth, stochastic dynamics, fates and ensembles (issue 10)."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

import vgfm
from vgfm._core.couplings import IntervalCoupling
from vgfm._core.sde import ScoreConfig, ScoreField, estimate_sigma, integrate_sde, train_score
from vgfm._core.train import TrainConfig
from vgfm._model import VGFM
from vgfm.tl._fates import score_to_dict


# --------------------------------------------------------------------------------------------
# lineage-truth generator
# --------------------------------------------------------------------------------------------
def test_lineage_without_growth_keeps_population() -> None:
    a = vgfm.datasets.lineage_branching(80, n_replicates=5, birth_rate=0.0, death_rate=0.0,
                                        seed=1)
    sizes = a.uns["true_population_size"]
    np.testing.assert_array_equal(sizes, sizes[0])
    early = (a.obs["time"] == 0).to_numpy()
    np.testing.assert_array_equal(a.obs["true_descendants"].to_numpy()[early], 1.0)
    np.testing.assert_array_equal(a.obs["true_growth"].to_numpy(), 0.0)
    # every sampled cell's founder is a valid lineage, early cells are their own ancestors
    assert (a.obs["ancestor"][early] == a.obs_names[early]).all()


def test_lineage_balanced_birth_death_keeps_expected_population() -> None:
    b = 0.5
    a = vgfm.datasets.lineage_branching(100, n_lineages=3000, n_replicates=2,
                                        birth_rate=b, death_rate=b, seed=2)
    sizes = a.uns["true_population_size"]
    t_end = a.uns["times"][-1] - a.uns["times"][0]
    # critical birth-death process: E N_T = N_0, Var N_T = 2 b T N_0
    sd = math.sqrt(2 * b * t_end * sizes[0])
    assert abs(sizes[-1] - sizes[0]) < 4 * sd
    assert abs(sizes[-1] - sizes[0]) > 0  # births and deaths did happen


def test_lineage_descendants_constant_rate_exp_growth() -> None:
    b, d = 0.9, 0.4
    a = vgfm.datasets.lineage_branching(50, n_replicates=200, birth_rate=b, death_rate=d,
                                        seed=3)
    t_end = a.uns["times"][-1] - a.uns["times"][0]
    early = (a.obs["time"] == 0).to_numpy()
    desc = a.obs["true_descendants"].to_numpy()[early]
    se = a.obs["true_descendants_se"].to_numpy()[early]
    lam = b - d
    expected = math.exp(lam * t_end)
    # Var of a linear birth-death process started from one cell
    var1 = (b + d) / lam * expected * (expected - 1)
    se_mean = math.sqrt(var1 / (200 * len(desc)))
    step_bias = expected - (1 + lam * 0.01) ** round(t_end / 0.01)  # Euler step of the rates
    assert abs(desc.mean() - expected) < 4 * se_mean + step_bias
    z = (desc - expected) / se
    assert np.mean(np.abs(z) < 3) > 0.95
    np.testing.assert_allclose(a.obsm["true_fates"].to_numpy()[early].sum(1), 1.0)


# --------------------------------------------------------------------------------------------
# stochastic core
# --------------------------------------------------------------------------------------------
class _ConstField(torch.nn.Module):
    """``v = c``, ``g = g0 + beta * x_2`` (exact, no network)."""

    def __init__(self, dim: int, c: float = 0.0, g0: float = 0.0, beta: float = 0.0):
        super().__init__()
        self.dim, self.c, self.g0, self.beta = dim, c, g0, beta

    def forward(self, t, x):
        g = self.g0 + self.beta * x[:, 1:2] if self.dim > 1 else torch.full_like(x, self.g0)
        return torch.full_like(x, self.c), g


def test_sde_marginal_variance_closed_form() -> None:
    sigma, c, g0 = 0.4, 0.3, 0.2
    x0 = torch.zeros(40000, 2)
    x, lm = integrate_sde(_ConstField(2, c=c, g0=g0), None, x0, [0.0, 0.5, 2.0], sigma=sigma,
                          n_steps=10, seed=3)
    for k, t in enumerate([0.0, 0.5, 2.0]):
        var = x[k].double().var(0)
        # sample variance of n normals: sd = var * sqrt(2 / (n - 1))
        tol = 5 * sigma**2 * t * math.sqrt(2 / (len(x0) - 1)) + 1e-12
        np.testing.assert_allclose(var.numpy(), sigma**2 * t, atol=tol)
        np.testing.assert_allclose(x[k].double().mean(0).numpy(), c * t,
                                   atol=5 * sigma * math.sqrt(t / len(x0)) + 1e-12)
        # log-mass follows d log m = g dt exactly (no diffusion on it)
        np.testing.assert_allclose(lm[k].numpy(), g0 * t, rtol=1e-5, atol=1e-6)


def test_sde_seeded_determinism() -> None:
    f = _ConstField(2)
    a, _ = integrate_sde(f, None, torch.zeros(50, 2), [0.0, 1.0], sigma=0.5, seed=7)
    b, _ = integrate_sde(f, None, torch.zeros(50, 2), [0.0, 1.0], sigma=0.5, seed=7)
    c, _ = integrate_sde(f, None, torch.zeros(50, 2), [0.0, 1.0], sigma=0.5, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_estimate_sigma_gaussian_kernel_plan() -> None:
    # one source cell spread over a fine 1-D grid with Gaussian weights of variance s2
    y = torch.linspace(-3, 3, 601)[:, None]
    s2, dt = 0.25, 0.5
    w = torch.exp(-(y[:, 0] ** 2) / (2 * s2))
    plan = (w / w.sum())[None, :]
    cp = IntervalCoupling([torch.arange(1)], [torch.arange(601)], [plan], [torch.zeros(1)], dt)
    assert estimate_sigma([cp], [y]) == pytest.approx(math.sqrt(s2 / dt), rel=1e-3)


def test_score_of_gaussian_population() -> None:
    """Score matching recovers -x / (V + tau(t)^2) for a stationary Gaussian population."""
    rng = np.random.default_rng(0)
    snaps = [rng.normal(size=(800, 2)), rng.normal(size=(800, 2))]
    res = train_score(snaps, [0.0, 1.0], solver="semi_relaxed",
                      options={"reg": 0.05, "reg_m": 10.0}, sigma=2.0, floor=0.3,
                      center=torch.zeros(2), scale=1.0, config=ScoreConfig(steps=500), seed=0)
    grid = torch.stack(torch.meshgrid(torch.linspace(-1.5, 1.5, 7), torch.linspace(-1.5, 1.5, 7),
                                      indexing="ij"), -1).reshape(-1, 2)
    errs = {}
    for t in (0.1, 0.5):
        tau2 = float(res.field.tau(torch.tensor([t]))[0]) ** 2  # 0.45 and 1.09
        with torch.no_grad():
            s = res.field(torch.full((len(grid),), t), grid)
        for t_ref in (0.1, 0.5):
            tau2_ref = float(res.field.tau(torch.tensor([t_ref]))[0]) ** 2
            truth = -grid / (1.0 + tau2_ref)
            errs[t, t_ref] = float((s - truth).abs().mean() / truth.abs().mean())
        assert tau2 == pytest.approx(0.09 + 4.0 * t * (1 - t))
    assert errs[0.1, 0.1] < 0.15 and errs[0.5, 0.5] < 0.15, errs
    # the time dependence is learned: each time is far from the other time's answer
    assert errs[0.1, 0.5] > 0.25 and errs[0.5, 0.1] > 0.25, errs


# --------------------------------------------------------------------------------------------
# fates on a toy with a closed-form answer
# --------------------------------------------------------------------------------------------
def _toy(beta: float, g0: float, sigma: float):
    """Cells at t=0 at x2 in {-0.3, 0, 0.3}; reference cells at t=1 labelled by sign(x2)."""
    x_ref = np.column_stack([np.zeros(3000), np.linspace(-4, 4, 3000)])
    x_start = np.array([[0.0, -0.3], [0.0, 0.0], [0.0, 0.3]])
    x = np.vstack([x_start, x_ref]).astype(np.float32)
    t = np.r_[np.zeros(3), np.ones(3000)]
    label = np.where(x[:, 1] > 0, "upper", "lower")
    obs = pd.DataFrame({"time": t, "side": pd.Categorical(label)},
                       index=[f"c{i}" for i in range(len(x))])
    adata = ad.AnnData(x, obs=obs)
    info = {"use_rep": "X", "dim": 2, "time_key": "time", "times": [0.0, 1.0],
            "time_labels": ["0", "1"], "relative_size": [1.0, 1.0], "n_cells": [3, 3000],
            "held_out": [False, False], "seed": 0}
    model = VGFM(_ConstField(2, g0=g0, beta=beta), config=TrainConfig(), info=info)
    score = ScoreField(2, center=torch.zeros(2), scale=1.0, t_start=0.0, t_span=1.0,
                       knots=[0.0, 1.0], sigma=sigma, floor=1.0)
    for p in score.parameters():  # zero score: pure Brownian motion around v = 0
        torch.nn.init.zeros_(p)
    rec = score_to_dict(score, sigma_estimated=sigma, config=ScoreConfig(),
                        history=np.zeros(0), seconds=0.0, seed=0)
    adata.uns["vgfm"] = {"stochastic": rec}
    return adata, model


def test_fates_known_split_and_growth_weighting() -> None:
    sigma, beta = 0.5, 1.0
    adata, model = _toy(beta=beta, g0=0.0, sigma=sigma)
    vgfm.tl.fates(adata, "side", model=model, n_samples=6000, n_steps=40, n_neighbors=3, seed=1)
    f = adata.obsm["vgfm_fates"]
    d = adata.obs["vgfm_descendants"].to_numpy()
    x0 = np.array([-0.3, 0.0, 0.3])
    # log m = beta * int_0^1 x2 dt with x2 = x0 + sigma W: tilting by exp(beta sigma int W)
    # shifts W_1 by beta sigma / 2, so the mass-weighted P(x2(1) > 0) = Phi((x0 + b s^2/2)/s)
    expected = norm.cdf((x0 + beta * sigma**2 / 2) / sigma)
    np.testing.assert_allclose(f["upper"].to_numpy()[:3], expected, atol=0.03)
    np.testing.assert_allclose(f.to_numpy()[:3].sum(1), 1.0)
    # E m = exp(beta x0 + beta^2 sigma^2 / 6)
    np.testing.assert_allclose(d[:3], np.exp(beta * x0 + beta**2 * sigma**2 / 6), rtol=0.03)
    # cells observed at the target time are their own fate, with one descendant
    assert np.all(d[3:] == 1.0)
    np.testing.assert_array_equal(f["upper"].to_numpy()[3:],
                                  (adata.obs["side"][3:] == "upper").astype(float))


def test_descendants_constant_growth_exp_gt() -> None:
    g0 = 0.7
    adata, model = _toy(beta=0.0, g0=g0, sigma=0.5)
    vgfm.tl.fates(adata, "side", model=model, n_samples=4000, n_steps=20, n_neighbors=3, seed=0)
    d = adata.obs["vgfm_descendants"].to_numpy()[:3]
    np.testing.assert_allclose(d, math.exp(g0 * 1.0), rtol=1e-5)
    up = adata.obsm["vgfm_fates"]["upper"].to_numpy()[:3]
    np.testing.assert_allclose(up, norm.cdf(np.array([-0.3, 0.0, 0.3]) / 0.5), atol=0.03)


def test_backward_and_transitions_consistent_with_forward() -> None:
    adata, model = _toy(beta=1.0, g0=0.0, sigma=0.5)
    vgfm.tl.fates(adata, "side", model=model, n_samples=500, n_neighbors=3, seed=2)
    vgfm.tl.fates(adata, "side", model=model, n_samples=500, n_neighbors=3, seed=2,
                  direction="backward")
    anc = adata.obsm["vgfm_ancestors"].to_numpy()
    np.testing.assert_allclose(anc[:3].sum(0), 1.0)
    assert np.isnan(anc[3:]).all()
    fate = adata.obsm["vgfm_fates"].to_numpy()[:3]
    desc = adata.obs["vgfm_descendants"].to_numpy()[:3]
    contrib = desc[:, None] * fate
    np.testing.assert_allclose(anc[:3], contrib / contrib.sum(0), rtol=1e-10)
    adata.obs["src"] = pd.Categorical(["a", "a", "b"] + ["a"] * 3000)
    tab = vgfm.tl.cluster_transitions(adata, "side", source_groupby="src", model=model,
                                      n_samples=500, n_neighbors=3, seed=2, normalize="none")
    np.testing.assert_allclose(tab.loc["a"].to_numpy(), contrib[:2].sum(0), rtol=1e-10)
    np.testing.assert_allclose(tab.loc["b"].to_numpy(), contrib[2], rtol=1e-10)
    assert "vgfm_transitions" in adata.uns


def test_fates_bad_groupby_leaves_adata(adata_fingerprint, assert_same_adata) -> None:
    adata, model = _toy(beta=0.0, g0=0.0, sigma=0.5)
    before = adata_fingerprint(adata)
    with pytest.raises(KeyError, match="cell_type"):
        vgfm.tl.fates(adata, "cell_type", model=model, n_samples=2)
    with pytest.raises(ValueError, match="direction"):
        vgfm.tl.fates(adata, "side", model=model, direction="sideways")
    assert_same_adata(before, adata_fingerprint(adata))


# --------------------------------------------------------------------------------------------
# fitted model: stochastic round trip and ensemble determinism
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted_lineage():
    a = vgfm.datasets.lineage_branching(60, times=(0.0, 0.5, 1.0), n_replicates=10, seed=4)
    vgfm.tl.fit(a, "time", use_rep="X", progress=False, stage1_steps=150, stage2_steps=0)
    return a


def test_stochastic_model_persists_through_h5ad(fitted_lineage, tmp_path) -> None:
    a = fitted_lineage.copy()
    vgfm.tl.fit_stochastic(a, steps=50)
    vgfm.tl.simulate_stochastic(a, n_cells=4, n_samples=3, seed=1)
    traj = a.uns["vgfm_trajectories"]
    assert traj["x"].shape[1] == 12 and traj["log_mass"].shape == traj["x"].shape[:2]
    np.testing.assert_array_equal(traj["log_mass"][0], 0.0)
    assert list(traj["start_obs"][:3]) == [traj["start_obs"][0]] * 3
    vgfm.tl.fates(a, "branch", n_samples=3, seed=0)
    a.write_h5ad(tmp_path / "a.h5ad")
    b = ad.read_h5ad(tmp_path / "a.h5ad")
    vgfm.tl.simulate_stochastic(b, n_cells=4, n_samples=3, seed=1)
    np.testing.assert_allclose(b.uns["vgfm_trajectories"]["x"], traj["x"], rtol=1e-5, atol=1e-6)
    # fates are recomputed identically from the saved file (stored score, same seed)
    vgfm.tl.fates(b, "branch", n_samples=3, seed=0, key_added="again")
    np.testing.assert_allclose(b.obsm["again_fates"].to_numpy(),
                               np.asarray(b.obsm["vgfm_fates"], dtype=float), rtol=1e-5)
    assert list(b.obsm["vgfm_fates"].columns) == ["lower", "upper"]


def test_simulate_stochastic_flag_routes_to_the_sde(fitted_lineage) -> None:
    a = fitted_lineage.copy()
    vgfm.tl.fit_stochastic(a, steps=30)
    vgfm.tl.simulate(a, stochastic=True, n_cells=4, n_samples=3, seed=2)
    via_flag = a.uns["vgfm_trajectories"]["x"].copy()
    vgfm.tl.simulate_stochastic(a, n_cells=4, n_samples=3, seed=2)
    np.testing.assert_array_equal(a.uns["vgfm_trajectories"]["x"], via_flag)
    assert via_flag.shape[1] == 12
    with pytest.raises(ValueError, match="stochastic=True only"):
        vgfm.tl.simulate(a, n_samples=3)


def test_ensemble_determinism_under_seeds(fitted_lineage) -> None:
    base = fitted_lineage.copy()
    vgfm.tl.fit_stochastic(base, steps=20)  # shared by the members (not retrained per call)
    kw = dict(n_models=2, steps_fraction=0.5, fates_groupby="branch", n_samples=4)
    a = vgfm.tl.ensemble(base, seed=0, copy=True, **kw)
    b = vgfm.tl.ensemble(base, seed=0, copy=True, **kw)
    c = vgfm.tl.ensemble(base, seed=1, copy=True, **kw)
    for f in ("vgfm_growth_sd", "vgfm_velocity_confidence", "vgfm_descendants_sd"):
        np.testing.assert_array_equal(a.obs[f].to_numpy(), b.obs[f].to_numpy())
    np.testing.assert_array_equal(a.obsm["vgfm_velocity_sd"], b.obsm["vgfm_velocity_sd"])
    assert not np.allclose(a.obs["vgfm_growth_sd"], c.obs["vgfm_growth_sd"])
    assert (a.obs["vgfm_growth_sd"] > 0).all()
    conf = a.obs["vgfm_velocity_confidence"].to_numpy()
    assert np.all((conf >= 0) & (conf <= 1 + 1e-9))
    assert "vgfm_fates_sd" in a.obsm and "vgfm_ensemble" in a.uns
    assert "vgfm_growth_sd" not in base.obs  # copy=True leaves the input alone
    np.testing.assert_allclose(a.uns["vgfm_ensemble"]["member_reg_m"],
                               base.uns["vgfm"]["params"]["reg_m"] * np.array([0.25, 4.0]))
    # the motion stiffening runs from none to twice the reference's alongside reg_m
    np.testing.assert_allclose(a.uns["vgfm_ensemble"]["member_reg_m_motion"],
                               base.uns["vgfm"]["params"]["reg_m_motion"] * np.array([0.0, 2.0]))
    # the permissive member leaves out the growth test, the stiff one keeps the reference's
    np.testing.assert_array_equal(a.uns["vgfm_ensemble"]["member_growth_test"],
                                  [np.nan, base.uns["vgfm"]["params"]["growth_test"]])
    # the sampling-noise test is off by default, so for every member
    assert base.uns["vgfm"]["params"]["growth_noise_test"] is None
    assert np.isnan(a.uns["vgfm_ensemble"]["member_growth_noise_test"]).all()
    # ... and regresses on the plan's own growth targets; the stiff one keeps the correction
    assert bool(base.uns["vgfm"]["params"]["net_of_motion"])
    np.testing.assert_array_equal(a.uns["vgfm_ensemble"]["member_net_of_motion"], [False, True])
    # ... and pairs by distances alone; the stiff one keeps the reference's momentum
    np.testing.assert_array_equal(a.uns["vgfm_ensemble"]["member_coupling_momentum"],
                                  [0.0, base.uns["vgfm"]["params"]["coupling_momentum"]])
    # the reference holds no cells back; every member holds back its own tenth
    assert base.uns["vgfm"]["params"]["val_fraction"] == 0.0
    np.testing.assert_array_equal(a.uns["vgfm_ensemble"]["member_val_fraction"], [0.1, 0.1])


def test_ensemble_members_hold_back_at_least_a_tenth() -> None:
    from vgfm._core.train import TrainConfig
    from vgfm.tl._uncertainty import MEMBER_VAL_FRACTION, _member_configs

    class _Model:  # the one attribute _member_configs reads
        def __init__(self, **kw):
            self.config = TrainConfig(**kw)

    for own, expected in ((0.0, MEMBER_VAL_FRACTION), (0.05, MEMBER_VAL_FRACTION), (0.3, 0.3)):
        cfgs = _member_configs(_Model(val_fraction=own), 0.5, 3, 4.0)
        assert [c.val_fraction for c in cfgs] == [expected] * 3
        # the rest of the member recipe is unchanged: half the steps, reg_m spread 1/4 .. 4
        assert cfgs[0].stage1_steps == round(TrainConfig().stage1_steps * 0.5)
        np.testing.assert_allclose([c.reg_m for c in cfgs], [0.125, 0.5, 2.0])


def test_pl_fates_and_transitions_draw_stored_values() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    adata, model = _toy(beta=0.0, g0=0.0, sigma=0.5)
    adata.obsm["X_umap"] = np.asarray(adata.X)
    vgfm.tl.fates(adata, "side", model=model, n_samples=20, n_neighbors=3)
    axes = vgfm.pl.fates(adata, show=False)
    assert [ax.get_title() for ax in axes] == ["fate: lower", "fate: upper"]
    coll = axes[1].collections[-1]
    assert coll.get_clim() == (0.0, 1.0)
    np.testing.assert_allclose(np.sort(coll.get_array()),
                               np.sort(adata.obsm["vgfm_fates"]["upper"].to_numpy()))
    tab = vgfm.tl.cluster_transitions(adata, "side", model=model, n_samples=20, n_neighbors=3,
                                      source_groupby="side")
    ax = vgfm.pl.cluster_transitions(adata, show=False)
    np.testing.assert_allclose(ax.images[0].get_array(), tab.to_numpy())
    adata.obs["vgfm_growth_mean"] = np.linspace(-1, 1, adata.n_obs)
    adata.obs["vgfm_growth_sd"] = 0.2
    ax = vgfm.pl.hatch_uncertain(adata, ax=ax, show=False)
    hatched = [c for c in ax.collections if c.get_label() == "uncertain sign"][0]
    assert len(hatched.get_offsets()) == int(np.sum(np.abs(np.linspace(-1, 1, adata.n_obs)) < 0.4))
    plt.close("all")


class _DecayField(torch.nn.Module):
    """``v = -x`` (exact flow ``x0 e^{-t}``), ``g = 0``."""

    dim = 2

    def forward(self, t, x):
        return -x, torch.zeros(len(x), 1, dtype=x.dtype)


def test_stochastic_rollout_resolves_the_drift_between_observed_times() -> None:
    """One Euler step per observed interval sends v = -x to 0 at t = 1 (the old behaviour with
    σ = 0); the drift bound takes steps of at most τ_0 / |v| and follows x0 e^{-t}."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    t = np.r_[np.zeros(200), np.ones(200)]
    adata = ad.AnnData(x, obs=pd.DataFrame({"time": t}, index=[f"c{i}" for i in range(400)]))
    info = {"use_rep": "X", "dim": 2, "time_key": "time", "times": [0.0, 1.0],
            "time_labels": ["0", "1"], "relative_size": [1.0, 1.0], "n_cells": [200, 200],
            "held_out": [False, False], "seed": 0}
    model = VGFM(_DecayField(), config=TrainConfig(), info=info)
    floor = 0.05
    score = ScoreField(2, center=torch.zeros(2), scale=1.0, t_start=0.0, t_span=1.0,
                       knots=[0.0, 1.0], sigma=0.0, floor=floor)
    for p in score.parameters():
        torch.nn.init.zeros_(p)
    adata.uns["vgfm"] = {"stochastic": score_to_dict(
        score, sigma_estimated=0.0, config=ScoreConfig(), history=np.zeros(0), seconds=0.0,
        seed=0)}
    vgfm.tl.simulate_stochastic(adata, model=model, t_eval=[0.0, 1.0], sigma=0.0)
    tr = adata.uns["vgfm_trajectories"]
    x0, x1 = tr["x"][0].astype(np.float64), tr["x"][1].astype(np.float64)
    # Euler with n steps of h = 1/n gives x0 (1 - h)^n; n >= q99|x0| / τ_0 (≈ 60 here)
    n_min = math.ceil(np.quantile(np.linalg.norm(x0, axis=1), 0.99) / floor)
    assert n_min > 20
    rel = np.abs(x1 - x0 * math.exp(-1.0)).max() / np.abs(x0).max()
    assert rel <= math.exp(-1.0) - (1 - 1 / n_min) ** n_min + 1e-6
    assert rel < 0.01
