"""Loaders for public single-cell time courses, downloaded once from their original location.

Every file is fetched with :mod:`pooch` from the repository that first published it, checked
against a pinned SHA-256 hash and kept in a cache folder: the folder named by the environment
variable ``VGFM_DATA_DIR`` when it is set, else ``pooch.os_cache("vgfm")`` (e.g.
``~/.cache/vgfm`` on Linux). A file that is already in the cache with a known hash is used
as is: nothing is downloaded. The cached file names are those of the project's shared data
folder, so ``VGFM_DATA_DIR=/path/to/shared/data`` works offline.

Provenance of the pinned hashes
-------------------------------
All files except ``dyngen_bifurcation_cell_info.csv`` are byte-identical to their upstream
versions; their hashes were computed from those files. The upstream
``data/cell_info.csv`` of MIOFlow (commit ``c3633f7``) has two empty trailing columns, a
footer row ``,,,,,a`` and Windows line endings; the shared copy is the same table with these
dropped (and integers written as ``264.0``). Two hashes are therefore accepted for this file:

- the upstream file as downloaded, ``b495303e…``. This hash could not be computed from a
  download on the development machine (no network); it was computed from a byte-exact
  reconstruction (cleaned table + empty columns + footer + CRLF + integer formatting), which
  matches the upstream file's published length (25,606 bytes) and its content at every
  position inspected. If GitHub ever serves different bytes, the download fails with the
  error described below rather than silently accepting them;
- the cleaned shared copy, ``7ecbfc5e…``, accepted when it is already in the cache folder.

The reader accepts both layouts.

Errors
------
A cached file with an unknown hash is re-downloaded (pooch's rule). If that is impossible (no
network, read-only folder) or the downloaded bytes have yet another hash, a
:class:`ValueError` names the file, the expected and the found hash and the fix (delete the
file, or put the original file there).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from vgfm.datasets._csv import DATA_DIR_ENV, read_snapshot_csv

__all__ = [
    "REMOTE_FILES",
    "RemoteFile",
    "cache_dir",
    "dyngen",
    "dyngen_expression",
    "fetch_file",
    "mouse_hematopoiesis",
    "simulation_gene",
]

logger = logging.getLogger("vgfm")

_RAW = "https://raw.githubusercontent.com"
_DEEPRUOT_COMMIT = "29e94d6684baf64963d16265214a788e4244f85e"
_MIOFLOW_COMMIT = "c3633f7b6a2e54635f1ff020738038f14d121a69"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: where it comes from and which bytes are accepted.

    Attributes
    ----------
    url
        Original public location (``raw.githubusercontent.com``).
    sha256
        SHA-256 of the file as served at ``url``; pooch verifies every download against it.
    alt_sha256
        Other accepted hashes of a file already in the cache (e.g. a cleaned copy of the same
        table); such a file is used without downloading anything.
    source
        Human-readable provenance (repository, path, licence).
    """

    url: str
    sha256: str
    alt_sha256: tuple[str, ...] = field(default_factory=tuple)
    source: str = ""

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every hash accepted for a cached file."""
        return (self.sha256, *self.alt_sha256)


#: Registry of downloadable files, keyed by the cached file name.
REMOTE_FILES: dict[str, RemoteFile] = {
    "simulation_gene_2d.csv": RemoteFile(
        url=f"{_RAW}/zhenyiizhang/DeepRUOT/HEAD/data/simulation_gene_data.csv",
        sha256="d41e3bcd94ff55383264461f2eed048780dbea8faffb77011cff9b8dce231d10",
        source="github.com/zhenyiizhang/DeepRUOT, data/simulation_gene_data.csv (MIT)",
    ),
    "dyngen_5d.csv": RemoteFile(
        url=f"{_RAW}/DongyiWang-66/VGFM/HEAD/data/dygen.csv",
        sha256="2518aedc7e621195af54927aed60741e71a01239942ddc6502e15e1aafcb803d",
        source="github.com/DongyiWang-66/VGFM, data/dygen.csv (no licence file)",
    ),
    "dyngen_bifurcation_expression.csv": RemoteFile(
        url=f"{_RAW}/KrishnaswamyLab/MIOFlow/{_MIOFLOW_COMMIT}/data/dyngen_expression_bif.csv",
        sha256="91081fee02c63b7dfb89f8490e500736b2dba04ac853a7b49c5c5325a2256e95",
        source="github.com/KrishnaswamyLab/MIOFlow@c3633f7, data/dyngen_expression_bif.csv "
        "(Apache-2.0)",
    ),
    "dyngen_bifurcation_cell_info.csv": RemoteFile(
        url=f"{_RAW}/KrishnaswamyLab/MIOFlow/{_MIOFLOW_COMMIT}/data/cell_info.csv",
        # upstream bytes (reconstructed, see the module docstring)
        sha256="b495303e922d42f363be9e4de1e51711544f2ef1d4fcbe3c9a6e1bd176d9e73b",
        # the cleaned copy (empty columns and footer dropped) of the shared data folder
        alt_sha256=("7ecbfc5e4368cadadeba71633e63b7d42e34a4726bfbc1928454b36852b49b22",),
        source="github.com/KrishnaswamyLab/MIOFlow@c3633f7, data/cell_info.csv (Apache-2.0)",
    ),
    "mouse_hematopoiesis_2d.csv": RemoteFile(
        url=f"{_RAW}/zhenyiizhang/DeepRUOT/{_DEEPRUOT_COMMIT}/data/mouse_hematopoiesis.csv",
        sha256="be4360cd67e76205501de63124379be5c82506748e018197a3fdb4dbb1c7ca2f",
        source="github.com/zhenyiizhang/DeepRUOT, data/mouse_hematopoiesis.csv (MIT); "
        "Weinreb et al. 2020",
    ),
}

#: Downloader passed to :func:`pooch.retrieve` (``None``: pooch chooses one from the URL).
#: Tests replace it to check that nothing is downloaded.
_DOWNLOADER: Callable[..., Any] | None = None


def cache_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder where downloaded datasets are kept.

    Parameters
    ----------
    data_dir
        Explicit folder; ``None`` uses the environment variable ``VGFM_DATA_DIR`` when it is
        set, else :func:`pooch.os_cache` ``("vgfm")``.

    Returns
    -------
    pathlib.Path
        The folder (not created here).

    Examples
    --------
    >>> import vgfm
    >>> str(vgfm.datasets.cache_dir("/tmp/vgfm-data"))
    '/tmp/vgfm-data'
    >>> vgfm.datasets.cache_dir()  # VGFM_DATA_DIR, else the user cache  # doctest: +SKIP
    PosixPath('/home/me/.cache/vgfm')
    """
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    import pooch

    return Path(pooch.os_cache("vgfm"))


