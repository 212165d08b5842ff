"""Choice of the source-marginal relaxation ``reg_m`` from a coupling diagnostic."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from vgfm._data import keys
from vgfm._data._containers import Data
from vgfm.tl._diagnostics import _DEFAULT_REG_M, coupling_diagnostic

logger = logging.getLogger("vgfm")

__all__ = ["choose_reg_m"]

_COLUMNS = ("interval", "reg_m", "transport_cost", "marginal_kl")


def _elbow_index(cost: np.ndarray, kl: np.ndarray) -> int:
    """Index of the point farthest from the chord of the (cost, KL) curve, axes in [0, 1]."""
    def unit(v: np.ndarray) -> np.ndarray:
        span = float(np.ptp(v))
        return (v - v.min()) / span if span > 0 else np.zeros_like(v)

    pts = np.c_[unit(cost), unit(kl)]
    chord = pts[-1] - pts[0]
    norm = float(np.linalg.norm(chord))
    if norm == 0:
        return 0
    rel = pts - pts[0]
    dist = np.abs(rel[:, 0] * chord[1] - rel[:, 1] * chord[0]) / norm
    return int(np.argmax(dist))


def choose_reg_m(
    adata: Data,
    time_key: str = keys.DEFAULT_TIME_KEY,
    *,
    diagnostic: pd.DataFrame | None = None,
    interval: int | None = None,
    use_rep: str = keys.DEFAULT_USE_REP,
    reg_m_values: Sequence[float] = _DEFAULT_REG_M,
    population_size: Sequence[float] | dict | None = None,
    key: str = keys.DEFAULT_KEY,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    max_cells: int = 500,
    seed: int = 0,
    mod: str | None = None,
) -> float:
    """The ``reg_m`` at the elbow of the transport-cost / growth-heterogeneity trade-off.

    For each interval of the coupling diagnostic (:func:`vgfm.tl.coupling_diagnostic`) the
    points ``(transport_cost, marginal_kl)``, ordered by ``reg_m``, trace an L-shaped curve:
    small ``reg_m`` explains the change of the population by heterogeneous growth (high KL,
    low cost), large ``reg_m`` by movement (KL near 0, high cost). Both axes are scaled to
    ``[0, 1]`` and the elbow is the point farthest from the straight line joining the two ends
    of the curve (the "kneedle" construction). It is a starting point, to be checked on a
    held-out time point (``holdout_time=`` of :func:`vgfm.tl.fit`). Nothing is written.

    Parameters
    ----------
    adata
        :class:`~anndata.AnnData` or :class:`~mudata.MuData` with a time column.
    time_key
        ``.obs`` column with each cell's time point.
    diagnostic
        A table already computed by :func:`vgfm.tl.coupling_diagnostic` for ``adata`` (with
        columns ``interval``, ``reg_m``, ``transport_cost``, ``marginal_kl``; at least 3
        ``reg_m`` values per interval). When given, the options below are not used and
        nothing is recomputed.
    interval
        Use only this interval ``k``. By default every interval gives an elbow and their
        median is returned (the lower of the two middle values for an even number of
        intervals, so the result is one of the tested ``reg_m`` values).
    use_rep, reg_m_values, population_size, key, time_order, time_values, max_cells, seed, mod
        Passed to :func:`vgfm.tl.coupling_diagnostic` when ``diagnostic`` is ``None``.

    Returns
    -------
    The chosen ``reg_m``, one of the tested values; pass it to :func:`vgfm.tl.fit` as
    ``reg_m=``. The elbow of every interval is logged at INFO level.

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(seed=0)
    >>> grid = [0.05, 0.2, 1.0, 5.0, 20.0]
    >>> reg_m = vgfm.tl.choose_reg_m(adata, "time", use_rep="X", reg_m_values=grid,
    ...                              interval=0, max_cells=200)
    >>> reg_m in grid
    True
    """
    if diagnostic is None:
        diagnostic = coupling_diagnostic(
            adata, time_key, use_rep=use_rep, reg_m_values=reg_m_values,
            intervals=None if interval is None else [interval],
            population_size=population_size, key=key, time_order=time_order,
            time_values=time_values, max_cells=max_cells, seed=seed, mod=mod,
        )
    return _elbow_reg_m(diagnostic, interval)


def _elbow_reg_m(diagnostic: pd.DataFrame, interval: int | None) -> float:
    missing = [c for c in _COLUMNS if c not in getattr(diagnostic, "columns", ())]
    if missing:
        raise ValueError(
            f"diagnostic lacks the column(s) {missing}; pass the DataFrame returned by "
            "vgfm.tl.coupling_diagnostic."
        )
    table = diagnostic
    if interval is not None:
        table = diagnostic[diagnostic["interval"] == interval]
        if table.empty:
            raise ValueError(
                f"interval={interval} is not in the diagnostic (it has intervals "
                f"{sorted(diagnostic['interval'].unique().tolist())})."
            )
    elbows: dict[int, float] = {}
    for k, part in table.groupby("interval", sort=True):
        part = part.sort_values("reg_m")
        if part["reg_m"].nunique() < 3:
            raise ValueError(
                f"interval {k} has {part['reg_m'].nunique()} distinct reg_m values; an elbow "
                "needs at least 3 (e.g. reg_m_values=[0.05, 0.2, 1, 5, 20])."
            )
        vals = part[["transport_cost", "marginal_kl"]].to_numpy(dtype=float)
        if not np.isfinite(vals).all():
            raise ValueError(f"interval {k}: transport_cost/marginal_kl contain NaN or inf.")
        i = _elbow_index(vals[:, 0], vals[:, 1])
        elbows[int(k)] = float(part["reg_m"].iloc[i])
    chosen = sorted(elbows.values())[(len(elbows) - 1) // 2]
    logger.info(
        "choose_reg_m: elbow per interval %s -> reg_m = %g",
        ", ".join(f"{k}: {v:g}" for k, v in elbows.items()), chosen,
    )
    return chosen
