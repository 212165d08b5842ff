"""Tests of vgfm.pl on fabricated fit / simulate / evaluate output."""

from __future__ import annotations

import copy

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.quiver import Quiver

import vgfm.pl as vpl
import vgfm.tl as vtl
from vgfm._data._keys import trajectories_key, velocity_embedding_key
from vgfm.pl._grid import smooth_on_grid
from vgfm.pl._utils import time_unit_label

KEY = "vgfm"
RELATIVE_SIZE = np.array([1.0, 1.6, 2.3, 3.1])
HELD_OUT = np.array([False, False, True, False])
# checkpoint scores at stage-2 steps 0, 10, ..., 80 (0 = end of stage 1); minimum at step 50
VAL_STEP = np.arange(0, 81, 10)
VAL_SCORE = np.array([0.9, 0.7, 0.5, 0.45, 0.4, 0.3, 0.35, 0.32, 0.31])


def make_adata(n: int = 300, n_particles: int = 12, seed: int = 0) -> ad.AnnData:
    """A 10 x 2 band in a 2-D rep (X_umap = rep), velocity +x, growth = 0.8 y, 4 days."""
    rng = np.random.default_rng(seed)
    rep = np.column_stack([rng.uniform(0, 10, n), rng.uniform(-1, 1, n)])
    day = np.floor(rep[:, 0] / 2.5).clip(0, 3)
    obs = pd.DataFrame(
        {
            "day": day,
            "cluster": pd.Categorical(np.where(rep[:, 1] > 0, "top", "bottom")),
        },
        index=[f"c{i}" for i in range(n)],
    )
    adata = ad.AnnData(X=rng.poisson(1.0, size=(n, 5)).astype(np.float32), obs=obs)
    adata.obsm["X_pca"] = rep
    adata.obsm["X_umap"] = rep.copy()
    adata.obsm["vgfm_velocity"] = np.tile([2.5, 0.0], (n, 1))
    adata.obs["vgfm_growth"] = 0.8 * rep[:, 1] - 0.1
    t = np.linspace(0.0, 3.0, 13)
    start = rng.choice(np.flatnonzero(day == 0), size=n_particles, replace=False)
    x0 = rep[start]
    x = x0[None, :, :] + t[:, None, None] * np.array([2.5, 0.0])[None, None, :]
    x[..., 1] += 0.1 * np.sin(t)[:, None]
    log_mass = t[:, None] * 0.8 * x0[None, :, 1]
    adata.uns[trajectories_key(KEY)] = {
        "t": t,
        "x": x,
        "log_mass": log_mass,
        "start_obs": np.asarray(adata.obs_names[start], dtype=object),
    }
    adata.uns[KEY] = {
        "params": {"time_key": "day", "use_rep": "X_pca", "method": "vgfm"},
        "times": np.array([0.0, 1.0, 2.0, 3.0]),
        "time_labels": np.array(["d0", "d1", "d2", "d3"], dtype=object),
        "n_cells": np.bincount(day.astype(int), minlength=4),
        "relative_size": RELATIVE_SIZE.copy(),
        "held_out": HELD_OUT.copy(),
        "history": {
            "stage1_loss": 2.0 * np.exp(-np.linspace(0, 3, 200)) + 0.05,
            "stage2_loss": 0.3 * np.exp(-np.linspace(0, 2, 80)) + 0.02,
            "val_score": VAL_SCORE.copy(),
            "val_step": VAL_STEP.copy(),
        },
        "evaluation": {
            "time": np.array([1.0, 2.0, 3.0]),
            "w1": np.array([0.2, 0.3, 0.25]),
            "rme": np.array([0.05, 0.1, 0.02]),
            "held_out": HELD_OUT[1:].copy(),
            "predicted_size": np.array([1.5, 2.5, 3.0]),
            "observed_size": RELATIVE_SIZE[1:].copy(),
        },
    }
    return adata


