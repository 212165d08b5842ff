"""AnnData-facing tools: fit, velocity, simulate, evaluate, the VGFM model object, bad input."""

from __future__ import annotations

import math

import anndata as ad
import mudata as md
import numpy as np
import ot
import pandas as pd
import pytest
import torch
from scipy import sparse
from scipy.spatial.distance import cdist

import vgfm
import vgfm._data._representation
import vgfm._model
import vgfm.tl._fit
from vgfm import VGFM

# tiny training, as fast as possible; TRAINED: just enough to learn the toy dynamics
TINY = {"stage1_steps": 30, "stage2_steps": 2, "val_every": 1, "batch_size": 64, "hidden": 16}
TRAINED = {**TINY, "stage1_steps": 300}
TIMES = [0.0, 1.0, 2.0]
N = 30


def make_toy(n: int = N, seed: int = 0) -> ad.AnnData:
    """2-D time course, t = 0, 1, 2.

    Cluster A (around the origin) doubles in place every time unit: n, 2n, 4n cells
    (growth log 2, velocity 0). Cluster B (around (t, 4)) moves +x at speed 1 with constant
    size n (growth 0, velocity (1, 0)).
    """
    rng = np.random.default_rng(seed)
    xs, ts, cl = [], [], []
    for k, t in enumerate(TIMES):
        na = n * 2**k
        xs.append(rng.normal(0, 0.3, size=(na, 2)))
        ts += [t] * na
        cl += ["A"] * na
        xs.append(rng.normal(0, 0.3, size=(n, 2)) + [t, 4.0])
        ts += [t] * n
        cl += ["B"] * n
    x = np.concatenate(xs).astype(np.float32)
    obs = pd.DataFrame({"time": ts, "cluster": pd.Categorical(cl)},
                       index=[f"cell{i}" for i in range(len(x))])
    adata = ad.AnnData(rng.poisson(1.0, size=(len(x), 5)).astype(np.float32), obs=obs)
    adata.obsm["X_pca"] = x
    return adata


def make_shift(n: int = 80, speed: float = 2.0, seed: int = 0) -> ad.AnnData:
    """One Gaussian cloud translated at ``speed`` along +x, observed at t = 0, 0.5, 1."""
    rng = np.random.default_rng(seed)
    times = [0.0, 0.5, 1.0]
    x = np.concatenate([rng.normal(0, 0.3, (n, 2)) + [speed * t, 0.0] for t in times])
    obs = pd.DataFrame({"time": np.repeat(times, n)}, index=[f"s{i}" for i in range(len(x))])
    adata = ad.AnnData(np.zeros((len(x), 1), np.float32), obs=obs)
    adata.obsm["X_pca"] = x.astype(np.float32)
    return adata


def rep(adata, key="X_pca") -> np.ndarray:
    return np.asarray(adata.obsm[key], dtype=np.float32)


@pytest.fixture(scope="module")
def tiny():
    adata = make_toy()
    model = vgfm.tl.fit(adata, "time", progress=False, **TINY)
    return adata, model


@pytest.fixture(scope="module")
def trained():
    adata = make_toy()
    model = vgfm.tl.fit(adata, "time", progress=False, **TRAINED)
    return adata, model


