"""Remote dataset loaders: cache hits without network, hash checks, parsing of both layouts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vgfm
import vgfm.datasets._remote as remote
from vgfm.datasets._remote import REMOTE_FILES, RemoteFile

BAD_URL = "https://nonexistent.invalid/vgfm-test/{}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Recorder:
    """Downloader that records calls and fails like an unreachable host."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, url: str, output_file, pooch, check_only: bool = False) -> None:
        self.calls.append(url)
        raise ConnectionError(f"network disabled in tests (tried {url})")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, _Recorder]:
    """A cache folder in ``VGFM_DATA_DIR``, unreachable URLs and a recording downloader."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("VGFM_DATA_DIR", str(cache))
    recorder = _Recorder()
    monkeypatch.setattr(remote, "_DOWNLOADER", recorder)
    return cache, recorder


def _register(monkeypatch: pytest.MonkeyPatch, name: str, path: Path, **extra) -> None:
    entry = RemoteFile(url=BAD_URL.format(name), sha256=_sha256(path), source="test", **extra)
    monkeypatch.setitem(REMOTE_FILES, name, entry)


def _write_snapshot(path: Path, times: list[float], seed: int = 0, dim: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"samples": times})
    for d in range(dim):
        frame[f"x{d + 1}"] = rng.normal(size=len(times))
    frame.to_csv(path, index=False)
    return frame


# --------------------------------------------------------------------------------------------
# cache location
# --------------------------------------------------------------------------------------------
def test_cache_dir_env_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pooch

    monkeypatch.delenv("VGFM_DATA_DIR", raising=False)
    assert vgfm.datasets.cache_dir() == Path(pooch.os_cache("vgfm"))
    monkeypatch.setenv("VGFM_DATA_DIR", str(tmp_path))
    assert vgfm.datasets.cache_dir() == tmp_path
    assert vgfm.datasets.cache_dir(tmp_path / "x") == tmp_path / "x"


# --------------------------------------------------------------------------------------------
# cache hits: no download
# --------------------------------------------------------------------------------------------
def test_cached_file_is_used_without_download(offline, monkeypatch) -> None:
    cache, recorder = offline
    times = [0.0, 0.0, 1.0, 1.0, 1.0, 2.0]
    frame = _write_snapshot(cache / "simulation_gene_2d.csv", times)
    _register(monkeypatch, "simulation_gene_2d.csv", cache / "simulation_gene_2d.csv")

    adata = vgfm.datasets.simulation_gene()

    assert recorder.calls == []
    assert adata.shape == (6, 2)
    np.testing.assert_array_equal(adata.obs["time"].to_numpy(), times)
    np.testing.assert_allclose(adata.X, frame[["x1", "x2"]].to_numpy(), rtol=1e-6)
    assert adata.uns["dataset"]["urls"] == [BAD_URL.format("simulation_gene_2d.csv")]


def test_dyngen_5d_cached(offline, monkeypatch) -> None:
    cache, recorder = offline
    _write_snapshot(cache / "dyngen_5d.csv", [0.0, 1.0, 2.0, 3.0], dim=5)
    _register(monkeypatch, "dyngen_5d.csv", cache / "dyngen_5d.csv")
    adata = vgfm.datasets.dyngen()
    assert recorder.calls == []
    assert adata.shape == (4, 5)
    np.testing.assert_array_equal(adata.obsm["X_phate"], adata.X)


def test_mouse_hematopoiesis_days(offline, monkeypatch) -> None:
    cache, recorder = offline
    samples = [0.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    _write_snapshot(cache / "mouse_hematopoiesis_2d.csv", samples)
    _register(monkeypatch, "mouse_hematopoiesis_2d.csv", cache / "mouse_hematopoiesis_2d.csv")

    adata = vgfm.datasets.mouse_hematopoiesis()

    assert recorder.calls == []
    np.testing.assert_array_equal(adata.obs["time"].to_numpy(), [2.0, 4.0, 4.0, 6.0, 6.0, 6.0])
    assert adata.obs["day"].cat.ordered
    assert list(adata.obs["day"].cat.categories) == ["day 2", "day 4", "day 6"]
    assert adata.obs["day"].astype(str).tolist() == [
        "day 2", "day 4", "day 4", "day 6", "day 6", "day 6"
    ]
    np.testing.assert_array_equal(adata.obsm["X_embedding"], adata.X)


# --------------------------------------------------------------------------------------------
# dyngen expression: both cell-table layouts and the binning
# --------------------------------------------------------------------------------------------
SIM_TIMES = [0.0, 50.0, 200.0, 200.5, 399.0, 400.0, 650.0, 1000.0, 120.0, 830.0]


def _write_dyngen(cache: Path, *, upstream_layout: bool) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = len(SIM_TIMES)
    genes = ["A1_TF1", "Target1", "HK1"]
    expr = pd.DataFrame(rng.uniform(0, 5, size=(n, 3)).round(6), columns=genes)
    # upstream: quoted header, CRLF line ends (as in MIOFlow's file)
    expr.to_csv(cache / "dyngen_bifurcation_expression.csv", index=False, lineterminator="\r\n")
    ids = [f"cell{i + 1}" for i in range(n)]
    path = cache / "dyngen_bifurcation_cell_info.csv"
    if upstream_layout:  # two empty columns, a footer row, CRLF
        lines = ["cell_id,step_ix,simulation_i,sim_time,,"]
        lines += [f"{c},{10 * i},{i % 3 + 1},{t:g},," for i, (c, t) in enumerate(zip(ids, SIM_TIMES))]
        lines.append(",,,,,a")
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    else:
        pd.DataFrame(
            {"cell_id": ids, "step_ix": np.arange(n) * 10,
             "simulation_i": np.arange(n) % 3 + 1, "sim_time": SIM_TIMES}
        ).to_csv(path, index=False)
    return expr


@pytest.mark.parametrize("upstream_layout", [True, False])
def test_dyngen_expression_layouts_and_width_bins(offline, monkeypatch, upstream_layout) -> None:
    cache, recorder = offline
    expr = _write_dyngen(cache, upstream_layout=upstream_layout)
    _register(monkeypatch, "dyngen_bifurcation_expression.csv",
              cache / "dyngen_bifurcation_expression.csv")
    info = cache / "dyngen_bifurcation_cell_info.csv"
    if upstream_layout:
        _register(monkeypatch, "dyngen_bifurcation_cell_info.csv", info)
    else:  # the cleaned copy is accepted through the alternative hash
        entry = RemoteFile(url=BAD_URL.format("info"), sha256="0" * 64,
                           alt_sha256=(_sha256(info),), source="test")
        monkeypatch.setitem(REMOTE_FILES, "dyngen_bifurcation_cell_info.csv", entry)

    adata = vgfm.datasets.dyngen_expression()

    assert recorder.calls == []
    assert adata.shape == (10, 3)
    assert list(adata.var_names) == ["A1_TF1", "Target1", "HK1"]
    assert list(adata.obs_names) == [f"cell{i + 1}" for i in range(10)]
    np.testing.assert_allclose(adata.X, expr.to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(adata.obs["sim_time"].to_numpy(), SIM_TIMES)
    assert adata.obs["step_ix"].dtype == np.int64
    # equal-width bins of [0, 1000]: edges 0, 200, 400, 600, 800, 1000, right-closed
    expected = [0, 0, 0, 1, 1, 1, 3, 4, 0, 4]
    np.testing.assert_array_equal(adata.obs["time"].to_numpy(), expected)
    np.testing.assert_allclose(adata.uns["time_bins"]["edges"], [0, 200, 400, 600, 800, 1000])
    # the same as pandas' right-closed cut
    cut = pd.cut(np.array(SIM_TIMES), np.linspace(0, 1000, 6), include_lowest=True, labels=False)
    np.testing.assert_array_equal(adata.obs["time"].to_numpy(), cut)


def test_dyngen_expression_count_bins(offline, monkeypatch) -> None:
    cache, _ = offline
    _write_dyngen(cache, upstream_layout=False)
    for name in ("dyngen_bifurcation_expression.csv", "dyngen_bifurcation_cell_info.csv"):
        _register(monkeypatch, name, cache / name)
    adata = vgfm.datasets.dyngen_expression(n_bins=2, binning="count")
    # median split of the 10 sim times: 5 cells per bin
    assert adata.obs["time"].value_counts().sort_index().tolist() == [5, 5]
    median = np.median(SIM_TIMES)
    np.testing.assert_array_equal(adata.obs["time"].to_numpy(), np.array(SIM_TIMES) > median)
    with pytest.raises(ValueError, match="binning"):
        vgfm.datasets.dyngen_expression(binning="quantile")
    with pytest.raises(ValueError, match="n_bins"):
        vgfm.datasets.dyngen_expression(n_bins=1)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
def test_wrong_hash_raises_clear_error(offline, monkeypatch) -> None:
    cache, recorder = offline
    path = cache / "simulation_gene_2d.csv"
    _write_snapshot(path, [0.0, 1.0])
    expected = "f" * 64
    monkeypatch.setitem(
        REMOTE_FILES, "simulation_gene_2d.csv",
        RemoteFile(url=BAD_URL.format("sim"), sha256=expected, source="test"),
    )
    found = _sha256(path)
    before = path.read_bytes()

    with pytest.raises(ValueError) as info:
        vgfm.datasets.simulation_gene()

    msg = str(info.value)
    assert "simulation_gene_2d.csv" in msg
    assert expected in msg and found in msg
    assert "Delete" in msg and "VGFM_DATA_DIR" in msg
    assert recorder.calls == [BAD_URL.format("sim")]  # pooch tried to replace it, and failed
    assert path.read_bytes() == before  # the cached file is left as it was


def test_missing_file_without_network(offline, monkeypatch) -> None:
    cache, recorder = offline
    monkeypatch.setitem(
        REMOTE_FILES, "dyngen_5d.csv",
        RemoteFile(url=BAD_URL.format("dyn"), sha256="a" * 64, source="test"),
    )
    with pytest.raises(OSError, match="could not be downloaded") as info:
        vgfm.datasets.dyngen()
    assert str(cache / "dyngen_5d.csv") in str(info.value)
    assert recorder.calls == [BAD_URL.format("dyn")]
    assert not (cache / "dyngen_5d.csv").exists()


def test_download_with_wrong_hash(offline, monkeypatch) -> None:
    """A download whose bytes differ from the pinned hash is rejected (pooch's check)."""
    cache, _ = offline

    def fake_download(url, output_file, pooch, check_only=False):
        Path(output_file).write_text("samples,x1\n0,1.0\n1,2.0\n")

    monkeypatch.setattr(remote, "_DOWNLOADER", fake_download)
    monkeypatch.setitem(
        REMOTE_FILES, "dyngen_5d.csv",
        RemoteFile(url=BAD_URL.format("dyn"), sha256="b" * 64, source="test"),
    )
    with pytest.raises(ValueError, match="does not have the expected sha256"):
        vgfm.datasets.dyngen()
    assert not (cache / "dyngen_5d.csv").exists()


def test_verified_download_is_cached(offline, monkeypatch) -> None:
    cache, _ = offline
    content = b"samples,x1,x2,x3,x4,x5\n0,1,2,3,4,5\n1,2,3,4,5,6\n"
    calls: list[str] = []

    def fake_download(url, output_file, pooch, check_only=False):
        calls.append(url)
        Path(output_file).write_bytes(content)

    monkeypatch.setattr(remote, "_DOWNLOADER", fake_download)
    monkeypatch.setitem(
        REMOTE_FILES, "dyngen_5d.csv",
        RemoteFile(url=BAD_URL.format("dyn"), sha256=hashlib.sha256(content).hexdigest()),
    )
    first = vgfm.datasets.dyngen()
    second = vgfm.datasets.dyngen()
    assert calls == [BAD_URL.format("dyn")]  # downloaded once, then read from the cache
    assert (cache / "dyngen_5d.csv").read_bytes() == content
    np.testing.assert_array_equal(first.X, second.X)


def test_unknown_name() -> None:
    with pytest.raises(KeyError, match="registered files"):
        vgfm.datasets.fetch_file("nope.csv")


# --------------------------------------------------------------------------------------------
# the pinned hashes against the shared data folder (when present)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.benchmark_data(n)) for n in sorted(REMOTE_FILES)]
)
def test_registry_hashes_match_shared_copies(name: str, benchmark_data_dir: Path) -> None:
    path = benchmark_data_dir / name
    assert _sha256(path) in REMOTE_FILES[name].accepted


@pytest.mark.benchmark_data("dyngen_bifurcation_expression.csv",
                            "dyngen_bifurcation_cell_info.csv", "mouse_hematopoiesis_2d.csv")
def test_shared_folder_loads_offline(monkeypatch, benchmark_data_dir: Path) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(remote, "_DOWNLOADER", recorder)
    monkeypatch.setenv("VGFM_DATA_DIR", str(benchmark_data_dir))
    adata = vgfm.datasets.dyngen_expression()
    assert adata.shape == (1000, 135)
    assert adata.obs["time"].value_counts().sort_index().tolist() == [367, 208, 180, 131, 114]
    mouse = vgfm.datasets.mouse_hematopoiesis()
    assert mouse.obs["day"].value_counts().sort_index().tolist() == [1429, 3781, 5788]
    assert recorder.calls == []
