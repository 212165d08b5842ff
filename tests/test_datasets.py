"""Numerical checks of :mod:`vgfm.datasets`: CSV readers and the synthetic generators."""

from __future__ import annotations

import math
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import vgfm.datasets as vd
from vgfm.datasets._csv import _default_data_dir


# --------------------------------------------------------------------------------------------
# CSV reader
# --------------------------------------------------------------------------------------------
@pytest.fixture
def snapshot_csv(tmp_path: Path) -> Path:
    frame = pd.DataFrame(
        {
            "samples": [2.0, 0.0, 0.0, 1.0, 2.0, 2.0],
            "x1": [0.5, 0.0, 0.1, 1.0, 2.0, 3.0],
            "x2": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5],
            "x3": [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0],
        }
    )
    path = tmp_path / "toy_snap.csv"
    frame.to_csv(path)  # with the unnamed index column
    return path


def test_read_snapshot_csv_shapes_and_fields(snapshot_csv: Path) -> None:
    adata = vd.read_snapshot_csv(snapshot_csv)
    assert adata.shape == (6, 3)
    assert list(adata.var_names) == ["x1", "x2", "x3"]
    assert adata.X.dtype == np.float32
    assert list(adata.obs_names) == [f"cell_{i}" for i in range(6)]
    np.testing.assert_array_equal(adata.obs["time"].to_numpy(), [2, 0, 0, 1, 2, 2])
    assert adata.obs["time"].dtype == np.float64
    np.testing.assert_array_equal(adata.obs["time_index"].to_numpy(), [2, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(adata.X[:, 2], [-1, -2, -3, -4, -5, -6])
    np.testing.assert_allclose(adata.X[3], [1.0, 0.7, -4.0])
    assert adata.uns["dataset"] == {"path": str(snapshot_csv), "name": "toy_snap"}


def test_read_snapshot_csv_time_values(snapshot_csv: Path) -> None:
    adata = vd.read_snapshot_csv(snapshot_csv, time_values=[2.0, 4.0, 6.5])
    np.testing.assert_array_equal(adata.obs["time"].to_numpy(), [6.5, 2.0, 2.0, 4.0, 6.5, 6.5])
    adata = vd.read_snapshot_csv(snapshot_csv, time_values={0: 0.0, 1: 12.0, 2: 48.0})
    np.testing.assert_array_equal(adata.obs["time"].to_numpy(), [48, 0, 0, 12, 48, 48])
    with pytest.raises(ValueError, match="3 distinct values"):
        vd.read_snapshot_csv(snapshot_csv, time_values=[1.0, 2.0])
    with pytest.raises(ValueError, match="increase"):
        vd.read_snapshot_csv(snapshot_csv, time_values=[3.0, 2.0, 1.0])


def test_read_snapshot_csv_errors(tmp_path: Path, snapshot_csv: Path) -> None:
    with pytest.raises(FileNotFoundError, match="shared/data"):
        vd.read_snapshot_csv(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"no time column 'day'.*'samples', 'x1'"):
        vd.read_snapshot_csv(snapshot_csv, time_column="day")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"samples": [0, 1], "x1": [0.0, 1.0], "x2": ["a", "b"]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"\['x2'\].*not numeric"):
        vd.read_snapshot_csv(bad)


def test_load_benchmark_search_order(tmp_path: Path, snapshot_csv: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="Unknown benchmark"):
        vd.load_benchmark("not_a_benchmark")
    (tmp_path / "dyngen_5d.csv").write_text(snapshot_csv.read_text())
    adata = vd.load_benchmark("dyngen_5d", data_dir=tmp_path)
    assert adata.n_obs == 6 and adata.uns["dataset"]["name"] == "dyngen_5d"
    monkeypatch.setenv(vd.DATA_DIR_ENV, str(tmp_path))
    assert vd.load_benchmark("dyngen_5d").n_obs == 6
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="searched") as info:
        vd.load_benchmark("dyngen_5d", data_dir=empty)
    assert str(empty / "dyngen_5d.csv") in str(info.value)
    monkeypatch.setenv(vd.DATA_DIR_ENV, str(empty))
    if not (_default_data_dir() / "gaussian_10d.csv").is_file():
        with pytest.raises(FileNotFoundError) as info:
            vd.load_benchmark("gaussian_10d")
        assert str(empty) in str(info.value) and str(_default_data_dir()) in str(info.value)


