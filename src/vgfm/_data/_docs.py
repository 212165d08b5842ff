"""Shared parameter documentation: one text per parameter, filled into docstrings.

Decorate a public function with :func:`doc_params` and write ``{name}`` under a parameter in its
docstring; literal braces are doubled (``{{`` / ``}}``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["PARAMS", "doc_params"]

F = TypeVar("F", bound=Callable)

PARAMS: dict[str, str] = {
    "adata": (
        ":class:`~anndata.AnnData` or :class:`~mudata.MuData` (the joint object, or the "
        "modality named by ``mod``)."
    ),
    "time_key": (
        "``.obs`` column with each cell's time point: numbers, or labels with one number and "
        "a unit (``\"day 2\"``, ``\"12h\"``, ``\"E14.5\"``; see :func:`vgfm.pp.numeric_time`)."
    ),
    "time_order": (
        "Time labels, earliest first. Needed when labels contain no number (``\"early\"``) "
        "or cannot be put on one axis; overrides parsing and ordered categoricals."
    ),
    "time_values": (
        "Numeric times of the labels in ``time_order`` (strictly increasing); default "
        "``0, 1, 2, …``."
    ),
    "use_rep": "Representation: an ``.obsm`` key (``\"X_pca\"``, a MOFA/WNN embedding) or ``\"X\"``.",
    "mod": (
        "For a :class:`~mudata.MuData`: read and write modality ``mod`` instead of the joint "
        "object."
    ),
    "copy": "Work on a copy of ``adata`` and return it instead of writing into ``adata``.",
    "key": "Key of the fit to read (the ``key_added`` of :func:`vgfm.tl.fit`).",
    "model": "Trained model; ``None`` rebuilds it from ``adata.uns[key]``.",
    "seed": "Seed of every random draw (an int in ``[0, 2**63)``); the same seed gives the same numbers.",
    "device": "``\"cpu\"``, ``\"cuda\"``, … ; ``None`` picks CUDA when available.",
    "progress": (
        "Show progress bars; ``None`` shows them only when stderr is a terminal (quiet in "
        "pipelines and logs)."
    ),
    "n_threads": (
        "Torch CPU threads used meanwhile (restored afterwards); ``None`` keeps torch's "
        "setting. One thread is the default: the networks are small, and it avoids the large "
        "slowdown when torch's threads compete with the OpenMP threads that Scanpy's "
        "neighbours/UMAP (numba) leave running on a small machine."
    ),
}


def doc_params(fn: F) -> F:
    """Fill ``{name}`` placeholders of ``fn.__doc__`` with :data:`PARAMS`.

    Examples
    --------
    >>> @doc_params
    ... def f(adata):
    ...     '''Do it.
    ...
    ...     Parameters
    ...     ----------
    ...     adata
    ...         {adata}
    ...     '''
    >>> "MuData" in f.__doc__
    True
    """
    if fn.__doc__:
        fn.__doc__ = fn.__doc__.format(**PARAMS)
    return fn
