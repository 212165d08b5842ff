"""Public preparation functions of :mod:`vgfm.pp`: a thin face on :mod:`vgfm._data`.

All of them are optional: :func:`vgfm.tl.fit` runs the same validation itself. They let a user
check a dataset early, store a numeric (or binned) time column, or record population sizes in
``adata.uns``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from vgfm._data import keys
from vgfm._data._containers import Data, copy_target, resolve_container
from vgfm._data._docs import doc_params
from vgfm._data._format import format_number
from vgfm._data._options import validate_key
from vgfm._data._population import resolve_population_size
from vgfm._data._representation import get_representation
from vgfm._data._times import bin_edges, cells_per_time, resolve_times

logger = logging.getLogger("vgfm")

__all__ = ["bin_time", "check_representation", "numeric_time", "population_size"]


@doc_params
def numeric_time(
    adata: Data,
    time_key: str = keys.DEFAULT_TIME_KEY,
    *,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    key_added: str | None = None,
    mod: str | None = None,
    copy: bool = False,
) -> Data | None:
    """Store each cell's time point as a number.

    Reads ``adata.obs[time_key]`` (numbers, or labels with one number and a unit such as
    ``"day 2"``, ``"E14.5"``, ``"8h"``) and writes the numeric time next to it.
    :func:`vgfm.tl.fit` does the same conversion internally, so this step is optional; it is
    useful to inspect the parsed times or to fix them with ``time_order=``/``time_values=``.

    Parameters
    ----------
    adata
        {adata}
    time_key
        {time_key}
    time_order
        {time_order}
    time_values
        {time_values}
    key_added
        Name of the written ``.obs`` column; defaults to ``f"{{time_key}}_numeric"``.
    mod
        {mod}
    copy
        {copy}

    Notes
    -----
    How labels become times (one implementation, used by every function that reads times):

    1. ``time_order=`` (and ``time_values=``, default ``0, 1, 2, …``) override everything.
    2. An ordered categorical gives the order; its labels' parsed times are used when they
       increase in that order, otherwise ``0, 1, 2, …`` (with a WARNING).
    3. :func:`pandas.cut` intervals become their midpoints.
    4. Units are parsed and converted to the largest unit present: minutes (``"30min"``),
       hours (``"12h"``, ``"24 hours"``, ``"48hpf"``), days (``"day 2"``, ``"D4"``, ``"2d"``),
       weeks (``"week 1"``, ``"2w"``): ``["12h", "1d", "2d"]`` is ``0.5, 1, 2`` days.
       ``"E14.5"`` is embryonic day 14.5, ``"P3"`` postnatal day 3; mixing them assumes mouse
       gestation, ``P0 = E19.5`` (a WARNING says so; pass ``time_values=`` otherwise).
    5. A hyphen between a word and the number is a separator when every label with that word
       has it (``"day-2", "day-7"`` -> 2, 7), else a minus sign (``"day-1", "day0"`` -> -1, 0).
    6. Labels that cannot share one axis (a unit next to none, days next to E/P stages,
       different unknown prefixes) are refused with these remedies; a numeric column with many
       sparsely populated values is refused with a pointer to :func:`vgfm.pp.bin_time`.

    The mapping and its unit are logged at INFO.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes

    - ``adata.obs[key_added]`` – float64 time of each cell;
    - ``adata.uns[f"{{key_added}}_mapping"]`` – ``{{"labels", "values", "unit"}}``, the time
      points in increasing order.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(n_cells_0=50, seed=0)
    >>> stages = {{0.0: "base", 0.5: "early", 1.0: "mid", 1.5: "late", 2.0: "end"}}
    >>> adata.obs["stage"] = adata.obs["time"].map(stages)
    >>> vgfm.pp.numeric_time(adata, "stage", time_order=list(stages.values()),
    ...                      time_values=[0, 1, 2, 4, 8])
    >>> adata.uns["stage_numeric_mapping"]["values"]
    array([0., 1., 2., 4., 8.])
    >>> adata.obs["h"] = adata.obs["time"].map({{0.0: "0h", 0.5: "12h", 1.0: "1d", 1.5: "36h",
    ...                                         2.0: "2d"}})
    >>> vgfm.pp.numeric_time(adata, "h")  # hours and days on one axis, in days
    >>> adata.uns["h_numeric_mapping"]["unit"], adata.uns["h_numeric_mapping"]["values"]
    ('day', array([0. , 0.5, 1. , 1.5, 2. ]))
    """
    container = resolve_container(adata, mod)
    times, mapping = resolve_times(container, time_key, order=time_order, values=time_values)
    key = validate_key(key_added if key_added is not None else keys.numeric_time_key(time_key))
    mapping_key = keys.time_mapping_key(key)
    out, container = copy_target(adata, copy, mod)
    if key in container.obs.columns:
        logger.info("overwriting adata.obs[%r]", key)
    container.obs[key] = times
    container.uns[mapping_key] = mapping.to_dict()
    logger.info(
        "added adata.obs[%r] (float time of each cell) and adata.uns[%r] (%d time points: %s)",
        key, mapping_key, mapping.n_times, mapping.describe(),
    )
    return out if copy else None


@doc_params
def bin_time(
    adata: Data,
    time_key: str = keys.DEFAULT_TIME_KEY,
    *,
    n_bins: int = 8,
    method: Literal["quantile", "uniform"] = "quantile",
    key_added: str | None = None,
    mod: str | None = None,
    copy: bool = False,
) -> Data | None:
    """Bin a continuous time column (pseudotime, a simulation clock) into time points.

    VGFM learns from a few snapshots with many cells each. A column with a different time for
    (nearly) every cell is binned here: each cell gets the midpoint of its bin, stored as a
    number that :func:`vgfm.tl.fit` reads as it is.

    Parameters
    ----------
    adata
        {adata}
    time_key
        Numeric ``.obs`` column to bin.
    n_bins
        Number of bins (at least 2); bins with tied edges are merged.
    method
        ``"quantile"`` (about equal cell counts) or ``"uniform"`` (equal widths).
    key_added
        Name of the written ``.obs`` column; defaults to ``f"{{time_key}}_bin"``.
    mod
        {mod}
    copy
        {copy}

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes

    - ``adata.obs[key_added]`` – float64 midpoint of each cell's bin;
    - ``adata.uns[f"{{key_added}}_bins"]`` – ``{{"edges", "midpoints", "n_cells"}}``.

    Examples
    --------
    >>> import anndata, numpy as np, pandas as pd
    >>> import vgfm
    >>> ad = anndata.AnnData(obs=pd.DataFrame({{"t": np.linspace(0, 1, 40)}},
    ...                                       index=[str(i) for i in range(40)]))
    >>> vgfm.pp.bin_time(ad, "t", n_bins=4, method="uniform")
    >>> ad.uns["t_bin_bins"]["midpoints"]
    array([0.125, 0.375, 0.625, 0.875])
    >>> ad.obs["t_bin"].value_counts().sort_index().tolist()
    [10, 10, 10, 10]
    """
    container = resolve_container(adata, mod)
    if time_key not in container.obs.columns:
        raise KeyError(
            f"time_key={time_key!r} is not a column of adata.obs; available columns: "
            f"{list(container.obs.columns)}."
        )
    col = container.obs[time_key]
    if not pd.api.types.is_numeric_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype):
        raise TypeError(
            f"adata.obs[{time_key!r}] has dtype {col.dtype}; bin_time bins numeric times. Convert "
            f"labels first with vgfm.pp.numeric_time(adata, {time_key!r})."
        )
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise ValueError(f"n_bins must be an int >= 2, got {n_bins!r}.")
    t = np.asarray(col, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError(
            f"adata.obs[{time_key!r}] has {int((~np.isfinite(t)).sum())} non-finite times; drop "
            f"those cells first, e.g. adata = adata[np.isfinite(adata.obs[{time_key!r}])].copy()."
        )
    edges = bin_edges(t, int(n_bins), method)
    if len(edges) < 3:
        raise ValueError(
            f"adata.obs[{time_key!r}] has too few distinct times to make 2 bins "
            f"(edges {edges.tolist()})."
        )
    key = validate_key(key_added if key_added is not None else keys.bin_time_key(time_key))
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    mids = 0.5 * (edges[:-1] + edges[1:])
    counts = np.bincount(idx, minlength=len(mids)).astype(np.int64)
    out, container = copy_target(adata, copy, mod)
    container.obs[key] = mids[idx]
    container.uns[keys.time_bins_key(key)] = {
        "edges": edges, "midpoints": mids, "n_cells": counts, "method": method,
    }
    logger.info(
        "added adata.obs[%r] (%d time bins of adata.obs[%r], %s: %s) and adata.uns[%r]",
        key, len(mids), time_key, method,
        ", ".join(f"{format_number(m)} ({c} cells)" for m, c in zip(mids, counts)),
        keys.time_bins_key(key),
    )
    return out if copy else None


@doc_params
def population_size(
    adata: Data,
    sizes: Sequence[float] | Mapping[Any, float] | pd.Series | np.ndarray,
    *,
    time_key: str = keys.DEFAULT_TIME_KEY,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    key_added: str = keys.DEFAULT_KEY,
    mod: str | None = None,
    copy: bool = False,
) -> Data | None:
    """Record the (relative) population size of every time point.

    VGFM learns growth from how the population size changes between time points. Without this
    step :func:`vgfm.tl.fit` assumes that the number of sequenced cells is proportional to the
    population size (and says so with a WARNING); with it,
    ``vgfm.tl.fit(adata, key_added=key_added)`` uses the stored sizes instead.

    Parameters
    ----------
    adata
        {adata}
    sizes
        Population size ``N_k`` of every time point: a sequence in time order (earliest
        first), or a dict / :class:`pandas.Series` keyed by time label (``"day 2"``) or numeric
        time (``2``). Only ratios matter; values must be finite and positive.
    time_key
        {time_key}
    time_order
        {time_order}
    time_values
        {time_values}
    key_added
        Prefix of the written field; use the same value as ``key_added`` of
        :func:`vgfm.tl.fit`.
    mod
        {mod}
    copy
        {copy}

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes
    ``adata.uns[f"{{key_added}}_population_size"]`` = ``{{"labels", "values", "size"}}``, one
    entry per time point in increasing time order.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(n_cells_0=50, seed=0)
    >>> vgfm.pp.population_size(adata, {{0: 1e4, 0.5: 2e4, 1: 3e4, 1.5: 4e4, 2: 5e4}})
    >>> adata.uns["vgfm_population_size"]["size"]
    array([10000., 20000., 30000., 40000., 50000.])
    """
    if sizes is None:
        raise ValueError(
            "sizes=None: nothing to store. vgfm.tl.fit already uses cell counts per time point "
            "when no population size is given; pass one size per time point to override it."
        )
    container = resolve_container(adata, mod)
    times, mapping = resolve_times(container, time_key, order=time_order, values=time_values)
    n_cells = cells_per_time(times, mapping)
    size = resolve_population_size(sizes, mapping, n_cells)
    uns_key = keys.population_size_key(validate_key(key_added))
    out, container = copy_target(adata, copy, mod)
    mapping_dict = mapping.to_dict()
    container.uns[uns_key] = {
        "labels": mapping_dict["labels"],
        "values": mapping_dict["values"],
        "size": np.asarray(size, dtype=np.float64),
    }
    logger.info(
        "added adata.uns[%r] (population size of %d time points: %s)",
        uns_key, mapping.n_times,
        ", ".join(f"{lab}={s:g}" for lab, s in zip(mapping.labels, size)),
    )
    return out if copy else None


@doc_params
def check_representation(
    adata: Data, *, use_rep: str = keys.DEFAULT_USE_REP, mod: str | None = None
) -> None:
    """Check that ``use_rep`` is usable by :func:`vgfm.tl.fit`, without writing anything.

    The representation must be in memory, two-dimensional with at least one column, finite,
    and (if sparse) small enough to densify.

    Parameters
    ----------
    adata
        {adata}
    use_rep
        {use_rep}
    mod
        {mod}

    Returns
    -------
    ``None``; raises :class:`KeyError` (missing key) or :class:`ValueError` (backed AnnData,
    too large sparse matrix, NaN/inf, wrong shape) with a message saying how to fix it.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(n_cells_0=50, seed=0)
    >>> vgfm.pp.check_representation(adata, use_rep="X")
    """
    container = resolve_container(adata, mod)
    x = get_representation(container, use_rep)
    where = "adata.X" if use_rep == "X" else f"adata.obsm[{use_rep!r}]"
    logger.info("%s is usable: %d cells × %d dimensions", where, x.shape[0], x.shape[1])
