"""Precision (issue 12 item 11): data and times far from 0 keep their float64 precision.

The networks compute in float32, which merges coordinates offset by 1e9 into one point and
times 1e8 + [0, 0.5, 1, ...] into one time. The model subtracts a float64 origin (the data's
mean, the first time) before casting, and adds it back to positions it returns; ordinary data
are not moved, so their results are bit-identical to a fit without this step.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import torch

import vgfm
from vgfm import VGFM
from vgfm._core.train import TrainConfig, train
from vgfm._data._representation import (
    RECENTRE_RATIO,
    frame_origin,
    get_representation,
    to_frame,
)
from vgfm._data._times import at_time, time_origin

SIZES = [1, 1.5, 2, 3, 4]
FAST = {"stage1_steps": 60, "stage2_steps": 3, "hidden": 16, "batch_size": 64, "val_every": 1}
SHIFT = 1e9
T_SHIFT = 1e8
EPOCH, DAY = 1.7e9, 86400.0  # seconds since 1970, days in seconds


def make() -> ad.AnnData:
    return vgfm.datasets.two_gene_grn(n_cells_0=40, seed=0)


def shifted_x() -> ad.AnnData:
    a = make()
    a.X = np.asarray(a.X, dtype=np.float64) + SHIFT  # float64: the user's data keep the digits
    return a


def shifted_t(offset: float = T_SHIFT, unit: float = 1.0) -> ad.AnnData:
    a = make()
    a.obs["time"] = offset + a.obs["time"].astype(float) * unit
    return a


def fit(a: ad.AnnData, **kw) -> VGFM:
    return vgfm.tl.fit(a, "time", use_rep="X", population_size=SIZES, progress=False, seed=0,
                       **FAST, **kw)


@pytest.fixture(scope="module")
def reference():
    """The fit on the data as generated (times 0-2, coordinates ~0-2)."""
    a = make()
    model = fit(a)
    return a, model, vgfm.tl.evaluate(a)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# ------------------------------------------------------------------ coordinates far from 0
def test_shifted_representation_fits_like_the_original(reference):
    a, model0, ev0 = reference
    b = shifted_x()
    model = fit(b)
    # evaluate does not report a perfect score for data collapsed to one point
    ev = vgfm.tl.evaluate(b)
    assert (ev["w1"] > 0.1).all()
    np.testing.assert_allclose(ev["w1"], ev0["w1"], rtol=1e-6)
    np.testing.assert_allclose(ev["rme"], ev0["rme"], rtol=1e-5, atol=1e-7)
    # the spread metrics are those of the unshifted data too (not a collapsed prediction)
    np.testing.assert_allclose(ev["variance_ratio"], ev0["variance_ratio"], rtol=1e-3)
    # velocity and growth are those of the unshifted fit (float32 rounding of the inputs only)
    assert rel_err(b.obsm["vgfm_velocity"], a.obsm["vgfm_velocity"]) < 2e-6
    assert rel_err(b.obs["vgfm_growth"], a.obs["vgfm_growth"]) < 2e-6
    # the fit moved the data to its mean in float64 (not to a float32-rounded centre)
    np.testing.assert_allclose(model.origin, np.asarray(a.X, np.float64).mean(0) + SHIFT,
                               rtol=0, atol=1e-6)


def test_shifted_trajectories_are_in_user_coordinates_float64(reference):
    a, _, _ = reference
    b = shifted_x()
    fit(b)
    vgfm.tl.simulate(a, n_per_interval=2)
    vgfm.tl.simulate(b, n_per_interval=2)
    xa, xb = a.uns["vgfm_trajectories"]["x"], b.uns["vgfm_trajectories"]["x"]
    assert xa.dtype == np.float32  # ordinary data: stored as before
    assert xb.dtype == np.float64  # float32 would merge states offset by 1e9
    np.testing.assert_allclose(xb - SHIFT, xa, rtol=0, atol=1e-5)
    # the start states are the observed cells themselves, to the last float64 digit
    start = np.isin(b.obs_names, b.uns["vgfm_trajectories"]["start_obs"])
    np.testing.assert_allclose(xb[0], np.asarray(b.X)[start], rtol=0, atol=1e-6)


def test_shifted_predict_and_simulate_match_the_original(reference):
    _, model0, _ = reference
    b = shifted_x()
    model = fit(b)
    x0 = np.asarray(make().X)[:30]
    v0, g0 = model0.predict(x0, 1.0)
    v, g = model.predict(x0.astype(np.float64) + SHIFT, 1.0)
    assert rel_err(v, v0) < 2e-6 and rel_err(g, g0) < 2e-6
    xs0, lm0 = model0.simulate(x0, [0.0, 1.0, 2.0])
    xs, lm = model.simulate(x0.astype(np.float64) + SHIFT, [0.0, 1.0, 2.0])
    assert xs.dtype == np.float64
    np.testing.assert_allclose(xs - SHIFT, xs0, rtol=0, atol=1e-5)
    np.testing.assert_allclose(lm, lm0, rtol=0, atol=1e-5)
    # frame="model": the float32 states relative to the origin
    xm, _ = model.simulate(x0.astype(np.float64) + SHIFT, [0.0, 1.0], frame="model")
    assert xm.dtype == np.float32
    np.testing.assert_allclose(xm[0], x0.astype(np.float64) + SHIFT - model.origin,
                               rtol=0, atol=1e-6)


def test_shifted_velocity_embedding_matches_the_original(reference):
    a, _, _ = reference
    b = shifted_x()
    for data in (a, b):
        data.obsm["X_umap"] = np.asarray(make().X, dtype=np.float64) * 3.0
    b.obsm["vgfm_velocity"] = a.obsm["vgfm_velocity"].copy()
    b.uns["vgfm"] = a.uns["vgfm"]
    vgfm.tl.velocity_embedding(a, basis="umap", n_neighbors=10)
    vgfm.tl.velocity_embedding(b, basis="umap", n_neighbors=10)
    # (x + 1e9 in float64 keeps ~1e-7 of each coordinate: cosines agree to ~1e-5)
    np.testing.assert_allclose(b.obsm["vgfm_velocity_umap"], a.obsm["vgfm_velocity_umap"],
                               rtol=0, atol=1e-4)


# ------------------------------------------------------------------ times far from 0
def test_times_at_1e8_fit_like_times_from_0(reference):
    a, model0, ev0 = reference
    c = shifted_t()
    model = fit(c)
    assert model.t_origin == T_SHIFT and not np.any(model.origin)
    np.testing.assert_array_equal(model.times, T_SHIFT + model0.times)
    # the networks see exactly the times of the reference fit: identical numbers
    np.testing.assert_array_equal(c.obsm["vgfm_velocity"], a.obsm["vgfm_velocity"])
    np.testing.assert_array_equal(c.obs["vgfm_growth"], a.obs["vgfm_growth"])
    ev = vgfm.tl.evaluate(c)
    np.testing.assert_array_equal(ev["w1"], ev0["w1"])
    np.testing.assert_array_equal(ev["time"], T_SHIFT + ev0["time"])
    # velocity at a user time, by label and number
    vgfm.tl.velocity(a, time=1.0, key_added="t1")
    vgfm.tl.velocity(c, time=T_SHIFT + 1.0, key_added="t1")
    np.testing.assert_array_equal(c.obsm["t1_velocity"], a.obsm["t1_velocity"])
    # simulate on the default grid and at requested times
    vgfm.tl.simulate(a, n_per_interval=3)
    vgfm.tl.simulate(c, n_per_interval=3)
    ta, tc = a.uns["vgfm_trajectories"], c.uns["vgfm_trajectories"]
    np.testing.assert_allclose(tc["t"], T_SHIFT + ta["t"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(tc["x"], ta["x"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(tc["log_mass"], ta["log_mass"], rtol=0, atol=1e-6)
    vgfm.tl.simulate(c, t_eval=[T_SHIFT + 0.25, T_SHIFT + 1.75])
    assert c.uns["vgfm_trajectories"]["x"].shape[0] == 3


def test_times_in_seconds_since_epoch(reference):
    a, _, ev0 = reference
    d = shifted_t(EPOCH, DAY)  # days 0-2 as Unix seconds
    model = fit(d)
    # the same dynamics in other units: velocity and growth per second = per day / 86400
    # (float32 seconds since 1970 are rounded to 128 s: errors ~5e-5 without the offset)
    assert rel_err(d.obsm["vgfm_velocity"] * DAY, a.obsm["vgfm_velocity"]) < 2e-6
    assert rel_err(d.obs["vgfm_growth"] * DAY, a.obs["vgfm_growth"]) < 2e-6
    np.testing.assert_allclose(vgfm.tl.evaluate(d)["w1"], ev0["w1"], rtol=1e-6)
    # at a time between the float32 numbers near 1.7e9 (17 s after day 1.5)
    v1, g1 = model.predict(np.asarray(d.X)[:50], EPOCH + 1.5 * DAY + 17.0)
    v0, g0 = vgfm.get_model(a).predict(np.asarray(a.X)[:50], 1.5 + 17.0 / DAY)
    assert rel_err(v1 * DAY, v0) < 2e-6 and rel_err(g1 * DAY, g0) < 2e-6
    assert model.t_origin == EPOCH


# ------------------------------------------------------------------ persistence
def test_offsets_survive_save_load_and_h5ad(tmp_path):
    b = shifted_x()
    b.obs["time"] = T_SHIFT + b.obs["time"].astype(float)
    model = fit(b)
    assert model.t_origin == T_SHIFT and np.all(model.origin > SHIFT)
    x = np.asarray(b.X)[:20]
    v, g = model.predict(x, T_SHIFT + 1.0)

    model.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format_version"] == 3 and "frame" in payload
    loaded = VGFM.load(tmp_path / "m.pt", b)
    np.testing.assert_array_equal(loaded.origin, model.origin)  # float64, exactly
    assert loaded.t_origin == model.t_origin
    v2, g2 = loaded.predict(x, T_SHIFT + 1.0)
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(g2, g)

    b.write_h5ad(tmp_path / "b.h5ad")
    again = vgfm.get_model(ad.read_h5ad(tmp_path / "b.h5ad"))
    np.testing.assert_array_equal(again.origin, model.origin)
    assert again.t_origin == T_SHIFT
    np.testing.assert_array_equal(again.predict(x, T_SHIFT + 1.0)[0], v)


def test_models_without_offsets_keep_format_2(tmp_path, reference):
    """Nothing in an ordinary model needs the new fields: it is written as before (version 2,
    readable by older vgfm), and a version-2 file loads with zero offsets."""
    _, model0, _ = reference
    assert not model0.has_offset and not np.any(model0.origin) and model0.t_origin == 0.0
    d = model0.to_dict()
    assert d["format_version"] == 2 and "frame" not in d
    model0.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format_version"] == 2 and "frame" not in payload
    back = VGFM.load(tmp_path / "m.pt")
    assert not back.has_offset


def test_damaged_frame_is_refused(tmp_path):
    model = fit(shifted_x())
    d = model.to_dict()
    d["frame"] = '{"origin": [1.0], "t_origin": 0.0}'  # one value for two dimensions
    with pytest.raises(ValueError, match="frame must hold 2 finite origin values"):
        VGFM.from_dict(d, info=model.info)


# ------------------------------------------------------------------ ordinary data unchanged
def test_ordinary_data_give_the_numbers_of_the_core_trainer():
    """With no offset, VGFM.fit trains on exactly the float32 arrays the core receives."""
    a = make()
    t = a.obs["time"].to_numpy(dtype=float)
    times = np.unique(t)
    snaps = [np.asarray(a.X)[t == v] for v in times]
    cfg = TrainConfig(**FAST)
    model = VGFM.fit(snaps, times, config=cfg, seed=3)
    core = train(snaps, times.tolist(), config=cfg, seed=3)
    assert not model.has_offset
    for k, v in core.field.state_dict().items():
        assert torch.equal(model.field.state_dict()[k], v), k
    x = np.asarray(a.X)
    assert model.to_model_frame(x) is x or np.array_equal(model.to_model_frame(x), x)


# ------------------------------------------------------------------ the building blocks
def test_frame_origin_and_time_origin_rules():
    x = np.random.default_rng(0).normal(size=(50, 3))
    assert not np.any(frame_origin([x]))
    assert not np.any(frame_origin([x + 0.5 * RECENTRE_RATIO]))  # within the ratio: unmoved
    np.testing.assert_allclose(frame_origin([x[:20] + SHIFT, x[20:] + SHIFT]),
                               x.mean(0) + SHIFT, rtol=0, atol=1e-6)
    assert time_origin([0.0, 1.0, 2.0]) == 0.0 and time_origin([10.0, 11.0, 12.0]) == 0.0
    assert time_origin([T_SHIFT, T_SHIFT + 1.0]) == T_SHIFT
    # the shift is subtracted in float64 before the cast
    y = to_frame(x + SHIFT, frame_origin([x + SHIFT]))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x - x.mean(0), rtol=0, atol=1e-6)


def test_at_time_separates_time_points_far_from_0():
    times = T_SHIFT + np.array([0.0, 0.5, 1.0])
    cells = np.repeat(times, 2)
    for k, t in enumerate(times):
        np.testing.assert_array_equal(np.flatnonzero(at_time(cells, t, times)),
                                      [2 * k, 2 * k + 1])
    # np.isclose alone (relative tolerance 1e-5 = 1000 here) would merge them
    assert np.isclose(times[0], times[1])


def test_get_representation_keeps_float64():
    a = ad.AnnData(np.zeros((3, 2), dtype=np.float32),
                   obsm={"X_far": np.array([[1e9, 0.0], [1e9 + 0.25, 1.0], [1e9 + 0.5, 2.0]])})
    x = get_representation(a, "X_far")
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x[:, 0] - 1e9, [0.0, 0.25, 0.5])
    assert get_representation(a, "X").dtype == np.float32
    a.obsm["X_huge"] = np.array([[1e39, 0.0], [0.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="non-finite.*float32 overflow"):
        get_representation(a, "X_huge")


# ------------------------------------------------------------------ stochastic tools, ensemble
def test_stochastic_tools_on_shifted_data_match_the_original():
    """The score model, SDE rollouts, fates and ensemble members work in the model's frame."""
    a, b = make(), shifted_x()
    for data in (a, b):
        data.obs["time"] = T_SHIFT * (data is b) + data.obs["time"].astype(float)
        fit(data)
        vgfm.tl.fit_stochastic(data, steps=30)
        vgfm.tl.simulate_stochastic(data, n_cells=4, n_samples=3, seed=1)
        vgfm.tl.fates(data, "branch", n_samples=4, seed=0)
        vgfm.tl.ensemble(data, n_models=2, steps_fraction=0.2, seed=0, progress=False)
    xa, xb = a.uns["vgfm_trajectories"]["x"], b.uns["vgfm_trajectories"]["x"]
    assert xb.dtype == np.float64
    np.testing.assert_allclose(xb - SHIFT, xa, rtol=0, atol=1e-4)
    np.testing.assert_allclose(b.uns["vgfm_trajectories"]["t"] - T_SHIFT,
                               a.uns["vgfm_trajectories"]["t"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(b.obsm["vgfm_fates"], dtype=float),
                               np.asarray(a.obsm["vgfm_fates"], dtype=float), atol=1e-6)
    np.testing.assert_allclose(b.obs["vgfm_descendants"], a.obs["vgfm_descendants"],
                               rtol=1e-4)
    np.testing.assert_allclose(b.obs["vgfm_growth_mean"], a.obs["vgfm_growth_mean"],
                               rtol=1e-4, atol=1e-6)


def test_float32_data_far_from_0_are_reported(caplog):
    """float32 data offset by 1e9 were rounded before vgfm saw them: said at fit and evaluate."""
    a = make()
    a.X = np.asarray(a.X, dtype=np.float32) + np.float32(SHIFT)  # every cell is now 1e9
    with caplog.at_level("WARNING", logger="vgfm"):
        fit(a)
    assert "is float32 and lies far from 0" in caplog.text
    assert "Store the representation as float64" in caplog.text
    # no perfect score for a snapshot collapsed to one point: a clear error instead
    with pytest.raises(ValueError, match=r"cells at time '0.5' coincide in 'X' \(dtype float32\)"
                                         r".*store the representation as float64"):
        vgfm.tl.evaluate(a)


def test_array_api_labels_stay_distinct_far_from_0():
    rng = np.random.default_rng(0)
    times = [T_SHIFT, T_SHIFT + 0.5, T_SHIFT + 1.0]
    snaps = [rng.normal(size=(30, 2)) + k for k in range(3)]
    model = VGFM.fit(snaps, times, config=TrainConfig(stage1_steps=5, stage2_steps=0, hidden=8))
    assert model.info["time_labels"] == ["100000000", "100000000.5", "100000001"]
    assert model.t_origin == T_SHIFT
    v, _ = model.predict(snaps[1], T_SHIFT + 0.5)
    assert np.isfinite(v).all()
