"""Time points: one implementation of label parsing, ordering and the label -> time mapping.

Everything that turns ``adata.obs[time_key]`` into numbers goes through :func:`resolve_times`
(fitting, :mod:`vgfm.pp`) or :func:`cell_times` (readers: they reuse the mapping stored at fit
time). Rules, in order:

1. ``time_order=`` (labels, earliest first) and optional ``time_values=`` override everything.
2. An **ordered** categorical gives the order (Scanpy's way of recording it); its labels are
   parsed for the numeric times when that agrees with the order, otherwise they get
   ``0, 1, 2, …`` (with a WARNING).
3. :class:`pandas.Interval` labels (from :func:`pandas.cut`) are replaced by their midpoints.
4. Numbers are used as they are. Labels with one number are parsed **with their unit**:
   minutes (``"30min"``), hours (``"12h"``, ``"8 hours"``, ``"24hpf"``), days (``"day 2"``,
   ``"D4"``, ``"2d"``), weeks (``"week 1"``, ``"2w"``); ``"E14.5"`` is embryonic day 14.5 and
   ``"P3"`` postnatal day 3. Mixed units are converted to the **largest** unit present
   (``["12h", "1d"]`` -> days ``0.5, 1``). Mixing ``E`` and ``P`` labels assumes the mouse
   gestation of 19.5 days (``P0 = E19.5``, announced with a WARNING); pass ``time_values=``
   for another species. Labels that cannot be put on one axis (a unit next to none, days next
   to embryonic days, different unknown prefixes) are refused with the remedy.
5. A hyphen between a word and the number (``"day-1"``) is a separator when every label with
   that word has it (``"day-2", "day-7"`` -> 2, 7) and a minus sign otherwise
   (``"day-1", "day0", "day1"`` -> -1, 0, 1); a hyphen after a space or ``=`` is a sign.

The chosen unit and the label -> time mapping are logged at INFO.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vgfm._core.ode import grid_times
from vgfm._data._format import fmt_list, format_number, is_real_number, label_of, plural

logger = logging.getLogger("vgfm")

__all__ = [
    "start_cells_and_grid",
    "P0_IN_EMBRYONIC_DAYS",
    "TIME_RECENTRE_RATIO",
    "TimeMapping",
    "at_time",
    "bin_edges",
    "cell_times",
    "cells_per_time",
    "parse_time_labels",
    "remedy",
    "resolve_times",
    "time_origin",
]

#: Postnatal day 0 on the embryonic-day axis (mouse gestation, E19.5); used only when ``E``
#: and ``P`` labels are mixed.
P0_IN_EMBRYONIC_DAYS = 19.5

#: Above this many distinct time points with sparse cells a column is treated as continuous.
CONTINUOUS_MIN_TIMES = 20

_HOURS = {"minute": 1.0 / 60.0, "hour": 1.0, "day": 24.0, "week": 168.0}
_PREFIX_UNITS = {
    **dict.fromkeys(("day", "days", "d"), "day"),
    **dict.fromkeys(("hour", "hours", "h", "hr", "hrs"), "hour"),
    **dict.fromkeys(("week", "weeks", "wk", "wks", "w"), "week"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "minute"),
    "e": "embryonic day",
    "p": "postnatal day",
}
_SUFFIX_UNITS = {
    **dict.fromkeys(("d", "day", "days", "dpf", "dpi", "dpa"), "day"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours", "hpf", "hpi", "hpa"), "hour"),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), "week"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "minute"),
}
_GENERIC_PREFIXES = {"t", "time", "tp", "timepoint", "time point", "time_point"}
_DIGITS_RE = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def remedy(time_key: str) -> str:
    """The three ways out of an unreadable time column, for error messages.

    Examples
    --------
    >>> "time_order=" in remedy("day")
    True
    """
    return (
        "Pass time_order=[...] (the labels, earliest first) and optionally time_values=[...] "
        f"(their numeric times), make adata.obs[{time_key!r}] an ordered categorical, or store "
        f"numbers with vgfm.pp.numeric_time(adata, {time_key!r}, time_order=..., "
        "time_values=...)."
    )


# --------------------------------------------------------------------------------------------
# the mapping
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TimeMapping:
    """Ordered correspondence between time labels and numeric time values.

    Parameters
    ----------
    labels
        One label per time point, earliest first (as found in ``adata.obs[time_key]``).
    values
        Numeric time of each label (float64, strictly increasing), in ``unit``.
    unit
        Unit of ``values`` (``"day"``, ``"hour"``, ``"embryonic day"``, …); ``""`` when the
        labels carry none.

    Examples
    --------
    >>> m = TimeMapping(("day 0", "day 2"), np.array([0.0, 2.0]), unit="day")
    >>> m.n_times
    2
    >>> TimeMapping.from_dict(m.to_dict()) == m
    True
    """

    labels: tuple[str, ...]
    values: np.ndarray = field(repr=True)
    unit: str = ""

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
            raise ValueError(f"TimeMapping: labels must be unique; repeated: {fmt_list(dupes)}.")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"TimeMapping: values must be finite, got {values.tolist()}.")
        if values.shape[0] > 1 and not np.all(np.diff(values) > 0):
            raise ValueError(
                f"TimeMapping: values must be strictly increasing, got {values.tolist()}."
            )
        values.setflags(write=False)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "unit", str(self.unit))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeMapping):
            return NotImplemented
        return (
            self.labels == other.labels
            and np.array_equal(self.values, other.values)
            and self.unit == other.unit
        )

    def __hash__(self) -> int:
        return hash((self.labels, self.values.tobytes(), self.unit))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_times(self) -> int:
        """Number of time points ``K``."""
        return len(self.labels)

    def describe(self) -> str:
        """``"'day 0' -> 0, 'day 2' -> 2 (day)"``, for logs and errors.

        Examples
        --------
        >>> TimeMapping(("a", "b"), [0.0, 1.5]).describe()
        "'a' -> 0, 'b' -> 1.5 (no unit)"
        """
        pairs = ", ".join(f"{lab!r} -> {format_number(v)}" for lab, v in zip(self.labels,
                                                                             self.values))
        return f"{pairs} ({self.unit or 'no unit'})"

    def find(self, key: Any) -> int | None:
        """Index of a time point given its label (str) or numeric value; ``None`` if absent.

        Strings are matched against the labels first, then (if they parse as a number)
        against the values; numbers are matched against the values (``np.isclose``).

        Examples
        --------
        >>> m = TimeMapping(("day 0", "day 2"), np.array([0.0, 2.0]))
        >>> m.find("day 2"), m.find(2), m.find("2"), m.find(5)
        (1, 1, 1, None)
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
        if is_real_number(key):
            hits = np.flatnonzero(np.isclose(self.values, float(key), rtol=1e-9, atol=1e-12))
            if hits.size == 1:
                return int(hits[0])
            label = label_of(key)
            if label in self.labels:
                return self.labels.index(label)
        return None

    def to_dict(self) -> dict[str, Any]:
        """``{"labels", "values", "unit"}``, storable in ``adata.uns``.

        Examples
        --------
        >>> sorted(TimeMapping(("a",), [0.0]).to_dict())
        ['labels', 'unit', 'values']
        """
        return {
            "labels": np.array(self.labels, dtype=str),
            "values": np.array(self.values, dtype=np.float64),
            "unit": self.unit,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TimeMapping:
        """Rebuild a mapping written by :meth:`to_dict` (e.g. read back from ``.h5ad``).

        Examples
        --------
        >>> TimeMapping.from_dict({"labels": ["a", "b"], "values": [0, 1]}).values
        array([0., 1.])
        """
        if not isinstance(d, Mapping) or "labels" not in d or "values" not in d:
            found = sorted(d) if isinstance(d, Mapping) else type(d).__name__
            raise ValueError(
                f"time mapping: expected a dict with keys 'labels' and 'values', found {found}."
            )
        labels = np.asarray(d["labels"]).reshape(-1)
        return cls(
            tuple(str(x) for x in labels),
            np.asarray(d["values"], dtype=np.float64),
            unit=str(d.get("unit", "")),
        )


#: Times whose first point lies more than this many time spans from 0 are measured from the
#: first point (in float64) before any float32 computation: at that distance float32 still
#: resolves ~8e-6 of the span, beyond it the cast starts to merge time points (1e8 + [0, 1, 2]
#: all become 1e8). Below it the times are used exactly as given.
TIME_RECENTRE_RATIO = 64.0


def time_origin(times: Sequence[float]) -> float:
    """Offset subtracted (in float64) from the times before any float32 computation.

    The first time point when it lies more than :data:`TIME_RECENTRE_RATIO` spans from 0,
    else ``0.0`` (ordinary times such as days 0-20 are left exactly as they are).

    Examples
    --------
    >>> time_origin([0.0, 1.0, 2.0]), time_origin([1e8, 1e8 + 1, 1e8 + 2])
    (0.0, 100000000.0)
    """
    vals = np.asarray(times, dtype=np.float64).reshape(-1)
    if len(vals) == 0:
        return 0.0
    first, span = float(vals.min()), float(vals.max() - vals.min())
    return first if abs(first) > TIME_RECENTRE_RATIO * span else 0.0


def at_time(cell_times: np.ndarray, t: float, fitted_times: Sequence[float]) -> np.ndarray:
    """Boolean mask of the cells whose time is the fitted time point ``t``.

    ``np.isclose`` (relative tolerance 1e-5), capped at a thousandth of the smallest gap
    between fitted time points: with times such as ``1e8 + [0, 0.5, 1]`` (seconds since an
    epoch) a purely relative tolerance would merge the time points.

    Examples
    --------
    >>> at_time(np.array([1e8, 1e8 + 0.5]), 1e8, [1e8, 1e8 + 0.5]).tolist()
    [True, False]
    """
    ct = np.asarray(cell_times, dtype=np.float64)
    fitted = np.unique(np.asarray(fitted_times, dtype=np.float64))
    mask = np.isclose(ct, t)
    if len(fitted) > 1:
        mask &= np.abs(ct - t) <= 1e-3 * float(np.diff(fitted).min())
    return mask


def cells_per_time(times: np.ndarray, mapping: TimeMapping) -> np.ndarray:
    """Number of cells at each time point of ``mapping`` (int64, shape ``(K,)``).

    Examples
    --------
    >>> cells_per_time(np.array([0.0, 2.0, 2.0]), TimeMapping(("0", "2"), [0.0, 2.0]))
    array([1, 2])
    """
    times = np.asarray(times, dtype=np.float64)
    return np.array([(times == v).sum() for v in mapping.values], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# parsing one label
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Parsed:
    number: float  # unsigned number read (sign applied when unambiguous)
    unit: str  # "" (none), "minute", "hour", "day", "week", "embryonic day", "postnatal day"
    word: str  # normalised text around the number, for consistency checks
    hyphen: bool  # "word-number": the hyphen may be a separator or a minus sign


def _parse_one(label: str) -> _Parsed | None:
    text = label.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return _Parsed(value, "", "", False) if math.isfinite(value) else None
    found = list(_DIGITS_RE.finditer(text))
    if len(found) != 1:
        return None
    m = found[0]
    number = float(m.group(0))
    before, after = text[: m.start()], text[m.end() :]
    hyphen = False
    if before.endswith(("-", "+", "\u2212")):
        sign = -1.0 if before[-1] in "-\u2212" else 1.0
        prev = before[:-1]
        if prev and (prev[-1].isalnum()):
            hyphen = sign < 0  # "day-1": separator or sign, decided on the whole column
        else:
            number *= sign
        before = prev
    pre = before.strip(" _=:-(").lower()
    post = after.strip(" _.)").lower()
    if not pre and post in _SUFFIX_UNITS:
        return _Parsed(number, _SUFFIX_UNITS[post], post, hyphen)
    if not post and pre in _PREFIX_UNITS:
        return _Parsed(number, _PREFIX_UNITS[pre], pre, hyphen)
    if pre in _GENERIC_PREFIXES and post in _SUFFIX_UNITS:
        return _Parsed(number, _SUFFIX_UNITS[post], post, hyphen)
    if pre in _GENERIC_PREFIXES:
        pre = "t"
    return _Parsed(number, "", f"{pre}|{post}", hyphen)


def parse_time_labels(labels: Sequence[str], field_name: str = "time labels",
                      time_key: str = "time") -> tuple[np.ndarray, str]:
    """Numeric time of each label on one axis, and its unit.

    Parameters
    ----------
    labels
        Distinct labels (e.g. ``["12h", "1d", "2d"]``).
    field_name
        Name of the field, for error messages.
    time_key
        Name of the ``.obs`` column, for the remedy in error messages.

    Returns
    -------
    values
        float64 ``(len(labels),)``, in ``unit``.
    unit
        ``""`` when the labels carry none.

    Examples
    --------
    >>> parse_time_labels(["12h", "24h", "36h", "2d", "3d"])
    (array([0.5, 1. , 1.5, 2. , 3. ]), 'day')
    >>> parse_time_labels(["day-1", "day0", "day1"])[0]
    array([-1.,  0.,  1.])
    """
    parsed = {lab: _parse_one(lab) for lab in labels}
    bad = [lab for lab, p in parsed.items() if p is None]
    if bad:
        raise ValueError(
            f"{field_name} has time labels with no single number to read a time from: "
            f"{fmt_list(bad)} (expected numbers or labels such as 'day 2', 'E14.5', '8h'). "
            + remedy(time_key)
        )
    items: dict[str, _Parsed] = {lab: p for lab, p in parsed.items() if p is not None}
    # hyphens: a separator when every label with the same word has one, otherwise a sign
    numbers: dict[str, float] = {}
    for lab, p in items.items():
        number = p.number
        if p.hyphen:
            same_word = [q for q in items.values() if q.word == p.word]
            if not all(q.hyphen for q in same_word):
                number = -number
                logger.info("time label %r: reading '-' as a minus sign (%s)", lab,
                            format_number(number))
        numbers[lab] = number

    units = {p.unit for p in items.values()}
    if "" in units and len(units) > 1:
        with_unit = [lab for lab, p in items.items() if p.unit]
        without = [lab for lab, p in items.items() if not p.unit]
        raise ValueError(
            f"{field_name} mixes labels with a time unit {fmt_list(with_unit, 5)} and labels "
            f"without one {fmt_list(without, 5)}; they cannot be put on one time axis. "
            + remedy(time_key)
        )
    if units == {""}:
        words = sorted({p.word for p in items.values()})
        if len(words) > 1:
            examples = [next(lab for lab, p in items.items() if p.word == w) for w in words]
            raise ValueError(
                f"{field_name} mixes label prefixes {fmt_list(examples, 5)}; VGFM cannot tell "
                "how they relate in time. " + remedy(time_key)
            )
        return np.array([numbers[lab] for lab in labels], dtype=np.float64), ""

    developmental = units & {"embryonic day", "postnatal day"}
    clock = units - developmental
    if developmental and clock:
        raise ValueError(
            f"{field_name} mixes developmental stages (E/P) with clock times "
            f"({', '.join(sorted(clock))}); they count from different origins. "
            + remedy(time_key)
        )
    if developmental:
        if developmental == {"embryonic day", "postnatal day"}:
            logger.warning(
                "%s mixes embryonic (E) and postnatal (P) days; placing them on one axis of "
                "embryonic days with P0 = E%s (mouse gestation). Pass time_values= for another "
                "species.", field_name, format_number(P0_IN_EMBRYONIC_DAYS)
            )
            vals = [numbers[lab] + (P0_IN_EMBRYONIC_DAYS if items[lab].unit == "postnatal day"
                                    else 0.0) for lab in labels]
            return np.array(vals, dtype=np.float64), "embryonic day"
        (unit,) = developmental
        return np.array([numbers[lab] for lab in labels], dtype=np.float64), unit
    target = max(clock, key=_HOURS.__getitem__)
    vals = [numbers[lab] * _HOURS[items[lab].unit] / _HOURS[target] for lab in labels]
    return np.array(vals, dtype=np.float64), target


# --------------------------------------------------------------------------------------------
# resolve_times
# --------------------------------------------------------------------------------------------
def _check_time_key(adata: AnnData, time_key: str) -> pd.Series:
    if not isinstance(time_key, str):
        raise TypeError(f"time_key must be a str naming an adata.obs column, got {time_key!r}.")
    if time_key not in adata.obs.columns:
        raise KeyError(
            f"time_key={time_key!r} is not a column of adata.obs; available .obs columns: "
            f"{fmt_list(adata.obs.columns, limit=50)}. Pass time_key= naming the column that "
            "holds each cell's time point."
        )
    return adata.obs[time_key]


def _validate_order_values(
    order: Sequence | None, values: Sequence[float] | None
) -> tuple[list[str], np.ndarray] | None:
    if order is None:
        if values is not None:
            raise ValueError(
                "time_values= was given without time_order=; expected time_order= (the time "
                "labels, earliest first) together with time_values= (one number per label)."
            )
        return None
    if isinstance(order, (str, bytes)) or not isinstance(order, Iterable):
        raise TypeError(
            f"time_order must be a list of time labels (earliest first), got "
            f"{type(order).__name__} {order!r}."
        )
    order_labels = [label_of(x) for x in order]
    if len(order_labels) == 0:
        raise ValueError("time_order is empty; expected the time labels, earliest first.")
    if len(set(order_labels)) != len(order_labels):
        dupes = sorted({x for x in order_labels if order_labels.count(x) > 1})
        raise ValueError(f"time_order lists some labels more than once: {fmt_list(dupes)}.")
    if values is None:
        vals = np.arange(len(order_labels), dtype=np.float64)
    else:
        if isinstance(values, (str, bytes)):
            raise TypeError(f"time_values must be a sequence of numbers, got {values!r}.")
        try:
            vals = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"time_values must be a sequence of numbers, got {values!r}."
            ) from err
        if vals.shape[0] != len(order_labels):
            raise ValueError(
                f"time_values has {vals.shape[0]} entries but time_order has "
                f"{len(order_labels)}; expected one numeric time per label in time_order."
            )
        if not np.all(np.isfinite(vals)):
            raise ValueError(f"time_values must be finite numbers, got {vals.tolist()}.")
        if not np.all(np.diff(vals) > 0):
            raise ValueError(
                f"time_values must be strictly increasing (they follow time_order, earliest "
                f"first), got {vals.tolist()} for time_order {order_labels}."
            )
    return order_labels, vals


def _interval_mid(x: Any) -> float | None:
    if isinstance(x, pd.Interval):
        return float(x.mid)
    return None


def _from_order(spec, distinct_labels, cell_label, label_pos, field_name):
    order_labels, order_values = spec
    absent = [lab for lab in distinct_labels if lab not in order_labels]
    if absent:
        n_bad = int(np.isin(cell_label, [label_pos[x] for x in absent]).sum())
        raise ValueError(
            f"{field_name} has time labels missing from time_order: {fmt_list(absent)} "
            f"({plural(n_bad, 'cell')}); time_order={fmt_list(order_labels)}. Add them to "
            "time_order= (earliest first) or remove those cells."
        )
    present = set(distinct_labels)
    unused = [lab for lab in order_labels if lab not in present]
    if unused:
        logger.warning("time_order lists %s with no cells in %s; ignoring them.",
                       fmt_list(unused), field_name)
    keep = [i for i, lab in enumerate(order_labels) if lab in present]
    return [order_labels[i] for i in keep], np.asarray(order_values)[keep]


def resolve_times(
    adata: AnnData,
    time_key: str,
    *,
    order: Sequence | None = None,
    values: Sequence[float] | None = None,
    min_times: int = 2,
    min_cells: int = 2,
    log: bool = True,
) -> tuple[np.ndarray, TimeMapping]:
    """Numeric time of every cell, and the label ↔ value mapping of the time points.

    Parameters
    ----------
    adata
        Annotated data matrix; only ``adata.obs[time_key]`` is read.
    time_key
        ``.obs`` column with each cell's time point (see the module docstring for the rules).
    order
        Time labels, earliest first (the public ``time_order=``).
    values
        Numeric times of the labels in ``order`` (default ``0, 1, 2, …``; ``time_values=``).
    min_times, min_cells
        Least number of time points, and of cells per time point, accepted.
    log
        Log the label -> time mapping at INFO.

    Returns
    -------
    times
        float64 array ``(n_obs,)``.
    mapping
        :class:`TimeMapping` with the observed time points in increasing order.

    Examples
    --------
    >>> import anndata, pandas as pd
    >>> ad = anndata.AnnData(obs=pd.DataFrame({"t": ["12h", "12h", "1d", "1d"]},
    ...                                        index=list("abcd")))
    >>> times, mapping = resolve_times(ad, "t")
    >>> mapping.values, mapping.unit
    (array([0.5, 1. ]), 'day')
    """
    col = _check_time_key(adata, time_key)
    field_name = f"adata.obs[{time_key!r}]"
    n_obs = int(adata.n_obs)
    spec = _validate_order_values(order, values)
    if n_obs == 0:
        raise ValueError(
            f"{field_name} has 0 distinct time points (adata has no cells); VGFM needs at "
            f"least {min_times}."
        )
    n_missing = int(col.isna().sum())
    if n_missing:
        raise ValueError(
            f"{field_name} has {plural(n_missing, 'cell')} without a time point (NaN/missing) "
            f"out of {n_obs}; every cell needs one. Drop them first, e.g. "
            f"adata = adata[adata.obs[{time_key!r}].notna()].copy()."
        )

    codes, uniques = pd.factorize(col, sort=False)
    raw_uniques = list(uniques)
    distinct_labels: list[str] = []
    label_pos: dict[str, int] = {}
    raw_to_label = np.empty(len(raw_uniques), dtype=np.int64)
    raw_values: list[float | None] = []
    for j, raw in enumerate(raw_uniques):
        lab = label_of(raw)
        if lab not in label_pos:
            label_pos[lab] = len(distinct_labels)
            distinct_labels.append(lab)
            mid = _interval_mid(raw)
            raw_values.append(float(raw) if is_real_number(raw) else mid)
        raw_to_label[j] = label_pos[lab]
    cell_label = raw_to_label[codes]
    unit = ""

    ordered_cat = (
        spec is None
        and isinstance(col.dtype, pd.CategoricalDtype)
        and bool(col.dtype.ordered)
        and not all(v is not None for v in raw_values)
    )
    if spec is not None:
        mapping_labels, mapping_values = _from_order(spec, distinct_labels, cell_label,
                                                     label_pos, field_name)
    elif ordered_cat:
        present = set(distinct_labels)
        cat_order = [label_of(c) for c in col.dtype.categories if label_of(c) in present]
        try:
            parsed, unit = parse_time_labels(cat_order, field_name, time_key)
        except ValueError as err:
            parsed, why = None, str(err).split(". ")[0].split("; ")[0]
        else:
            why = "its parsed times do not increase in that order"
        if parsed is not None and np.all(np.diff(parsed) > 0):
            mapping_labels, mapping_values = cat_order, parsed
        else:
            unit = ""
            mapping_labels = cat_order
            mapping_values = np.arange(len(cat_order), dtype=np.float64)
            logger.warning(
                "%s is an ordered categorical; using its order with times 0, 1, 2, … (%s). "
                "Pass time_values= with the real times.", field_name, why
            )
    else:
        need = [lab for lab, rv in zip(distinct_labels, raw_values) if rv is None]
        non_finite = [lab for lab, rv in zip(distinct_labels, raw_values)
                      if rv is not None and not math.isfinite(rv)]
        if non_finite:
            n_bad = int(np.isin(cell_label, [label_pos[x] for x in non_finite]).sum())
            raise ValueError(
                f"{field_name} has non-finite time values {fmt_list(non_finite)} in "
                f"{plural(n_bad, 'cell')}; expected finite numbers. Drop or fix those cells."
            )
        parsed_values: dict[str, float] = {}
        if need:
            if len(need) < len(distinct_labels):
                numeric = [lab for lab in distinct_labels if lab not in need]
                # numbers next to labels: parse them together (a plain number has no unit)
                vals, unit = parse_time_labels(numeric + need, field_name, time_key)
                parsed_values = dict(zip(numeric + need, vals.tolist()))
            else:
                vals, unit = parse_time_labels(need, field_name, time_key)
                parsed_values = dict(zip(need, vals.tolist()))
        label_values = [
            rv if rv is not None and lab not in parsed_values else parsed_values[lab]
            for lab, rv in zip(distinct_labels, raw_values)
        ]
        by_value: dict[float, list[str]] = {}
        for lab, v in zip(distinct_labels, label_values):
            by_value.setdefault(float(v), []).append(lab)
        clashes = [labs for labs in by_value.values() if len(labs) > 1]
        if clashes:
            desc = "; ".join(
                f"{fmt_list(labs)} -> {format_number(label_values[label_pos[labs[0]]])}"
                for labs in clashes
            )
            raise ValueError(
                f"{field_name} has different labels that parse to the same time: {desc}. "
                "Harmonise the labels, or pass time_order=[...] and time_values=[...] "
                "explicitly."
            )
        sort_idx = np.argsort(np.asarray(label_values, dtype=np.float64), kind="stable")
        mapping_labels = [distinct_labels[i] for i in sort_idx]
        mapping_values = np.asarray(label_values, dtype=np.float64)[sort_idx]

    n_times = len(mapping_labels)
    label_to_k = {lab: k for k, lab in enumerate(mapping_labels)}
    k_of_distinct = np.array([label_to_k[lab] for lab in distinct_labels], dtype=np.int64)
    cell_k = k_of_distinct[cell_label]
    counts = np.bincount(cell_k, minlength=n_times)
    small = [(mapping_labels[k], int(counts[k])) for k in range(n_times) if counts[k] < min_cells]
    if small and n_times > CONTINUOUS_MIN_TIMES:
        raise ValueError(
            f"{field_name} looks continuous: {n_times} distinct times, "
            f"{plural(len(small), 'time')} with fewer than {min_cells} cells. VGFM needs a few "
            f"time points with many cells each: bin it first, e.g. vgfm.pp.bin_time(adata, "
            f"{time_key!r}, n_bins=8, key_added={time_key + '_bin'!r}), and fit with "
            f"time_key={time_key + '_bin'!r}."
        )
    if n_times < min_times:
        raise ValueError(
            f"{field_name} has {plural(n_times, 'distinct time point')} "
            f"({fmt_list(mapping_labels)}); VGFM needs at least {min_times}."
        )
    if small:
        desc = ", ".join(f"{lab!r} ({plural(c, 'cell')})" for lab, c in small[:10])
        raise ValueError(
            f"{field_name} has time points with fewer than {min_cells} cells: {desc}; VGFM "
            f"needs at least {min_cells} cells per time point. Remove or merge those time "
            "points."
        )
    mapping = TimeMapping(tuple(mapping_labels), mapping_values, unit=unit)
    if log:
        logger.info("time points of %s: %s", field_name, mapping.describe())
    times = np.asarray(mapping.values[cell_k], dtype=np.float64).copy()
    return times, mapping


def cell_times(
    adata: AnnData,
    time_key: str,
    mapping: TimeMapping | None = None,
    *,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
) -> np.ndarray:
    """Numeric time of every cell, for readers of a fit.

    Labels are looked up in ``mapping`` (the one stored at fit time) when every label is in
    it; numeric columns outside it are used as numbers when the fit's mapping is the identity;
    anything else is resolved as :func:`resolve_times` does, with ``time_order=`` /
    ``time_values=``, accepting a single time point.

    Examples
    --------
    >>> import anndata, pandas as pd
    >>> ad = anndata.AnnData(obs=pd.DataFrame({"day": ["early", "late"]}, index=["a", "b"]))
    >>> cell_times(ad, "day", TimeMapping(("early", "late"), [0.0, 2.0]))
    array([0., 2.])
    """
    if time_key not in adata.obs:
        raise KeyError(
            f"adata.obs[{time_key!r}] (the time key VGFM was fitted with) is missing; "
            f"available obs columns: {list(adata.obs.columns)}."
        )
    col = adata.obs[time_key]
    if col.isna().any():
        raise ValueError(
            f"adata.obs[{time_key!r}] has {plural(int(col.isna().sum()), 'cell')} without a "
            f"time point; drop them first, e.g. adata = adata[adata.obs[{time_key!r}].notna()]."
        )
    numeric = pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype,
                                                                    pd.CategoricalDtype)
    if time_order is None and mapping is not None:
        codes, uniques = pd.factorize(col, sort=False)
        labels = [label_of(u) for u in uniques]
        if all(lab in mapping.labels for lab in labels):
            lookup = np.array([mapping.values[mapping.labels.index(lab)] for lab in labels],
                              dtype=np.float64)
            return lookup[codes]
        identity = all(
            _parse_one(lab) is not None and _parse_one(lab).unit == ""
            and _parse_one(lab).word == "" and float(lab) == v
            for lab, v in zip(mapping.labels, mapping.values)
        )
        if numeric and identity:
            return np.asarray(col, dtype=np.float64)
    times, _ = resolve_times(adata, time_key, order=time_order, values=time_values,
                             min_times=1, min_cells=1, log=False)
    return times