def _assert_same(a, b, path="root"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert a == b, path


def snapshot(adata) -> dict:
    return {
        "obs": adata.obs.copy(),
        "obsm": {k: np.array(v, copy=True) for k, v in adata.obsm.items()},
        "obsp": {k: v.copy() for k, v in adata.obsp.items()},
        "uns": copy.deepcopy(dict(adata.uns)),
    }


def assert_unchanged(adata, snap) -> None:
    _assert_same(snap["obs"], adata.obs.copy())
    _assert_same(snap["obsm"], {k: np.asarray(v) for k, v in adata.obsm.items()})
    assert set(snap["obsp"]) == set(adata.obsp.keys())
    _assert_same(snap["uns"], dict(adata.uns))


def add_plot_fields(adata, basis: str = "umap"):
    """What the tl layer stores for the plots: embedded velocity and trajectory positions."""
    vtl.velocity_embedding(adata, basis=basis)
    vtl.trajectory_embedding(adata, basis=basis, method="knn")
    return adata


@pytest.fixture
def adata():
    return add_plot_fields(make_adata())


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _limits_contain(ax, emb):
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    assert x0 <= emb[:, 0].min() and x1 >= emb[:, 0].max()
    assert y0 <= emb[:, 1].min() and y1 >= emb[:, 1].max()


# --------------------------------------------------------------------------------------------
def test_growth_symmetric_centred_norm(adata):
    snap = snapshot(adata)
    ax = vpl.growth(adata, show=False)
    assert_unchanged(adata, snap)
    sc_ = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
    norm = sc_.norm
    g = adata.obs["vgfm_growth"].to_numpy()
    vmax = np.percentile(np.abs(g), 99)
    assert vmax < np.abs(g).max()  # the default limit clips the most extreme cells
    assert norm.vcenter == 0
    assert norm.vmin == pytest.approx(-vmax)
    assert norm.vmax == pytest.approx(vmax)
    assert sc_.colorbar.extend == "both"
    assert sc_.get_cmap().name == "RdBu_r"
    assert ax.get_xlabel() == "UMAP1" and ax.get_ylabel() == "UMAP2"
    assert ax.get_title()
    cbar_ax = ax.figure.axes[-1]
    assert cbar_ax.get_ylabel() == "growth rate (per day)"
    _limits_contain(ax, adata.obsm["X_umap"])

    ax = vpl.growth(adata, vmax=0.25, show=False)
    sc_ = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
    assert sc_.get_clim() == pytest.approx((-0.25, 0.25))
    assert sc_.colorbar.extend == "both"

    ax = vpl.growth(adata, vmax=2 * np.abs(g).max(), show=False)
    sc_ = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
    assert sc_.colorbar.extend == "neither"  # nothing clipped


def test_growth_default_vmax_not_clipping_when_flat(adata):
    # all |g| equal: the 99th percentile is the maximum, nothing is clipped
    adata.obs["vgfm_growth"] = np.where(np.arange(adata.n_obs) % 2 == 0, 0.3, -0.3)
    ax = vpl.growth(adata, show=False)
    sc_ = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
    assert sc_.get_clim() == pytest.approx((-0.3, 0.3))
    assert sc_.colorbar.extend == "neither"
    # mostly zero: the percentile is 0, fall back to max |g|
    g = np.zeros(adata.n_obs)
    g[0] = 0.5
    adata.obs["vgfm_growth"] = g
    ax = vpl.growth(adata, show=False)
    sc_ = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
    assert sc_.get_clim() == pytest.approx((-0.5, 0.5))


@pytest.mark.parametrize(
    ("time_key", "expected"),
    [
        ("day", "per day"),
        ("Days", "per day"),
        ("hpf", "per hour"),
        ("time", "per unit time"),
        ("t", "per unit time"),
        ("Timepoint", "per unit time"),
        ("time_point", "per unit time"),
        ("sample", "per unit time"),
        ("samples", "per unit time"),
        (None, "per unit time"),
        ("", "per unit time"),
        ("stage", "per unit of 'stage'"),
    ],
)
def test_time_unit_label(time_key, expected):
    assert time_unit_label(time_key) == expected


@pytest.mark.parametrize("kind", ["stream", "grid", "arrows"])
def test_velocity_kinds_do_not_write(adata, kind):
    snap = snapshot(adata)
    ax = vpl.velocity(adata, kind=kind, show=False)
    assert_unchanged(adata, snap)
    _limits_contain(ax, adata.obsm["X_umap"])
    assert ax.get_xlabel() == "UMAP1" and ax.get_title()
    if kind == "stream":
        assert any(isinstance(c, LineCollection) for c in ax.collections)
    else:
        q = [c for c in ax.collections if isinstance(c, Quiver)]
        assert len(q) == 1
        # the field is +x: arrows point right
        assert (np.asarray(q[0].U) > 0).mean() > 0.9


def test_velocity_arrows_use_stored_embedding(adata):
    v = np.zeros((adata.n_obs, 2))
    v[:, 1] = -1.0  # deliberately different from the +x field
    adata.obsm[velocity_embedding_key(KEY, "umap")] = v
    ax = vpl.velocity(adata, kind="arrows", n_arrows=50, color="cluster", show=False)
    q = [c for c in ax.collections if isinstance(c, Quiver)][0]
    assert len(q.U) == 50
    np.testing.assert_allclose(q.U, 0.0)
    np.testing.assert_allclose(q.V, -1.0)
    assert "cluster_colors" not in adata.uns


def test_smooth_on_grid_masks_empty_space():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(100, 2)) * 0.3
    b = rng.normal(size=(100, 2)) * 0.3 + [10.0, 10.0]
    emb = np.vstack([a, b])
    vel = np.tile([1.0, 0.0], (200, 1))
    xs, ys, U, V = smooth_on_grid(emb, vel, n_grid=30)
    assert U.shape == (30, 30)
    ix = np.argmin(np.abs(xs - 5.0))
    iy = np.argmin(np.abs(ys - 5.0))
    assert np.isnan(U[iy, ix])  # between the clusters: masked
    ok = np.isfinite(U)
    assert ok.sum() > 10
    np.testing.assert_allclose(U[ok], 1.0)
    np.testing.assert_allclose(V[ok], 0.0, atol=1e-12)