# =============================================================================================
# fit: what is written
# =============================================================================================
def test_fit_writes_fields(tiny):
    adata, model = tiny
    before = make_toy()
    n = adata.n_obs
    assert isinstance(model, VGFM)
    v = adata.obsm["vgfm_velocity"]
    assert v.shape == (n, 2) and v.dtype == np.float32
    g = adata.obs["vgfm_growth"]
    assert g.shape == (n,) and g.dtype == np.float64
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    # exactly the model's prediction at each cell's own state and time
    v_ref, g_ref = model.predict(rep(adata), adata.obs["time"].to_numpy())
    np.testing.assert_array_equal(v, v_ref)
    np.testing.assert_array_equal(g.to_numpy(), g_ref.astype(np.float64))
    # nothing else written
    assert set(adata.obsm) - set(before.obsm) == {"vgfm_velocity"}
    assert set(adata.obs) - set(before.obs) == {"vgfm_growth"}
    assert set(adata.uns) - set(before.uns) == {"vgfm"}
    assert set(adata.layers) == set() and set(adata.varm) == set()
    np.testing.assert_array_equal(adata.obsm["X_pca"], before.obsm["X_pca"])

    uns = adata.uns["vgfm"]
    assert {"params", "times", "relative_size", "history", "model"} <= set(uns)
    np.testing.assert_array_equal(uns["times"], TIMES)
    np.testing.assert_array_equal(uns["n_cells"], [2 * N, 3 * N, 5 * N])
    np.testing.assert_allclose(uns["relative_size"], [1.0, 1.5, 2.5], rtol=1e-12)
    np.testing.assert_array_equal(uns["held_out"], [False, False, False])
    p = uns["params"]
    assert p["time_key"] == "time" and p["use_rep"] == "X_pca" and p["method"] == "vgfm"
    assert p["seed"] == 0 and p["holdout_time"] == ""
    for k, val in TINY.items():
        assert p[k] == val
    assert uns["history"]["stage1_loss"].shape == (30,)
    assert uns["history"]["stage2_loss"].shape == (2,)
    assert model.dim == 2 and model.use_rep == "X_pca"
    np.testing.assert_array_equal(model.times, TIMES)


def test_gene_space_velocity_with_pcs(tiny):
    adata, model = tiny
    a = adata.copy()
    pcs = np.random.default_rng(0).normal(size=(a.n_vars, 2))
    a.varm["PCs"] = pcs
    vgfm.tl.velocity(a, model)
    np.testing.assert_allclose(a.layers["vgfm_velocity"],
                               a.obsm["vgfm_velocity"] @ pcs.T.astype(np.float32), rtol=1e-5,
                               atol=1e-6)


def test_velocity_follows_the_shift():
    adata = make_shift(speed=2.0)
    vgfm.tl.fit(adata, "time", progress=False, **TRAINED)
    v = adata.obsm["vgfm_velocity"].astype(np.float64).mean(0)
    cos = v @ np.array([1.0, 0.0]) / np.linalg.norm(v)
    assert cos > 0.9
    # per unit of the user's time (times 0, 0.5, 1 and displacement 1 per interval: speed 2)
    assert 0.6 * 2.0 < np.linalg.norm(v) < 1.4 * 2.0


def test_trained_toy_dynamics(trained):
    adata, _ = trained
    a_cells = (adata.obs["cluster"] == "A").to_numpy()
    g = adata.obs["vgfm_growth"].to_numpy()
    v = adata.obsm["vgfm_velocity"].astype(np.float64)
    # the doubling cluster grows, the other does not
    assert g[a_cells].mean() > g[~a_cells].mean() + 0.5 * math.log(2)
    assert g[a_cells].mean() == pytest.approx(math.log(2), abs=0.25 * math.log(2))
    assert abs(g[~a_cells].mean()) < 0.25 * math.log(2)
    # B moves +x at speed 1, A stays
    vb = v[~a_cells].mean(0)
    assert vb[0] / np.linalg.norm(vb) > 0.9
    assert 0.6 < vb[0] < 1.4
    assert np.linalg.norm(v[a_cells].mean(0)) < 0.3


def test_key_added_changes_every_key(tiny):
    adata, _ = tiny
    a = make_toy()
    vgfm.tl.fit(a, "time", key_added="run2", progress=False, **{**TINY, "stage1_steps": 2})
    assert "run2_velocity" in a.obsm and "run2_growth" in a.obs and "run2" in a.uns
    assert not any(k.startswith("vgfm") for k in [*a.obsm, *a.obs, *a.uns])
    vgfm.tl.simulate(a, key="run2", n_cells=3)
    assert set(a.uns) == {"run2", "run2_trajectories"}
    df = vgfm.tl.evaluate(a, key="run2")
    assert "evaluation" in a.uns["run2"] and len(df) == 2


