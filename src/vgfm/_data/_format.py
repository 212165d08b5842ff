"""Small formatting helpers for error and log messages (no AnnData here)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["fmt_list", "format_number", "is_real_number", "label_of", "plural"]

MAX_LISTED = 10


def fmt_list(items: Iterable[Any], limit: int = MAX_LISTED) -> str:
    """``[a, b, … (n more)]`` with at most ``limit`` items shown.

    Examples
    --------
    >>> fmt_list(range(12), limit=3)
    '[0, 1, 2, … (9 more)]'
    """
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:limit])
    if len(items) > limit:
        shown += f", … ({len(items) - limit} more)"
    return f"[{shown}]"


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """``"1 cell"``, ``"2 cells"``.

    Examples
    --------
    >>> plural(1, "cell"), plural(3, "cell")
    ('1 cell', '3 cells')
    """
    return f"{n} {word if n == 1 else (plural_form or word + 's')}"


def is_real_number(x: Any) -> bool:
    """True for Python/numpy real numbers, False for bools and everything else.

    Examples
    --------
    >>> is_real_number(2.0), is_real_number(True), is_real_number("2")
    (True, False, False)
    """
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def format_number(v: float) -> str:
    """Shortest faithful text of a number: ``2.0 -> "2"``, ``2.5 -> "2.5"``.

    Examples
    --------
    >>> format_number(2.0), format_number(0.25)
    ('2', '0.25')
    """
    v = float(v)
    if math.isfinite(v) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def label_of(x: Any) -> str:
    """Canonical string label of a raw time value (numbers: ``2.0 -> "2"``).

    Examples
    --------
    >>> label_of(2.0), label_of("day 2")
    ('2', 'day 2')
    """
    if is_real_number(x):
        return format_number(float(x))
    return str(x)