def test_velocity_categorical_palette_from_uns(adata):
    adata.uns["cluster_colors"] = np.array(["#ff0000", "#0000ff"], dtype=object)
    ax = vpl.velocity(adata, kind="grid", color="cluster", show=False)
    colors = {
        c.get_label(): matplotlib.colors.to_hex(c.get_facecolor()[0])
        for c in ax.collections
        if isinstance(c, PathCollection)
    }
    assert colors["bottom"] == "#ff0000" and colors["top"] == "#0000ff"
    with pytest.raises(KeyError, match="obs columns"):
        vpl.velocity(adata, color="not_a_key", show=False)


def test_trajectories_lines_and_endpoints(adata):
    snap = snapshot(adata)
    ax = vpl.trajectories(adata, show=False, color="day")
    assert_unchanged(adata, snap)
    lcs = [c for c in ax.collections if c.get_label() == "trajectories"]
    assert len(lcs) == 1
    segs = lcs[0].get_segments()
    traj = adata.uns["vgfm_trajectories"]
    T, N, _ = traj["x"].shape
    assert len(segs) == N  # 12 particles, fewer than the default n_paths=30
    assert all(s.shape == (T, 2) for s in segs)
    emb = adata.obsm["X_umap"]
    # the plot draws the stored positions of tl.trajectory_embedding, nothing recomputed
    np.testing.assert_allclose(np.array([s[-1] for s in segs]), traj["umap"][-1], rtol=1e-6)
    np.testing.assert_allclose(np.array([s[0] for s in segs]), traj["umap"][0], rtol=1e-6)
    # starts are exact cells: the mapping returns the cell's own coordinates
    np.testing.assert_allclose(traj["umap"][0], traj["x"][0], atol=1e-5)
    # every state is inside the band of cells: nothing is flagged, nothing dashed
    assert not traj["umap_gap"].any()
    assert not [c for c in ax.collections if c.get_label() == "crosses empty space"]

    # particle 0 leaves the band (y = 5, the cells have |y| <= 1) for the last 3 times:
    # tl flags the segments touching those states and the plot draws them dashed
    traj["x"][-3:, 0, 1] = 5.0
    vtl.trajectory_embedding(adata, basis="umap", method="knn")
    traj = adata.uns["vgfm_trajectories"]
    np.testing.assert_array_equal(traj["umap_off_data"][:, 0], np.arange(T) >= T - 3)
    np.testing.assert_array_equal(traj["umap_gap"][:, 0], np.arange(T - 1) >= T - 4)
    assert not traj["umap_gap"][:, 1:].any()
    ax = vpl.trajectories(adata, show=False)
    dashed = [c for c in ax.collections if c.get_label() == "crosses empty space"]
    assert len(dashed) == 1 and len(dashed[0].get_segments()) == 3
    legend_texts = [t.get_text() for a in ax.artists for t in getattr(a, "texts", [])]
    assert "crosses empty space" in legend_texts
    _limits_contain(ax, emb)
    assert ax.get_xlabel() == "UMAP1" and ax.get_title()

    ax = vpl.trajectories(adata, n_paths=5, mass_scale="width", show=False)
    lc = [c for c in ax.collections if c.get_label() == "trajectories"][0]
    assert len(lc.get_segments()) == 5
    assert np.ptp(lc.get_linewidths()) > 0