def test_copy_returns_copy_and_leaves_original(adata_fingerprint, assert_same_adata):
    a = make_toy()
    before = adata_fingerprint(a)
    out = vgfm.tl.fit(a, "time", progress=False, copy=True, **{**TINY, "stage1_steps": 2})
    assert not isinstance(out, tuple)  # copy=True returns the copy (house convention)
    acopy, model = out, vgfm.get_model(out)
    assert isinstance(acopy, ad.AnnData) and acopy is not a and isinstance(model, VGFM)
    assert "vgfm_velocity" in acopy.obsm and "vgfm" in acopy.uns
    assert_same_adata(before, adata_fingerprint(a))
    # the same for velocity / simulate
    back = vgfm.tl.velocity(a, model, copy=True)
    assert "vgfm_velocity" in back.obsm
    back = vgfm.tl.simulate(a, model, copy=True, n_cells=3)
    assert "vgfm_trajectories" in back.uns
    assert_same_adata(before, adata_fingerprint(a))


def test_seed_determinism_through_fit():
    a, b = make_toy(), make_toy()
    opts = {**TINY, "stage1_steps": 10}
    vgfm.tl.fit(a, "time", progress=False, seed=3, **opts)
    vgfm.tl.fit(b, "time", progress=False, seed=3, **opts)
    np.testing.assert_array_equal(a.obsm["vgfm_velocity"], b.obsm["vgfm_velocity"])
    vgfm.tl.fit(b, "time", progress=False, seed=4, **opts)
    assert not np.array_equal(a.obsm["vgfm_velocity"], b.obsm["vgfm_velocity"])


def test_explicit_cpu_device(tiny):
    adata, model = tiny
    a = make_toy()
    m_cpu = vgfm.tl.fit(a, "time", device="cpu", progress=False, **TINY)
    assert next(m_cpu.field.parameters()).device.type == "cpu"
    v, _ = m_cpu.predict(rep(a), 1.0, device="cpu")
    assert v.shape == (a.n_obs, 2)
    if not torch.cuda.is_available():  # device=None is the CPU here: identical numbers
        np.testing.assert_array_equal(a.obsm["vgfm_velocity"], adata.obsm["vgfm_velocity"])


# =============================================================================================
# persistence
# =============================================================================================
def test_save_load_identical_predictions(tiny, tmp_path):
    adata, model = tiny
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = VGFM.load(path)
    x, t = rep(adata), adata.obs["time"].to_numpy()
    for a_, b_ in zip(model.predict(x, t), loaded.predict(x, t)):
        np.testing.assert_array_equal(a_, b_)
    assert loaded.config == model.config and loaded.info == model.info
    np.testing.assert_array_equal(loaded.history["stage1_loss"], model.history["stage1_loss"])
    xs1, lm1 = model.simulate(x[:5], TIMES)
    xs2, lm2 = loaded.simulate(x[:5], TIMES)
    np.testing.assert_array_equal(xs1, xs2)
    np.testing.assert_array_equal(lm1, lm2)
    VGFM.load(path, adata)  # validates without error


def test_h5ad_round_trip_rebuilds_model(tiny, tmp_path):
    adata, model = tiny
    path = tmp_path / "fitted.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    rebuilt = VGFM.from_adata(back)
    x, t = rep(back), back.obs["time"].to_numpy()
    for a_, b_ in zip(model.predict(x, t), rebuilt.predict(x, t)):
        np.testing.assert_array_equal(a_, b_)
    assert rebuilt.config == model.config
    # simulate / evaluate on the re-read object, without the model object
    vgfm.tl.simulate(back, n_cells=5, seed=1)
    ref = adata.copy()
    vgfm.tl.simulate(ref, model, n_cells=5, seed=1)
    for k in ("t", "x", "log_mass", "start_obs"):
        np.testing.assert_array_equal(back.uns["vgfm_trajectories"][k],
                                      ref.uns["vgfm_trajectories"][k])
    pd.testing.assert_frame_equal(vgfm.tl.evaluate(back), vgfm.tl.evaluate(ref, model))


def test_from_adata_without_fit_raises():
    with pytest.raises(KeyError, match="vgfm"):
        VGFM.from_adata(make_toy())


