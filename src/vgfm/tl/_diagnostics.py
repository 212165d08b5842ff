"""Diagnostics for choosing the regularisation of the semi-relaxed couplings."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from vgfm._core.couplings import couple_interval
from vgfm._core.threads import torch_threads
from vgfm._core.train import TrainConfig
from vgfm._data import keys
from vgfm._data._containers import Data, resolve_container
from vgfm._data._docs import doc_params
from vgfm._data._options import validate_seed
from vgfm._data._population import population_sizes_or_default
from vgfm._data._representation import frame_origin, get_representation, to_frame
from vgfm._data._times import cells_per_time, resolve_times

logger = logging.getLogger("vgfm")

__all__ = ["coupling_diagnostic"]

_DEFAULT_REG_M = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0)


@doc_params
def coupling_diagnostic(
    adata: Data,
    time_key: str = keys.DEFAULT_TIME_KEY,
    *,
    use_rep: str = keys.DEFAULT_USE_REP,
    reg_m_values: Sequence[float] = _DEFAULT_REG_M,
    reg: float | None = None,
    coupling_geometry: str | None = None,
    reg_m_motion: float | None = None,
    intervals: Sequence[int] | None = None,
    population_size: Sequence[float] | dict | None = None,
    key: str = keys.DEFAULT_KEY,
    time_order: Sequence | None = None,
    time_values: Sequence[float] | None = None,
    max_cells: int = 500,
    seed: int = 0,
    mod: str | None = None,
    n_threads: int | None = 1,
) -> pd.DataFrame:
    """Trade-off between transport cost and growth heterogeneity for a grid of ``reg_m``.

    For each interval ``[t_k, t_{{k+1}}]`` and each ``reg_m`` the semi-relaxed coupling that
    :func:`vgfm.tl.fit` would use is computed (same cost scaling, same masses ``r_k`` and
    ``r_{{k+1}}``, on at most ``max_cells`` random cells a side). Small ``reg_m`` lets the row
    marginal ``w = π 1`` deviate freely from the source masses ``a``: the plan moves cells
    over short distances and explains the change of the population by strongly heterogeneous
    growth. Large ``reg_m`` forces every cell to grow alike: growth becomes uniform, cells must
    travel further. Plotting ``transport_cost`` against ``marginal_kl`` (an L-curve) and
    picking the ``reg_m`` at the elbow balances the two. Each interval is coupled on its own,
    by distances: the motion test (``growth_test``), ``coupling_momentum`` and the growth
    targets net of motion (``net_of_motion``) of :func:`vgfm.tl.fit`, which look at a second
    coupling, are not applied (``growth_sd`` is that of the plan's own targets). Nothing is
    written to ``adata``.

    Parameters
    ----------
    adata
        {adata}
    time_key
        {time_key}
    use_rep
        Representation the couplings are computed in (``"X"`` or an ``.obsm`` key).
    reg_m_values
        Grid of source-marginal KL weights ``λ`` (positive).
    reg
        Entropic regularisation ``ε``; default that of :func:`vgfm.tl.fit`
        (:class:`vgfm._core.train.TrainConfig`).
    coupling_geometry
        ``"affine"`` or ``"euclidean"``, as the training option of :func:`vgfm.tl.fit`;
        default that of :func:`vgfm.tl.fit`.  ``transport_cost`` is always measured in the
        representation itself.
    reg_m_motion
        Stiffening of the relaxation with motion, as the training option of
        :func:`vgfm.tl.fit` (``reg_m`` of a cell is multiplied by
        ``1 + reg_m_motion * d^2 / mean d^2``); default that of :func:`vgfm.tl.fit`.
    intervals
        Indices ``k`` of the intervals ``[t_k, t_{{k+1}}]`` to examine; default all.
    population_size
        As in :func:`vgfm.tl.fit`; default the sizes stored by :func:`vgfm.pp.population_size`
        under ``key``, else the cell counts.
    key
        Key of stored population sizes (the ``key_added`` of the later fit).
    time_order
        {time_order}
    time_values
        {time_values}
    max_cells
        Random subsample per snapshot (the couplings are dense ``n × m`` matrices).
    seed
        {seed}
    mod
        {mod}
    n_threads
        {n_threads}

    Returns
    -------
    :class:`pandas.DataFrame`
        One row per interval and ``reg_m``, with columns

        - ``interval`` (index ``k``), ``t_start``, ``t_end``, ``reg_m``, ``reg``;
        - ``transport_cost``: ``Σ π_ij ||x_i − x_j||² / Σ π_ij``, the mean squared distance
          travelled under the plan, in ``use_rep`` units;
        - ``marginal_kl``: ``KL(w / Σw ‖ a / Σa)``, how far the growth pattern is from
          uniform (0: every source cell grows by the same factor ``r_{{k+1}} / r_k``);
        - ``growth_sd``, ``growth_min``, ``growth_max``: spread of the growth targets
          ``log(w_i / a_i) / Δt`` (per unit of the user's time).

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(seed=0)
    >>> df = vgfm.tl.coupling_diagnostic(adata, "time", use_rep="X", reg_m_values=[0.1, 10.0],
    ...                                  intervals=[0], max_cells=200)
    >>> df[["reg_m", "transport_cost", "marginal_kl"]].shape
    (2, 3)
    >>> bool(df["marginal_kl"].iloc[0] > df["marginal_kl"].iloc[1])
    True
    """
    values = [float(v) for v in reg_m_values]
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise ValueError(
            f"reg_m_values must be finite positive numbers, got {list(reg_m_values)!r}."
        )
    if max_cells < 2:
        raise ValueError(f"max_cells must be >= 2, got {max_cells}.")
    eps = TrainConfig().reg if reg is None else float(reg)
    cfg = TrainConfig(**{k: v for k, v in (("coupling_geometry", coupling_geometry),
                                            ("reg_m_motion", reg_m_motion)) if v is not None})
    geometry, motion = cfg.coupling_geometry, cfg.reg_m_motion
    if not eps > 0:
        raise ValueError(f"reg must be > 0, got {reg!r}.")
    seed = validate_seed(seed)
    container = resolve_container(adata, mod)
    times, mapping = resolve_times(container, time_key, order=time_order, values=time_values)
    x = get_representation(container, use_rep)
    x = to_frame(x, frame_origin([x]), x.dtype)  # distances far from 0 lose float64 digits
    counts = cells_per_time(times, mapping)
    sizes, _ = population_sizes_or_default(container, population_size, key, mapping, counts)
    rel = np.asarray(sizes, dtype=float) / float(sizes[0])
    n_int = len(mapping.values) - 1
    ks = list(range(n_int)) if intervals is None else [int(k) for k in intervals]
    bad = [k for k in ks if not 0 <= k < n_int]
    if bad:
        raise ValueError(
            f"intervals {bad} out of range; this time course has {n_int} intervals (0 … "
            f"{n_int - 1}) between the time points {list(mapping.labels)}."
        )

    with torch_threads(n_threads):
        rng = np.random.default_rng(seed)
        rows = []
        for k in ks:
            t0, t1 = float(mapping.values[k]), float(mapping.values[k + 1])
            idx0 = np.flatnonzero(times == mapping.values[k])
            idx1 = np.flatnonzero(times == mapping.values[k + 1])
            if len(idx0) > max_cells:
                idx0 = np.sort(rng.choice(idx0, max_cells, replace=False))
            if len(idx1) > max_cells:
                idx1 = np.sort(rng.choice(idx1, max_cells, replace=False))
            x0 = torch.as_tensor(np.asarray(x[idx0]), dtype=torch.float64)
            x1 = torch.as_tensor(np.asarray(x[idx1]), dtype=torch.float64)
            d2 = torch.cdist(x0, x1) ** 2
            a_tot, b_tot = float(rel[k]), float(rel[k + 1])
            for lam in values:
                gen = torch.Generator().manual_seed(int(seed))
                cp = couple_interval(
                    x0, x1, mass0=a_tot, mass1=b_tot, dt=t1 - t0,
                    options={"reg": eps, "reg_m": lam, "coupling_geometry": geometry,
                             "reg_m_motion": motion},
                    max_block=max(len(x0), len(x1)), max_blocks=1, generator=gen,
                )
                plan = cp.plans[0].double()
                src, tgt = cp.source[0], cp.target[0]
                total = float(plan.sum())
                cost = float((plan * d2[src][:, tgt]).sum()) / total
                w = plan.sum(1).numpy()
                p = w / w.sum()
                q = np.full(len(w), 1.0 / len(w))
                with np.errstate(divide="ignore", invalid="ignore"):
                    kl = float(np.sum(np.where(p > 0, p * np.log(p / q), 0.0)))
                g = cp.growth[0].double().numpy()
                rows.append({
                    "interval": k, "t_start": t0, "t_end": t1, "reg_m": lam, "reg": eps,
                    "transport_cost": cost, "marginal_kl": kl, "growth_sd": float(np.std(g)),
                    "growth_min": float(np.min(g)), "growth_max": float(np.max(g)),
                })
    logger.info("coupling_diagnostic: %d intervals x %d reg_m values", len(ks), len(values))
    return pd.DataFrame(rows)