def test_trajectories_missing(adata):
    del adata.uns["vgfm_trajectories"]["umap"]
    with pytest.raises(KeyError, match=r"vgfm\.tl\.trajectory_embedding\(adata, basis='umap'"):
        vpl.trajectories(adata, show=False)
    del adata.uns["vgfm_trajectories"]
    with pytest.raises(KeyError, match=r"vgfm\.tl\.simulate"):
        vpl.trajectories(adata, show=False)


def test_velocity_missing_embedding_names_tl_call(adata):
    del adata.obsm[velocity_embedding_key(KEY, "umap")]
    snap = snapshot(adata)
    with pytest.raises(KeyError, match=r"vgfm\.tl\.velocity_embedding\(adata, basis='umap'"):
        vpl.velocity(adata, show=False)
    assert_unchanged(adata, snap)


def test_trajectories_stale_positions_refused(adata):
    traj = adata.uns["vgfm_trajectories"]
    traj["x"] = np.concatenate([traj["x"], traj["x"]], axis=1)  # a new simulation, 2N particles
    traj["log_mass"] = np.concatenate([traj["log_mass"], traj["log_mass"]], axis=1)
    with pytest.raises(ValueError, match="older simulation"):
        vpl.trajectories(adata, show=False)


def test_pl_imports_nothing_from_tl():
    import ast
    from pathlib import Path

    import vgfm.pl

    for path in Path(vgfm.pl.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("vgfm.tl"), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("vgfm.tl") for a in node.names), path.name


def test_mass_points_and_prediction(adata):
    snap = snapshot(adata)
    ax = vpl.mass(adata, show=False)
    assert_unchanged(adata, snap)
    by_label = {c.get_label(): c for c in ax.collections}
    obs = by_label["observed"].get_offsets()
    held = by_label["observed (held out)"].get_offsets()
    pts = np.vstack([obs, held])
    pts = pts[np.argsort(pts[:, 0])]
    np.testing.assert_allclose(pts[:, 0], adata.uns[KEY]["times"])
    np.testing.assert_allclose(pts[:, 1], RELATIVE_SIZE)
    np.testing.assert_allclose(held, [[2.0, RELATIVE_SIZE[2]]])
    assert to_rgba_tuple(by_label["observed (held out)"].get_facecolor()[0]) == (1, 1, 1, 1)
    ev = by_label["predicted (evaluate)"].get_offsets()
    np.testing.assert_allclose(ev[:, 1], [1.5, 2.5, 3.0])
    line = [ln for ln in ax.get_lines() if ln.get_label() == "predicted (simulation)"][0]
    traj = adata.uns["vgfm_trajectories"]
    np.testing.assert_allclose(line.get_ydata(), np.exp(traj["log_mass"]).mean(axis=1))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["d0", "d1", "d2", "d3"]
    assert ax.get_xlabel() == "day" and ax.get_ylabel() == "relative population size"
    assert any(t.get_text() == "held out" for t in ax.texts)


def to_rgba_tuple(c):
    return tuple(float(x) for x in c)


def test_mass_without_trajectories(adata):
    del adata.uns["vgfm_trajectories"]
    del adata.uns[KEY]["evaluation"]
    ax = vpl.mass(adata, show=False)
    assert not ax.get_lines()


def _line(axes, label):
    return [ln for ln in axes.get_lines() if ln.get_label() == label][0]


def test_history_two_panels(adata):
    snap = snapshot(adata)
    ax = vpl.history(adata, show=False)
    assert_unchanged(adata, snap)
    fig = ax.figure
    twin = [a for a in fig.axes if a.get_ylabel().startswith("validation score")]
    panels = [a for a in fig.axes if a not in twin]
    assert len(panels) == 2 and len(twin) == 1
    left, right = sorted(panels, key=lambda a: a.get_position().x0)
    assert ax is right
    assert fig.get_suptitle()
    # left: stage 1 on a log axis
    hist = adata.uns[KEY]["history"]
    s1 = _line(left, "stage 1 loss")
    np.testing.assert_allclose(s1.get_xdata(), np.arange(1, hist["stage1_loss"].size + 1))
    assert left.get_yscale() == "log"
    assert left.get_xlabel() == "stage 1 step"
    assert not [ln for ln in left.get_lines() if ln.get_label() == "stage 2 loss"]
    # right: stage 2 loss per step, validation score on the twin at val_step
    s2 = _line(right, "stage 2 loss")
    np.testing.assert_allclose(s2.get_xdata(), np.arange(1, hist["stage2_loss"].size + 1))
    assert right.get_xlabel() == "stage 2 step"
    val = _line(twin[0], "validation score")
    np.testing.assert_allclose(val.get_xdata(), VAL_STEP)
    np.testing.assert_allclose(val.get_ydata(), VAL_SCORE)
    star = _line(twin[0], "selected checkpoint")
    assert star.get_marker() == "*"
    best = np.argmin(VAL_SCORE)
    assert VAL_STEP[best] == 50
    np.testing.assert_allclose(star.get_xdata(), [VAL_STEP[best]])
    np.testing.assert_allclose(star.get_ydata(), [VAL_SCORE[best]])
    legend = right.get_legend()
    assert "selected checkpoint" in [t.get_text() for t in legend.get_texts()]