def test_load_validates_dimension_and_rep(tiny, tmp_path):
    _, model = tiny
    path = tmp_path / "model.pt"
    model.save(path)
    other = make_toy()
    other.obsm["X_pca"] = np.hstack([rep(other), np.zeros((other.n_obs, 1), np.float32)])
    with pytest.raises(ValueError, match=r"2-dimensional 'X_pca'.*3 dimensions"):
        VGFM.load(path, other)
    del other.obsm["X_pca"]
    with pytest.raises(KeyError, match="X_pca"):
        VGFM.load(path, other)


# =============================================================================================
# simulate
# =============================================================================================
def test_simulate_defaults(tiny):
    adata, model = tiny
    a = adata.copy()
    vgfm.tl.simulate(a, model)
    tr = a.uns["vgfm_trajectories"]
    t0_cells = (a.obs["time"] == 0).to_numpy()
    n0 = int(t0_cells.sum())
    assert set(TIMES) <= set(tr["t"].tolist())
    assert len(tr["t"]) == 21 and np.all(np.diff(tr["t"]) > 0)  # 10 steps per interval
    assert tr["x"].shape == (21, n0, 2) and tr["log_mass"].shape == (21, n0)
    assert np.all(tr["log_mass"][0] == 0)
    np.testing.assert_array_equal(tr["start_obs"], a.obs_names[t0_cells].to_numpy(dtype=str))
    np.testing.assert_array_equal(tr["x"][0], rep(a)[t0_cells])
    xs, lms = model.simulate(rep(a)[t0_cells], tr["t"])
    np.testing.assert_array_equal(tr["x"], xs)
    np.testing.assert_array_equal(tr["log_mass"], lms)


@pytest.mark.parametrize("start", [1.0, "1"])
def test_simulate_start_time_and_n_cells(tiny, start):
    adata, model = tiny
    a = adata.copy()
    vgfm.tl.simulate(a, model, start_time=start, n_cells=7, seed=2)
    tr = a.uns["vgfm_trajectories"]
    assert tr["t"][0] == 1.0 and set(tr["t"].tolist()) >= {1.0, 2.0} and tr["t"].min() == 1.0
    assert tr["x"].shape == (len(tr["t"]), 7, 2)
    names = tr["start_obs"]
    assert len(set(names)) == 7
    assert set(a.obs.loc[names, "time"]) == {1.0}
    np.testing.assert_array_equal(tr["x"][0], rep(a[names]))
    assert np.all(tr["log_mass"][0] == 0)
    # n_cells larger than the time point: all its cells
    vgfm.tl.simulate(a, model, start_time=start, n_cells=10_000)
    assert a.uns["vgfm_trajectories"]["x"].shape[1] == 3 * N


