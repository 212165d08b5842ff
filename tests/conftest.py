"""Shared test helpers.

``adata_fingerprint`` / ``assert_same_adata`` (available as fixtures of the same names) check
that a function left an AnnData object exactly as it was, e.g. after raising an error::

    def test_error_leaves_adata(adata, adata_fingerprint, assert_same_adata):
        before = adata_fingerprint(adata)
        with pytest.raises(ValueError):
            vgfm.pp.numeric_time(adata, "bad")
        assert_same_adata(before, adata_fingerprint(adata))

Tests that need the benchmark CSV files carry ``@pytest.mark.benchmark_data("file.csv", ...)``
and receive the folder through the ``benchmark_data_dir`` fixture: the folder named by
``VGFM_DATA_DIR`` when it holds the files, else ``../shared/data`` beside the repository;
without either the test is skipped with the reason :data:`NO_DATA_REASON`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

#: Reason of every skip for missing benchmark data.
NO_DATA_REASON = "benchmark data not found; set VGFM_DATA_DIR"
#: The benchmark data folder of a source checkout: ``../shared/data`` beside the repository.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def find_benchmark_data(*names: str) -> Path | None:
    """First of ``$VGFM_DATA_DIR`` and ``../shared/data`` holding every file of ``names``."""
    candidates = [Path(os.environ["VGFM_DATA_DIR"])] if os.environ.get("VGFM_DATA_DIR") else []
    for folder in [*candidates, SHARED_DATA]:
        if folder.is_dir() and all((folder / n).is_file() for n in names):
            return folder
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "benchmark_data(*files): needs these benchmark CSV files (in VGFM_DATA_DIR or "
        "../shared/data); skipped otherwise",
    )


# --------------------------------------------------------------------------------------------
# tutorial notebooks: executed in the background while the rest of the suite runs
# --------------------------------------------------------------------------------------------
#: Test function that executes one tutorial (``tests/test_docs_tutorials.py``).
TUTORIAL_TEST = "test_tutorial_executes"
#: Notebooks executed at once.  Their model fits run on one thread each, as do most tests,
#: so on a 2-core machine two kernels beside the test process keep both cores busy.
TUTORIAL_WORKERS = 2
#: Per-cell time limit of a notebook (seconds).
TUTORIAL_CELL_TIMEOUT_S = 900

_RUN_NOTEBOOK = """
import sys
import nbformat
from nbclient import NotebookClient
path, cwd, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=timeout, kernel_name="python3",
               resources={"metadata": {"path": cwd}}).execute()
code = [c for c in nb.cells if c.cell_type == "code"]
missing = [i for i, c in enumerate(code) if not c.get("execution_count")]
if missing:
    sys.exit(f"code cells {missing} did not run")
"""


class TutorialRuns:
    """Executes tutorial notebooks in subprocesses, ``TUTORIAL_WORKERS`` at a time, and hands
    each test its notebook's outcome (``wait``).  Started when collection ends, so the
    notebooks run while the other tests do; their tests are moved to the end of the run."""

    def __init__(self, paths: list[Path], data_dir: Path, workdir: Path) -> None:
        import queue
        import threading

        self._results: dict[str, tuple[int, str]] = {}
        self._done = {p.stem: threading.Event() for p in paths}
        self._procs: list[Any] = []
        self._stop = False
        self._queue: Any = queue.Queue()
        for p in paths:
            self._queue.put(p)
        self._env = {**os.environ, "VGFM_DATA_DIR": str(data_dir),
                     "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
        self._env.setdefault("OMP_NUM_THREADS", "1")  # no OpenMP pools fighting for the cores
        self._workdir = workdir
        self._threads = [threading.Thread(target=self._work, daemon=True)
                         for _ in range(min(TUTORIAL_WORKERS, len(paths)))]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        import queue
        import subprocess
        import sys

        while not self._stop:
            try:
                path = self._queue.get_nowait()
            except queue.Empty:
                return
            cwd = self._workdir / path.stem
            cwd.mkdir(parents=True, exist_ok=True)
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-c", _RUN_NOTEBOOK, str(path), str(cwd),
                     str(TUTORIAL_CELL_TIMEOUT_S)],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self._env)
                self._procs.append(proc)
                out, _ = proc.communicate()
                self._results[path.stem] = (proc.returncode, out)
            except Exception as exc:  # reported by the notebook's test
                self._results[path.stem] = (-1, f"could not run {path.name}: {exc!r}")
            self._done[path.stem].set()

    def wait(self, name: str) -> tuple[int, str]:
        """``(exit status, output)`` of the notebook ``name`` once it has run."""
        self._done[name].wait()
        return self._results[name]

    def stop(self) -> None:
        self._stop = True
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()


_TUTORIAL_RUNS: dict[str, TutorialRuns] = {}


def _tutorial_path(item: pytest.Item) -> Path | None:
    if getattr(item, "originalname", None) != TUTORIAL_TEST:
        return None
    return item.callspec.params.get("path") if hasattr(item, "callspec") else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the tutorial executions last: they wait for notebooks started in the background
    items.sort(key=lambda it: _tutorial_path(it) is not None)  # stable: order kept otherwise


def pytest_collection_finish(session: pytest.Session) -> None:
    import importlib.util
    import tempfile

    paths = [p for p in map(_tutorial_path, session.items) if p is not None]
    data = find_benchmark_data()
    if (not paths or data is None or session.config.option.collectonly
            or any(importlib.util.find_spec(m) is None
                   for m in ("nbformat", "nbclient", "ipykernel"))):
        return  # the tests themselves skip, with their reasons
    workdir = Path(tempfile.mkdtemp(prefix="vgfm-tutorials-"))
    # longest first (the multimodal one compiles muon's numba kernels)
    paths.sort(key=lambda p: (not p.stem.startswith(("04", "02")), p.stem))
    _TUTORIAL_RUNS["runs"] = TutorialRuns(paths, data, workdir)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    runs = _TUTORIAL_RUNS.pop("runs", None)
    if runs is not None:
        runs.stop()


@pytest.fixture
def tutorial_runs() -> TutorialRuns | None:
    """The background notebook executions of this session (``None`` when none started)."""
    return _TUTORIAL_RUNS.get("runs")


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("benchmark_data")
    if marker is not None and find_benchmark_data(*marker.args) is None:
        pytest.skip(NO_DATA_REASON)


@pytest.fixture
def benchmark_data_dir(request: pytest.FixtureRequest) -> Path:
    """Folder holding the files named by the test's ``benchmark_data`` marker."""
    marker = request.node.get_closest_marker("benchmark_data")
    folder = find_benchmark_data(*(marker.args if marker else ()))
    if folder is None:
        pytest.skip(NO_DATA_REASON)
    return folder


