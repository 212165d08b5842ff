"""Readers for the snapshot CSV layout used by the published trajectory-inference benchmarks.

One row per cell; a time column (``samples``: the time-point index 0, 1, 2, …) and coordinate
columns ``x1 … xD``. An unnamed leading index column, as written by ``DataFrame.to_csv``, is
ignored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

__all__ = ["BENCHMARKS", "DATA_DIR_ENV", "load_benchmark", "read_snapshot_csv"]

logger = logging.getLogger("vgfm")

#: Environment variable naming a folder that holds the benchmark CSV files.
DATA_DIR_ENV = "VGFM_DATA_DIR"

#: Benchmark names accepted by :func:`load_benchmark` (file ``{name}.csv``).
BENCHMARKS: tuple[str, ...] = (
    "simulation_gene_2d",
    "dyngen_5d",
    "gaussian_10d",
    "gaussian_20d",
    "gaussian_50d",
    "gaussian_100d",
    "gaussian_1000d_regen",
    "mouse_hematopoiesis_2d",
    "ipsc_bifurcation_4d",
)

_DATA_HINT = (
    "Benchmark data usually lives in `../shared/data` next to the repository checkout "
    f"(or in the folder named by the {DATA_DIR_ENV} environment variable)."
)


def _default_data_dir() -> Path:
    """``<repository>/../shared/data`` for a source checkout (``src/vgfm/datasets/_csv.py``)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _map_times(
    samples: np.ndarray, time_values: Sequence[float] | Mapping[float, float] | None
) -> np.ndarray:
    """Map raw time-column values to real times (identity when ``time_values`` is ``None``)."""
    levels = np.unique(samples)
    if time_values is None:
        return samples.astype(np.float64)
    if isinstance(time_values, Mapping):
        mapping = {float(k): float(v) for k, v in time_values.items()}
        missing = [float(v) for v in levels if float(v) not in mapping]
        if missing:
            raise ValueError(
                f"time_values has no entry for time-column value(s) {missing}; "
                f"give one real time for each of {levels.tolist()}."
            )
        values = np.array([mapping[float(v)] for v in levels], dtype=np.float64)
    else:
        values = np.asarray(time_values, dtype=np.float64).ravel()
        if values.shape[0] != levels.shape[0]:
            raise ValueError(
                f"time_values has {values.shape[0]} entries but the time column has "
                f"{levels.shape[0]} distinct values {levels.tolist()}; give one real time per "
                "time point, in increasing order of the time column."
            )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"time_values must be finite numbers, got {values.tolist()}.")
    if np.any(np.diff(values) <= 0):
        raise ValueError(
            f"time_values must increase with the time column ({levels.tolist()}), got "
            f"{values.tolist()}."
        )
    return values[np.searchsorted(levels, samples)]