def test_simulate_t_eval_and_errors(tiny):
    adata, model = tiny
    a = adata.copy()
    vgfm.tl.simulate(a, model, t_eval=[2.0, 0.5])
    np.testing.assert_array_equal(a.uns["vgfm_trajectories"]["t"], [0.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="start_time"):
        vgfm.tl.simulate(a, model, start_time=7)
    with pytest.raises(ValueError, match="n_cells"):
        vgfm.tl.simulate(a, model, n_cells=0)


# =============================================================================================
# evaluate
# =============================================================================================
def test_evaluate_matches_independent_computation(tiny):
    adata, model = tiny
    a = adata.copy()
    df = vgfm.tl.evaluate(a, model)
    assert len(df) == len(TIMES) - 1
    assert {"time", "w1", "rme", "held_out"} <= set(df.columns)
    np.testing.assert_array_equal(df["time"], TIMES[1:])
    assert df["held_out"].dtype == bool and not df["held_out"].any()
    stored = a.uns["vgfm"]["evaluation"]
    for c in df.columns:
        np.testing.assert_array_equal(np.asarray(stored[c]), df[c].to_numpy())
    # independent recomputation (METHOD.md section 5)
    x = rep(a).astype(np.float64)
    t = a.obs["time"].to_numpy()
    rel = np.array([1.0, 1.5, 2.5])
    xs, lms = model.simulate(x[t == 0], TIMES)
    for k in (1, 2):
        m = np.exp(lms[k].astype(np.float64))
        rme = abs(m.mean() - rel[k]) / rel[k]
        assert df["rme"].iloc[k - 1] == pytest.approx(rme, rel=1e-9, abs=1e-12)
        assert df["predicted_size"].iloc[k - 1] == pytest.approx(m.mean(), rel=1e-12)
        y = x[t == TIMES[k]]
        w1 = ot.emd2(m / m.sum(), np.full(len(y), 1.0 / len(y)),
                     cdist(xs[k].astype(np.float64), y), numItermax=1_000_000)
        assert df["w1"].iloc[k - 1] == pytest.approx(w1, rel=1e-6)
        assert df["w1_se"].iloc[k - 1] == 0


def test_holdout_time():
    a = make_toy()
    seen = {}
    real_train = vgfm._model.train

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_train(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vgfm._model, "train", spy)
        model = vgfm.tl.fit(a, "time", holdout_time=1, progress=False, **TINY)
    assert seen["holdout"] == 1
    np.testing.assert_array_equal(a.uns["vgfm"]["held_out"], [False, True, False])
    assert a.uns["vgfm"]["params"]["holdout_time"] == "1"
    assert model.info["held_out"] == [False, True, False]
    df = vgfm.tl.evaluate(a)
    assert df["held_out"].tolist() == [True, False]
    assert df.loc[df["held_out"], "time"].tolist() == [1.0]


def test_otcfm_has_no_growth():
    a = make_toy()
    model = vgfm.tl.fit(a, "time", method="otcfm", progress=False, **TINY)
    assert model.config.method == "otcfm"
    assert np.all(a.obs["vgfm_growth"].to_numpy() == 0.0)
    df = vgfm.tl.evaluate(a)
    assert np.all(df["predicted_size"].to_numpy() == 1.0)
    np.testing.assert_allclose(df["rme"], [0.5 / 1.5, 1.5 / 2.5], rtol=1e-12)
    vgfm.tl.simulate(a, n_cells=4)
    assert np.all(a.uns["vgfm_trajectories"]["log_mass"] == 0)
    assert a.uns["vgfm"]["params"]["method"] == "otcfm"


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [([100, 300, 200], [1.0, 3.0, 2.0]), ({"0": 10, "2": 10, "1": 40}, [1.0, 4.0, 1.0]),
     (np.array([2.0, 2.0, 2.0]), [1.0, 1.0, 1.0])],
)
def test_population_size_changes_relative_size(sizes, expected):
    a = make_toy()
    model = vgfm.tl.fit(a, "time", population_size=sizes, progress=False,
                        **{**TINY, "stage1_steps": 2})
    np.testing.assert_allclose(a.uns["vgfm"]["relative_size"], expected, rtol=1e-12)
    np.testing.assert_allclose(model.info["relative_size"], expected, rtol=1e-12)
    df = vgfm.tl.evaluate(a)
    np.testing.assert_allclose(df["observed_size"], expected[1:], rtol=1e-12)


def test_population_size_from_pp():
    a = make_toy()
    vgfm.pp.population_size(a, [5, 10, 40], time_key="time")
    vgfm.tl.fit(a, "time", progress=False, **{**TINY, "stage1_steps": 2})
    np.testing.assert_allclose(a.uns["vgfm"]["relative_size"], [1.0, 2.0, 8.0], rtol=1e-12)