@pytest.mark.benchmark_data("simulation_gene_2d.csv")
def test_load_benchmark_simulation_gene(monkeypatch, benchmark_data_dir: Path) -> None:
    monkeypatch.setenv(vd.DATA_DIR_ENV, str(benchmark_data_dir))
    adata = vd.load_benchmark("simulation_gene_2d")
    counts = adata.obs["time"].value_counts().sort_index()
    assert counts.to_dict() == {0.0: 400, 1.0: 442, 2.0: 530, 3.0: 690, 4.0: 969}
    assert adata.shape == (3031, 2)
    assert list(adata.var_names) == ["x1", "x2"]


# --------------------------------------------------------------------------------------------
# Gaussian bifurcation
# --------------------------------------------------------------------------------------------
def test_gaussian_bifurcation_construction() -> None:
    factor, sd = 10.0, 0.07
    adata = vd.gaussian_bifurcation(n_dims=10, noise_sd=sd, growth_factor=factor, seed=3)
    assert adata.shape == (1900, 10) and adata.X.dtype == np.float32
    counts = adata.obs.groupby(["time", "cluster"], observed=True).size().to_dict()
    assert counts == {
        (0.0, "lower"): 400,
        (0.0, "upper"): 100,
        (1.0, "left"): 200,
        (1.0, "right"): 200,
        (1.0, "upper"): 1000,
    }
    n0, n1 = (adata.obs["time"] == 0).sum(), (adata.obs["time"] == 1).sum()
    assert n1 / n0 == pytest.approx(0.8 + 0.2 * factor)  # mass ratio
    centres = {"lower": (0, 0), "upper": (0, 2.5), "left": (-1, 0), "right": (1, 0)}
    for (_t, cluster), group in adata.obs.groupby(["time", "cluster"], observed=True):
        x = adata.X[adata.obs_names.get_indexer(group.index)].astype(np.float64)
        expected = np.zeros(10)
        expected[:2] = centres[cluster]
        # mean of n i.i.d. N(0, sd²): 5 standard errors
        np.testing.assert_allclose(x.mean(0), expected, atol=5 * sd / math.sqrt(len(x)))
        np.testing.assert_allclose(x.std(0), sd, rtol=0.25)
    upper = adata.obs["cluster"] == "upper"
    np.testing.assert_allclose(adata.obs.loc[upper, "true_growth"], math.log(factor))
    np.testing.assert_array_equal(adata.obs.loc[~upper, "true_growth"], 0.0)
    np.testing.assert_allclose(adata.uns["true_population_size"], [1.0, 2.8])


def test_gaussian_bifurcation_multi_time() -> None:
    adata = vd.gaussian_bifurcation(n_dims=3, n_cells_0=1000, n_times=5, t_end=2.0, seed=0)
    times = np.linspace(0, 2, 5)
    np.testing.assert_allclose(np.sort(adata.obs["time"].unique()), times)
    upper_counts = adata.obs[adata.obs["cluster"] == "upper"].groupby("time").size().to_numpy()
    np.testing.assert_array_equal(upper_counts, np.rint(200 * 10 ** (times / 2)))
    mid = (adata.obs["time"] == 1.0) & (adata.obs["cluster"] == "right")
    assert adata.X[mid.to_numpy(), 0].mean() == pytest.approx(0.5, abs=0.03)
    assert adata.obs.loc[adata.obs["cluster"] == "upper", "true_growth"].iloc[0] == pytest.approx(
        math.log(10) / 2
    )