def test_history_selected_checkpoint_ignores_nan(adata):
    score = VAL_SCORE.copy()
    score[[3, 5]] = [np.nan, np.inf]  # 0.3 at step 50 is now inf: best finite is 0.31
    adata.uns[KEY]["history"]["val_score"] = score
    ax = vpl.history(adata, show=False)
    twin = [a for a in ax.figure.axes if a.get_ylabel().startswith("validation score")][0]
    star = _line(twin, "selected checkpoint")
    np.testing.assert_allclose(star.get_xdata(), [VAL_STEP[8]])


def test_history_into_given_ax(adata):
    fig, given = plt.subplots()
    assert vpl.history(adata, ax=given, show=False) is given
    assert given.get_xlabel() == "stage 2 step"
    assert _line(given, "stage 2 loss") is not None
    twin = [a for a in fig.axes if a is not given]
    assert len(twin) == 1
    _line(twin[0], "selected checkpoint")
    assert given.get_title()

    # no stage 2 history: the stage-1 panel is drawn instead
    adata.uns[KEY]["history"] = {
        "stage1_loss": adata.uns[KEY]["history"]["stage1_loss"],
        "stage2_loss": np.array([]),
        "val_score": np.array([0.5]),
        "val_step": np.array([0]),
    }
    fig, given = plt.subplots()
    assert vpl.history(adata, ax=given, show=False) is given
    assert given.get_xlabel() == "stage 1 step"
    assert _line(given, "stage 1 loss") is not None
    assert fig.axes == [given]


def test_history_empty(adata):
    adata.uns[KEY]["history"] = {"stage1_loss": np.array([]), "stage2_loss": np.array([])}
    ax = vpl.history(adata, show=False)
    texts = [t.get_text() for a in ax.figure.axes for t in a.texts]
    assert sum("no stage" in t and "training history" in t for t in texts) == 2
    del adata.uns[KEY]["history"]
    with pytest.raises(KeyError, match="history"):
        vpl.history(adata, show=False)


@pytest.mark.parametrize("func", ["growth", "velocity", "trajectories", "mass", "history"])
def test_save_show_and_ax(adata, tmp_path, func):
    fn = getattr(vpl, func)
    path = tmp_path / f"{func}.png"
    ax = fn(adata, save=str(path), show=False)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ax is not None
    # extension appended when missing
    fn(adata, save=str(tmp_path / f"{func}_noext"), show=False)
    assert (tmp_path / f"{func}_noext.png").exists()
    # given ax is drawn into and returned; show=None with Agg returns the axes
    fig, given = plt.subplots()
    assert fn(adata, ax=given) is given
    assert fn(adata) is not None
    assert fn(adata, show=True) is None


def _mudata(adata: ad.AnnData) -> md.MuData:
    other = ad.AnnData(
        np.ones((adata.n_obs, 3)),
        obs=pd.DataFrame(index=adata.obs_names),
        var=pd.DataFrame(index=["p0", "p1", "p2"]),
    )
    mdata = md.MuData({"rna": adata.copy(), "atac": other})
    for k in ("X_pca", "X_umap", "vgfm_velocity", "vgfm_velocity_umap"):
        mdata.obsm[k] = adata.obsm[k]
    for k in ("day", "vgfm_growth", "cluster"):
        mdata.obs[k] = adata.obs[k].to_numpy()
    for k in ("vgfm", "vgfm_trajectories"):
        mdata.uns[k] = copy.deepcopy(adata.uns[k])
    return mdata


