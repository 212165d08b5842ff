"""Numerical tests of :func:`vgfm.tl.coupling_diagnostic`."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import vgfm
from vgfm._core import couple_interval
from vgfm._core.train import TrainConfig

REG_M = [0.1, 1.0, 10.0]


@pytest.fixture
def two_snapshots() -> ad.AnnData:
    """Two clusters whose proportions change between two time points (190 cells, 2-D).

    Day 0: 50 cells near (0, 0) and 50 near (3, 0). Day 2: 70 cells near (0, 1) and 20 near
    (3, 1). Matching the new composition by growth (small ``reg_m``) or by moving cells across
    (large ``reg_m``) are genuinely different plans.
    """
    rng = np.random.default_rng(0)

    def blob(center, n):
        return np.asarray(center, dtype=float) + 0.3 * rng.standard_normal((n, 2))

    x = np.vstack([blob((0, 0), 50), blob((3, 0), 50), blob((0, 1), 70), blob((3, 1), 20)])
    obs = pd.DataFrame(
        {"time": np.repeat([0.0, 2.0], [100, 90])},
        index=[f"c{i}" for i in range(len(x))],
    )
    adata = ad.AnnData(X=x.astype(np.float32), obs=obs)
    adata.obsm["X_emb"] = x.astype(np.float32)
    return adata


def test_marginal_kl_and_growth_sd_decrease_with_reg_m(two_snapshots):
    df = vgfm.tl.coupling_diagnostic(two_snapshots, "time", use_rep="X", reg_m_values=REG_M)
    assert list(df["reg_m"]) == REG_M
    assert (df["interval"] == 0).all()
    for col in ("marginal_kl", "growth_sd"):
        vals = df[col].to_numpy()
        assert np.all(np.isfinite(vals)) and np.all(vals >= 0), (col, vals)
        assert np.all(np.diff(vals) < 0), f"{col} not strictly decreasing in reg_m: {vals}"
    # the heterogeneity at small reg_m is real, not numerical noise
    assert df["marginal_kl"].iloc[0] > 10 * df["marginal_kl"].iloc[-1]
    assert df["growth_sd"].iloc[0] > 0.1
    # growth targets bracket their spread
    assert (df["growth_min"] <= df["growth_max"]).all()


@pytest.mark.parametrize("population_size", [None, [100.0, 250.0]])
def test_transport_cost_matches_hand_computation(two_snapshots, population_size):
    adata = two_snapshots
    reg, seed = 0.05, 3
    df = vgfm.tl.coupling_diagnostic(
        adata, "time", use_rep="X_emb", reg_m_values=REG_M, reg=reg, seed=seed,
        population_size=population_size,
    )
    x = np.asarray(adata.obsm["X_emb"], dtype=np.float64)
    t = adata.obs["time"].to_numpy()
    x0, x1 = x[t == 0.0], x[t == 2.0]
    sizes = [100.0, 90.0] if population_size is None else population_size
    # squared Euclidean distances, computed without torch
    d2 = ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)
    for lam, row in zip(REG_M, df.itertuples()):
        assert row.reg == reg and row.reg_m == lam
        assert (row.t_start, row.t_end) == (0.0, 2.0)
        cp = couple_interval(
            torch.as_tensor(x0), torch.as_tensor(x1),
            mass0=1.0, mass1=sizes[1] / sizes[0], dt=2.0,
            options={"reg": reg, "reg_m": lam, "coupling_geometry": "euclidean",
                     "reg_m_motion": TrainConfig().reg_m_motion},  # the fit's defaults
            max_block=max(len(x0), len(x1)), max_blocks=1,
            generator=torch.Generator().manual_seed(seed),
        )
        assert len(cp.plans) == 1
        src, tgt = cp.source[0].numpy(), cp.target[0].numpy()
        plan = cp.plans[0].double().numpy()
        # a single full block: every cell on both sides, in order
        np.testing.assert_array_equal(src, np.arange(len(x0)))
        np.testing.assert_array_equal(tgt, np.arange(len(x1)))
        expected = float((plan * d2[np.ix_(src, tgt)]).sum() / plan.sum())
        assert row.transport_cost == pytest.approx(expected, rel=1e-9)
        # and the marginal KL of the same plan: KL(w / Σw ‖ uniform)
        w = plan.sum(1)
        p = w / w.sum()
        kl = float(np.sum(p * np.log(p * len(p))))
        assert row.marginal_kl == pytest.approx(kl, rel=1e-6, abs=1e-12)


def test_default_reg_is_fit_default(two_snapshots):
    df = vgfm.tl.coupling_diagnostic(two_snapshots, "time", use_rep="X", reg_m_values=[1.0])
    assert df["reg"].iloc[0] == TrainConfig().reg


def test_adata_unchanged(two_snapshots, adata_fingerprint, assert_same_adata):
    adata = two_snapshots
    adata.uns["note"] = {"a": 1}
    adata.layers["counts"] = np.asarray(adata.X).copy()
    before = adata_fingerprint(adata)
    vgfm.tl.coupling_diagnostic(
        adata, "time", use_rep="X", reg_m_values=REG_M, max_cells=60,
        population_size={0.0: 1.0, 2.0: 3.0},
    )
    assert_same_adata(before, adata_fingerprint(adata))