def test_gaussian_bifurcation_seeds() -> None:
    a = vd.gaussian_bifurcation(n_dims=4, seed=1)
    b = vd.gaussian_bifurcation(n_dims=4, seed=1)
    c = vd.gaussian_bifurcation(n_dims=4, seed=2)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.allclose(a.X, c.X)


def test_sample_gaussian_bifurcation_law() -> None:
    x = vd.sample_gaussian_bifurcation_law(2800, time=1.0, n_dims=5, seed=0)
    assert x.shape == (2800, 5) and x.dtype == np.float32
    upper = x[:, 1] > 1.25
    assert upper.sum() == 2000  # stratified: 2 / 2.8 of the mass
    assert (x[~upper, 0] > 0).sum() == 400
    np.testing.assert_allclose(x[upper].mean(0), [0, 2.5, 0, 0, 0], atol=0.02)
    y = vd.sample_gaussian_bifurcation_law(2800, time=1.0, n_dims=5, seed=1)
    assert not np.allclose(x, y)
    np.testing.assert_array_equal(
        x, vd.sample_gaussian_bifurcation_law(2800, time=1.0, n_dims=5, seed=0)
    )
    z = vd.sample_gaussian_bifurcation_law(5000, time=0.0, n_dims=2, stratified=False, seed=0)
    assert abs((z[:, 1] > 1.25).mean() - 0.2) < 0.03


# --------------------------------------------------------------------------------------------
# two-gene regulatory network
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grn() -> ad.AnnData:
    return vd.two_gene_grn(seed=0)


def test_two_gene_grn_fields(grn: ad.AnnData) -> None:
    assert list(grn.var_names) == ["gene_1", "gene_2"]
    assert grn.X.dtype == np.float32
    assert grn.obs["day"].cat.categories.tolist() == [
        "day 0",
        "day 0.5",
        "day 1",
        "day 1.5",
        "day 2",
    ]
    assert set(grn.obs["branch"].cat.categories) == {"gene_1_high", "gene_2_high"}
    assert grn.X.min() >= 0 and grn.X.max() <= 2.5
    # branch is the side of the diagonal; true growth is b(x) - d at the cell's state
    x = grn.X.astype(np.float64)
    np.testing.assert_array_equal(grn.obs["branch"] == "gene_2_high", x[:, 1] > x[:, 0])
    expected = 0.9 / (1 + np.exp(-(x[:, 1] - x[:, 0]) / 0.2)) - 0.1
    np.testing.assert_allclose(grn.obs["true_growth"], expected, atol=1e-5)


def test_two_gene_grn_growth(grn: ad.AnnData) -> None:
    counts = grn.obs.groupby("time").size().to_numpy()
    sizes = grn.uns["true_population_size"]
    assert np.all(np.diff(counts) > 0)
    assert np.all(np.diff(sizes) > 0)
    # default: cell counts proportional to the true population size
    np.testing.assert_array_equal(counts, np.rint(400 * sizes / sizes[0]))
    share = grn.obs.groupby("time")["branch"].apply(lambda b: (b == "gene_2_high").mean())
    assert np.all(np.diff(share.to_numpy()[1:]) > 0)
    assert share.iloc[-1] > 0.7
    # without births the population only shrinks
    dying = vd.two_gene_grn(birth_rate=0.0, death_rate=0.2, seed=0)
    assert np.all(np.diff(dying.uns["true_population_size"]) < 0)


def test_two_gene_grn_seeds_and_counts(grn: ad.AnnData) -> None:
    again = vd.two_gene_grn(seed=0)
    np.testing.assert_array_equal(grn.X, again.X)
    other = vd.two_gene_grn(seed=1)
    assert grn.n_obs != other.n_obs or not np.allclose(grn.X, other.X)
    fixed = vd.two_gene_grn(n_cells=[100, 100, 100], times=[0.0, 1.0, 3.0], seed=0)
    assert fixed.obs.groupby("time").size().tolist() == [100, 100, 100]
    assert len(fixed.uns["true_population_size"]) == 3
    with pytest.raises(ValueError, match="one count per time point"):
        vd.two_gene_grn(n_cells=[10, 10], seed=0)


