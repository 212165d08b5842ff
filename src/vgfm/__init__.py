"""vgfm: joint Velocity-Growth Flow Matching for single-cell time courses.

Learns a velocity field ``v(x, t)`` and a growth rate ``g(x, t)`` from time-stamped,
unpaired and unbalanced single-cell snapshots (Wang et al., NeurIPS 2025).

The submodules ``datasets``, ``pl``, ``pp``, ``tl``, the class ``VGFM`` and ``get_model`` are
imported on first access (PEP 562), so that ``import vgfm`` and ``vgfm --version`` do not load
torch and scanpy; ``vgfm.tl`` etc. behave exactly as ordinary attributes.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("vgfm")
except PackageNotFoundError:  # pragma: no cover - source checkout without install
    __version__ = "0.0.0"

from vgfm import _logging

_logging.install()

if TYPE_CHECKING:  # pragma: no cover
    from vgfm import datasets, pl, pp, tl
    from vgfm._model import VGFM
    from vgfm.tl._fit import get_model

__all__ = ["VGFM", "datasets", "get_model", "pl", "pp", "tl", "__version__"]

_SUBMODULES = {"datasets", "pl", "pp", "tl"}
#: Lazily imported attributes: name -> (module, attribute).
_ATTRIBUTES = {"VGFM": ("vgfm._model", "VGFM"), "get_model": ("vgfm.tl._fit", "get_model")}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f"vgfm.{name}")
    elif name in _ATTRIBUTES:
        module, attribute = _ATTRIBUTES[name]
        value = getattr(importlib.import_module(module), attribute)
    else:
        raise AttributeError(f"module 'vgfm' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
