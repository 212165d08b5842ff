"""Private validators shared by :mod:`vgfm.pp` and :mod:`vgfm.tl`.

Everything here *reads* an AnnData object and returns new arrays; nothing here writes to
``adata``.  :func:`vgfm.tl.fit` calls these helpers directly, so running :mod:`vgfm.pp`
beforehand is optional.  Every error names the field, what was expected, what was found and
what to do about it.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from vgfm import _constants

logger = logging.getLogger("vgfm")

__all__ = [
    "TimeMapping",
    "cells_per_time",
    "check_holdout_time",
    "get_representation",
    "population_size_key",
    "population_sizes_or_default",
    "resolve_population_size",
    "resolve_times",
    "stored_population_size",
]

# One unsigned decimal number ("2", "14.5", ".5", "3."), optionally preceded by a sign when the
# sign does not follow a letter/digit: "t=-3" -> -3, but "day-2" -> 2 (the dash is a separator).
_NUMBER_RE = re.compile(r"(?:(?<![A-Za-z0-9_.])[-+])?(?:\d+(?:\.\d*)?|\.\d+)")

_MAX_LISTED = 10


# --------------------------------------------------------------------------------------------
# small formatting helpers
# --------------------------------------------------------------------------------------------
def _fmt_list(items: Iterable[Any], limit: int = _MAX_LISTED) -> str:
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:limit])
    if len(items) > limit:
        shown += f", … ({len(items) - limit} more)"
    return f"[{shown}]"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _is_real_number(x: Any) -> bool:
    """True for Python/numpy real numbers, False for bools and everything else."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _format_number(v: float) -> str:
    v = float(v)
    if math.isfinite(v) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _label_of(x: Any) -> str:
    """Canonical string label of a raw time value (numbers: ``2.0 -> "2"``, ``2.5 -> "2.5"``)."""
    if _is_real_number(x):
        return _format_number(float(x))
    return str(x)


def _parse_number(label: str) -> float | None:
    """Parse the single number inside a time label, or return ``None``.

    ``"day 2" -> 2``, ``"D4" -> 4``, ``"E14.5" -> 14.5``, ``"8h" -> 8``, ``"t=3" -> 3``,
    ``"12 hours" -> 12``, ``"1e3" -> 1000``.  Labels with zero or several numbers give ``None``.
    """
    text = label.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        # float() accepts "nan"/"inf": those are not time points
        return value if math.isfinite(value) else None
    found = _NUMBER_RE.findall(text)
    if len(found) != 1:
        return None
    return float(found[0])