@pytest.mark.parametrize("mod", [None, "rna"])
def test_mudata(adata, mod):
    mdata = _mudata(adata)
    container = mdata if mod is None else mdata.mod["rna"]
    snap = snapshot(container)
    ax = vpl.growth(mdata, mod=mod, show=False)
    sc_ = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
    assert sc_.norm.vcenter == 0
    vpl.velocity(mdata, mod=mod, kind="arrows", color="cluster", show=False)
    ax = vpl.trajectories(mdata, mod=mod, show=False)
    lc = [c for c in ax.collections if c.get_label() == "trajectories"][0]
    assert len(lc.get_segments()) == adata.uns["vgfm_trajectories"]["x"].shape[1]
    ax = vpl.mass(mdata, mod=mod, show=False)
    assert "observed" in [c.get_label() for c in ax.collections]
    vpl.history(mdata, mod=mod, show=False)
    assert_unchanged(container, snap)
    with pytest.raises(KeyError, match="available modalities"):
        vpl.growth(mdata, mod="protein", show=False)


# -------------------------------------------------------------------------------- panels
def test_velocity_color_list_one_panel_each(adata, tmp_path):
    snap = snapshot(adata)
    path = tmp_path / "panels.png"
    axes = vpl.velocity(adata, color=["day", "cluster", None], save=path, show=False)
    assert_unchanged(adata, snap)
    assert isinstance(axes, list) and len(axes) == 3
    assert [a.get_title() for a in axes][:2] == ["day", "cluster"]
    assert len({id(a.figure) for a in axes}) == 1
    assert all(any(isinstance(c, LineCollection) for c in a.collections) for a in axes)
    # the categorical panel has its legend, the numeric one a colour bar
    assert axes[1].get_legend() is not None
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="ax= cannot be combined"):
        vpl.velocity(adata, color=["day"], ax=axes[0], show=False)
    assert vpl.velocity(adata, color=["day"], show=True) is None


def test_growth_color_list_shares_one_scale(adata):
    truth = 2.0 * adata.obs["vgfm_growth"].to_numpy()
    adata.obs["true_growth"] = truth
    axes = vpl.growth(adata, color=["vgfm_growth", "true_growth"], show=False)
    assert [a.get_title() for a in axes] == ["VGFM growth rate", "true_growth"]
    limits = []
    for a in axes:
        sc_ = [c for c in a.collections if isinstance(c, PathCollection)][-1]
        limits.append(sc_.get_clim())
    both = np.concatenate([adata.obs["vgfm_growth"].to_numpy(), truth])
    expected = np.percentile(np.abs(both), 99)
    assert limits[0] == pytest.approx((-expected, expected))
    assert limits[1] == pytest.approx(limits[0])
    with pytest.raises(KeyError, match="obs columns"):
        vpl.growth(adata, color=["vgfm_growth", "nope"], show=False)


def test_symmetric_limit_is_the_one_rule():
    from vgfm.pl._utils import symmetric_limit

    g = np.r_[np.linspace(-1, 1, 199), 50.0, np.nan]
    assert symmetric_limit(g) == pytest.approx(np.percentile(np.abs(g[:-1]), 99))
    assert symmetric_limit(np.r_[np.zeros(200), 0.5]) == pytest.approx(0.5)
    assert symmetric_limit([np.nan, 0.0]) == 1.0


def test_stream_covers_the_data_and_stays_on_it(adata):
    ax = vpl.velocity(adata, kind="stream", show=False)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)][0]
    pts = np.concatenate([seg for seg in lines.get_segments()])
    emb = adata.obsm["X_umap"]
    from sklearn.neighbors import NearestNeighbors

    # every streamline point lies near a cell (the grid is restricted to the data) ...
    d_line, _ = NearestNeighbors(n_neighbors=1).fit(emb).kneighbors(pts)
    assert d_line.max() < 1.0
    # ... and streamlines pass near almost every cell (dense enough to read): 99.7 % of the
    # cells of this 10 x 2 band lie within 0.1 of a streamline (84 % with the old, sparser
    # defaults: 40 grid points per axis, streamplot density 1)
    d_cell, _ = NearestNeighbors(n_neighbors=1).fit(pts).kneighbors(emb)
    assert np.mean(d_cell[:, 0] < 0.1) > 0.95