# =============================================================================================
# velocity on new cells
# =============================================================================================
def test_velocity_on_new_cells(tiny):
    _, model = tiny
    rng = np.random.default_rng(5)
    x = rng.normal(size=(12, 2)).astype(np.float32)
    new = ad.AnnData(np.zeros((12, 1), np.float32),
                     obs=pd.DataFrame({"time": np.repeat([0.0, 1.0, 2.0], 4)},
                                      index=[f"n{i}" for i in range(12)]))
    new.obsm["X_pca"] = x
    assert vgfm.tl.velocity(new, model) is None
    v, g = model.predict(x, new.obs["time"].to_numpy())
    np.testing.assert_array_equal(new.obsm["vgfm_velocity"], v)
    np.testing.assert_array_equal(new.obs["vgfm_growth"].to_numpy(), g.astype(np.float64))
    vgfm.tl.velocity(new, model, time=0.5, key_added="half")
    v, g = model.predict(x, 0.5)
    np.testing.assert_array_equal(new.obsm["half_velocity"], v)
    np.testing.assert_array_equal(new.obs["half_growth"].to_numpy(), g.astype(np.float64))
    # labels that are not those of the fit are parsed
    new.obs["time"] = pd.Categorical([f"day {int(t)}" for t in new.obs["time"]])
    vgfm.tl.velocity(new, model, key_added="lab")
    np.testing.assert_array_equal(new.obsm["lab_velocity"], new.obsm["vgfm_velocity"])


def test_velocity_from_stored_model(tiny):
    adata, _ = tiny
    a = adata.copy()
    del a.obsm["vgfm_velocity"]
    vgfm.tl.velocity(a)
    np.testing.assert_array_equal(a.obsm["vgfm_velocity"], adata.obsm["vgfm_velocity"])


def test_time_labels_with_explicit_order():
    a = _unparseable(make_toy())
    model = vgfm.tl.fit(a, "time", time_order=["early", "mid", "late"], time_values=[0, 1, 3],
                        progress=False, **{**TINY, "stage1_steps": 2})
    np.testing.assert_array_equal(a.uns["vgfm"]["times"], [0.0, 1.0, 3.0])
    assert list(a.uns["vgfm"]["time_labels"]) == ["early", "mid", "late"]
    t = np.array([0.0, 1.0, 3.0])[make_toy().obs["time"].to_numpy().astype(int)]
    v, _ = model.predict(rep(a), t)
    np.testing.assert_array_equal(a.obsm["vgfm_velocity"], v)
    # the stored label mapping is reused by velocity / simulate / evaluate
    b = a.copy()
    vgfm.tl.velocity(b)
    np.testing.assert_array_equal(b.obsm["vgfm_velocity"], v)
    vgfm.tl.simulate(b, start_time="mid", n_cells=3)
    assert b.uns["vgfm_trajectories"]["t"][[0, -1]].tolist() == [1.0, 3.0]
    assert vgfm.tl.evaluate(b)["label"].tolist() == ["mid", "late"]


def test_sparse_x_is_densified(adata_fingerprint, assert_same_adata):
    a = make_toy()
    a.X = sparse.csr_matrix(a.X)
    before = adata_fingerprint(a)
    model = vgfm.tl.fit(a, "time", use_rep="X", progress=False, **{**TINY, "stage1_steps": 2})
    assert a.obsm["vgfm_velocity"].shape == (a.n_obs, 5) and model.dim == 5
    assert sparse.issparse(a.X)
    after = adata_fingerprint(a)
    for name in ("X", "obs_names", "var"):
        assert_same_adata({name: before[name]}, {name: after[name]})
    v, _ = model.predict(a.X.toarray(), a.obs["time"].to_numpy())
    np.testing.assert_array_equal(a.obsm["vgfm_velocity"], v)


# =============================================================================================
# bad input: right exception, message names the field, adata unchanged
# =============================================================================================
def _one_time(a):
    return a[a.obs["time"] == 0].copy()


def _one_cell_at_last(a):
    keep = (a.obs["time"] < 2).to_numpy()
    keep[np.flatnonzero(~keep)[0]] = True
    return a[keep].copy()


def _unparseable(a):
    a.obs["time"] = pd.Categorical(np.array(["early", "mid", "late"])[
        a.obs["time"].to_numpy().astype(int)])
    return a


def _with_value(value):
    def f(a):
        a.obsm["X_pca"][3, 1] = value
        return a
    return f