def _copy_array(a: Any) -> Any:
    if a is None:
        return None
    if sparse.issparse(a):
        return a.copy()
    if isinstance(a, pd.DataFrame):
        return a.copy(deep=True)
    return np.array(a, copy=True)


def _fingerprint(adata: Any) -> dict[str, Any]:
    """Deep, comparable summary of every field of an AnnData object."""
    backed = bool(getattr(adata, "isbacked", False))
    fp: dict[str, Any] = {
        "shape": tuple(adata.shape),
        "isbacked": backed,
        "obs": adata.obs.copy(deep=True),
        "var": adata.var.copy(deep=True),
        "obs_names": list(adata.obs_names),
        "var_names": list(adata.var_names),
        # backed X lives on disk; reading it would not detect in-memory changes anyway
        "X": None if backed else _copy_array(adata.X),
        "uns": copy.deepcopy(dict(adata.uns)),
    }
    for attr in ("obsm", "varm", "layers", "obsp", "varp"):
        mapping = getattr(adata, attr)
        fp[attr] = {k: _copy_array(mapping[k]) for k in mapping.keys()}
    return fp


def _assert_equal(a: Any, b: Any, where: str) -> None:
    if sparse.issparse(a) or sparse.issparse(b):
        assert sparse.issparse(a) and sparse.issparse(b), f"{where}: sparse vs dense"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.format == b.format, f"{where}: format {a.format} != {b.format}"
        np.testing.assert_array_equal(a.toarray(), b.toarray(), err_msg=where)
    elif isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, pd.Series) or isinstance(b, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, Mapping) or isinstance(b, Mapping):
        assert isinstance(a, Mapping) and isinstance(b, Mapping), f"{where}: type changed"
        assert set(a.keys()) == set(b.keys()), (
            f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        )
        for k in a:
            _assert_equal(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), f"{where}: type changed"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert type(a) is type(b), f"{where}: type {type(a)} != {type(b)}"
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        pass
    else:
        assert type(a) is type(b), f"{where}: type {type(a)} != {type(b)}"
        assert a == b, f"{where}: {a!r} != {b!r}"


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Assert two :func:`adata_fingerprint` results are identical, field by field."""
    assert set(before) == set(after)
    for name in before:
        _assert_equal(before[name], after[name], f"adata.{name}")


@pytest.fixture
def adata_fingerprint():
    """``adata_fingerprint(adata) -> dict``: deep copy of every field, for later comparison."""
    return _fingerprint


@pytest.fixture
def assert_same_adata():
    """``assert_same_adata(before, after)``: fail unless two fingerprints are identical."""
    return _assert_same


@pytest.fixture(autouse=True, scope="session")
def _torch_single_thread():
    """Run torch with one intra-op thread during the tests.

    The test problems are tiny; on a loaded 2-core machine several OpenMP threads per process
    oversubscribe the CPU and make small matrix products 10-100x slower. Results do not
    depend on the thread count in a way any test relies on.
    """
    import torch

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)