def test_generators_serialise(tmp_path: Path, grn: ad.AnnData) -> None:
    for i, adata in enumerate(
        [grn, vd.gaussian_bifurcation(seed=0), vd.large_time_course(1000, n_dims=5)]
    ):
        adata.write_h5ad(tmp_path / f"{i}.h5ad")
        back = ad.read_h5ad(tmp_path / f"{i}.h5ad")
        np.testing.assert_array_equal(back.X, adata.X)


# --------------------------------------------------------------------------------------------
# large lifted time course
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("base", ["two_gene", "gaussian"])
def test_large_time_course(base: str) -> None:
    adata = vd.large_time_course(30_000, n_dims=20, n_times=5, seed=0, base=base)
    assert adata.shape == (30_000, 20) and adata.X.dtype == np.float32
    counts = adata.obs.groupby("time").size().to_numpy()
    assert len(counts) == 5 and counts.sum() == 30_000
    sizes = adata.uns["true_population_size"]
    np.testing.assert_allclose(counts / counts.sum(), sizes / sizes.sum(), atol=1e-4)
    lift = adata.uns["lift_matrix"]
    np.testing.assert_allclose(lift @ lift.T, np.eye(2), atol=1e-5)
    # residual after removing the latent part is the isotropic noise
    resid = adata.X - adata.obsm["X_latent"] @ lift
    assert resid.std() == pytest.approx(0.05, rel=0.02)
    again = vd.large_time_course(30_000, n_dims=20, n_times=5, seed=0, base=base)
    np.testing.assert_array_equal(adata.X, again.X)
    other = vd.large_time_course(30_000, n_dims=20, n_times=5, seed=1, base=base)
    assert not np.allclose(adata.X, other.X)


# --------------------------------------------------------------------------------------------
# three-gene tristable switch
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tri() -> ad.AnnData:
    return vd.three_gene_switch(seed=0)


def test_three_gene_switch_fields_and_growth_formula(tri: ad.AnnData) -> None:
    assert list(tri.var_names) == ["gene_1", "gene_2", "gene_3"]
    assert tri.X.dtype == np.float32 and tri.X.min() >= 0
    assert tri.obs["day"].cat.categories.tolist() == [
        "day 0", "day 0.3", "day 0.8", "day 1.6", "day 2.5",
    ]
    x = tri.X.astype(np.float64)
    np.testing.assert_array_equal(tri.obs["branch"].cat.codes.to_numpy(), x.argmax(axis=1))
    # g(x) = b0 softmax(x/w)_1 - d0 softmax(x/w)_2, computed independently from X
    e = np.exp(x / 0.3)
    s = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(tri.obs["true_growth"], 0.8 * s[:, 0] - 1.2 * s[:, 1], atol=1e-5)
    # default counts proportional to the true population size
    sizes = tri.uns["true_population_size"]
    counts = tri.obs.groupby("time").size().to_numpy()
    np.testing.assert_array_equal(counts, np.rint(300 * sizes / sizes[0]))
    # at the last time: gene-1 fate proliferates, gene-2 fate dies, gene-3 fate is neutral
    last = tri.obs[tri.obs["time"] == 2.5].groupby("branch", observed=True)["true_growth"].mean()
    assert last["gene_1_high"] == pytest.approx(0.8, abs=0.05)
    assert last["gene_2_high"] == pytest.approx(-1.2, abs=0.05)
    assert last["gene_3_high"] == pytest.approx(0.0, abs=0.05)


