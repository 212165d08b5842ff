"""Preparation of AnnData objects for :mod:`vgfm`: time labels, population sizes, representations.

Every step here is optional: :func:`vgfm.tl.fit` performs the same validation itself. The
implementation lives in the data layer :mod:`vgfm._data`; this is its public face.
"""

from __future__ import annotations

from vgfm.pp._growth_prior import growth_prior
from vgfm.pp._prepare import bin_time, check_representation, numeric_time, population_size

__all__ = ["bin_time", "check_representation", "growth_prior", "numeric_time", "population_size"]
