"""Validation of the options shared by the public functions (keys, seeds, progress, methods)."""

from __future__ import annotations

import math
import re
import sys
from typing import Any, Literal

import numpy as np

from vgfm._data._format import is_real_number

__all__ = [
    "VELOCITY_KINDS",
    "Method",
    "VelocityKind",
    "check_finite_time",
    "resolve_progress",
    "validate_key",
    "validate_seed",
]

#: A name in the method table :mod:`vgfm._core.methods` (``"vgfm"``, ``"otcfm"``, …).
Method = str

VelocityKind = Literal["stream", "grid", "arrows"]
VELOCITY_KINDS: tuple[str, ...] = ("stream", "grid", "arrows")

_KEY_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_MAX_SEED = 2**63


def validate_key(key: Any, name: str = "key_added") -> str:
    """Return ``key`` if it is a usable field prefix, else raise naming the option.

    Keys become ``.h5ad`` group names: ``/`` would create nested groups that ``read_h5ad``
    cannot open and ``""`` spills fields into the root of ``uns``.

    Examples
    --------
    >>> validate_key("run1.seed-0")
    'run1.seed-0'
    >>> validate_key("run1/seed0")
    Traceback (most recent call last):
    ...
    ValueError: key_added='run1/seed0' is not a valid key: use letters, digits, '_', '.' or '-' only (it names .h5ad groups), e.g. key_added='run1_seed0'.
    """
    if not isinstance(key, str):
        raise TypeError(f"{name} must be a str, got {type(key).__name__} {key!r}.")
    if not _KEY_RE.fullmatch(key):
        suggestion = re.sub(r"[^A-Za-z0-9_.\-]+", "_", key).strip("_") or "vgfm"
        raise ValueError(
            f"{name}={key!r} is not a valid key: use letters, digits, '_', '.' or '-' only "
            f"(it names .h5ad groups), e.g. {name}={suggestion!r}."
        )
    return key


def validate_seed(seed: Any, name: str = "seed") -> int:
    """Return ``seed`` as an ``int`` in ``[0, 2**63)``, else raise naming the option.

    Examples
    --------
    >>> validate_seed(3)
    3
    >>> validate_seed(None)
    Traceback (most recent call last):
    ...
    TypeError: seed must be an int in [0, 2**63), got None; pass e.g. seed=0 (the same seed gives the same numbers).
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            f"{name} must be an int in [0, 2**63), got {seed!r}; pass e.g. {name}=0 (the same "
            "seed gives the same numbers)."
        )
    if not 0 <= int(seed) < _MAX_SEED:
        raise ValueError(
            f"{name} must be an int in [0, 2**63), got {seed!r}; pass a smaller non-negative "
            f"seed, e.g. {name}={int(seed) % _MAX_SEED}."
        )
    return int(seed)


def resolve_progress(progress: bool | None) -> bool:
    """``progress=None`` shows progress bars only when stderr is a terminal.

    Examples
    --------
    >>> resolve_progress(False), resolve_progress(True)
    (False, True)
    """
    if progress is None:
        stream = sys.stderr
        return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True, False or None, got {progress!r}.")
    return bool(progress)


def check_finite_time(value: Any, name: str) -> float:
    """A finite float time, or an error naming the option.

    Examples
    --------
    >>> check_finite_time(2, "time")
    2.0
    >>> check_finite_time(float("nan"), "time")
    Traceback (most recent call last):
    ...
    ValueError: time=nan is not a finite number; pass a time point of the fit (a label or its numeric time).
    """
    if not is_real_number(value) or not math.isfinite(float(value)):
        raise ValueError(
            f"{name}={value!r} is not a finite number; pass a time point of the fit (a label or "
            "its numeric time)."
        )
    return float(value)