# --------------------------------------------------------------------------------------------
# time mapping
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TimeMapping:
    """Ordered correspondence between time labels and numeric time values.

    Parameters
    ----------
    labels
        One label per time point, earliest first (as found in ``adata.obs[time_key]``).
    values
        Numeric time of each label (float64, strictly increasing), in the user's time unit.

    Examples
    --------
    >>> m = TimeMapping(("day 0", "day 2"), np.array([0.0, 2.0]))
    >>> m.n_times
    2
    >>> TimeMapping.from_dict(m.to_dict()) == m
    True
    """

    labels: tuple[str, ...]
    values: np.ndarray = field(repr=True)

    def __post_init__(self) -> None:
        labels = tuple(str(x) for x in self.labels)
        values = np.array(self.values, dtype=np.float64, copy=True).reshape(-1)
        if len(labels) != values.shape[0]:
            raise ValueError(
                f"TimeMapping: got {len(labels)} labels but {values.shape[0]} values; "
                "expected one value per label."
            )
        if len(labels) == 0:
            raise ValueError("TimeMapping: expected at least one time point, got none.")
        if len(set(labels)) != len(labels):
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            raise ValueError(f"TimeMapping: labels must be unique; repeated: {_fmt_list(dupes)}.")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"TimeMapping: values must be finite, got {values.tolist()}.")
        if values.shape[0] > 1 and not np.all(np.diff(values) > 0):
            raise ValueError(
                f"TimeMapping: values must be strictly increasing, got {values.tolist()}."
            )
        values.setflags(write=False)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "values", values)

    # -- comparisons ------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeMapping):
            return NotImplemented
        return self.labels == other.labels and np.array_equal(self.values, other.values)

    def __hash__(self) -> int:
        return hash((self.labels, self.values.tobytes()))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_times(self) -> int:
        """Number of time points ``K``."""
        return len(self.labels)

    # -- lookup -----------------------------------------------------------------------------
    def find(self, key: Any) -> int | None:
        """Index of a time point given its label (str) or numeric value; ``None`` if absent.

        Strings are matched against the labels first, then (if they parse as a number)
        against the values; numbers are matched against the values (``np.isclose``).
        """
        if isinstance(key, (bool, np.bool_)):
            return None
        if isinstance(key, str):
            if key in self.labels:
                return self.labels.index(key)
            try:
                key = float(key)
            except ValueError:
                return None
        if _is_real_number(key):
            hits = np.flatnonzero(np.isclose(self.values, float(key), rtol=1e-9, atol=1e-12))
            if hits.size == 1:
                return int(hits[0])
            label = _label_of(key)
            if label in self.labels:
                return self.labels.index(label)
        return None

    # -- h5ad round trip --------------------------------------------------------------------
    def to_dict(self) -> dict[str, np.ndarray]:
        """``{"labels": str array, "values": float64 array}``, storable in ``adata.uns``."""
        return {
            "labels": np.array(self.labels, dtype=str),
            "values": np.array(self.values, dtype=np.float64),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TimeMapping:
        """Rebuild a mapping written by :meth:`to_dict` (e.g. read back from ``.h5ad``)."""
        if not isinstance(d, Mapping) or "labels" not in d or "values" not in d:
            found = sorted(d) if isinstance(d, Mapping) else type(d).__name__
            raise ValueError(
                f"time mapping: expected a dict with keys 'labels' and 'values', found {found}."
            )
        labels = np.asarray(d["labels"]).reshape(-1)
        return cls(tuple(str(x) for x in labels), np.asarray(d["values"], dtype=np.float64))


def cells_per_time(times: np.ndarray, mapping: TimeMapping) -> np.ndarray:
    """Number of cells at each time point of ``mapping`` (int64, shape ``(K,)``)."""
    times = np.asarray(times, dtype=np.float64)
    return np.array([(times == v).sum() for v in mapping.values], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# resolve_times
# --------------------------------------------------------------------------------------------
def _check_time_key(adata: Any, time_key: str) -> pd.Series:
    if not isinstance(time_key, str):
        raise TypeError(f"time_key must be a str naming an adata.obs column, got {time_key!r}.")
    if time_key not in adata.obs.columns:
        raise KeyError(
            f"time_key={time_key!r} is not a column of adata.obs; available .obs columns: "
            f"{_fmt_list(adata.obs.columns, limit=50)}. Pass time_key= naming the column that "
            "holds each cell's time point."
        )
    return adata.obs[time_key]


def _validate_order_values(
    order: Sequence | None, values: Sequence[float] | None
) -> tuple[list[str], np.ndarray] | None:
    if order is None:
        if values is not None:
            raise ValueError(
                "values= was given without order=; expected order= (the time labels, earliest "
                "first) together with values= (one number per label)."
            )
        return None
    if isinstance(order, (str, bytes)) or not isinstance(order, Iterable):
        raise TypeError(
            f"order must be a list of time labels (earliest first), got {type(order).__name__} "
            f"{order!r}."
        )
    order_labels = [_label_of(x) for x in order]
    if len(order_labels) == 0:
        raise ValueError("order is empty; expected the time labels, earliest first.")
    if len(set(order_labels)) != len(order_labels):
        dupes = sorted({x for x in order_labels if order_labels.count(x) > 1})
        raise ValueError(f"order lists some labels more than once: {_fmt_list(dupes)}.")
    if values is None:
        vals = np.arange(len(order_labels), dtype=np.float64)
    else:
        if isinstance(values, (str, bytes)):
            raise TypeError(f"values must be a sequence of numbers, got {values!r}.")
        try:
            vals = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise TypeError(f"values must be a sequence of numbers, got {values!r}.") from err
        if vals.shape[0] != len(order_labels):
            raise ValueError(
                f"values has {vals.shape[0]} entries but order has {len(order_labels)}; "
                "expected one numeric time per label in order."
            )
        if not np.all(np.isfinite(vals)):
            raise ValueError(f"values must be finite numbers, got {vals.tolist()}.")
        if not np.all(np.diff(vals) > 0):
            raise ValueError(
                f"values must be strictly increasing (they follow order, earliest first), got "
                f"{vals.tolist()} for order {order_labels}."
            )
    return order_labels, vals


def resolve_times(
    adata: Any,
    time_key: str,
    *,
    order: Sequence | None = None,
    values: Sequence[float] | None = None,
) -> tuple[np.ndarray, TimeMapping]:
    """Numeric time of every cell, and the label ↔ value mapping of the time points.

    Parameters
    ----------
    adata
        Annotated data matrix; only ``adata.obs[time_key]`` is read.
    time_key
        ``.obs`` column with each cell's time point: numbers, or labels with one number inside
        (``"day 2"``, ``"D4"``, ``"E14.5"``, ``"8h"``, ``"t=3"``, ``"12 hours"``).
    order
        Time labels, earliest first. Required when labels contain no number (``"early"``).
    values
        Numeric times of the labels in ``order`` (default ``0, 1, 2, …``).

    Returns
    -------
    times
        float64 array ``(n_obs,)``.
    mapping
        :class:`TimeMapping` with the ``K >= 2`` observed time points in increasing order.

    Examples
    --------
    >>> times, mapping = resolve_times(adata, "day")  # obs["day"] in {"day 0", "day 2"}
    >>> mapping.values
    array([0., 2.])
    """
    col = _check_time_key(adata, time_key)
    field_name = f"adata.obs[{time_key!r}]"
    n_obs = int(adata.n_obs)
    spec = _validate_order_values(order, values)
    if n_obs == 0:
        raise ValueError(
            f"{field_name} has 0 distinct time points (adata has no cells); VGFM needs at least 2."
        )

    n_missing = int(col.isna().sum())
    if n_missing:
        raise ValueError(
            f"{field_name} has {_plural(n_missing, 'cell')} without a time point (NaN/missing) "
            f"out of {n_obs}; every cell needs one. Drop them first, e.g. "
            f"adata = adata[adata.obs[{time_key!r}].notna()].copy()."
        )

    codes, uniques = pd.factorize(col, sort=False)
    raw_uniques = list(uniques)
    # canonical label per distinct raw value; merge raw values sharing a label (2 and "2")
    distinct_labels: list[str] = []
    label_pos: dict[str, int] = {}
    raw_to_label = np.empty(len(raw_uniques), dtype=np.int64)
    raw_values: list[float | None] = []
    for j, raw in enumerate(raw_uniques):
        lab = _label_of(raw)
        if lab not in label_pos:
            label_pos[lab] = len(distinct_labels)
            distinct_labels.append(lab)
            raw_values.append(float(raw) if _is_real_number(raw) else None)
        raw_to_label[j] = label_pos[lab]
    cell_label = raw_to_label[codes]

    if spec is None:
        label_values = []
        unparseable = []
        non_finite = []
        for lab, rv in zip(distinct_labels, raw_values):
            v = rv if rv is not None else _parse_number(lab)
            if v is None:
                unparseable.append(lab)
            elif not math.isfinite(v):
                non_finite.append(lab)
            label_values.append(v)
        if non_finite:
            n_bad = int(np.isin(cell_label, [label_pos[x] for x in non_finite]).sum())
            raise ValueError(
                f"{field_name} has non-finite time values {_fmt_list(non_finite)} in "
                f"{_plural(n_bad, 'cell')}; expected finite numbers. Drop or fix those cells."
            )
        if unparseable:
            raise ValueError(
                f"{field_name} has time labels with no single number to read a time from: "
                f"{_fmt_list(unparseable)} (expected numbers or labels such as 'day 2', 'E14.5', "
                "'8h'). Pass order=[...] with the labels earliest first, and optionally "
                "values=[...] with their numeric times (default 0, 1, 2, …)."
            )
        by_value: dict[float, list[str]] = {}
        for lab, v in zip(distinct_labels, label_values):
            by_value.setdefault(float(v), []).append(lab)
        clashes = [labs for labs in by_value.values() if len(labs) > 1]
        if clashes:
            desc = "; ".join(
                f"{_fmt_list(labs)} -> {_format_number(label_values[label_pos[labs[0]]])}"
                for labs in clashes
            )
            raise ValueError(
                f"{field_name} has different labels that parse to the same time: {desc}. "
                "Harmonise the labels, or pass order=[...] and values=[...] explicitly."
            )
        sort_idx = np.argsort(np.asarray(label_values, dtype=np.float64), kind="stable")
        mapping_labels = [distinct_labels[i] for i in sort_idx]
        mapping_values = np.asarray(label_values, dtype=np.float64)[sort_idx]
    else:
        order_labels, order_values = spec
        absent_from_order = [lab for lab in distinct_labels if lab not in order_labels]
        if absent_from_order:
            n_bad = int(np.isin(cell_label, [label_pos[x] for x in absent_from_order]).sum())
            raise ValueError(
                f"{field_name} has time labels missing from order: {_fmt_list(absent_from_order)} "
                f"({_plural(n_bad, 'cell')}); order={order_labels}. Add them to order= (earliest "
                "first) or remove those cells."
            )
        present = set(distinct_labels)
        unused = [lab for lab in order_labels if lab not in present]
        if unused:
            logger.warning(
                "order lists %s with no cells in %s; ignoring them.",
                _fmt_list(unused),
                field_name,
            )
        keep = [i for i, lab in enumerate(order_labels) if lab in present]
        mapping_labels = [order_labels[i] for i in keep]
        mapping_values = order_values[keep]

    n_times = len(mapping_labels)
    if n_times < 2:
        raise ValueError(
            f"{field_name} has {_plural(n_times, 'distinct time point')} "
            f"({_fmt_list(mapping_labels)}); VGFM needs at least 2."
        )

    label_to_k = {lab: k for k, lab in enumerate(mapping_labels)}
    k_of_distinct = np.array([label_to_k[lab] for lab in distinct_labels], dtype=np.int64)
    cell_k = k_of_distinct[cell_label]
    counts = np.bincount(cell_k, minlength=n_times)
    small = [(mapping_labels[k], int(counts[k])) for k in range(n_times) if counts[k] < 2]
    if small:
        desc = ", ".join(f"{lab!r} ({_plural(c, 'cell')})" for lab, c in small)
        raise ValueError(
            f"{field_name} has time points with fewer than 2 cells: {desc}; VGFM needs at least "
            "2 cells per time point. Remove or merge those time points."
        )

    mapping = TimeMapping(tuple(mapping_labels), mapping_values)
    times = np.asarray(mapping.values[cell_k], dtype=np.float64).copy()
    return times, mapping


# --------------------------------------------------------------------------------------------
# representation
# --------------------------------------------------------------------------------------------
def get_representation(adata: Any, use_rep: str) -> np.ndarray:
    """Dense float32, C-contiguous **copy** of ``adata.obsm[use_rep]`` (or ``adata.X``).

    Parameters
    ----------
    adata
        Annotated data matrix, loaded in memory.
    use_rep
        An ``.obsm`` key (e.g. ``"X_pca"``) or ``"X"``.

    Returns
    -------
    float32 array ``(n_obs, d)`` that shares no memory with ``adata``.

    Examples
    --------
    >>> x = get_representation(adata, "X_pca")
    >>> x.dtype, x.flags["C_CONTIGUOUS"]
    (dtype('float32'), True)
    """
    if not isinstance(use_rep, str):
        raise TypeError(f"use_rep must be a str (an .obsm key or 'X'), got {use_rep!r}.")
    if getattr(adata, "isbacked", False):
        raise ValueError(
            f"adata is backed on disk ({adata.filename}); VGFM needs the representation "
            f"{use_rep!r} in memory. Load it first with adata = adata.to_memory()."
        )
    if use_rep == "X":
        field_name = "adata.X"
        mat = adata.X
        if mat is None:
            raise ValueError(
                "adata.X is None; expected a cells × features matrix. Pass use_rep= naming an "
                f".obsm key instead (available: {_fmt_list(adata.obsm.keys())})."
            )
    else:
        field_name = f"adata.obsm[{use_rep!r}]"
        if use_rep not in adata.obsm:
            raise KeyError(
                f"use_rep={use_rep!r} is not a key of adata.obsm; available .obsm keys: "
                f"{_fmt_list(adata.obsm.keys(), limit=50)} (or use_rep='X'). Compute it first, "
                "e.g. sc.pp.pca(adata) for use_rep='X_pca'."
            )
        mat = adata.obsm[use_rep]

    if isinstance(mat, pd.DataFrame):
        mat = mat.to_numpy()

    if sparse.issparse(mat):
        n_rows, n_cols = mat.shape
        limit = _constants.MAX_DENSIFY_ENTRIES
        if n_rows * n_cols > limit:
            raise ValueError(
                f"{field_name} is sparse with {n_rows} × {n_cols} = {n_rows * n_cols:,} entries, "
                f"more than VGFM densifies ({limit:,}). Compute a low-dimensional "
                "representation first, e.g. sc.pp.pca(adata), and pass use_rep='X_pca'."
            )
        arr = np.array(mat.toarray(), dtype=np.float32, order="C", copy=True)
    else:
        try:
            arr = np.array(mat, dtype=np.float32, order="C", copy=True)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{field_name} could not be converted to a float array "
                f"(found {type(mat).__name__}); expected a numeric cells × features matrix."
            ) from err

    if arr.ndim != 2:
        raise ValueError(
            f"{field_name} has {arr.ndim} dimension(s) with shape {arr.shape}; expected a 2-D "
            "cells × features matrix."
        )
    if arr.shape[0] != adata.n_obs:
        raise ValueError(
            f"{field_name} has {arr.shape[0]} rows but adata has {adata.n_obs} cells; expected "
            "one row per cell."
        )
    if arr.shape[1] == 0:
        raise ValueError(
            f"{field_name} has 0 columns; expected at least one feature. Pass use_rep= naming a "
            "non-empty representation."
        )
    bad_rows = ~np.isfinite(arr).all(axis=1)
    n_bad = int(bad_rows.sum())
    if n_bad:
        examples = list(np.asarray(adata.obs_names)[bad_rows][:5])
        accessor = "adata.X" if use_rep == "X" else f"adata.obsm[{use_rep!r}]"
        raise ValueError(
            f"{field_name} has non-finite values (NaN or ±inf, also float32 overflow) in "
            f"{_plural(n_bad, 'cell')} (rows) out of {arr.shape[0]}, e.g. {_fmt_list(examples)}. "
            f"Remove those cells, e.g. adata = adata[np.isfinite({accessor}).all(axis=1)].copy() "
            "(densify a sparse X first), or recompute the representation."
        )
    return arr


# --------------------------------------------------------------------------------------------
# population sizes
# --------------------------------------------------------------------------------------------
def _time_points_desc(mapping: TimeMapping) -> str:
    return _fmt_list(mapping.labels, limit=50)


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
        problems.append(f"no size for time points {_fmt_list(missing)}")
    if unknown:
        problems.append(f"keys that match no time point {_fmt_list(unknown)}")
    if repeated:
        problems.append(f"several keys for the same time point {_fmt_list(repeated)}")
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


def population_size_key(key: str = _constants.DEFAULT_KEY) -> str:
    """``adata.uns`` key written by :func:`vgfm.pp.population_size`."""
    return f"{key}_population_size"


def stored_population_size(adata: Any, key: str, mapping: TimeMapping) -> np.ndarray | None:
    """Population sizes stored by :func:`vgfm.pp.population_size`, aligned to ``mapping``.

    Returns ``None`` when ``adata.uns[f"{key}_population_size"]`` does not exist. Entries are
    matched by label, or else by numeric time value; stored time points absent from ``mapping``
    (e.g. after subsetting cells) are ignored.

    Examples
    --------
    >>> sizes = stored_population_size(adata, "vgfm", mapping)
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
                    f"it stores labels {_fmt_list(labels)}. Re-run vgfm.pp.population_size with "
                    "the same time_key, or pass population_size= to vgfm.tl.fit."
                )
            out.append(sizes[hits[0]])
    try:
        return _as_float_sizes(out, mapping)
    except ValueError as err:
        raise ValueError(f"{field_name}: {err}") from err


# --------------------------------------------------------------------------------------------
# hold-out time
# --------------------------------------------------------------------------------------------
def check_holdout_time(holdout_time: Any, mapping: TimeMapping) -> int | None:
    """Index ``k`` of the time point to hold out, or ``None``.

    Parameters
    ----------
    holdout_time
        ``None``, a time label (str) or a numeric time value.
    mapping
        The time points, from :func:`resolve_times`.

    Returns
    -------
    ``None`` or an index ``0 < k < K - 1`` (an interior time point).

    Examples
    --------
    >>> check_holdout_time("day 2", mapping)  # labels day 0, day 2, day 4
    1
    """
    if holdout_time is None:
        return None
    k = mapping.find(holdout_time)
    if k is None:
        raise ValueError(
            f"holdout_time={holdout_time!r} is not one of the time points; available labels "
            f"{_time_points_desc(mapping)} (values {mapping.values.tolist()})."
        )
    if k == 0 or k == mapping.n_times - 1:
        which = "first" if k == 0 else "last"
        interior = list(mapping.labels[1:-1])
        hint = (
            f"choose an interior time point: {_fmt_list(interior)}"
            if interior
            else "with only 2 time points none can be held out; pass holdout_time=None"
        )
        raise ValueError(
            f"holdout_time={holdout_time!r} is the {which} time point ({mapping.labels[k]!r}); "
            "it cannot be held out because there is nothing to interpolate between. "
            f"{hint[0].upper()}{hint[1:]}."
        )
    return int(k)


def population_sizes_or_default(
    adata: Any, population_size: Any, key: str, mapping: TimeMapping, n_cells: np.ndarray
) -> np.ndarray:
    """``N_k`` as :func:`vgfm.tl.fit` uses them: the argument, else the sizes stored by
    :func:`vgfm.pp.population_size` under ``key``, else the cell counts.

    Examples
    --------
    >>> import anndata, numpy as np, pandas as pd
    >>> ad = anndata.AnnData(np.zeros((4, 1)), obs=pd.DataFrame({"t": [0, 0, 1, 1]},
    ...                      index=list("abcd")))
    >>> times, m = resolve_times(ad, "t")
    >>> population_sizes_or_default(ad, None, "vgfm", m, cells_per_time(times, m)).tolist()
    [2.0, 2.0]
    """
    if population_size is None:
        stored = stored_population_size(adata, key, mapping)
        return stored if stored is not None else np.asarray(n_cells, dtype=float)
    return resolve_population_size(population_size, mapping, n_cells)