# --------------------------------------------------------------------------- growth_genes
def test_growth_genes_ranked_panels(adata):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(adata.n_obs, 5))
    X[:, 2] = adata.obs["vgfm_growth"].to_numpy() + 0.1 * rng.normal(size=adata.n_obs)
    X[:, 4] = -adata.obs["vgfm_growth"].to_numpy()
    adata.X = X
    with pytest.raises(KeyError, match=r"vgfm\.tl\.growth_genes"):
        vpl.growth_genes(adata, show=False)
    table = vtl.growth_genes(adata, n_top=3)
    snap = snapshot(adata)
    axes = vpl.growth_genes(adata, show=False)
    assert_unchanged(adata, snap)
    labels = ["overall", "d0", "d1", "d2", "d3"]
    assert len(axes) == len(labels)
    assert [a.get_title() for a in axes[1:]] == labels[1:]
    overall = axes[0]
    # genes written in the stored rank order at (rank, correlation)
    texts = [(t.get_text(), t.get_position()) for t in overall.texts]
    assert [name for name, _ in texts] == list(table.index)
    np.testing.assert_allclose([p[0] for _, p in texts], [1, 2, 3])
    np.testing.assert_allclose([p[1] for _, p in texts], table["overall"].to_numpy())
    assert texts[0][0] in ("2", "4")  # the planted genes (var names "0".."4") come first
    ax = vpl.growth_genes(adata, groups="d1", n_genes=2, show=False)
    assert ax.get_title() == "d1" and len(ax.texts) == 2
    with pytest.raises(KeyError, match="available"):
        vpl.growth_genes(adata, groups=["d9"], show=False)


# -------------------------------------------------------------------------------- history
def test_history_log_ticks_are_plain_numbers(adata):
    ax = vpl.history(adata, show=False)
    fig = ax.figure
    fig.canvas.draw()
    left = [a for a in fig.axes if a.get_xlabel() == "stage 1 step"][0]
    assert left.get_yscale() == "log"
    labels = [t.get_text() for t in left.get_yticklabels() if t.get_text()]
    assert labels, "no y tick labels"
    for text in labels:
        assert "e" not in text and "\\times" not in text and "$" not in text, text
        float(text.replace("\u2212", "-"))  # a plain number
    # one labelled tick per 1-2-5 step at most: no minor labels
    assert all(t.get_text() == "" for t in left.get_yminorticklabels())


def test_history_says_when_training_was_still_improving(adata, caplog):
    ax = vpl.history(adata, show=False)
    texts = [t.get_text() for a in ax.figure.axes for t in a.texts]
    assert not any("stage2_steps=" in t for t in texts)  # best at step 50 of 80
    score = VAL_SCORE.copy()
    score[-1] = 0.1  # the last checkpoint is the best
    adata.uns[KEY]["history"]["val_score"] = score
    with caplog.at_level("WARNING", logger="vgfm"):
        ax = vpl.history(adata, show=False)
    texts = [t.get_text() for a in ax.figure.axes for t in a.texts]
    assert any("still improving" in t and "stage2_steps=" in t for t in texts)
    assert "stage2_steps=" in caplog.text


