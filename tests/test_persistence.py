"""Saving and loading models: atomic writes, safe loading, format versions, fingerprints."""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import vgfm
from vgfm import VGFM
from vgfm._core.train import TrainConfig, train
from vgfm._model import (
    FORMAT_VERSION,
    atomic_write,
    compare_fingerprints,
    representation_fingerprint,
)

TINY = TrainConfig(stage1_steps=15, stage2_steps=2, val_every=1, hidden=8, n_layers=2)
TIMES = [0.0, 1.0, 2.0]


def pca_data(seed: int = 0) -> ad.AnnData:
    """3 time points x 40 cells, 12 genes, a 3-component PCA with its loadings in varm."""
    rng = np.random.default_rng(seed)
    n = 40
    base = rng.uniform(0.2, 1.0, size=(3, 12))
    blocks = [np.abs(rng.normal(size=(n, 3)) * 0.3 + k) @ base for k in range(3)]
    x = np.concatenate(blocks).astype(np.float32)
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame({"time": np.repeat(TIMES, n)}, index=[f"c{i}" for i in range(3 * n)]),
        var=pd.DataFrame(index=[f"g{j}" for j in range(12)]),
    )
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    pcs = vt[:3].T.astype(np.float32)
    adata.varm["PCs"] = pcs
    adata.obsm["X_pca"] = (centred @ pcs).astype(np.float32)
    return adata


def fit_on(adata: ad.AnnData, use_rep: str = "X_pca", seed: int = 0) -> VGFM:
    x = adata.obsm[use_rep] if use_rep != "X" else np.asarray(adata.X)
    t = adata.obs["time"].to_numpy()
    snaps = [x[t == v] for v in TIMES]
    return VGFM.fit(
        snaps, TIMES, config=TINY, seed=seed,
        info={"use_rep": use_rep, "time_key": "time"},
        loadings=adata.varm["PCs"] if use_rep == "X_pca" else None,
        feature_names=list(adata.var_names) if use_rep == "X" else None,
    )


@pytest.fixture(scope="module")
def fitted() -> tuple[ad.AnnData, VGFM]:
    adata = pca_data()
    return adata, fit_on(adata)


def predictions(model: VGFM, adata: ad.AnnData) -> tuple[np.ndarray, np.ndarray]:
    return model.predict(adata.obsm["X_pca"], adata.obs["time"].to_numpy())


# ------------------------------------------------------------------------------ VGFM.fit
def test_fit_matches_train_and_records_the_fit(fitted):
    adata, model = fitted
    x, t = adata.obsm["X_pca"], adata.obs["time"].to_numpy()
    res = train([x[t == v] for v in TIMES], TIMES, config=TINY, seed=0)
    for name, tensor in res.field.state_dict().items():
        torch.testing.assert_close(model.field.state_dict()[name], tensor, rtol=0, atol=0)
    assert model.info["n_cells"] == [40, 40, 40]
    assert model.info["relative_size"] == [1.0, 1.0, 1.0]
    assert model.info["times"] == TIMES and model.info["use_rep"] == "X_pca"
    assert model.info["held_out"] == [False, False, False]
    assert model.training["best_step"] == res.best_step
    fp = model.fingerprint
    np.testing.assert_allclose(fp["mean"], x.astype(np.float64).mean(0), atol=1e-12)
    np.testing.assert_allclose(fp["std"], x.astype(np.float64).std(0), atol=1e-12)
    assert fp["dim"] == 3 and fp["n_cells"] == 120 and fp["loadings_shape"] == [12, 3]


def test_fit_population_size_and_holdout():
    adata = pca_data(1)
    x, t = adata.obsm["X_pca"], adata.obs["time"].to_numpy()
    model = VGFM.fit([x[t == v] for v in TIMES], TIMES, population_size=[10, 20, 40],
                     holdout=1, config=TINY)
    assert model.info["relative_size"] == [1.0, 2.0, 4.0]
    assert model.info["held_out"] == [False, True, False]
    assert model.info["time_labels"] == ["0", "1", "2"]


# ------------------------------------------------------------------------------ save
def test_save_load_round_trip(fitted, tmp_path):
    adata, model = fitted
    path = tmp_path / "m.pt"
    model.save(path)
    back = VGFM.load(path, adata)
    for a, b in zip(predictions(model, adata), predictions(back, adata)):
        np.testing.assert_array_equal(a, b)
    assert back.fingerprint == model.fingerprint
    assert back.training == model.training
    assert back.info == model.info and back.config == model.config
    np.testing.assert_array_equal(back.history["val_step"], model.history["val_step"])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize("form", ["x", "x+t"])
def test_save_load_round_trip_growth_form(tmp_path, form):
    """A model whose growth takes only x, or x plus a shared c(t), loads as such."""
    adata = pca_data()
    cfg = TrainConfig(**{**TINY.to_dict(), "growth_form": form})
    x, t = adata.obsm["X_pca"], adata.obs["time"].to_numpy()
    model = VGFM.fit([x[t == v] for v in TIMES], TIMES, config=cfg, seed=0,
                     info={"use_rep": "X_pca", "time_key": "time"}, loadings=adata.varm["PCs"])
    path = tmp_path / "m.pt"
    model.save(path)
    back = VGFM.load(path, adata)
    assert back.field.growth_form == form and back.config.growth_form == form
    for a, b in zip(predictions(model, adata), predictions(back, adata)):
        np.testing.assert_array_equal(a, b)