def test_three_gene_switch_population_follows_mean_growth(tri: ad.AnnData) -> None:
    # log N(t_k)/N_0 = ∫ mean g dt up to the branching noise (sd ≈ sqrt(∫(b+d)dt / N) < 0.03)
    times = tri.uns["times"]
    path = tri.uns["true_mean_growth"]
    gt, gv = np.asarray(path["time"]), np.asarray(path["value"])
    cum = np.concatenate([[0.0], np.cumsum(np.diff(gt) * 0.5 * (gv[1:] + gv[:-1]))])
    sizes = tri.uns["true_population_size"]
    for k, t in enumerate(times):
        j = int(np.argmin(np.abs(gt - t)))
        assert gt[j] == pytest.approx(t)
        assert math.log(sizes[k] / sizes[0]) == pytest.approx(cum[j], abs=0.1)
        # the sampled cells are a fair sample of the alive particles: their mean growth agrees
        g_k = tri.obs.loc[tri.obs["time"] == t, "true_growth"].to_numpy()
        assert g_k.mean() == pytest.approx(gv[j], abs=4 * g_k.std() / math.sqrt(len(g_k)) + 1e-3)


@pytest.mark.parametrize(("birth", "death"), [(1.5, 0.0), (0.9, 0.9), (0.3, 1.2)])
def test_three_gene_switch_constant_rate_law(birth: float, death: float) -> None:
    # a huge fate temperature makes every rate the same: g ≡ (b0 - d0)/3, a linear
    # birth-death process with E N(t)/N0 = exp(g t) and
    # Var N(t)/N0 = (λ+μ)/(λ-μ) e^{gt}(e^{gt} - 1) (→ (λ+μ) t when λ = μ)
    n0 = 4000
    adata = vd.three_gene_switch(
        n_cells_0=50, n_lineages=n0, birth_rate=birth, death_rate=death, growth_width=1e6, seed=3
    )
    lam, mu = birth / 3, death / 3
    g = lam - mu
    np.testing.assert_allclose(adata.obs["true_growth"], g, atol=1e-6)
    for t, size in zip(adata.uns["times"], adata.uns["true_population_size"]):
        if t == 0:
            continue
        var = (lam + mu) * t if g == 0 else (lam + mu) / g * math.exp(g * t) * math.expm1(g * t)
        assert size / n0 == pytest.approx(math.exp(g * t), abs=4 * math.sqrt(var / n0) + 0.005)


def test_three_gene_switch_growth_free_mode() -> None:
    flat = vd.three_gene_switch(birth_rate=0, death_rate=0, seed=1)
    np.testing.assert_array_equal(flat.uns["true_population_size"], 3000.0)
    assert flat.obs.groupby("time").size().tolist() == [300] * 5
    np.testing.assert_array_equal(flat.obs["true_growth"], 0.0)
    np.testing.assert_array_equal(np.asarray(flat.uns["true_mean_growth"]["value"]), 0.0)
    # symmetric switch: the three fates are reached in about equal shares (binomial sd ≈ 8)
    shares = flat.obs.loc[flat.obs["time"] == 2.5, "branch"].value_counts()
    assert all(abs(c - 100) < 35 for c in shares.to_numpy())
    # committed by the last time: each cell sits near an attractor (one gene high)
    x = flat.X[flat.obs["time"].to_numpy() == 2.5]
    assert np.median(x.max(axis=1)) > 2.0


def test_three_gene_switch_seeds_counts_and_errors(tri: ad.AnnData) -> None:
    np.testing.assert_array_equal(vd.three_gene_switch(seed=0).X, tri.X)
    fixed = vd.three_gene_switch(n_cells=[80, 80, 80], times=[0.0, 0.5, 2.0], seed=0)
    assert fixed.obs.groupby("time").size().tolist() == [80, 80, 80]
    with pytest.raises(ValueError, match="one count per time point"):
        vd.three_gene_switch(n_cells=[10, 10], seed=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        vd.three_gene_switch(times=[0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="death_rate=-1"):
        vd.three_gene_switch(death_rate=-1)
    with pytest.raises(ValueError, match="increase n_lineages"):
        vd.three_gene_switch(n_cells=[10, 10, 10, 10, 500], n_lineages=100, seed=0)
