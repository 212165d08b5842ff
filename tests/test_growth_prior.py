"""vgfm.pp.growth_prior: gene-set scores -> per-cell growth prior, and its per-snapshot form."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import vgfm
from vgfm.pp._growth_prior import GENE_SETS, gene_sets, growth_prior_per_snapshot


def _toy(organism: str = "human", n: int = 200, seed: int = 0) -> ad.AnnData:
    """Cells 0..n/2 express proliferation genes highly, cells n/2..n apoptosis genes."""
    sets = gene_sets(organism)
    prolif, apopt = sets["proliferation"][:25], sets["apoptosis"][:25]
    other = [f"gene{i}" for i in range(150)]
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 0.5, size=(n, 200))
    half = n // 2
    x[:half, :25] += 1.5
    x[half:, 25:50] += 1.5
    adata = ad.AnnData(np.log1p(x).astype(np.float32))
    adata.var_names = prolif + apopt + other
    adata.obs["group"] = pd.Categorical(["cycling"] * half + ["dying"] * (n - half))
    adata.obs["day"] = np.tile([0.0, 1.0], n // 2)
    return adata


def test_prior_is_higher_where_proliferation_genes_are_high():
    adata = _toy()
    vgfm.pp.growth_prior(adata)
    prior = adata.obs["growth_prior"].to_numpy()
    cyc = (adata.obs["group"] == "cycling").to_numpy()
    assert np.all(prior > 0)
    assert prior.mean() == pytest.approx(1.0)
    assert prior[cyc].mean() > 1.5 * prior[~cyc].mean()
    assert adata.obs["growth_prior_proliferation"][cyc].mean() > \
        adata.obs["growth_prior_proliferation"][~cyc].mean() + 0.5
    assert adata.obs["growth_prior_apoptosis"][~cyc].mean() > \
        adata.obs["growth_prior_apoptosis"][cyc].mean() + 0.5
    assert len(adata.uns["growth_prior"]["proliferation_genes"]) == 25


def test_scores_are_scanpy_score_genes_and_transform_is_documented_one():
    adata = _toy()
    vgfm.pp.growth_prior(adata, beta=0.7, clip=1.5, seed=3)
    ref = adata.copy()
    genes = GENE_SETS["human"]
    found = [g for g in genes["proliferation"] if g in ref.var_names]
    sc.tl.score_genes(ref, found, random_state=3, score_name="p", use_raw=False)
    found = [g for g in genes["apoptosis"] if g in ref.var_names]
    sc.tl.score_genes(ref, found, random_state=3, score_name="a", use_raw=False)
    np.testing.assert_allclose(adata.obs["growth_prior_proliferation"], ref.obs["p"])
    np.testing.assert_allclose(adata.obs["growth_prior_apoptosis"], ref.obs["a"])
    s = ref.obs["p"].to_numpy(float) - ref.obs["a"].to_numpy(float)
    z = np.clip((s - s.mean()) / s.std(), -1.5, 1.5)
    expected = np.exp(0.7 * z)
    np.testing.assert_allclose(adata.obs["growth_prior"], expected / expected.mean(), rtol=1e-6)


def test_beta_zero_gives_uniform_prior():
    adata = _toy()
    vgfm.pp.growth_prior(adata, beta=0.0, key_added="flat")
    np.testing.assert_allclose(adata.obs["flat"], 1.0)


def test_too_few_genes_is_a_clear_error_and_leaves_data_untouched():
    adata = _toy()
    adata.var_names = [f"g{i}" for i in range(25)] + list(adata.var_names[25:])
    before = adata.copy()
    with pytest.raises(ValueError, match=r"only 0 of the \d+ genes of the built-in human "
                       r"proliferation set .*min_genes=5"):
        vgfm.pp.growth_prior(adata)
    assert list(adata.obs.columns) == list(before.obs.columns)
    assert list(adata.uns) == list(before.uns)
    np.testing.assert_array_equal(adata.X, before.X)
    with pytest.raises(ValueError, match=r"only 2 of the 2 genes of apoptosis_genes .*pass at least 5 genes"):
        vgfm.pp.growth_prior(_toy(), apoptosis_genes=["CASP3", "BAX"])


def test_wrong_organism_names_the_fix():
    adata = _toy("mouse")
    with pytest.raises(ValueError, match="organism='mouse'"):
        vgfm.pp.growth_prior(adata)
    vgfm.pp.growth_prior(adata, organism="mouse")
    assert "Mki67" in set(GENE_SETS["mouse"]["proliferation"])


def test_copy_and_mudata_modality():
    adata = _toy()
    out = vgfm.pp.growth_prior(adata, copy=True)
    assert "growth_prior" not in adata.obs and "growth_prior" in out.obs
    mdata = md.MuData({"rna": _toy()})
    vgfm.pp.growth_prior(mdata, mod="rna")
    np.testing.assert_allclose(mdata.mod["rna"].obs["growth_prior"], out.obs["growth_prior"])


def test_per_snapshot_prior_has_mean_one_and_keeps_ratios():
    adata = _toy()
    vgfm.pp.growth_prior(adata)
    times = adata.obs["day"].to_numpy()
    per = growth_prior_per_snapshot(adata, times=times, time_values=[0.0, 1.0])
    assert [len(p) for p in per] == [100, 100]
    prior = adata.obs["growth_prior"].to_numpy()
    for p, v in zip(per, [0.0, 1.0]):
        assert p.mean() == pytest.approx(1.0)
        np.testing.assert_allclose(p, prior[times == v] / prior[times == v].mean())


def test_per_snapshot_prior_rejects_bad_columns():
    adata = _toy()
    times = adata.obs["day"].to_numpy()
    with pytest.raises(KeyError, match="vgfm.pp.growth_prior"):
        growth_prior_per_snapshot(adata, "nope", times=times, time_values=[0.0, 1.0])
    adata.obs["bad"] = 1.0
    adata.obs.iloc[3, adata.obs.columns.get_loc("bad")] = -1.0
    with pytest.raises(ValueError, match="finite and > 0 .* 1 cells"):
        growth_prior_per_snapshot(adata, "bad", times=times, time_values=[0.0, 1.0])


def test_no_control_genes_is_a_clear_error():
    rng = np.random.default_rng(0)
    adata = ad.AnnData(rng.normal(size=(90, 5)).astype(np.float32))  # 5 genes only
    with pytest.raises(ValueError, match="found no control genes .* data have 5 genes.*n_bins"):
        vgfm.pp.growth_prior(adata, proliferation_genes=["0"], apoptosis_genes=["1"],
                             min_genes=1, n_bins=5)
    assert "growth_prior" not in adata.obs


def test_fit_uses_growth_prior_as_source_reference():
    """tl.fit(growth_prior=...) shifts the learned growth towards the prior, all else equal."""
    import vgfm

    rng = np.random.default_rng(0)
    n = 120
    x = np.concatenate([rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + [0.5, 0.0]])
    a = ad.AnnData(x.astype(np.float32))
    a.obs["time"] = np.repeat([0.0, 1.0], n)
    favoured = x[:, 1] > 0
    a.obs["prior"] = np.where(favoured, 3.0, 1.0)
    opts = dict(use_rep="X", population_size=[1.0, 1.0], stage1_steps=150, stage2_steps=0,
                progress=False, seed=0)
    base = vgfm.tl.fit(a, "time", copy=True, **opts)
    pri = vgfm.tl.fit(a, "time", growth_prior="prior", copy=True, **opts)
    g0 = base.obs["vgfm_growth"].to_numpy()
    g1 = pri.obs["vgfm_growth"].to_numpy()
    early = a.obs["time"].to_numpy() == 0.0
    diff_base = g0[early & favoured].mean() - g0[early & ~favoured].mean()
    diff_prior = g1[early & favoured].mean() - g1[early & ~favoured].mean()
    assert diff_prior > diff_base + 0.3
    with pytest.raises(KeyError, match="growth_prior='nope' is not a column"):
        vgfm.tl.fit(a, "time", growth_prior="nope", **opts)
