"""scVelo on vgfm's output: velocity_graph / velocity_embedding / velocity_embedding_stream.

Skipped when scVelo is not installed (it is an optional extra, not a dependency).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scanpy as sc

import vgfm
from vgfm._demo import lift_to_genes

scv = pytest.importorskip("scvelo", reason="scVelo is not installed (pip install scvelo)")

# scVelo 0.3.4 calls anndata APIs that anndata 0.12 deprecates (e.g. `obsm_keys`): third-party
# warnings, ignored here only
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def fitted_like():
    """Demo data with a velocity pointing from each cell to its later-time neighbours."""
    raw = vgfm.datasets.two_gene_grn(80, seed=2)
    adata = lift_to_genes(raw, seed=2)
    adata.layers["lognorm"] = np.asarray(adata.X, dtype=np.float32).copy()  # what PCA sees
    sc.pp.pca(adata, n_comps=8, random_state=0)
    sc.pp.neighbors(adata, use_rep="X_pca", n_neighbors=15, random_state=0)
    sc.tl.umap(adata, random_state=0)
    t = adata.obs["time"].to_numpy()
    rep = adata.obsm["X_pca"]
    from sklearn.neighbors import NearestNeighbors

    v = np.zeros_like(rep)
    for tk, tn in zip(np.unique(t)[:-1], np.unique(t)[1:]):
        nxt = np.flatnonzero(t == tn)
        cur = np.flatnonzero(t == tk)
        _, idx = NearestNeighbors(n_neighbors=10).fit(rep[nxt]).kneighbors(rep[cur])
        v[cur] = rep[nxt][idx].mean(axis=1) - rep[cur]
    last = t == t.max()
    v[last] = v[~last].mean(axis=0)
    adata.obsm["vgfm_velocity"] = v.astype(np.float32)
    adata.uns["vgfm"] = {"params": {"use_rep": "X_pca", "time_key": "time", "method": "vgfm"}}
    vgfm.tl.velocity_embedding(adata, basis="umap")
    vgfm.tl.gene_velocity(adata)
    return adata


def test_velocity_graph_and_embedding_agree_with_ours(fitted_like):
    adata = fitted_like.copy()
    assert adata.var["vgfm_velocity_genes"].all()  # every gene is in this small PCA
    # scVelo works in gene space: vkey is the layer, xkey the expression layer the PCA saw
    scv.tl.velocity_graph(adata, vkey="vgfm_velocity", xkey="lognorm", n_jobs=1)
    graph = adata.uns["vgfm_velocity_graph"]
    assert graph.shape == (adata.n_obs, adata.n_obs) and graph.nnz > 0
    ours = adata.obsm["vgfm_velocity_umap"].copy()
    scv.tl.velocity_embedding(adata, vkey="vgfm_velocity", basis="umap", autoscale=False)
    theirs = adata.obsm["vgfm_velocity_umap"]  # scVelo overwrites the same key
    norm = np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    ok = norm > 0
    cos = np.sum(ours[ok] * theirs[ok], axis=1) / norm[ok]
    # the same transition-probability construction on the same neighbours: directions agree
    assert np.median(cos) > 0.7


def test_velocity_graph_without_xkey_is_the_documented_error(fitted_like):
    adata = fitted_like.copy()
    with pytest.raises(KeyError, match="spliced"):
        scv.tl.velocity_graph(adata, vkey="vgfm_velocity", n_jobs=1)


def test_velocity_graph_skips_genes_outside_the_pca(fitted_like, caplog):
    adata = fitted_like.copy()
    pcs = adata.varm["PCs"].copy()
    pcs[:5] = 0.0
    adata.varm["PCs"] = pcs
    vgfm.tl.gene_velocity(adata)
    assert np.isnan(adata.layers["vgfm_velocity"][:, :5]).all()
    assert not adata.var["vgfm_velocity_genes"][:5].any()
    scv.tl.velocity_graph(adata, vkey="vgfm_velocity", xkey="lognorm", n_jobs=1)
    assert np.isfinite(adata.uns["vgfm_velocity_graph"].data).all()


def test_stream_plot_reads_our_embedding(fitted_like):
    adata = fitted_like.copy()
    ax = scv.pl.velocity_embedding_stream(
        adata, basis="umap", vkey="vgfm_velocity", color="day", show=False
    )
    from matplotlib.collections import LineCollection

    assert any(isinstance(c, LineCollection) for c in ax.collections)
    plt.close("all")
