"""Population sizes ``N_k`` per time point: given, stored by :func:`vgfm.pp.population_size`,
or (by default, announced with a WARNING) the cell counts."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vgfm._data._containers import Data, resolve_container
from vgfm._data._format import fmt_list
from vgfm._data._keys import population_size_key
from vgfm._data._times import TimeMapping

logger = logging.getLogger("vgfm")

__all__ = [
    "growth_prior_per_snapshot",
    "SOURCE_ARGUMENT",
    "SOURCE_CELL_COUNTS",
    "SOURCE_STORED",
    "population_sizes_or_default",
    "resolve_population_size",
    "stored_population_size",
]

SOURCE_ARGUMENT = "argument"
SOURCE_STORED = "stored"
SOURCE_CELL_COUNTS = "cell counts"


def _time_points_desc(mapping: TimeMapping) -> str:
    return fmt_list(mapping.labels, limit=50)


def _sizes_from_mapping(population_size: Mapping, mapping: TimeMapping) -> np.ndarray:
    out: list[Any] = [None] * mapping.n_times
    unknown: list[Any] = []
    repeated: list[str] = []
    for key, val in population_size.items():
        k = mapping.find(key)
        if k is None:
            unknown.append(key)
        elif out[k] is not None:
            repeated.append(mapping.labels[k])
        else:
            out[k] = val
    missing = [mapping.labels[k] for k in range(mapping.n_times) if out[k] is None]
    problems = []
    if missing:
        problems.append(f"no size for time points {fmt_list(missing)}")
    if unknown:
        problems.append(f"keys that match no time point {fmt_list(unknown)}")
    if repeated:
        problems.append(f"several keys for the same time point {fmt_list(repeated)}")
    if problems:
        raise ValueError(
            "population_size: " + "; ".join(problems) + ". Expected one entry per time point, "
            f"keyed by label or numeric time; time points in order: {_time_points_desc(mapping)} "
            f"with values {mapping.values.tolist()}."
        )
    return _as_float_sizes(out, mapping)


def _as_float_sizes(seq: Sequence[Any], mapping: TimeMapping) -> np.ndarray:
    try:
        sizes = np.array([float(v) for v in seq], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"population_size must contain numbers, got {list(seq)!r} for time points "
            f"{_time_points_desc(mapping)}."
        ) from err
    bad = [
        f"{lab!r}: {val!r}"
        for lab, val in zip(mapping.labels, sizes.tolist())
        if not (math.isfinite(val) and val > 0)
    ]
    if bad:
        raise ValueError(
            f"population_size must be finite and > 0 at every time point; found {', '.join(bad)}. "
            "Pass positive (relative) population sizes, e.g. total cell counts per time point."
        )
    return sizes


def resolve_population_size(
    population_size: Any, mapping: TimeMapping, n_cells: np.ndarray
) -> np.ndarray:
    """Population size ``N_k`` of every time point, in time order.

    Parameters
    ----------
    population_size
        ``None`` (use ``n_cells``), a sequence of length ``K`` in time order, or a dict /
        :class:`pandas.Series` keyed by time label (str) or numeric time value.
    mapping
        The time points, from :func:`resolve_times`.
    n_cells
        Cells observed at each time point, shape ``(K,)``.

    Returns
    -------
    float64 array ``(K,)``, all finite and positive.

    Examples
    --------
    >>> mapping = TimeMapping(("day 0", "day 2"), [0.0, 2.0])
    >>> resolve_population_size({"day 0": 100, "day 2": 300}, mapping, np.array([50, 60]))
    array([100., 300.])
    """
    n_times = mapping.n_times
    if population_size is None:
        n_cells = np.asarray(n_cells, dtype=np.float64).reshape(-1)
        if n_cells.shape[0] != n_times:
            raise ValueError(
                f"n_cells has {n_cells.shape[0]} entries; expected {n_times} (one per time point)."
            )
        return _as_float_sizes(n_cells, mapping)
    if isinstance(population_size, pd.Series):
        population_size = dict(population_size.items())
    if isinstance(population_size, Mapping):
        return _sizes_from_mapping(population_size, mapping)
    if isinstance(population_size, (str, bytes)) or not isinstance(
        population_size, (Sequence, np.ndarray, pd.Index)
    ):
        raise TypeError(
            f"population_size must be None, a sequence of {n_times} numbers in time order, or a "
            f"dict keyed by time label; got {type(population_size).__name__}. Time points in "
            f"order: {_time_points_desc(mapping)}."
        )
    seq = np.asarray(population_size, dtype=object)
    if seq.ndim != 1:
        raise ValueError(
            f"population_size must be 1-D with {n_times} entries, got shape {seq.shape}."
        )
    if seq.shape[0] != n_times:
        raise ValueError(
            f"population_size has {seq.shape[0]} entries; expected {n_times}, one per time point "
            f"in time order: {_time_points_desc(mapping)}. Or pass a dict keyed by label."
        )
    return _as_float_sizes(list(seq), mapping)


def stored_population_size(adata: AnnData, key: str, mapping: TimeMapping) -> np.ndarray | None:
    """Population sizes stored by :func:`vgfm.pp.population_size`, aligned to ``mapping``.

    Returns ``None`` when ``adata.uns[f"{key}_population_size"]`` does not exist. Entries are
    matched by label, or else by numeric time value; stored time points absent from ``mapping``
    (e.g. after subsetting cells) are ignored.

    Examples
    --------
    >>> import anndata
    >>> ad = anndata.AnnData(uns={"vgfm_population_size": {
    ...     "labels": ["a", "b"], "values": [0.0, 1.0], "size": [10.0, 30.0]}})
    >>> stored_population_size(ad, "vgfm", TimeMapping(("a", "b"), [0.0, 1.0]))
    array([10., 30.])
    """
    uns_key = population_size_key(key)
    if uns_key not in adata.uns:
        return None
    stored = adata.uns[uns_key]
    field_name = f"adata.uns[{uns_key!r}]"
    if not isinstance(stored, Mapping) or not {"labels", "values", "size"} <= set(stored):
        found = sorted(stored) if isinstance(stored, Mapping) else type(stored).__name__
        raise ValueError(
            f"{field_name} should be a dict with keys 'labels', 'values', 'size' (as written by "
            f"vgfm.pp.population_size), found {found}. Re-run vgfm.pp.population_size or delete it."
        )
    labels = [str(x) for x in np.asarray(stored["labels"]).reshape(-1)]
    values = np.asarray(stored["values"], dtype=np.float64).reshape(-1)
    sizes = np.asarray(stored["size"], dtype=np.float64).reshape(-1)
    if not (len(labels) == values.shape[0] == sizes.shape[0]):
        raise ValueError(
            f"{field_name} has {len(labels)} labels, {values.shape[0]} values and "
            f"{sizes.shape[0]} sizes; expected equal lengths. Re-run vgfm.pp.population_size."
        )
    by_label = dict(zip(labels, sizes))
    if all(lab in by_label for lab in mapping.labels):
        out = [by_label[lab] for lab in mapping.labels]
    else:
        out = []
        for lab, v in zip(mapping.labels, mapping.values):
            hits = np.flatnonzero(np.isclose(values, v, rtol=1e-9, atol=1e-12))
            if hits.size != 1:
                raise ValueError(
                    f"{field_name} has no population size for time point {lab!r} (time {v:g}); "
                    f"it stores labels {fmt_list(labels)}. Re-run vgfm.pp.population_size with "
                    "the same time_key, or pass population_size= to vgfm.tl.fit."
                )
            out.append(sizes[hits[0]])
    try:
        return _as_float_sizes(out, mapping)
    except ValueError as err:
        raise ValueError(f"{field_name}: {err}") from err


def population_sizes_or_default(
    adata: AnnData, population_size: Any, key: str, mapping: TimeMapping, n_cells: np.ndarray
) -> tuple[np.ndarray, str]:
    """``N_k`` as :func:`vgfm.tl.fit` uses them, and where they come from.

    The argument (``"argument"``), else the sizes stored by :func:`vgfm.pp.population_size`
    under ``key`` (``"stored"``), else the cell counts (``"cell counts"``).

    Examples
    --------
    >>> import anndata, pandas as pd
    >>> from vgfm._data._times import cells_per_time, resolve_times
    >>> ad = anndata.AnnData(np.zeros((4, 1)), obs=pd.DataFrame({"t": [0, 0, 1, 1]},
    ...                      index=list("abcd")))
    >>> times, m = resolve_times(ad, "t")
    >>> sizes, source = population_sizes_or_default(ad, None, "vgfm", m, cells_per_time(times, m))
    >>> sizes.tolist(), source
    ([2.0, 2.0], 'cell counts')
    """
    if population_size is None:
        stored = stored_population_size(adata, key, mapping)
        if stored is not None:
            return stored, SOURCE_STORED
        return _as_float_sizes(np.asarray(n_cells, dtype=float), mapping), SOURCE_CELL_COUNTS
    return resolve_population_size(population_size, mapping, n_cells), SOURCE_ARGUMENT


def growth_prior_per_snapshot(
    adata: Data,
    key: str = "growth_prior",
    *,
    times: np.ndarray,
    time_values: Sequence[float],
    mod: str | None = None,
) -> list[np.ndarray]:
    """The growth prior of the cells of each time point, normalised to mean 1 per time point.

    This is what :func:`vgfm.tl.fit` (``growth_prior=key``) hands to the coupling step: the
    source mass of cell ``i`` at ``t_k`` becomes ``r_k / n_k * prior_i`` instead of
    ``r_k / n_k``, so the total mass ``r_k`` of every time point is unchanged and only the
    shares of its cells follow the prior.

    Parameters
    ----------
    adata
        AnnData (or MuData with ``mod=``) with ``obs[key]``, e.g. from
        :func:`vgfm.pp.growth_prior`, or any positive per-cell column.
    key
        ``.obs`` column of the prior.
    times
        Numeric time of every cell (``n_obs``), as used to split the snapshots.
    time_values
        The time points in increasing order; snapshot ``k`` is ``times == time_values[k]``.
    mod
        For a MuData: the modality whose ``obs`` holds ``key`` (``None``: the joint ``obs``).

    Returns
    -------
    One float64 array per time point, in the order of ``time_values``, each of mean 1 and of
    the length of its snapshot (the cells in ``adata`` order).

    Examples
    --------
    >>> import numpy as np, anndata as ad
    >>> from vgfm._data._population import growth_prior_per_snapshot
    >>> adata = ad.AnnData(np.zeros((4, 1)))
    >>> adata.obs["growth_prior"] = [1.0, 3.0, 2.0, 2.0]
    >>> growth_prior_per_snapshot(adata, times=np.array([0, 0, 1, 1]), time_values=[0, 1])
    [array([0.5, 1.5]), array([1., 1.])]
    """
    container = resolve_container(adata, mod)
    if key not in container.obs.columns:
        raise KeyError(
            f"growth_prior={key!r} is not a column of adata.obs; run "
            f"vgfm.pp.growth_prior(adata, key_added={key!r}) first or name an existing column."
        )
    col = container.obs[key]
    if not pd.api.types.is_numeric_dtype(col):
        raise ValueError(f"adata.obs[{key!r}] must be numeric (a growth prior), found {col.dtype}.")
    prior = col.to_numpy(dtype=np.float64)
    times = np.asarray(times)
    if times.shape != prior.shape:
        raise ValueError(
            f"times has {times.shape[0]} entries but adata.obs[{key!r}] has {prior.shape[0]} cells."
        )
    bad = ~np.isfinite(prior) | (prior <= 0)
    if bad.any():
        raise ValueError(
            f"adata.obs[{key!r}] must be finite and > 0 for every cell; {int(bad.sum())} cells "
            f"are not (first: {list(container.obs_names[bad][:3])}). Recompute it with "
            "vgfm.pp.growth_prior or fill them (e.g. with 1, no prior)."
        )
    out = []
    for v in time_values:
        p = prior[times == v]
        if p.size == 0:
            raise ValueError(f"no cell has time {v}; times and time_values disagree.")
        out.append(p / p.mean())
    return out
