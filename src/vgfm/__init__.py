"""vgfm: joint Velocity-Growth Flow Matching for single-cell time courses.

Learns a velocity field ``v(x, t)`` and a growth rate ``g(x, t)`` from time-stamped,
unpaired and unbalanced single-cell snapshots (Wang et al., NeurIPS 2025).

The submodules ``datasets``, ``pl``, ``pp``, ``tl`` and the class ``VGFM`` are imported on
first access (PEP 562), so that ``import vgfm`` and ``vgfm --version`` do not load torch and
scanpy; ``vgfm.tl`` etc. behave exactly as ordinary attributes.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("vgfm")
except PackageNotFoundError:  # pragma: no cover - source checkout without install
    __version__ = "0.0.0"

logging.getLogger("vgfm").addHandler(logging.NullHandler())

if TYPE_CHECKING:  # pragma: no cover
    from vgfm import datasets, pl, pp, tl
    from vgfm._model import VGFM

__all__ = ["VGFM", "datasets", "pl", "pp", "tl", "__version__"]

_SUBMODULES = {"datasets", "pl", "pp", "tl"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"vgfm.{name}")
        globals()[name] = module
        return module
    if name == "VGFM":
        cls = importlib.import_module("vgfm._model").VGFM
        globals()[name] = cls
        return cls
    raise AttributeError(f"module 'vgfm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
