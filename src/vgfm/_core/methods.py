"""The table of methods: which coupling solver a method uses and whether it learns growth.

Adding a method is one row here (and, if it needs one, a solver registered in
:mod:`vgfm._core.solvers`).  Every layer above reads this table: training picks the solver and
the growth switch from it, the AnnData layer validates ``method=`` against it and plots take the
display label from it.

Examples
--------
>>> get_method("otcfm").learns_growth
False
>>> get_method("vgfm").solver
'semi_relaxed'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    """One row of the method table.

    Attributes
    ----------
    name
        The value users pass as ``method=``.
    solver
        Name of the coupling solver in :mod:`vgfm._core.solvers`.
    learns_growth
        Whether the growth network is trained (``False``: ``g`` is identically zero and the
        rollout keeps unit mass).
    label
        Display name in plots and tables.
    description
        One line for documentation and ``--help``.
    """

    name: str
    solver: str
    learns_growth: bool
    label: str
    description: str = ""


_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec, *, overwrite: bool = False) -> None:
    """Add a method to the table.

    Examples
    --------
    >>> register_method(MethodSpec("doc_method", "exact", False, "Doc"))
    >>> "doc_method" in method_names()
    True
    >>> unregister_method("doc_method")
    """
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"expected a MethodSpec, got {type(spec).__name__}")
    if spec.name in _METHODS and not overwrite:
        raise ValueError(f"a method named {spec.name!r} is already registered; "
                         "pass overwrite=True to replace it")
    _METHODS[spec.name] = spec


def unregister_method(name: str) -> None:
    """Remove a method from the table (tests and plug-ins)."""
    _METHODS.pop(name, None)


def method_names() -> tuple[str, ...]:
    """Names of the registered methods, in registration order."""
    return tuple(_METHODS)


def get_method(name: str) -> MethodSpec:
    """The table row of ``name``; a clear error lists the valid names."""
    try:
        return _METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"method must be one of {list(_METHODS)}, got {name!r}"
        ) from None


register_method(MethodSpec(
    "vgfm", "semi_relaxed", True, "VGFM",
    "velocity-growth flow matching on semi-relaxed OT couplings (growth learned)"))
register_method(MethodSpec(
    "otcfm", "exact", False, "OT-CFM",
    "OT conditional flow matching on exact balanced OT couplings (no growth)"))
