"""vgfm: joint Velocity-Growth Flow Matching for single-cell time courses.

Learns a velocity field ``v(x, t)`` and a growth rate ``g(x, t)`` from time-stamped,
unpaired and unbalanced single-cell snapshots (Wang et al., NeurIPS 2025).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vgfm")
except PackageNotFoundError:  # pragma: no cover - source checkout without install
    __version__ = "0.0.0"

from vgfm import _logging

_logging.install()

from vgfm import datasets, pl, pp, tl  # noqa: E402
from vgfm._model import VGFM  # noqa: E402
from vgfm.tl._fit import get_model  # noqa: E402

__all__ = ["VGFM", "datasets", "get_model", "pl", "pp", "tl", "__version__"]
