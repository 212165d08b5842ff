"""Hold-out: the interior time point left out of training to test interpolation."""

from __future__ import annotations

from typing import Any

from vgfm._data._format import fmt_list
from vgfm._data._times import TimeMapping

__all__ = ["check_holdout_time"]


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
    >>> mapping = TimeMapping(("day 0", "day 2", "day 4"), [0.0, 2.0, 4.0])
    >>> check_holdout_time("day 2", mapping)
    1
    """
    if holdout_time is None:
        return None
    k = mapping.find(holdout_time)
    if k is None:
        raise ValueError(
            f"holdout_time={holdout_time!r} is not one of the time points; available labels "
            f"{fmt_list(mapping.labels, limit=50)} (values {mapping.values.tolist()})."
        )
    if k == 0 or k == mapping.n_times - 1:
        which = "first" if k == 0 else "last"
        interior = list(mapping.labels[1:-1])
        hint = (
            f"choose an interior time point: {fmt_list(interior)}"
            if interior
            else "with only 2 time points none can be held out; pass holdout_time=None"
        )
        raise ValueError(
            f"holdout_time={holdout_time!r} is the {which} time point ({mapping.labels[k]!r}); "
            "it cannot be held out because there is nothing to interpolate between. "
            f"{hint[0].upper()}{hint[1:]}."
        )
    return int(k)