def test_save_refuses_existing_file(fitted, tmp_path):
    _, model = fitted
    path = tmp_path / "m.pt"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match=r"m\.pt.*overwrite=True"):
        model.save(path)
    assert path.read_bytes() == b"precious"
    model.save(path, overwrite=True)
    assert zipfile.is_zipfile(path)
    VGFM.load(path)


def test_save_to_directory_or_under_a_file(fitted, tmp_path):
    _, model = fitted
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        model.save(tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile"):
        model.save(tmp_path / "afile" / "m.pt")
    with pytest.raises(FileNotFoundError, match="missing"):
        model.save(tmp_path / "missing" / "m.pt")


def test_interrupted_save_keeps_the_old_file(fitted, tmp_path, monkeypatch):
    _, model = fitted
    path = tmp_path / "m.pt"
    model.save(path)
    before = path.read_bytes()
    real_save = torch.save

    def dies_half_way(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half of an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        model.save(path, overwrite=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # temporary file removed
    VGFM.load(path)


def test_atomic_write_no_clobber_race(tmp_path):
    path = tmp_path / "f.bin"

    def writer(f):
        f.write(b"new")
        path.write_bytes(b"someone else")  # another process created the file meanwhile

    with pytest.raises(FileExistsError):
        atomic_write(path, writer, overwrite=False)
    assert path.read_bytes() == b"someone else"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


# ------------------------------------------------------------------------------ load
class _Payload:
    """Unpickling this creates ``marker`` (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("kind", ["torch_zip", "raw_pickle"])
def test_load_refuses_pickle_payload_without_running_it(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    payload = {"vgfm_model": "vgfm.VGFM", "format_version": FORMAT_VERSION,
               "x": _Payload(marker)}
    if kind == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match=str(path)):
        VGFM.load(path)
    assert not marker.exists()
    # the payload is live: an unsafe load runs it
    probe = tmp_path / "probe.pt"
    live = {"x": _Payload(tmp_path / "ran")}
    torch.save(live, probe)
    torch.load(probe, weights_only=False)
    assert (tmp_path / "ran").exists()


def test_load_truncated_and_foreign_files(fitted, tmp_path):
    _, model = fitted
    good = tmp_path / "m.pt"
    model.save(good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        VGFM.load(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        VGFM.load(text)
    state = tmp_path / "state_dict.pt"
    torch.save(model.field.state_dict(), state)
    with pytest.raises(ValueError, match=r"state_dict\.pt.*not a vgfm model"):
        VGFM.load(state)
    with pytest.raises(IsADirectoryError, match="directory"):
        VGFM.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        VGFM.load(tmp_path / "nope.pt")


def test_load_refuses_newer_format(fitted, tmp_path):
    _, model = fitted
    path = tmp_path / "m.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 7
    newer = tmp_path / "newer.pt"
    torch.save(payload, newer)
    with pytest.raises(ValueError, match=rf"newer\.pt.*version {FORMAT_VERSION + 7}.*"
                                         rf"1 to {FORMAT_VERSION}"):
        VGFM.load(newer)
    record = model.to_dict()
    record["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="upgrade vgfm"):
        VGFM.from_dict(record)


def test_load_refuses_incomplete_model(fitted, tmp_path):
    _, model = fitted
    path = tmp_path / "m.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    del payload["state"]["velocity_net.0.weight"]
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    with pytest.raises(ValueError, match=r"broken\.pt.*not a complete vgfm model"):
        VGFM.load(broken)


# ------------------------------------------------------------------------------ fingerprint
def test_fingerprint_statistics_and_sparse_agree():
    from scipy import sparse

    x = np.random.default_rng(0).normal(size=(50, 4)) * [1, 2, 3, 4] + [0, 1, 2, 3]
    fp = representation_fingerprint(x)
    np.testing.assert_allclose(fp["mean"], x.mean(0))
    np.testing.assert_allclose(fp["std"], x.std(0))
    assert fp["scale"] == pytest.approx(np.sqrt(x.var(0).mean()))
    fs = representation_fingerprint(sparse.csr_matrix(x))
    np.testing.assert_allclose(fs["mean"], fp["mean"])
    np.testing.assert_allclose(fs["std"], fp["std"])


def test_recomputed_pca_of_same_width_is_refused(fitted, tmp_path):
    adata, model = fitted
    path = tmp_path / "m.pt"
    model.save(path)
    other = adata.copy()
    # a PCA of standardised genes: same width, same cells, other coordinates
    z = (other.X - other.X.mean(0)) / other.X.std(0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    other.varm["PCs"] = vt[:3].T.astype(np.float32)
    other.obsm["X_pca"] = (z @ other.varm["PCs"]).astype(np.float32)
    with pytest.raises(ValueError, match=r"other content.*PCA loadings.*differ.*recomputed"):
        VGFM.load(path, other)
    with pytest.raises(ValueError, match="PCA loadings"):
        model.check_adata(other)


def test_rescaled_or_shifted_representation_warns(fitted, caplog):
    adata, model = fitted
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        model.check_adata(adata)
    assert not caplog.records  # the training data itself: no warning
    scaled = adata.copy()
    scaled.obsm["X_pca"] = scaled.obsm["X_pca"] * 10
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        model.check_adata(scaled)
    assert any("spread" in r.getMessage() and "10 times" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    shifted = adata.copy()
    shifted.obsm["X_pca"] = shifted.obsm["X_pca"] + 1e3
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        model.check_adata(shifted)
    assert any("centre" in r.getMessage() for r in caplog.records)
    caplog.clear()
    subset = adata[adata.obs["time"] == 1.0].copy()  # new cells of the same representation
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        model.check_adata(subset)
    assert not caplog.records


def test_other_genes_for_use_rep_x_are_refused():
    adata = pca_data(2)
    model = fit_on(adata, use_rep="X")
    model.check_adata(adata)
    other = adata.copy()
    other.var_names = [f"h{j}" for j in range(other.n_vars)]
    with pytest.raises(ValueError, match="gene"):
        model.check_adata(other)


def test_compare_fingerprints_without_loadings_on_one_side():
    x = np.random.default_rng(0).normal(size=(30, 2))
    fitted = representation_fingerprint(x, loadings=np.eye(5)[:, :2])
    errors, warns = compare_fingerprints(fitted, representation_fingerprint(x))
    assert errors == [] and any("missing" in w for w in warns)
    errors, warns = compare_fingerprints(
        fitted, representation_fingerprint(x, loadings=np.ones((4, 2))))
    assert errors == [] and any("genes subset" in w for w in warns)


def test_h5ad_record_carries_fingerprint(fitted, tmp_path):
    adata, model = fitted
    from vgfm._data import FitRecord

    a = adata.copy()
    record = FitRecord.from_model_info(model.info, model.config.to_dict())
    record.model = {k: v for k, v in model.to_dict().items() if k != "info"}
    a.uns["vgfm"] = record.to_uns()  # as vgfm.tl.fit stores it
    path = tmp_path / "f.h5ad"
    a.write_h5ad(path)
    back = VGFM.from_adata(ad.read_h5ad(path))
    assert back.fingerprint == model.fingerprint
    for x, y in zip(predictions(model, adata), predictions(back, adata)):
        np.testing.assert_array_equal(x, y)


def test_public_name():
    assert vgfm.VGFM.fit.__self__ is VGFM


# ------------------------------------------------------------------------------ prediction
def test_non_finite_or_unordered_times_refused(fitted):
    adata, model = fitted
    x = adata.obsm["X_pca"][:5]
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.predict(x, np.nan)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.predict(x, np.array([0.0, 1.0, np.inf, 1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        model.simulate(x, [0.0, np.inf])
    with pytest.raises(ValueError, match="increasing"):
        model.simulate(x, [1.0, 0.5])
    xs, lms = model.simulate(x, [0.0, 2.0])
    assert xs.shape == (2, 5, 3) and np.isfinite(xs).all() and np.isfinite(lms).all()


def test_states_far_outside_the_training_data_warn(caplog):
    """Issue 12 item 12: prediction far outside the training data is announced."""
    import logging

    import numpy as np

    from vgfm import VGFM
    from vgfm._core.train import TrainConfig

    rng = np.random.default_rng(0)
    snaps = [rng.normal(size=(40, 2)), rng.normal(size=(50, 2)) + 1.0]
    model = VGFM.fit(snaps, [0.0, 1.0], config=TrainConfig(stage1_steps=3, stage2_steps=0,
                                                           hidden=8))
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        model.predict(snaps[0], 0.0)
    assert "extrapolates" not in caplog.text
    far = snaps[0].copy()
    far[:5] += 1e4
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        model.predict(far, 0.0)
    assert "5 of 40 states lie more than 10 data scales" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        model.simulate(far[:3], [0.0, 1.0])
    assert "3 of 3 start states" in caplog.text


@pytest.mark.parametrize("option, default, before", [
    ("net_of_motion", True, False),  # growth targets net of motion
    ("coupling_momentum", 1.0, 0.0),  # pairing with where cells go next
    ("stiffened_targets", "shrunk", "plan"),  # targets of stiffened intervals
    ("chord_gap", 1.5, None),  # routes only where the chord leaves the cells
])
def test_records_written_before_an_option_load_with_the_earlier_behaviour(option, default,
                                                                         before):
    import json

    rng = np.random.default_rng(4)
    snaps = [rng.normal(size=(40, 2)), rng.normal(size=(50, 2)) + 1.0]
    model = VGFM.fit(snaps, [0.0, 1.0], config=TrainConfig(stage1_steps=2, stage2_steps=0))
    assert getattr(model.config, option) == default
    record = model.to_dict()
    stored = json.loads(record["config"])
    del stored[option]
    record["config"] = json.dumps(stored)
    assert getattr(VGFM.from_dict(record).config, option) == before
