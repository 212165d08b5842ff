"""Public preparation functions of :mod:`vgfm.pp`.

All of them are optional: :func:`vgfm.tl.fit` runs the same validation itself. They let a user
check a dataset early, store a numeric time column, or record population sizes in ``adata.uns``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vgfm import _constants
from vgfm.pp._validate import (
    cells_per_time,
    get_representation,
    population_size_key,
    resolve_population_size,
    resolve_times,
)

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

logger = logging.getLogger("vgfm")

__all__ = ["check_representation", "numeric_time", "population_size"]


def numeric_time(
    adata: AnnData,
    time_key: str = _constants.DEFAULT_TIME_KEY,
    *,
    order: Sequence | None = None,
    values: Sequence[float] | None = None,
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Store each cell's time point as a number.

    Reads ``adata.obs[time_key]`` (numbers, or labels with one number inside such as
    ``"day 2"``, ``"E14.5"``, ``"8h"``) and writes the numeric time next to it.
    :func:`vgfm.tl.fit` does the same conversion internally, so this step is optional; it is
    useful to inspect the parsed times or to fix them with ``order=``/``values=``.

    Parameters
    ----------
    adata
        Annotated data matrix.
    time_key
        ``.obs`` column with each cell's time point.
    order
        Time labels, earliest first. Needed when labels contain no number (``"early"``,
        ``"late"``) or to override the parsed ordering.
    values
        Numeric times of the labels in ``order`` (strictly increasing). Defaults to
        ``0, 1, 2, …`` when only ``order`` is given.
    key_added
        Name of the written ``.obs`` column; defaults to ``f"{time_key}_numeric"``.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes

    - ``adata.obs[key_added]`` – float64 time of each cell;
    - ``adata.uns[f"{key_added}_mapping"]`` – ``{"labels": str array, "values": float array}``,
      the time points in increasing order.

    Examples
    --------
    >>> import vgfm
    >>> adata.obs["day"].unique().tolist()
    ['day 0', 'day 2', 'day 4']
    >>> vgfm.pp.numeric_time(adata, "day")
    >>> adata.uns["day_numeric_mapping"]["values"]
    array([0., 2., 4.])
    >>> vgfm.pp.numeric_time(adata, "stage", order=["early", "mid", "late"], values=[0, 1, 3])
    """
    times, mapping = resolve_times(adata, time_key, order=order, values=values)
    key = key_added if key_added is not None else f"{time_key}_numeric"
    mapping_key = f"{key}_mapping"
    if copy:
        adata = adata.copy()
    if key in adata.obs.columns:
        logger.info("overwriting adata.obs[%r]", key)
    adata.obs[key] = times
    adata.uns[mapping_key] = mapping.to_dict()
    logger.info(
        "added adata.obs[%r] (float time of each cell) and adata.uns[%r] (%d time points: %s)",
        key,
        mapping_key,
        mapping.n_times,
        ", ".join(f"{lab}={v:g}" for lab, v in zip(mapping.labels, mapping.values)),
    )
    return adata if copy else None


def population_size(
    adata: AnnData,
    sizes: Sequence[float] | Mapping[Any, float] | pd.Series | np.ndarray,
    *,
    time_key: str = _constants.DEFAULT_TIME_KEY,
    order: Sequence | None = None,
    values: Sequence[float] | None = None,
    key: str = _constants.DEFAULT_KEY,
    copy: bool = False,
) -> AnnData | None:
    """Record the (relative) population size of every time point.

    VGFM learns growth from how the population size changes between time points. Without this
    step :func:`vgfm.tl.fit` assumes that the number of sequenced cells is proportional to the
    population size; with it, ``vgfm.tl.fit(adata, population_size=None, key_added=key)`` uses
    the stored sizes instead.

    Parameters
    ----------
    adata
        Annotated data matrix.
    sizes
        Population size ``N_k`` of every time point: a sequence in time order (earliest
        first), or a dict / :class:`pandas.Series` keyed by time label (``"day 2"``) or numeric
        time (``2``). Only ratios matter; values must be finite and positive.
    time_key
        ``.obs`` column with each cell's time point.
    order
        Time labels, earliest first (see :func:`vgfm.pp.numeric_time`).
    values
        Numeric times of the labels in ``order``.
    key
        Prefix of the written field; use the same value as ``key_added`` of
        :func:`vgfm.tl.fit`.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes
    ``adata.uns[f"{key}_population_size"]`` = ``{"labels": str array, "values": float array,
    "size": float array}``, one entry per time point in increasing time order.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.pp.population_size(adata, {"day 0": 1e4, "day 2": 3e4, "day 4": 5e4}, time_key="day")
    >>> adata.uns["vgfm_population_size"]["size"]
    array([10000., 30000., 50000.])
    >>> vgfm.pp.population_size(adata, [1.0, 3.0, 5.0], time_key="day")  # time order
    """
    if sizes is None:
        raise ValueError(
            "sizes=None: nothing to store. vgfm.tl.fit already uses cell counts per time point "
            "when no population size is given; pass one size per time point to override it."
        )
    times, mapping = resolve_times(adata, time_key, order=order, values=values)
    n_cells = cells_per_time(times, mapping)
    size = resolve_population_size(sizes, mapping, n_cells)
    uns_key = population_size_key(key)
    if copy:
        adata = adata.copy()
    mapping_dict = mapping.to_dict()
    adata.uns[uns_key] = {
        "labels": mapping_dict["labels"],
        "values": mapping_dict["values"],
        "size": np.asarray(size, dtype=np.float64),
    }
    logger.info(
        "added adata.uns[%r] (population size of %d time points: %s)",
        uns_key,
        mapping.n_times,
        ", ".join(f"{lab}={s:g}" for lab, s in zip(mapping.labels, size)),
    )
    return adata if copy else None


def check_representation(
    adata: AnnData, *, use_rep: str = _constants.DEFAULT_USE_REP
) -> None:
    """Check that ``use_rep`` is usable by :func:`vgfm.tl.fit`, without writing anything.

    The representation must be in memory, two-dimensional with at least one column, finite,
    and (if sparse) small enough to densify.

    Parameters
    ----------
    adata
        Annotated data matrix.
    use_rep
        An ``.obsm`` key (e.g. ``"X_pca"``) or ``"X"``.

    Returns
    -------
    ``None``; raises :class:`KeyError` (missing key) or :class:`ValueError` (backed AnnData,
    too large sparse matrix, NaN/inf, wrong shape) with a message saying how to fix it.

    Examples
    --------
    >>> import scanpy as sc
    >>> import vgfm
    >>> sc.pp.pca(adata, n_comps=30)
    >>> vgfm.pp.check_representation(adata, use_rep="X_pca")
    """
    x = get_representation(adata, use_rep)
    where = "adata.X" if use_rep == "X" else f"adata.obsm[{use_rep!r}]"
    logger.info("%s is usable: %d cells × %d dimensions", where, x.shape[0], x.shape[1])