def bin_edges(t: np.ndarray, n_bins: int, method: str) -> np.ndarray:
    """Edges of ``n_bins`` bins of ``t`` (``"quantile"``: equal counts; ``"uniform"``).

    Examples
    --------
    >>> bin_edges(np.arange(10.0), 2, "uniform")
    array([0. , 4.5, 9. ])
    """
    if method == "quantile":
        edges = np.quantile(t, np.linspace(0.0, 1.0, n_bins + 1))
    elif method == "uniform":
        edges = np.linspace(float(t.min()), float(t.max()), n_bins + 1)
    else:
        raise ValueError(f"method must be 'quantile' or 'uniform', got {method!r}.")
    return np.unique(edges)


def start_cells_and_grid(
    cell_times: np.ndarray,
    fitted_times: np.ndarray,
    t0: float,
    *,
    time_key: str,
    n_cells: int | None,
    seed: int,
    t_eval: Sequence[float] | None,
    n_per_interval: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Start cells and output times of a simulation (shared by ODE and SDE simulation).

    The start cells are those at ``t0`` (a uniform subsample of ``n_cells`` drawn with
    ``numpy.random.default_rng(seed)`` when given); the output times are ``t_eval`` (finite,
    not before ``t0``, with ``t0`` added) or every fitted time from ``t0`` on plus
    ``n_per_interval - 1`` points inside each interval.

    Examples
    --------
    >>> idx, grid = start_cells_and_grid(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0]), 0.0,
    ...                                  time_key="t", n_cells=None, seed=0, t_eval=None,
    ...                                  n_per_interval=2)
    >>> idx.tolist(), grid.tolist()
    ([0, 1], [0.0, 0.5, 1.0])
    """
    idx = np.flatnonzero(at_time(cell_times, t0, fitted_times))
    if len(idx) == 0:
        raise ValueError(f"no cells at start time {t0} in adata.obs[{time_key!r}]")
    if n_cells is not None:
        if n_cells < 1:
            raise ValueError(f"n_cells must be >= 1, got {n_cells}")
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(idx, min(n_cells, len(idx)), replace=False))
    if t_eval is None:
        grid = np.asarray(grid_times(fitted_times[fitted_times >= t0], n_per_interval))
    else:
        try:
            requested = np.asarray(t_eval, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise TypeError(f"t_eval must be a sequence of numbers, got {t_eval!r}.") from err
        if not np.all(np.isfinite(requested)):
            raise ValueError(
                f"t_eval must hold finite times, got {requested.tolist()}; drop NaN/inf."
            )
        grid = np.asarray(sorted(set(requested.tolist()) | {t0}))
        if grid[0] < t0:
            raise ValueError(f"t_eval must not start before start_time {t0}")
    if len(grid) < 2:
        raise ValueError(
            f"nothing to simulate: the output times {grid.tolist()} hold only the start time "
            f"{format_number(t0)}; pass t_eval= with later times or an earlier start_time."
        )
    return idx, grid