def read_snapshot_csv(
    path: str | os.PathLike[str],
    *,
    time_column: str = "samples",
    time_values: Sequence[float] | Mapping[float, float] | None = None,
) -> AnnData:
    """Read a snapshot CSV file (one row per cell, a time column and coordinates) into AnnData.

    Parameters
    ----------
    path
        CSV file with a header. Column ``time_column`` holds each cell's time point; every other
        column is a coordinate (``x1 … xD``). A leading unnamed index column is ignored.
    time_column
        Name of the time column.
    time_values
        Real times of the time points. A sequence gives one time per distinct value of the time
        column, in increasing order of that column (e.g. ``[2, 4, 6]`` for days 2, 4 and 6
        stored as indices 0, 1, 2); a mapping maps each time-column value to its real time.
        ``None`` keeps the time-column values.

    Returns
    -------
    AnnData
        ``X``
            ``float32`` coordinates, ``var_names`` the coordinate column names.
        ``obs["time"]``
            ``float`` time of each cell (the mapped real time when ``time_values`` is given).
        ``obs["time_index"]``
            ``int`` rank of the cell's time point (0, 1, …).
        ``uns["dataset"]``
            ``{"path": str, "name": file stem}``.

        ``obs_names`` are ``"cell_0"``, ``"cell_1"``, … in file order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the time column is missing, no coordinate column is left, a coordinate or the time
        column is not numeric or contains missing values, or ``time_values`` does not match
        the time points.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> import vgfm
    >>> path = os.path.join(tempfile.mkdtemp(), "snap.csv")
    >>> frame = pd.DataFrame({"samples": [0, 0, 1], "x1": [0.0, 0.1, 1.0], "x2": [1.0, 0.9, 0.0]})
    >>> frame.to_csv(path, index=False)
    >>> adata = vgfm.datasets.read_snapshot_csv(path, time_values=[0.0, 2.5])
    >>> adata.obs["time"].tolist()
    [0.0, 0.0, 2.5]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No snapshot CSV file at '{path}'. {_DATA_HINT}")
    frame = pd.read_csv(path)
    frame = frame.loc[:, [not str(c).startswith("Unnamed:") for c in frame.columns]]
    if time_column not in frame.columns:
        raise ValueError(
            f"'{path.name}' has no time column {time_column!r}; its columns are "
            f"{list(map(str, frame.columns))}. Pass time_column= with the name of the column "
            "holding each cell's time point."
        )
    coord_columns = [c for c in frame.columns if c != time_column]
    if not coord_columns:
        raise ValueError(
            f"'{path.name}' has only the time column {time_column!r}; expected coordinate "
            "columns x1 … xD as well."
        )
    bad = [str(c) for c in coord_columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValueError(
            f"Coordinate column(s) {bad} of '{path.name}' are not numeric (found e.g. "
            f"{frame[bad[0]].iloc[0]!r}); every column other than {time_column!r} must hold "
            "numbers. Drop or convert the non-numeric columns first."
        )
    samples = pd.to_numeric(frame[time_column], errors="coerce").to_numpy(dtype=np.float64)
    if np.any(~np.isfinite(samples)):
        raise ValueError(
            f"Time column {time_column!r} of '{path.name}' must hold finite numbers; found "
            f"{int((~np.isfinite(samples)).sum())} missing or non-numeric entries."
        )
    X = frame[coord_columns].to_numpy(dtype=np.float32)
    if not np.all(np.isfinite(X)):
        cols = [str(c) for c in coord_columns if not np.all(np.isfinite(frame[c].to_numpy()))]
        raise ValueError(
            f"Coordinate column(s) {cols} of '{path.name}' contain missing or infinite values."
        )
    times = _map_times(samples, time_values)
    levels = np.unique(samples)
    obs = pd.DataFrame(
        {
            "time": times,
            "time_index": np.searchsorted(levels, samples).astype(np.int64),
        },
        index=pd.Index([f"cell_{i}" for i in range(X.shape[0])]),
    )
    var = pd.DataFrame(index=pd.Index([str(c) for c in coord_columns]))
    adata = AnnData(X=X, obs=obs, var=var)
    adata.uns["dataset"] = {"path": str(path), "name": path.stem}
    logger.info(
        "read %d cells x %d coordinates at %d time points from '%s'",
        adata.n_obs,
        adata.n_vars,
        levels.shape[0],
        path,
    )
    return adata


def _candidate_dirs(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir)]
    dirs: list[Path] = []
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        dirs.append(Path(env))
    dirs.append(_default_data_dir())
    return dirs


def load_benchmark(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    time_values: Sequence[float] | Mapping[float, float] | None = None,
) -> AnnData:
    """Load one of the benchmark snapshot datasets from a local folder.

    Parameters
    ----------
    name
        One of ``"simulation_gene_2d"``, ``"dyngen_5d"``, ``"gaussian_10d"``,
        ``"gaussian_20d"``, ``"gaussian_50d"``, ``"gaussian_100d"``,
        ``"gaussian_1000d_regen"``, ``"mouse_hematopoiesis_2d"``, ``"ipsc_bifurcation_4d"``
        (file ``{name}.csv``).
    data_dir
        Folder holding the CSV files. When ``None``, the folder named by the environment
        variable ``VGFM_DATA_DIR`` is searched first, then ``../shared/data`` next to the
        repository checkout this package was installed from.
    time_values
        Real times of the time points, passed to :func:`read_snapshot_csv`. The files store
        time-point indices; e.g. ``mouse_hematopoiesis_2d`` was sampled on days 2, 4 and 6
        (``time_values=[2, 4, 6]``). The published benchmarks use the indices.

    Returns
    -------
    AnnData
        As :func:`read_snapshot_csv`, with ``uns["dataset"]["name"] = name``.

    Raises
    ------
    ValueError
        If ``name`` is not a known benchmark.
    FileNotFoundError
        If the file is in none of the searched folders (all of them are listed).

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.load_benchmark("simulation_gene_2d")  # doctest: +SKIP
    >>> adata.obs["time"].value_counts().sort_index().tolist()  # doctest: +SKIP
    [400, 442, 530, 690, 969]
    """
    if name not in BENCHMARKS:
        raise ValueError(f"Unknown benchmark {name!r}; expected one of {list(BENCHMARKS)}.")
    searched = _candidate_dirs(data_dir)
    for folder in searched:
        path = folder / f"{name}.csv"
        if path.is_file():
            adata = read_snapshot_csv(path, time_values=time_values)
            adata.uns["dataset"]["name"] = name
            return adata
    places = ", ".join(f"'{d / (name + '.csv')}'" for d in searched)
    raise FileNotFoundError(
        f"Benchmark file '{name}.csv' not found; searched {places}. Pass data_dir= or set the "
        f"{DATA_DIR_ENV} environment variable to the folder holding the benchmark CSV files. "
        f"{_DATA_HINT}"
    )