# --------------------------------------------------------------------------------------------
# growth(uncertainty=...): cells whose growth sign the ensemble does not pin down
# --------------------------------------------------------------------------------------------
def _with_ensemble(adata, key: str = "vgfm"):
    """Ensemble fields with |mean| < 2 sd on a known set, including an exact tie (certain)."""
    n = adata.n_obs
    mean = np.linspace(-1.0, 1.0, n)
    sd = np.where(np.arange(n) % 3 == 0, 0.05, 0.3)
    sd[n // 2] = abs(mean[n // 2]) / 2.0  # |mean| == 2 sd exactly: a certain sign
    adata.obs[f"{key}_growth_mean"] = mean
    adata.obs[f"{key}_growth_sd"] = sd
    return ~(np.abs(mean) >= 2.0 * sd)


def _uncertain_collection(ax):
    found = [c for c in ax.collections if c.get_label() == "uncertain sign"]
    assert len(found) == 1
    return found[0]


def _offset_set(coll) -> set:
    return {tuple(np.round(p, 12)) for p in np.asarray(coll.get_offsets())}


def test_growth_uncertainty_hatches_exactly_the_uncertain_sign_cells(adata):
    expected = _with_ensemble(adata)
    assert 0 < expected.sum() < adata.n_obs
    snap = snapshot(adata)
    ax = vpl.growth(adata, uncertainty=True, show=False)
    assert_unchanged(adata, snap)
    coll = _uncertain_collection(ax)
    emb = adata.obsm["X_umap"]
    assert len(coll.get_offsets()) == int(expected.sum())
    assert _offset_set(coll) == {tuple(np.round(p, 12)) for p in emb[expected]}
    assert coll.get_hatch() == "////"
    assert len(coll.get_facecolors()) == 0 or np.all(coll.get_facecolors()[:, 3] == 0)
    legend = ax.get_legend().get_texts()[0].get_text()
    assert f"{int(expected.sum())}/{adata.n_obs} cells" in legend
    # the coloured cells are still all drawn underneath, with the fitted growth
    coloured = [c for c in ax.collections if c.get_array() is not None][0]
    np.testing.assert_allclose(np.sort(coloured.get_array()),
                               np.sort(adata.obs["vgfm_growth"].to_numpy()))
    # a stricter z hatches a superset, computed the same way
    ax3 = vpl.growth(adata, uncertainty="hatch", uncertainty_z=3.0, show=False)
    m3 = np.abs(adata.obs["vgfm_growth_mean"]) < 3.0 * adata.obs["vgfm_growth_sd"]
    assert len(_uncertain_collection(ax3).get_offsets()) == int(m3.sum()) > expected.sum()


def test_growth_uncertainty_same_cells_as_hatch_uncertain(adata):
    _with_ensemble(adata)
    a = _uncertain_collection(vpl.growth(adata, uncertainty=True, show=False))
    b = _uncertain_collection(vpl.hatch_uncertain(adata, show=False))
    assert _offset_set(a) == _offset_set(b)


def test_growth_uncertainty_mask_greys_out(adata):
    expected = _with_ensemble(adata)
    ax = vpl.growth(adata, uncertainty="mask", show=False)
    coll = _uncertain_collection(ax)
    assert _offset_set(coll) == {tuple(np.round(p, 12)) for p in adata.obsm["X_umap"][expected]}
    np.testing.assert_allclose(coll.get_facecolors()[0], matplotlib.colors.to_rgba("#d3d3d3"))
    # the coloured scatter holds exactly the certain cells, with their growth
    coloured = [c for c in ax.collections if c.get_array() is not None][0]
    assert _offset_set(coloured) == {tuple(np.round(p, 12))
                                     for p in adata.obsm["X_umap"][~expected]}
    np.testing.assert_allclose(np.sort(coloured.get_array()),
                               np.sort(adata.obs["vgfm_growth"].to_numpy()[~expected]))


def test_growth_uncertainty_falls_back_to_fitted_growth_and_panels(adata):
    adata.obs["vgfm_growth_sd"] = 0.2
    g = adata.obs["vgfm_growth"].to_numpy()
    axes = vpl.growth(adata, color=["vgfm_growth", "vgfm_growth"], uncertainty=True, show=False)
    for ax in axes:
        assert len(_uncertain_collection(ax).get_offsets()) == int(np.sum(np.abs(g) < 0.4))


def test_growth_uncertainty_without_ensemble_names_field_and_call(adata):
    snap = snapshot(adata)
    n_fig = len(plt.get_fignums())
    with pytest.raises(KeyError, match=r"obs\['vgfm_growth_sd'\].*vgfm\.tl\.ensemble\(adata\)"):
        vpl.growth(adata, uncertainty=True, show=False)
    assert len(plt.get_fignums()) == n_fig  # no empty figure left behind
    assert_unchanged(adata, snap)
    with pytest.raises(KeyError, match=r"obs\['other_growth_sd'\].*key_added='other'"):
        vpl.growth(adata, key="other", color="vgfm_growth", uncertainty=True, show=False)
    _with_ensemble(adata)
    with pytest.raises(ValueError, match="uncertainty must be"):
        vpl.growth(adata, uncertainty="blur", show=False)
    with pytest.raises(ValueError, match="z"):
        vpl.growth(adata, uncertainty=True, uncertainty_z=0.0, show=False)


def test_cluster_transitions_heatmap_has_no_grid_under_a_grid_style():
    a = ad.AnnData(np.zeros((2, 1)))
    table = np.array([[0.7, 0.3], [0.1, 0.9]])
    a.uns["vgfm_transitions"] = {"table": table, "source": np.array(["a", "b"]),
                                 "target": np.array(["x", "y"]), "source_time": 0.0,
                                 "target_time": 1.0, "normalize": "source"}
    with plt.rc_context({"axes.grid": True}):
        ax = vpl.cluster_transitions(a, show=False)
    np.testing.assert_allclose(ax.images[0].get_array(), table)
    assert not any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())
    assert [t.get_text() for t in ax.texts] == ["0.70", "0.30", "0.10", "0.90"]