BAD_FIT = [
    ("missing time_key", lambda a: a, {"time_key": "day"}, KeyError,
     r"'day'.*available \.obs columns.*'time'.*'cluster'"),
    ("single time point", _one_time, {}, ValueError, r"obs\['time'\].*1 distinct time point"),
    ("time point with one cell", _one_cell_at_last, {}, ValueError,
     r"obs\['time'\].*'2' \(1 cell\)"),
    ("unparseable labels", _unparseable, {}, ValueError, r"obs\['time'\].*'early'"),
    ("missing use_rep", lambda a: a, {"use_rep": "X_scvi"}, KeyError,
     r"'X_scvi'.*available \.obsm keys.*'X_pca'"),
    ("NaN in representation", _with_value(np.nan), {}, ValueError,
     r"obsm\['X_pca'\].*non-finite.*'cell3'"),
    ("inf in representation", _with_value(np.inf), {}, ValueError,
     r"obsm\['X_pca'\].*non-finite.*'cell3'"),
    ("holdout first", lambda a: a, {"holdout_time": 0}, ValueError, r"holdout_time=0.*first"),
    ("holdout last", lambda a: a, {"holdout_time": "2"}, ValueError, r"holdout_time='2'.*last"),
    ("holdout absent", lambda a: a, {"holdout_time": 5}, ValueError,
     r"holdout_time=5 is not one of the time points"),
    ("population_size length", lambda a: a, {"population_size": [1, 2]}, ValueError,
     r"population_size has 2 entries; expected 3"),
    ("population_size zero", lambda a: a, {"population_size": [1, 0, 2]}, ValueError,
     r"population_size.*> 0.*'1': 0"),
    ("population_size negative", lambda a: a, {"population_size": [1, 2, -3]}, ValueError,
     r"population_size.*> 0.*'2': -3"),
    ("unknown option", lambda a: a, {"stage_one_steps": 3}, TypeError,
     r"unknown option.*stage_one_steps"),
    ("bad method", lambda a: a, {"method": "tigon"}, ValueError, r"method.*'tigon'"),
    ("bad reg", lambda a: a, {"reg": -1.0}, ValueError, r"reg must be > 0"),
]


@pytest.mark.parametrize(("prepare", "kwargs", "exc", "match"),
                         [c[1:] for c in BAD_FIT], ids=[c[0] for c in BAD_FIT])
def test_fit_bad_input(prepare, kwargs, exc, match, adata_fingerprint, assert_same_adata):
    a = prepare(make_toy())
    kwargs = {"time_key": "time", **kwargs}
    time_key = kwargs.pop("time_key")
    before = adata_fingerprint(a)
    with pytest.raises(exc, match=match):
        vgfm.tl.fit(a, time_key, progress=False, **{**TINY, **kwargs})
    assert_same_adata(before, adata_fingerprint(a))


def test_sparse_x_too_large_is_refused(monkeypatch, adata_fingerprint, assert_same_adata):
    a = make_toy()
    a.X = sparse.csr_matrix(a.X)
    monkeypatch.setattr(vgfm._data._representation, "MAX_DENSIFY_ENTRIES", 100)
    before = adata_fingerprint(a)
    with pytest.raises(ValueError, match=r"adata\.X is sparse.*more than VGFM densifies.*X_pca"):
        vgfm.tl.fit(a, "time", use_rep="X", progress=False, **TINY)
    assert_same_adata(before, adata_fingerprint(a))


def test_backed_adata_is_refused(tmp_path, adata_fingerprint, assert_same_adata):
    path = tmp_path / "toy.h5ad"
    make_toy().write_h5ad(path)
    a = ad.read_h5ad(path, backed="r")
    try:
        before = adata_fingerprint(a)
        with pytest.raises(ValueError, match=r"backed.*to_memory"):
            vgfm.tl.fit(a, "time", use_rep="X", progress=False, **TINY)
        assert_same_adata(before, adata_fingerprint(a))
    finally:
        a.file.close()


def test_model_on_other_dimension(tiny, adata_fingerprint, assert_same_adata):
    _, model = tiny
    a = make_toy()
    a.obsm["X_pca"] = np.hstack([rep(a), rep(a)])
    before = adata_fingerprint(a)
    for fn in (vgfm.tl.velocity, vgfm.tl.simulate, vgfm.tl.evaluate):
        with pytest.raises(ValueError, match=r"2-dimensional 'X_pca'.*4 dimensions"):
            fn(a, model)
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*2"):
        model.predict(np.zeros((3, 4)), 0.0)
    assert_same_adata(before, adata_fingerprint(a))


