"""The AnnData-reading layer under :mod:`vgfm.pp`, :mod:`vgfm.tl` and :mod:`vgfm.pl`.

One module per concept; nothing here writes to the data object.

- :mod:`~vgfm._data._keys`: every field name written anywhere (documented in ``storage.md``);
- :mod:`~vgfm._data._containers`: AnnData / MuData, ``mod=``, ``copy=``;
- :mod:`~vgfm._data._times`: time labels -> numbers (one implementation);
- :mod:`~vgfm._data._representation`: ``use_rep`` matrices and embeddings;
- :mod:`~vgfm._data._population`: population sizes per time point;
- :mod:`~vgfm._data._holdout`: the held-out time point;
- :mod:`~vgfm._data._record`: the typed fit record in ``uns[key_added]``;
- :mod:`~vgfm._data._options`: validation of shared options (keys, seeds, progress);
- :mod:`~vgfm._data._format`: message formatting.
"""

from __future__ import annotations

from vgfm._data import _keys as keys
from vgfm._data._containers import Data, copy_target, is_mudata, resolve_container
from vgfm._data._holdout import check_holdout_time
from vgfm._data._options import (
    VELOCITY_KINDS,
    Method,
    VelocityKind,
    check_finite_time,
    resolve_progress,
    validate_key,
    validate_seed,
)
from vgfm._data._population import (
    population_sizes_or_default,
    resolve_population_size,
    stored_population_size,
)
from vgfm._data._record import FitRecord, read_record
from vgfm._data._representation import get_embedding, get_representation
from vgfm._data._times import TimeMapping, cell_times, cells_per_time, resolve_times

__all__ = [
    "VELOCITY_KINDS",
    "Data",
    "FitRecord",
    "Method",
    "TimeMapping",
    "VelocityKind",
    "cell_times",
    "cells_per_time",
    "check_finite_time",
    "check_holdout_time",
    "copy_target",
    "get_embedding",
    "get_representation",
    "is_mudata",
    "keys",
    "population_sizes_or_default",
    "read_record",
    "resolve_container",
    "resolve_population_size",
    "resolve_progress",
    "resolve_times",
    "stored_population_size",
    "validate_key",
    "validate_seed",
]
