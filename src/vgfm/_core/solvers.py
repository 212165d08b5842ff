"""Registry of coupling solvers.

A coupling solver turns one block of an interval into a transport plan::

    solver(cost, a, b, options) -> plan

``cost`` is the ``(n, m)`` ground cost already divided by the data-driven scale (see
:func:`vgfm._core.couplings.cost_scale`), ``a`` and ``b`` are the source and target masses
(float64, positive) and ``options`` is a mapping of the solver's own options taken from
:class:`vgfm._core.train.TrainConfig` (``reg``, ``reg_m``, ...).  The plan's column sums must
equal ``b`` (the observed target population is matched exactly); its row sums ``w`` are the
masses the source cells grow to, so ``log(w / a) / dt`` is the growth target.  A solver
registered with ``row_weights=True`` also reads ``options["reg_m_rows"]``, one relaxation
weight per source row, which :func:`vgfm._core.couplings.couple_interval` computes (with
:func:`vgfm._core.couplings.motion_reg_m`) only for such solvers.

Adding a solver is one function plus one :func:`register_solver` call; a method that uses it is
one row of :mod:`vgfm._core.methods`.

Examples
--------
>>> import torch
>>> c = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
>>> a = b = torch.full((2,), 0.5, dtype=torch.float64)
>>> plan = get_solver("exact")(c, a, b, {})
>>> plan.diag().tolist()
[0.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ot
import torch

from .sinkhorn import semi_relaxed_sinkhorn

CouplingSolver = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Mapping[str, Any]], torch.Tensor]

_SOLVERS: dict[str, CouplingSolver] = {}
_DESCRIPTIONS: dict[str, str] = {}
_ROW_WEIGHTS: set[str] = set()


def register_solver(name: str, solver: CouplingSolver, *, description: str = "",
                    row_weights: bool = False, overwrite: bool = False) -> None:
    """Make ``solver`` available under ``name`` (see the module docstring for the contract).

    Examples
    --------
    >>> import torch
    >>> def uniform(cost, a, b, options):
    ...     return a[:, None] * b[None, :] / a.sum()
    >>> register_solver("doc_uniform", uniform, description="independent coupling")
    >>> "doc_uniform" in available_solvers()
    True
    >>> unregister_solver("doc_uniform")
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"solver name must be a non-empty string, got {name!r}")
    if not callable(solver):
        raise TypeError(f"solver {name!r} must be callable, got {type(solver).__name__}")
    if name in _SOLVERS and not overwrite:
        raise ValueError(f"a coupling solver named {name!r} is already registered; "
                         "pass overwrite=True to replace it")
    _SOLVERS[name] = solver
    _DESCRIPTIONS[name] = description
    _ROW_WEIGHTS.discard(name)
    if row_weights:
        _ROW_WEIGHTS.add(name)


def unregister_solver(name: str) -> None:
    """Remove a registered solver (used by tests and plug-ins)."""
    _SOLVERS.pop(name, None)
    _DESCRIPTIONS.pop(name, None)
    _ROW_WEIGHTS.discard(name)


def uses_row_weights(name: str) -> bool:
    """Whether the solver ``name`` reads per-row relaxation weights (``options["reg_m_rows"]``).

    Examples
    --------
    >>> uses_row_weights("semi_relaxed"), uses_row_weights("exact")
    (True, False)
    """
    return name in _ROW_WEIGHTS


def available_solvers() -> dict[str, str]:
    """Registered solver names and their one-line descriptions.

    Examples
    --------
    >>> sorted(available_solvers())[:2]
    ['exact', 'semi_relaxed']
    """
    return dict(_DESCRIPTIONS)


def get_solver(name: str) -> CouplingSolver:
    """The solver registered under ``name``; a clear error lists the registered ones."""
    try:
        return _SOLVERS[name]
    except KeyError:
        raise ValueError(
            f"unknown coupling solver {name!r}; registered solvers: {sorted(_SOLVERS)}. "
            "Register a new one with vgfm._core.solvers.register_solver."
        ) from None


def _semi_relaxed(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                  options: Mapping[str, Any]) -> torch.Tensor:
    rows = options.get("reg_m_rows")  # per-source-row weights from couple_interval, if any
    reg_m = rows if rows is not None else float(options["reg_m"])
    return semi_relaxed_sinkhorn(cost, a, b, float(options["reg"]), reg_m,
                                 tol=float(options.get("sinkhorn_tol", 1e-5)),
                                 max_iter=int(options.get("sinkhorn_max_iter", 2000)))


def _exact(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
           options: Mapping[str, Any]) -> torch.Tensor:
    # balanced: rescale the source so both sides carry the target's total
    a = a * (b.sum() / a.sum())
    return ot.emd(a, b, cost, numItermax=1_000_000)


register_solver("semi_relaxed", _semi_relaxed, row_weights=True,
                description="entropic OT, source marginal KL-relaxed (reg_m), target hard")
register_solver("exact", _exact,
                description="exact balanced OT plan (ot.emd); no growth")
