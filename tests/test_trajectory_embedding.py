"""vgfm.tl.trajectory_embedding and where pl.trajectories puts the end points.

The data are the demo's two-gene switch lifted to 30 genes (scanpy PCA, neighbours, UMAP);
the "simulated" trajectories are fabricated with a known answer: heavy particles end on
observed day-2 cells, light ones (lineages that die out) stay among day-1 cells. A correct
model behaves like this (the demo's fit does: the mass-weighted neighbour composition of its
end points matches the observed day-2 cells), and the plot must show the mass-weighted
population, not the unweighted particles.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scanpy as sc
from sklearn.neighbors import NearestNeighbors

import vgfm
from vgfm._demo import lift_to_genes

K = 15


@pytest.fixture(scope="module")
def base():
    raw = vgfm.datasets.two_gene_grn(120, seed=1)
    adata = lift_to_genes(raw, seed=1)
    sc.pp.pca(adata, n_comps=10, random_state=0)
    sc.pp.neighbors(adata, use_rep="X_pca", n_neighbors=K, random_state=0)
    sc.tl.umap(adata, random_state=0)
    times = np.asarray(sorted(adata.obs["time"].unique()))
    adata.uns["vgfm"] = {
        "params": {"time_key": "time", "use_rep": "X_pca", "method": "vgfm"},
        "times": times,
        "time_labels": np.array([f"{t:g}" for t in times], dtype=object),
    }
    return adata


def _fabricate(adata, n: int = 200, seed: int = 0):
    """Particles from day-0 cells; 25 % heavy ones end on day-2 cells, the rest on day-1."""
    rng = np.random.default_rng(seed)
    t_cell = adata.obs["time"].to_numpy()
    times = np.sort(np.unique(t_cell))
    rep = adata.obsm["X_pca"]
    nn_scale = np.median(NearestNeighbors(n_neighbors=2).fit(rep).kneighbors(rep)[0][:, 1])
    start = rng.choice(np.flatnonzero(t_cell == times[0]), size=n, replace=True)
    heavy = np.zeros(n, dtype=bool)
    heavy[: n // 4] = True
    t_mid = times[len(times) // 2]
    end = np.where(
        heavy,
        rng.choice(np.flatnonzero(t_cell == times[-1]), size=n),
        rng.choice(np.flatnonzero(t_cell == t_mid), size=n),
    )
    x0, x1 = rep[start], rep[end] + 0.2 * nn_scale * rng.standard_normal((n, rep.shape[1]))
    s = np.linspace(0.0, 1.0, 9)
    x = (1 - s)[:, None, None] * x0[None] + s[:, None, None] * x1[None]
    log_mass = s[:, None] * np.where(heavy, np.log(20.0), np.log(0.05))[None, :]
    adata.uns["vgfm_trajectories"] = {
        "t": times[0] + s * (times[-1] - times[0]),
        "x": x.astype(np.float32),
        "log_mass": log_mass.astype(np.float32),
        "start_obs": np.asarray(adata.obs_names[start], dtype=str),
    }
    return heavy


def _same_time_fraction(adata, points, t):
    emb = adata.obsm["X_umap"]
    t_cell = adata.obs["time"].to_numpy()
    _, idx = NearestNeighbors(n_neighbors=K).fit(emb).kneighbors(points)
    return np.isclose(t_cell[idx], t).mean(axis=1)


def test_umap_transform_places_states_among_their_cells(base):
    adata = base.copy()
    heavy = _fabricate(adata)
    vgfm.tl.trajectory_embedding(adata, basis="umap")
    traj = adata.uns["vgfm_trajectories"]
    assert traj["umap_params"]["method"] == "umap"
    assert traj["umap_params"]["n_neighbors"] == K
    mapped = traj["umap"]
    assert mapped.shape == (*traj["x"].shape[:2], 2)
    # start states are the start cells themselves
    start_idx = adata.obs_names.get_indexer(traj["start_obs"])
    np.testing.assert_allclose(mapped[0], adata.obsm["X_umap"][start_idx], atol=1e-5)
    # heavy end points land among observed day-2 cells (mean over particles of the fraction
    # of UMAP neighbours that are day-2 cells), as observed day-2 cells themselves do
    t_last = traj["t"][-1]
    frac = _same_time_fraction(adata, mapped[-1, heavy], t_last)
    obs_frac = _same_time_fraction(
        adata, adata.obsm["X_umap"][np.isclose(adata.obs["time"], t_last)], t_last
    )
    assert np.median(frac) > 0.5
    assert frac.mean() > 0.8 * obs_frac.mean()
    # start and end states are (near) observed cells: not flagged. The fabricated paths are
    # straight lines in PCA space between them, which cut across the curved data: flagged.
    assert not traj["umap_off_data"][0].any()
    assert traj["umap_off_data"][-1].mean() < 0.05
    assert traj["umap_off_data"][4].mean() > 0.1


def test_plot_end_points_fall_among_cells_of_their_time(base):
    adata = base.copy()
    _fabricate(adata)
    vgfm.tl.trajectory_embedding(adata, basis="umap")
    t_last = adata.uns["vgfm_trajectories"]["t"][-1]

    def drawn_end_fraction(**kwargs):
        ax = vgfm.pl.trajectories(adata, show=False, **kwargs)
        ends = [c for c in ax.collections if c.get_label() == "end"][0].get_offsets()
        plt.close(ax.figure)
        return _same_time_fraction(adata, np.asarray(ends), t_last), len(ends)

    by_mass, n = drawn_end_fraction()
    assert n == 30  # readable default subset
    # drawn in proportion to mass: most drawn end points sit among day-2 cells
    assert np.mean(by_mass > 0.5) > 0.5
    uniform, _ = drawn_end_fraction(by_mass=False)
    # uniform particles misrepresent the population (75 % of them carry 1/400 of the mass)
    assert np.mean(uniform > 0.5) < np.mean(by_mass > 0.5)


def test_method_choice_and_errors(base, caplog):
    adata = base.copy()
    _fabricate(adata, n=40)
    vgfm.tl.trajectory_embedding(adata, basis="pca")  # not a UMAP: kNN mapping
    assert adata.uns["vgfm_trajectories"]["pca_params"]["method"] == "knn"
    with pytest.raises(ValueError, match="method='umap' cannot be used"):
        vgfm.tl.trajectory_embedding(adata, basis="pca", method="umap")
    # neighbours computed on another representation: refused by "umap", logged by "auto"
    other = adata.copy()
    other.uns["neighbors"] = dict(other.uns["neighbors"])
    other.uns["neighbors"]["params"] = {**other.uns["neighbors"]["params"], "use_rep": "X"}
    with pytest.raises(ValueError, match=r"use_rep='X_pca'"):
        vgfm.tl.trajectory_embedding(other, method="umap")
    with caplog.at_level("INFO", logger="vgfm"):
        vgfm.tl.trajectory_embedding(other)
    assert "using method='knn'" in caplog.text
    assert other.uns["vgfm_trajectories"]["umap_params"]["method"] == "knn"
    # copy=True leaves the input alone; same seed, same numbers
    before = dict(adata.uns["vgfm_trajectories"])
    out = vgfm.tl.trajectory_embedding(adata, copy=True, seed=3)
    assert set(adata.uns["vgfm_trajectories"]) == set(before)
    again = vgfm.tl.trajectory_embedding(adata, copy=True, seed=3)
    np.testing.assert_array_equal(
        out.uns["vgfm_trajectories"]["umap"], again.uns["vgfm_trajectories"]["umap"]
    )
    with pytest.raises(KeyError, match=r"vgfm\.tl\.simulate"):
        vgfm.tl.trajectory_embedding(base.copy())
    with pytest.raises(ValueError, match="method must be one of"):
        vgfm.tl.trajectory_embedding(adata, method="ingest")


def test_knn_never_averages_across_islands():
    import anndata as ad

    from vgfm.tl._mapping import _graph_components, _map_knn

    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 3)) * 0.2
    b = rng.normal(size=(60, 3)) * 0.2 + [3.0, 0.0, 0.0]
    rep = np.vstack([a, b])
    emb = np.vstack([a[:, :2], b[:, :2] + [20.0, 0.0]])  # islands far apart in the embedding
    adata = ad.AnnData(obs={"i": np.arange(120)}, obsm={"X_pca": rep})
    comps = _graph_components(adata, rep, 10)
    assert np.unique(comps).size == 2
    state = np.array([[1.5, 0.0, 0.0]])  # in the gap between the islands
    nearest = int(np.argmin(np.linalg.norm(rep - state, axis=1)))
    near = _map_knn(rep, emb, state, 30, comps)
    # on the island of its nearest cell, not in the gap around x = 10
    if nearest < 60:
        assert near[0, 0] < 5.0
    else:
        assert near[0, 0] > 15.0
    plain = _map_knn(rep, emb, state, 30, None)
    assert 2.0 < plain[0, 0] < 18.0  # what averaging across islands would do
