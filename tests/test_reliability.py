"""tl reliability (issue 12 items 3, 4, 6, 7, 8, 12, 13, 15; issue 9 item 3): each test fails on
the code before the house refactor."""

from __future__ import annotations

import logging

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import vgfm
import vgfm.tl._fit
from vgfm import VGFM
from vgfm._data import read_record

TINY = {"stage1_steps": 3, "stage2_steps": 0, "hidden": 8, "batch_size": 16}


def make(n: int = 20, n_genes: int = 6, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    times = np.repeat([0.0, 1.0, 2.0], n)
    x = (rng.normal(0, 0.3, (3 * n, 2)) + times[:, None] * [1.0, 0.0]).astype(np.float32)
    pcs = np.linalg.qr(rng.normal(size=(n_genes, 2)))[0]
    a = ad.AnnData((x @ pcs.T).astype(np.float32),
                   obs=pd.DataFrame({"time": times}, index=[f"c{i}" for i in range(3 * n)]))
    a.obsm["X_pca"] = x
    a.obsm["X_umap"] = x.copy()
    a.varm["PCs"] = pcs
    return a


def fit(a, **kw):
    return vgfm.tl.fit(a, "time", population_size=[1, 1, 1], progress=False, **{**TINY, **kw})


@pytest.fixture(scope="module")
def fitted():
    a = make()
    model = fit(a)
    return a, model


# ------------------------------------------------------------------ item 3: key_added
@pytest.mark.parametrize("bad", ["run1/seed0", "", "a b", "x\\y"])
def test_invalid_key_added_is_refused(bad, adata_fingerprint, assert_same_adata):
    a = make()
    before = adata_fingerprint(a)
    with pytest.raises(ValueError, match=r"key_added=.*letters, digits"):
        fit(a, key_added=bad)
    assert_same_adata(before, adata_fingerprint(a))


def test_valid_key_added_round_trips(tmp_path):
    a = make()
    fit(a, key_added="run1.seed-0")
    a.write_h5ad(tmp_path / "a.h5ad")
    b = ad.read_h5ad(tmp_path / "a.h5ad")
    assert vgfm.get_model(b, key="run1.seed-0").dim == 2


# ------------------------------------------------------------------ item 4: stale fields
def test_refit_removes_derived_fields(caplog):
    a = make()
    fit(a)
    vgfm.tl.velocity_embedding(a)
    vgfm.tl.simulate(a, n_cells=3)
    a.obsm["vgfm_velocity_tsne"] = np.zeros((a.n_obs, 2))
    a.obsm["other_velocity_umap"] = np.zeros((a.n_obs, 2))
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        fit(a, seed=1, gene_velocity=False)
    for gone in ("vgfm_velocity_umap", "vgfm_velocity_tsne"):
        assert gone not in a.obsm and gone in caplog.text
    assert "vgfm_trajectories" not in a.uns and "vgfm_trajectories" in caplog.text
    assert "vgfm_velocity" not in a.layers  # the old gene layer is not left next to the new fit
    assert "other_velocity_umap" in a.obsm and "vgfm_velocity" in a.obsm


# ------------------------------------------------------------------ item 6: one block
def test_failure_while_storing_writes_nothing(monkeypatch, adata_fingerprint, assert_same_adata):
    a = make()
    before = adata_fingerprint(a)

    def boom(self):
        raise RuntimeError("interrupted while serialising")

    monkeypatch.setattr(VGFM, "to_dict", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(a)
    assert_same_adata(before, adata_fingerprint(a))


# ------------------------------------------------------------------ item 7: gene layer
def test_gene_layer_is_size_guarded_float32(monkeypatch, caplog):
    a = make()
    fit(a)
    assert a.layers["vgfm_velocity"].dtype == np.float32
    np.testing.assert_allclose(a.layers["vgfm_velocity"],
                               a.obsm["vgfm_velocity"] @ a.varm["PCs"].T, rtol=1e-5, atol=1e-6)
    b = make()
    monkeypatch.setattr(vgfm.tl._fit, "GENE_LAYER_MAX_ENTRIES", b.n_obs * b.n_vars - 1)
    with caplog.at_level(logging.INFO, logger="vgfm"):
        fit(b)
    assert "vgfm_velocity" not in b.layers and "vgfm.tl.gene_velocity" in caplog.text
    c = make()
    fit(c, gene_velocity=True)  # explicit opt-in ignores the guard
    assert c.layers["vgfm_velocity"].dtype == np.float32
    d = make()
    fit(d, gene_velocity=False)
    assert "vgfm_velocity" not in d.layers


# ------------------------------------------------------------------ item 8 / 12: simulate
def test_simulate_validates_n_per_interval_and_t_eval(fitted, adata_fingerprint,
                                                      assert_same_adata):
    a, model = fitted
    before = adata_fingerprint(a)
    with pytest.raises(ValueError, match="n_per_interval must be an int >= 1"):
        vgfm.tl.simulate(a, model, n_per_interval=0)
    for bad in ([0.0, np.nan, 1.0], [0.0, np.inf]):
        with pytest.raises(ValueError, match="t_eval must hold finite times"):
            vgfm.tl.simulate(a, model, t_eval=bad)
    with pytest.raises(ValueError, match="nothing to simulate"):
        vgfm.tl.simulate(a, model, start_time=2.0)
    assert_same_adata(before, adata_fingerprint(a))


def test_simulate_warns_beyond_fitted_range(fitted, caplog):
    a, model = fitted
    b = a.copy()
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        vgfm.tl.simulate(b, model, t_eval=[0.0, 2.0], n_cells=2)
    assert "outside the fitted range" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        vgfm.tl.simulate(b, model, t_eval=[0.0, 1000.0], n_cells=2)
    assert "outside the fitted range [0, 2]" in caplog.text and "1000" in caplog.text


# ------------------------------------------------------------------ item 12: non-finite
def test_velocity_time_nan_is_refused(fitted, adata_fingerprint, assert_same_adata):
    a, model = fitted
    before = adata_fingerprint(a)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="not a finite number"):
            vgfm.tl.velocity(a, model, time=bad)
    assert_same_adata(before, adata_fingerprint(a))


def test_evaluate_max_cells_zero_is_refused(fitted, adata_fingerprint, assert_same_adata):
    a, model = fitted
    before = adata_fingerprint(a)
    with pytest.raises(ValueError, match="max_cells must be an int >= 1"):
        vgfm.tl.evaluate(a, max_cells=0)
    assert_same_adata(before, adata_fingerprint(a))


# ------------------------------------------------------------------ item 13: seeds
@pytest.mark.parametrize(("seed", "exc"), [(None, TypeError), (2**70, ValueError),
                                           (-1, ValueError), (1.5, TypeError)])
def test_bad_seed_has_a_clear_error(seed, exc):
    a = make()
    with pytest.raises(exc, match=r"seed must be an int in \[0, 2\*\*63\)"):
        fit(a, seed=seed)
    with pytest.raises(exc, match="seed must be an int"):
        vgfm.tl.coupling_diagnostic(a, "time", seed=seed)


# ------------------------------------------------------------------ item 15: densify cap
def test_densify_cap_counts_features(adata_fingerprint, assert_same_adata):
    n_features = 300_000  # few cells, many features: few entries, still refused
    a = make()
    a.obsm["wide"] = sparse.random(a.n_obs, n_features, density=1e-5, format="csr",
                                   random_state=0)
    before = adata_fingerprint(a)
    with pytest.raises(ValueError, match=r"300,000 features|10,000 features") as info:
        fit(a, use_rep="wide")
    assert "sc.pp.pca" in str(info.value)
    assert_same_adata(before, adata_fingerprint(a))


# ------------------------------------------------------------------ issue 9 item 3
def test_cell_counts_as_population_size_is_a_warning(caplog):
    a = make()
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        vgfm.tl.fit(a, "time", progress=False, **TINY)
    warn = [r for r in caplog.records if r.levelno == logging.WARNING
            and "population sizes are the cell counts" in r.getMessage()]
    assert warn and "0: 20, 1: 20, 2: 20" in warn[0].getMessage()
    assert "population_size=" in warn[0].getMessage()
    assert a.uns["vgfm"]["population_size_source"] == "cell counts"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        fit(a)
    assert "cell counts" not in caplog.text
    assert a.uns["vgfm"]["population_size_source"] == "argument"


# ------------------------------------------------------------------ evaluate copy / key_added
def test_evaluate_key_added_and_copy(fitted, adata_fingerprint, assert_same_adata):
    a, model = fitted
    b = a.copy()
    df = vgfm.tl.evaluate(b, key_added="ev")
    assert set(b.uns["ev"]) == set(df.columns)
    np.testing.assert_array_equal(b.uns["ev"]["w1"], df["w1"].to_numpy())
    assert "evaluation" not in b.uns["vgfm"]
    before = adata_fingerprint(b)
    out = vgfm.tl.evaluate(b, copy=True)
    assert isinstance(out, ad.AnnData)
    np.testing.assert_array_equal(out.uns["vgfm"]["evaluation"]["w1"], df["w1"].to_numpy())
    assert_same_adata(before, adata_fingerprint(b))


# ------------------------------------------------------------------ the fit record
def test_fit_record_round_trips_through_h5ad(tmp_path):
    a = make()
    fit(a, holdout_time=1.0, seed=5)
    a.write_h5ad(tmp_path / "a.h5ad")
    rec = read_record(ad.read_h5ad(tmp_path / "a.h5ad"), "vgfm")
    assert rec.format_version == 2 and rec.package_version == vgfm.__version__
    assert (rec.use_rep, rec.time_key, rec.method, rec.seed, rec.dim) == ("X_pca", "time",
                                                                        "vgfm", 5, 2)
    assert rec.holdout_label == "1" and rec.time.labels == ("0", "1", "2")
    np.testing.assert_array_equal(rec.relative_size, [1.0, 1.0, 1.0])
    assert rec.config["stage1_steps"] == TINY["stage1_steps"]
    assert "stage1_loss" in rec.history and rec.timings["train"] > 0
    assert "info" not in rec.model  # the metadata lives once, in the record
    m = vgfm.get_model(ad.read_h5ad(tmp_path / "a.h5ad"))
    assert m.info == rec.model_info()


def test_pp_reads_a_mudata_modality():
    a = make()
    a.obs["day"] = a.obs["time"].map({0.0: "d0", 1.0: "d1", 2.0: "d2"})
    mdata = md.MuData({"rna": a})
    vgfm.pp.numeric_time(mdata, "day", mod="rna")
    np.testing.assert_array_equal(mdata.mod["rna"].obs["day_numeric"], a.obs["time"])
    vgfm.pp.population_size(mdata, [1, 2, 3], time_key="day", mod="rna")
    assert "vgfm_population_size" in mdata.mod["rna"].uns
    vgfm.pp.check_representation(mdata, mod="rna")