def test_keyboard_interrupt_leaves_adata(monkeypatch, adata_fingerprint, assert_same_adata):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vgfm._model, "train", interrupted)
    a = make_toy()
    before = adata_fingerprint(a)
    with pytest.raises(KeyboardInterrupt):
        vgfm.tl.fit(a, "time", progress=False, **TINY)
    assert_same_adata(before, adata_fingerprint(a))


# =============================================================================================
# MuData
# =============================================================================================
@pytest.fixture
def mdata():
    a = make_toy()
    rna = a.copy()
    prot = ad.AnnData(np.random.default_rng(1).normal(size=(a.n_obs, 4)).astype(np.float32),
                      obs=pd.DataFrame(index=a.obs_names),
                      var=pd.DataFrame(index=[f"protein{i}" for i in range(4)]))
    m = md.MuData({"rna": rna, "prot": prot})
    m.obs["time"] = a.obs["time"].to_numpy()
    m.obsm["X_joint"] = rep(a) * 2.0
    return m


def test_mudata_joint_representation(mdata):
    model = vgfm.tl.fit(mdata, "time", use_rep="X_joint", progress=False, **TINY)
    assert model.use_rep == "X_joint"
    v = np.asarray(mdata.obsm["vgfm_velocity"])
    assert v.shape == (mdata.n_obs, 2)
    assert "vgfm_growth" in mdata.obs and "vgfm" in mdata.uns
    v_ref, _ = model.predict(np.asarray(mdata.obsm["X_joint"]), mdata.obs["time"].to_numpy())
    np.testing.assert_array_equal(v, v_ref)
    assert "vgfm" not in mdata.mod["rna"].uns and "vgfm_velocity" not in mdata.mod["rna"].obsm
    vgfm.tl.simulate(mdata, n_cells=5)
    assert mdata.uns["vgfm_trajectories"]["x"].shape == (21, 5, 2)
    df = vgfm.tl.evaluate(mdata)
    assert len(df) == 2 and "evaluation" in mdata.uns["vgfm"]
    np.testing.assert_allclose(df["observed_size"], [1.5, 2.5])
    rebuilt = VGFM.from_adata(mdata)
    np.testing.assert_array_equal(rebuilt.predict(np.asarray(mdata.obsm["X_joint"]), 0.0)[0],
                                  model.predict(np.asarray(mdata.obsm["X_joint"]), 0.0)[0])


def test_mudata_modality(mdata):
    model = vgfm.tl.fit(mdata, "time", use_rep="X_pca", mod="rna", progress=False, **TINY)
    rna = mdata.mod["rna"]
    assert rna.obsm["vgfm_velocity"].shape == (rna.n_obs, 2)
    assert "vgfm_growth" in rna.obs and "vgfm" in rna.uns
    assert rna.uns["vgfm"]["params"]["mod"] == "rna"
    assert "vgfm" not in mdata.uns and "vgfm_velocity" not in mdata.obsm
    v_ref, _ = model.predict(rep(rna), rna.obs["time"].to_numpy())
    np.testing.assert_array_equal(rna.obsm["vgfm_velocity"], v_ref)
    vgfm.tl.simulate(mdata, mod="rna", n_cells=5)
    assert rna.uns["vgfm_trajectories"]["x"].shape == (21, 5, 2)
    assert "vgfm_trajectories" not in mdata.uns
    df = vgfm.tl.evaluate(mdata, mod="rna")
    assert len(df) == 2 and "evaluation" in rna.uns["vgfm"]
    df2 = vgfm.tl.evaluate(rna, model)
    pd.testing.assert_frame_equal(df, df2)
    with pytest.raises(KeyError, match="'atac'"):
        vgfm.tl.fit(mdata, "time", mod="atac", progress=False, **TINY)
