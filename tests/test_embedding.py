"""Tests of vgfm.tl velocity_embedding / gene_velocity / growth_genes on fabricated fit output."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats
from sklearn.neighbors import NearestNeighbors, kneighbors_graph

from vgfm._data._containers import resolve_container
from vgfm._data._keys import (
    gene_velocity_key,
    growth_genes_key,
    growth_key,
    velocity_embedding_key,
    velocity_key,
)
from vgfm.tl._embedding import gene_velocity, growth_genes, velocity_embedding

KEY = "vgfm"


def make_adata(n: int = 240, n_genes: int = 30, seed: int = 0, velocity=(1.0, 0.0)) -> ad.AnnData:
    """Cells in a 10 x 2 band of a 2-D rep; X_umap = rep; uniform velocity; planted growth gene."""
    rng = np.random.default_rng(seed)
    rep = np.column_stack([rng.uniform(0, 10, n), rng.uniform(-1, 1, n)])
    day = np.floor(rep[:, 0] / 2.5).clip(0, 3)
    g = 0.8 * rep[:, 1] + 0.05 * rng.normal(size=n)
    X = rng.poisson(2.0, size=(n, n_genes)).astype(np.float64)
    X[:, 7] = 5 + 3 * g + 0.1 * rng.normal(size=n)  # planted growth-associated gene
    pcs = np.linalg.qr(rng.normal(size=(n_genes, 2)))[0]
    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame({"day": day}, index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]),
    )
    adata.obsm["X_pca"] = rep
    adata.obsm["X_umap"] = rep.copy()
    adata.varm["PCs"] = pcs
    adata.obsm[velocity_key(KEY)] = np.tile(np.asarray(velocity, dtype=float), (n, 1))
    adata.obs[growth_key(KEY)] = g
    adata.uns[KEY] = {
        "params": {"time_key": "day", "use_rep": "X_pca", "method": "vgfm"},
        "times": np.array([0.0, 1.0, 2.0, 3.0]),
        "time_labels": np.array(["day 0", "day 1", "day 2", "day 3"], dtype=object),
    }
    return adata


def reference_projection(rep, vel, emb, neighbours, scale):
    """Cell-by-cell loop of the documented formula (independent of the vectorised code)."""
    out = np.zeros((rep.shape[0], 2))
    for i, nb in enumerate(neighbours):
        d = rep[nb] - rep[i]
        cos = d @ vel[i] / (np.linalg.norm(d, axis=1) * np.linalg.norm(vel[i]))
        p = np.exp(scale * cos)
        p /= p.sum()
        u = emb[nb] - emb[i]
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        out[i] = p @ u - u.mean(axis=0)
    return out


def test_projection_points_along_known_velocity():
    adata = make_adata()
    velocity_embedding(adata, basis="umap", key=KEY)
    v = adata.obsm[velocity_embedding_key(KEY, "umap")]
    assert v.shape == (adata.n_obs, 2)
    assert (v[:, 0] > 0).mean() > 0.9
    assert abs(v[:, 1].mean()) < 0.2 * v[:, 0].mean()

    up = make_adata(velocity=(0.0, 2.0))
    velocity_embedding(up, basis="umap")
    vu = up.obsm["vgfm_velocity_umap"]
    assert (vu[:, 1] > 0).mean() > 0.9


def test_projection_matches_loop_reference_knn_and_obsp():
    adata = make_adata(n=80, velocity=(1.0, 0.5))
    rep = adata.obsm["X_pca"]
    # rotate/scale the embedding so that the embedding differs from the representation
    rot = np.array([[0.0, -2.0], [2.0, 0.0]])
    adata.obsm["X_umap"] = rep @ rot.T + 3.0
    vel = adata.obsm["vgfm_velocity"]
    k = 12
    idx = NearestNeighbors(n_neighbors=k + 1).fit(rep).kneighbors(rep, return_distance=False)
    nbrs = [row[row != i] for i, row in enumerate(idx)]
    velocity_embedding(adata, n_neighbors=k, scale=7.0)
    ref = reference_projection(rep, vel, adata.obsm["X_umap"], nbrs, 7.0)
    # the representation is read as float32 (the package-wide dtype); reference is float64
    np.testing.assert_allclose(adata.obsm["vgfm_velocity_umap"], ref, rtol=1e-5, atol=1e-6)

    # with a scanpy-like weighted symmetric graph in obsp, its support is used
    conn = kneighbors_graph(rep, 6, mode="distance")
    conn = ((conn + conn.T) * 0.5).tocsr()
    adata.obsp["connectivities"] = conn
    velocity_embedding(adata, scale=7.0)
    nbrs = [conn[i].indices for i in range(adata.n_obs)]
    ref = reference_projection(rep, vel, adata.obsm["X_umap"], nbrs, 7.0)
    np.testing.assert_allclose(adata.obsm["vgfm_velocity_umap"], ref, rtol=1e-5, atol=1e-6)
    assert np.all(adata.obsp["connectivities"].data == conn.data)  # graph not modified


def test_zero_and_nan_velocity():
    adata = make_adata(n=60)
    adata.obsm["vgfm_velocity"][:5] = 0.0
    adata.obsm["vgfm_velocity"][5] = np.nan
    velocity_embedding(adata)
    v = adata.obsm["vgfm_velocity_umap"]
    np.testing.assert_allclose(v[:5], 0.0, atol=1e-12)
    assert np.isnan(v[5]).all()
    assert np.isfinite(v[6:]).all()


def test_copy_and_errors():
    adata = make_adata(n=50)
    out = velocity_embedding(adata, copy=True)
    assert "vgfm_velocity_umap" in out.obsm
    assert "vgfm_velocity_umap" not in adata.obsm
    assert velocity_embedding(adata) is None

    no_umap = make_adata(n=50)
    del no_umap.obsm["X_umap"]
    with pytest.raises(KeyError, match=r"sc\.tl\.umap"):
        velocity_embedding(no_umap)
    no_vel = make_adata(n=50)
    del no_vel.obsm["vgfm_velocity"]
    with pytest.raises(KeyError, match=r"vgfm\.tl\.fit"):
        velocity_embedding(no_vel)
    assert "vgfm_velocity_umap" not in no_vel.obsm


def _mudata(adata: ad.AnnData) -> md.MuData:
    other = ad.AnnData(
        np.ones((adata.n_obs, 3)),
        obs=pd.DataFrame(index=adata.obs_names),
        var=pd.DataFrame(index=["p0", "p1", "p2"]),
    )
    mdata = md.MuData({"rna": adata.copy(), "atac": other})
    mdata.obsm["X_pca"] = adata.obsm["X_pca"]
    mdata.obsm["X_umap"] = adata.obsm["X_umap"]
    mdata.obsm["vgfm_velocity"] = adata.obsm["vgfm_velocity"]
    mdata.obs["vgfm_growth"] = adata.obs["vgfm_growth"].to_numpy()
    mdata.obs["day"] = adata.obs["day"].to_numpy()
    mdata.uns["vgfm"] = adata.uns["vgfm"]
    return mdata


def test_mudata_joint_and_mod():
    adata = make_adata(n=60)
    mdata = _mudata(adata)
    velocity_embedding(adata)
    velocity_embedding(mdata)  # joint fields
    np.testing.assert_allclose(mdata.obsm["vgfm_velocity_umap"], adata.obsm["vgfm_velocity_umap"])
    velocity_embedding(mdata, mod="rna")
    np.testing.assert_allclose(
        mdata.mod["rna"].obsm["vgfm_velocity_umap"], adata.obsm["vgfm_velocity_umap"]
    )
    with pytest.raises(KeyError, match="available modalities"):
        resolve_container(mdata, "protein")
    with pytest.raises(TypeError):
        resolve_container(adata, "rna")


def test_gene_velocity_is_back_projection():
    adata = make_adata(n=40)
    adata.obsm["vgfm_velocity"] = np.random.default_rng(1).normal(size=(40, 2))
    gene_velocity(adata)
    gv = adata.layers[gene_velocity_key(KEY)]
    assert gv.dtype == np.float32
    np.testing.assert_allclose(
        gv, adata.obsm["vgfm_velocity"] @ adata.varm["PCs"].T, rtol=1e-5, atol=1e-6
    )

    other = make_adata(n=40)
    other.uns["vgfm"]["params"]["use_rep"] = "X_umap"
    with pytest.raises(ValueError, match="X_pca"):
        gene_velocity(other)
    no_pcs = make_adata(n=40)
    del no_pcs.varm["PCs"]
    with pytest.raises(KeyError, match="PCs"):
        gene_velocity(no_pcs)
    assert gene_velocity_key(KEY) not in no_pcs.layers


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_growth_genes_finds_planted_gene(tmp_path, method):
    adata = make_adata()
    table = growth_genes(adata, method=method, n_top=5)
    assert list(table.columns) == ["day 0", "day 1", "day 2", "day 3", "overall"]
    # the n_top genes, ranked by |overall correlation| as documented
    assert table.shape == (5, 5)
    assert table.index[0] == "g7"
    np.testing.assert_array_equal(
        table.index, res_genes := adata.uns[growth_genes_key(KEY)]["overall"]["gene"]
    )
    assert np.all(np.diff(np.abs(table["overall"].to_numpy())) <= 0)
    full = growth_genes(adata.copy(), method=method, n_top=None)
    assert full.shape == (adata.n_vars, 5)
    pd.testing.assert_frame_equal(full.iloc[:5], table)
    assert len(res_genes) == 5
    res = adata.uns[growth_genes_key(KEY)]
    assert res["overall"]["gene"][0] == "g7"
    assert len(res["overall"]["gene"]) == 5
    for lab in ["day 0", "day 1", "day 2", "day 3"]:
        assert res["per_time"][lab]["gene"][0] == "g7"
        assert res["per_time"][lab]["correlation"][0] > 0.9

    # independent numbers
    g = adata.obs["vgfm_growth"].to_numpy()
    x = adata.X[:, 3]
    ref = stats.spearmanr(x, g)[0] if method == "spearman" else np.corrcoef(x, g)[0, 1]
    assert full.loc["g3", "overall"] == pytest.approx(ref, abs=1e-10)
    m = adata.obs["day"].to_numpy() == 2
    x, gm = adata.X[m, 11], g[m]
    ref = stats.spearmanr(x, gm)[0] if method == "spearman" else np.corrcoef(x, gm)[0, 1]
    assert full.loc["g11", "day 2"] == pytest.approx(ref, abs=1e-10)

    # sparse input gives the same table
    sp = adata.copy()
    sp.X = sparse.csr_matrix(sp.X)
    pd.testing.assert_frame_equal(growth_genes(sp, method=method, n_top=5), table, atol=1e-10)

    # h5ad round trip
    path = tmp_path / "gg.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path).uns[growth_genes_key(KEY)]
    np.testing.assert_array_equal(np.asarray(back["overall"]["gene"]), res["overall"]["gene"])
    np.testing.assert_allclose(back["overall"]["correlation"], res["overall"]["correlation"])
    np.testing.assert_array_equal(
        np.asarray(back["per_time"]["day 1"]["gene"]), res["per_time"]["day 1"]["gene"]
    )
    assert back["params"]["method"] == method


def test_growth_genes_copy_and_layer():
    adata = make_adata(n=80)
    adata.layers["counts"] = adata.X.copy()
    adata.X = np.zeros_like(adata.X)
    out = growth_genes(adata, layer="counts", copy=True)  # the copy, never a tuple
    assert growth_genes_key(KEY) not in adata.uns
    table = growth_genes(out.copy(), layer="counts")
    assert out.uns[growth_genes_key(KEY)]["overall"]["gene"][0] == "g7"
    assert table["overall"].abs().idxmax() == "g7"
    with pytest.raises(KeyError, match="layers"):
        growth_genes(adata, layer="nope")


def test_gene_velocity_marks_genes_outside_the_pca(caplog):
    adata = make_adata(n=50, n_genes=12)
    pcs = adata.varm["PCs"].copy()
    pcs[[3, 8]] = 0.0  # two genes outside the PCA's mask (scanpy writes zero loadings)
    adata.varm["PCs"] = pcs
    adata.obsm["vgfm_velocity"] = np.random.default_rng(2).normal(size=(50, 2))
    with caplog.at_level("WARNING", logger="vgfm"):
        gene_velocity(adata)
    assert "2 of 12 genes were not used by the PCA" in caplog.text
    gv = adata.layers[gene_velocity_key(KEY)]
    assert gv.dtype == np.float32
    assert np.isnan(gv[:, [3, 8]]).all()  # unknown, not 0
    keep = np.setdiff1d(np.arange(12), [3, 8])
    np.testing.assert_allclose(
        gv[:, keep], (adata.obsm["vgfm_velocity"] @ pcs.T)[:, keep], rtol=1e-5, atol=1e-6
    )
    flag = adata.var["vgfm_velocity_genes"]
    assert flag.dtype == bool
    np.testing.assert_array_equal(flag.to_numpy(), np.isin(np.arange(12), keep))


def test_gene_velocity_one_rule_for_extra_components_and_size_guard():
    adata = make_adata(n=30, n_genes=10)
    v = np.random.default_rng(3).normal(size=(30, 2))
    adata.obsm["vgfm_velocity"] = v
    extra = np.random.default_rng(4).normal(size=(10, 5))  # loadings of 5 components, 2 fitted
    adata.varm["PCs"] = extra
    gene_velocity(adata)  # the leading 2 columns are used (as fit does)
    np.testing.assert_allclose(
        adata.layers[gene_velocity_key(KEY)], v @ extra[:, :2].T, rtol=1e-5, atol=1e-6
    )
    fewer = make_adata(n=30, n_genes=10)
    fewer.obsm["vgfm_velocity"] = np.random.default_rng(3).normal(size=(30, 3))
    fewer.obsm["X_pca"] = np.random.default_rng(3).normal(size=(30, 3))
    with pytest.raises(ValueError, match="must cover every fitted component"):
        gene_velocity(fewer)
    big = make_adata(n=30, n_genes=10)
    with pytest.raises(ValueError, match=r"max_entries=299"):
        gene_velocity(big, max_entries=299)
    assert gene_velocity_key(KEY) not in big.layers and "vgfm_velocity_genes" not in big.var
    gene_velocity(big, max_entries=300)
    assert big.layers[gene_velocity_key(KEY)].shape == (30, 10)