def _sha256(path: Path) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="sha256")


def fetch_file(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path to a registered data file, downloading it (once) if needed.

    Parameters
    ----------
    name
        Cached file name, a key of ``REMOTE_FILES`` (e.g. ``"mouse_hematopoiesis_2d.csv"``).
    data_dir
        Cache folder; default :func:`cache_dir`.

    Returns
    -------
    pathlib.Path
        Path of the verified file in the cache folder.

    Raises
    ------
    KeyError
        If ``name`` is not registered.
    ValueError
        If a cached file has an unknown hash and could not be replaced by a verified download,
        or if the download has an unexpected hash.
    OSError
        If the file is not cached and could not be downloaded (no network, read-only folder).

    Examples
    --------
    >>> import vgfm
    >>> path = vgfm.datasets.fetch_file("dyngen_5d.csv")  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'dyngen_5d.csv'
    """
    import pooch

    if name not in REMOTE_FILES:
        raise KeyError(f"Unknown data file {name!r}; registered files: {sorted(REMOTE_FILES)}.")
    entry = REMOTE_FILES[name]
    folder = cache_dir(data_dir)
    path = folder / name
    found: str | None = None
    if path.is_file():
        found = _sha256(path)
        if found in entry.accepted:
            logger.debug("using cached %s (sha256 %s)", path, found)
            return path
        logger.warning(
            "'%s' has sha256 %s, expected %s; downloading it again from %s",
            path, found, " or ".join(entry.accepted), entry.url,
        )
    try:
        out = pooch.retrieve(
            entry.url,
            known_hash=f"sha256:{entry.sha256}",
            fname=name,
            path=folder,
            downloader=_DOWNLOADER,
            progressbar=False,
        )
    except Exception as err:  # network error, permission error, hash mismatch of a download
        expected = " or ".join(entry.accepted)
        if found is not None:
            raise ValueError(
                f"Data file '{path}' has sha256 {found}, but {expected} was expected, and it "
                f"could not be replaced by a fresh download from {entry.url} ({err}). Delete "
                f"the file to download it again, or put the original file ({entry.source}) "
                f"there, or set {DATA_DIR_ENV} to a folder holding the original file."
            ) from err
        if isinstance(err, ValueError):  # pooch: downloaded bytes do not match the hash
            raise ValueError(
                f"The file downloaded from {entry.url} for '{name}' does not have the expected "
                f"sha256 {entry.sha256} ({err}). The upstream file has changed; download the "
                f"original ({entry.source}) by hand into '{folder}' or set {DATA_DIR_ENV} to "
                "a folder holding it."
            ) from err
        raise OSError(
            f"Data file '{name}' is not in '{folder}' and could not be downloaded from "
            f"{entry.url} ({type(err).__name__}: {err}). Download it by hand to '{path}' (any "
            f"file with sha256 {expected} is accepted), or set {DATA_DIR_ENV} to a folder that "
            "holds it."
        ) from err
    return Path(out)


def _provenance(names: list[str], folder: Path) -> dict[str, Any]:
    return {
        "files": [str(folder / n) for n in names],
        "urls": [REMOTE_FILES[n].url for n in names],
        "sources": [REMOTE_FILES[n].source for n in names],
    }


def simulation_gene(*, data_dir: str | os.PathLike[str] | None = None) -> AnnData:
    """Simulated two-gene regulatory network with growth (the DeepRUOT / VGFM benchmark).

    3031 cells in 2 genes at 5 time points (time-point indices 0–4, as in the published
    benchmark), with 400, 442, 530, 690 and 969 cells: the cell counts grow with the
    population.

    Parameters
    ----------
    data_dir
        Cache folder; default :func:`cache_dir`.

    Returns
    -------
    AnnData
        ``X`` (``x1``, ``x2``), ``obs["time"]`` (float index 0–4), ``obs["time_index"]`` and
        ``uns["dataset"]`` (name, file, URL, source), as :func:`read_snapshot_csv`.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.simulation_gene()  # doctest: +SKIP
    >>> adata.obs["time"].value_counts().sort_index().tolist()  # doctest: +SKIP
    [400, 442, 530, 690, 969]
    """
    name = "simulation_gene_2d.csv"
    path = fetch_file(name, data_dir=data_dir)
    adata = read_snapshot_csv(path)
    adata.uns["dataset"] = {"name": "simulation_gene", **_provenance([name], path.parent)}
    return adata


def dyngen(*, data_dir: str | os.PathLike[str] | None = None) -> AnnData:
    """Five-dimensional PHATE embedding of a dyngen bifurcation (the VGFM "Dyngen 5D" benchmark).

    728 cells at 5 time points (indices 0–4) with 156, 112, 63, 96 and 301 cells. In the
    pipeline that produced this file (MIOFlow's ``make_dyngen_data``), the time labels are
    equal-width bins of the first PHATE coordinate, not of the simulation time; the raw
    simulation is available as :func:`dyngen_expression`.

    Parameters
    ----------
    data_dir
        Cache folder; default :func:`cache_dir`.

    Returns
    -------
    AnnData
        ``X`` (``x1``–``x5``), ``obsm["X_phate"]`` (the same five coordinates, so plots can use
        ``basis="phate"``), ``obs["time"]``, ``obs["time_index"]``, ``uns["dataset"]``.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.dyngen()  # doctest: +SKIP
    >>> adata.shape  # doctest: +SKIP
    (728, 5)
    """
    name = "dyngen_5d.csv"
    path = fetch_file(name, data_dir=data_dir)
    adata = read_snapshot_csv(path)
    adata.obsm["X_phate"] = np.asarray(adata.X, dtype=np.float32).copy()
    adata.uns["dataset"] = {"name": "dyngen", **_provenance([name], path.parent)}
    return adata


def _read_cell_info(path: Path) -> pd.DataFrame:
    """Cell table of the dyngen simulation, from the upstream or the cleaned layout."""
    frame = pd.read_csv(path)
    frame = frame.loc[:, [not str(c).startswith("Unnamed:") for c in frame.columns]]
    expected = ["cell_id", "step_ix", "simulation_i", "sim_time"]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ValueError(
            f"'{path.name}' lacks column(s) {missing}; found {list(frame.columns)}. Expected "
            "the dyngen cell table of MIOFlow (data/cell_info.csv)."
        )
    frame = frame.dropna(subset=["cell_id"])  # upstream footer row ",,,,,a"
    frame = frame[expected].copy()
    frame["cell_id"] = frame["cell_id"].astype(str)
    frame["step_ix"] = frame["step_ix"].astype(np.int64)
    frame["simulation_i"] = frame["simulation_i"].astype(np.int64)
    frame["sim_time"] = frame["sim_time"].astype(np.float64)
    return frame.reset_index(drop=True)


def _bin_times(sim_time: np.ndarray, n_bins: int, binning: str) -> tuple[np.ndarray, np.ndarray]:
    """Bin index (0 … n_bins-1) of every cell and the bin edges."""
    if binning == "width":
        edges = np.linspace(sim_time.min(), sim_time.max(), n_bins + 1)
    elif binning == "count":
        edges = np.quantile(sim_time, np.linspace(0.0, 1.0, n_bins + 1))
        if np.any(np.diff(edges) <= 0):
            raise ValueError(
                f"binning='count' with n_bins={n_bins} gives empty bins (repeated quantiles "
                f"{edges.tolist()}); use fewer bins or binning='width'."
            )
    else:
        raise ValueError(f"binning must be 'width' or 'count', got {binning!r}.")
    # right-closed inner edges; the first bin includes the minimum
    idx = np.searchsorted(edges[1:-1], sim_time, side="left")
    return idx.astype(np.int64), edges


def dyngen_expression(
    *,
    n_bins: int = 5,
    binning: Literal["width", "count"] = "width",
    data_dir: str | os.PathLike[str] | None = None,
) -> AnnData:
    """Raw expression of the dyngen bifurcation simulation, binned into snapshots.

    1000 simulated cells × 135 genes (transcription factors ``*_TF1``, targets ``Target*``,
    housekeeping genes ``HK*``) on a log scale, from 10 dyngen simulations of a bifurcating
    gene-regulatory network, each cell with its simulation time ``sim_time`` (0–1000). This is
    the simulation behind the "Dyngen 5D" benchmark (:func:`dyngen`).

    Snapshots. The simulation time is continuous; VGFM needs snapshots. By default the range
    of ``sim_time`` is cut into ``n_bins`` bins of **equal width** (200 simulation-time units
    each for the default 5 bins), labelled ``0 … n_bins-1`` in ``obs["time"]``: the labels
    are then proportional to real time (one unit = one bin width) and every interval has the
    same length. The price is unequal cell counts (367, 208, 180, 131, 114 for 5 bins), which
    reflect how dyngen sampled cells over time — no cell divides or dies in a dyngen
    simulation, so these counts are **not** population sizes (pass ``population_size=`` to
    :func:`vgfm.tl.fit`, see the tutorial). ``binning="count"`` uses equal-count (quantile)
    bins instead: equal snapshot sizes, but bins of unequal duration whose labels are no
    longer proportional to time.

    Parameters
    ----------
    n_bins
        Number of snapshots.
    binning
        ``"width"`` (equal-width bins of ``sim_time``) or ``"count"`` (equal-count bins).
    data_dir
        Cache folder; default :func:`cache_dir`.

    Returns
    -------
    AnnData
        ``X``
            ``float32`` log-scale expression (1000 × 135), ``var_names`` the gene names.
        ``obs_names``
            ``cell1`` … ``cell1000``.
        ``obs["sim_time"]``, ``obs["step_ix"]``, ``obs["simulation_i"]``
            dyngen's simulation time, step index and simulation number.
        ``obs["time"]``
            ``float`` snapshot label ``0 … n_bins-1``.
        ``uns["time_bins"]``
            ``{"edges": (n_bins + 1,) sim_time edges, "binning": str}``.
        ``uns["dataset"]``
            name, files, URLs, sources.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.dyngen_expression()  # doctest: +SKIP
    >>> adata.shape  # doctest: +SKIP
    (1000, 135)
    >>> adata.obs["time"].value_counts().sort_index().tolist()  # doctest: +SKIP
    [367, 208, 180, 131, 114]
    """
    if int(n_bins) != n_bins or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}.")
    n_bins = int(n_bins)
    expr_name = "dyngen_bifurcation_expression.csv"
    info_name = "dyngen_bifurcation_cell_info.csv"
    expr_path = fetch_file(expr_name, data_dir=data_dir)
    info_path = fetch_file(info_name, data_dir=data_dir)
    expr = pd.read_csv(expr_path)
    expr = expr.loc[:, [not str(c).startswith("Unnamed:") for c in expr.columns]]
    info = _read_cell_info(info_path)
    if len(expr) != len(info):
        raise ValueError(
            f"'{expr_path.name}' has {len(expr)} cells but '{info_path.name}' has {len(info)}; "
            "the two files must describe the same cells in the same order."
        )
    sim_time = info["sim_time"].to_numpy()
    idx, edges = _bin_times(sim_time, n_bins, binning)
    obs = pd.DataFrame(
        {
            "sim_time": sim_time,
            "step_ix": info["step_ix"].to_numpy(),
            "simulation_i": info["simulation_i"].to_numpy(),
            "time": idx.astype(np.float64),
        },
        index=pd.Index(info["cell_id"].to_numpy(), name=None),
    )
    adata = AnnData(
        X=expr.to_numpy(dtype=np.float32),
        obs=obs,
        var=pd.DataFrame(index=pd.Index([str(c) for c in expr.columns])),
    )
    adata.uns["time_bins"] = {"edges": edges.astype(np.float64), "binning": binning}
    adata.uns["dataset"] = {
        "name": "dyngen_expression",
        **_provenance([expr_name, info_name], expr_path.parent),
    }
    logger.info(
        "dyngen_expression: %d cells x %d genes in %d %s bins of sim_time",
        adata.n_obs, adata.n_vars, n_bins, binning,
    )
    return adata


def mouse_hematopoiesis(*, data_dir: str | os.PathLike[str] | None = None) -> AnnData:
    """Mouse hematopoiesis time course (Weinreb et al. 2020) in a 2-D embedding, days 2, 4, 6.

    10,998 cells (1429 on day 2, 3781 on day 4, 5788 on day 6) of the lineage-tracing
    in-vitro hematopoiesis experiment, in the 2-D coordinates used by TIGON, DeepRUOT and
    VGFM. The file stores time-point indices 0, 1, 2; this loader maps them to the real
    sampling days.

    Parameters
    ----------
    data_dir
        Cache folder; default :func:`cache_dir`.

    Returns
    -------
    AnnData
        ``X`` (``x1``, ``x2``), ``obsm["X_embedding"]`` (the same coordinates, for
        ``basis="embedding"``), ``obs["time"]`` (``float`` day: 2, 4, 6), ``obs["day"]``
        (ordered categorical ``"day 2"``, ``"day 4"``, ``"day 6"``), ``obs["time_index"]``
        and ``uns["dataset"]``.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.mouse_hematopoiesis()  # doctest: +SKIP
    >>> adata.obs["day"].value_counts().sort_index().tolist()  # doctest: +SKIP
    [1429, 3781, 5788]
    """
    name = "mouse_hematopoiesis_2d.csv"
    path = fetch_file(name, data_dir=data_dir)
    adata = read_snapshot_csv(path, time_values=[2.0, 4.0, 6.0])
    labels = [f"day {int(d)}" for d in adata.obs["time"]]
    adata.obs["day"] = pd.Categorical(
        labels, categories=["day 2", "day 4", "day 6"], ordered=True
    )
    adata.obsm["X_embedding"] = np.asarray(adata.X, dtype=np.float32).copy()
    adata.uns["dataset"] = {"name": "mouse_hematopoiesis", **_provenance([name], path.parent)}
    return adata
