"""The fit record: one typed description of a fit, the single source of ``uns[key_added]``.

:func:`vgfm.tl.fit` builds a :class:`FitRecord` and writes it with :meth:`FitRecord.to_uns`;
every reader (``tl``, ``pl``, the CLI, :meth:`vgfm.VGFM.from_adata`) goes through
:func:`read_record`. The network weights and training configuration stay in the model's own
``to_dict()`` (stored under ``"model"``); the record holds the metadata once.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from anndata import AnnData

from vgfm._data._keys import RECORD_PARAMS, evaluation_entry
from vgfm._data._times import TimeMapping

__all__ = ["FORMAT_VERSION", "FitRecord", "package_version", "read_record"]

#: Version of the layout of ``uns[key]``; 2 adds format/package versions, the time unit,
#: the population-size source and the time-order options.
FORMAT_VERSION = 2


def package_version() -> str:
    """Installed version of :mod:`vgfm` (``"0.0.0"`` for an uninstalled checkout).

    Examples
    --------
    >>> isinstance(package_version(), str)
    True
    """
    try:
        return importlib.metadata.version("vgfm")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        return "0.0.0"


def growth_last_time_note(labels: Any) -> str:
    """What the growth reported at the last time point means (stored with every fit).

    Examples
    --------
    >>> growth_last_time_note(["d0", "d1", "d2"])[:44]
    'The last time point (d2) has no outgoing int'
    """
    labels = [str(v) for v in labels]
    if len(labels) < 2:
        return ""
    return (
        f"The last time point ({labels[-1]}) has no outgoing interval: no coupling says how its "
        f"cells grow afterwards. The growth reported there is the growth network evaluated at "
        f"those cells and time, an extrapolation of what was learned on the last interval "
        f"[{labels[-2]}, {labels[-1]}], whose paths end at these cells (kept within that "
        f"interval's range of growth targets when the fit bounds growth, within the range "
        f"over all intervals for a time-free growth: growth_low / growth_high in "
        f"growth_vs_motion)."
    )


def _array(x: Any, dtype: Any) -> np.ndarray | None:
    return None if x is None else np.asarray(x, dtype=dtype).reshape(-1)


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


@dataclass
class FitRecord:
    """What a fit was run on and produced (everything but the weights).

    Parameters
    ----------
    use_rep
        Representation fitted (``"X"`` or an ``.obsm`` key).
    time_key
        ``.obs`` column of the cells' time points.
    time
        Label -> time mapping (with its unit) of the fitted time points.
    method
        ``"vgfm"`` or ``"otcfm"``.
    dim
        Dimension of ``use_rep``.
    n_cells
        Cells per time point.
    population_size
        ``N_k`` used for training.
    population_size_source
        ``"argument"``, ``"stored"`` (:func:`vgfm.pp.population_size`) or ``"cell counts"``.
    held_out
        Boolean per time point (``True`` for ``holdout_time``).
    seed, mod
        Seed and MuData modality of the fit.
    time_order, time_values
        The time-order options the fit was called with (``None`` when not given).
    config
        Training options (:class:`vgfm._core.train.TrainConfig` as a dict, without
        ``method``).
    history
        Training curves.
    timings
        Seconds per phase (``train`` for the whole training).
    evaluation
        Table of :func:`vgfm.tl.evaluate` (a dict of arrays), once it ran.
    growth_vs_motion
        Per training interval (``start``/``end`` labels): ``growth_sd``, the spread of the
        coupling's growth targets, ``growth_sd_null``, the spread a growth-free population
        with the same motion gives, ``motion_explained``, the share of the first that the
        second reproduces (:func:`vgfm._core.train.growth_vs_motion`), and ``reg_m_factor``,
        how much stiffer the interval's relaxation was made for it (``growth_test``);
        ``growth_low``/``growth_high``, the range the growth rate is bounded to on the
        interval (its targets' smallest and largest value, ``bound_growth``; absent when
        unbounded); with ``growth_form="auto"`` also ``growth_form``, the form kept
        (``"xt"``: ``g(x, t)``, ``"x"``: ``g(x)``), and ``growth_form_score``, the checkpoint
        scores of the two stage-1 fields (``g(x, t)`` first); ``None`` without growth.
    model
        ``VGFM.to_dict()`` without its metadata: format, configuration and weights.
    format_version, package_version
        Layout version of ``uns[key]`` and the :mod:`vgfm` version that wrote it.

    Examples
    --------
    >>> rec = FitRecord(use_rep="X", time_key="t", time=TimeMapping(("0", "1"), [0.0, 1.0]),
    ...                 population_size=np.array([2.0, 3.0]))
    >>> rec.relative_size
    array([1. , 1.5])
    >>> FitRecord.from_uns(rec.to_uns()).time == rec.time
    True
    """

    use_rep: str
    time_key: str
    time: TimeMapping | None = None
    method: str = "vgfm"
    dim: int | None = None
    n_cells: np.ndarray | None = None
    population_size: np.ndarray | None = None
    population_size_source: str = ""
    held_out: np.ndarray | None = None
    seed: int | None = None
    mod: str | None = None
    time_order: list[str] | None = None
    time_values: list[float] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, np.ndarray] | None = None
    growth_vs_motion: dict[str, np.ndarray] | None = None
    model: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION
    package_version: str = field(default_factory=package_version)
    _relative_size: np.ndarray | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ derived
    @property
    def n_times(self) -> int:
        """Number of fitted time points."""
        return 0 if self.time is None else self.time.n_times

    @property
    def times(self) -> np.ndarray:
        """Numeric fitted time points (float64, increasing)."""
        if self.time is None:
            raise KeyError(f"the fit of {self.use_rep!r} records no time points.")
        return np.asarray(self.time.values, dtype=np.float64)

    @property
    def time_labels(self) -> tuple[str, ...]:
        """Labels of the fitted time points."""
        return () if self.time is None else self.time.labels

    @property
    def relative_size(self) -> np.ndarray:
        """``r_k = N_k / N_0``."""
        if self.population_size is not None:
            sizes = np.asarray(self.population_size, dtype=np.float64)
            return sizes / sizes[0]
        if self._relative_size is not None:
            return np.asarray(self._relative_size, dtype=np.float64)
        raise KeyError("the fit record holds no population sizes.")

    @property
    def holdout_label(self) -> str | None:
        """Label of the held-out time point, or ``None``."""
        if self.held_out is None or self.time is None or not np.any(self.held_out):
            return None
        return self.time.labels[int(np.flatnonzero(self.held_out)[0])]

    @property
    def params(self) -> dict[str, Any]:
        """``uns[key]["params"]``: the named options, then every training option."""
        return {
            "time_key": self.time_key,
            "use_rep": self.use_rep,
            "method": self.method,
            "seed": -1 if self.seed is None else int(self.seed),
            "holdout_time": self.holdout_label or "",
            "mod": self.mod or "",
            "time_order": np.asarray([] if self.time_order is None else self.time_order,
                                     dtype=str),
            "time_values": np.asarray([] if self.time_values is None else self.time_values,
                                      dtype=np.float64),
            **{k: v for k, v in self.config.items() if k != "method"},
        }

    # ------------------------------------------------------------------ uns round trip
    def to_uns(self) -> dict[str, Any]:
        """The dict stored in ``adata.uns[key_added]`` (``.h5ad``-serialisable)."""
        out: dict[str, Any] = {
            "format_version": int(self.format_version),
            "package_version": str(self.package_version),
            "params": self.params,
        }
        if self.dim is not None:
            out["dim"] = int(self.dim)
        if self.time is not None:
            out["times"] = np.asarray(self.time.values, dtype=np.float64).copy()
            out["time_labels"] = np.asarray(self.time.labels, dtype=str)
            out["time_unit"] = self.time.unit
        if self.n_cells is not None:
            out["n_cells"] = np.asarray(self.n_cells, dtype=np.int64)
        if self.population_size is not None:
            out["population_size"] = np.asarray(self.population_size, dtype=np.float64)
            out["population_size_source"] = self.population_size_source
        if self.population_size is not None or self._relative_size is not None:
            out["relative_size"] = self.relative_size
        if self.held_out is not None:
            out["held_out"] = np.asarray(self.held_out, dtype=bool)
        if self.time is not None:
            out["growth_last_time"] = growth_last_time_note(self.time.labels)
        if self.growth_vs_motion is not None:
            out["growth_vs_motion"] = {k: np.asarray(v)
                                       for k, v in self.growth_vs_motion.items()}
        out["history"] = {k: np.asarray(v) for k, v in self.history.items()}
        if "train" in self.timings:
            out["train_seconds"] = float(self.timings["train"])
        out["timing"] = {k: float(v) for k, v in self.timings.items() if k != "train"}
        if self.model is not None:
            out["model"] = self.model
        if self.evaluation is not None:
            out[evaluation_entry()] = {k: np.asarray(v) for k, v in self.evaluation.items()}
        return out

    @classmethod
    def from_uns(cls, d: Mapping[str, Any], key: str = "vgfm") -> FitRecord:
        """Read ``uns[key]`` back (also the layout of version 1, and partial records).

        Raises
        ------
        KeyError
            When ``d`` is not a fit record (no ``params`` with ``use_rep``).
        """
        params = d.get("params") if isinstance(d, Mapping) else None
        if not isinstance(params, Mapping) or "use_rep" not in params:
            found = sorted(d) if isinstance(d, Mapping) else type(d).__name__
            raise KeyError(
                f"adata.uns[{key!r}] is not a VGFM fit record (found {found}); run "
                f"vgfm.tl.fit(adata, key_added={key!r}) first."
            )
        time = None
        if "times" in d and "time_labels" in d:
            time = TimeMapping(
                tuple(str(x) for x in np.asarray(d["time_labels"]).reshape(-1)),
                np.asarray(d["times"], dtype=np.float64),
                unit=str(d.get("time_unit", "")),
            )
        seed = params.get("seed")
        seed = None if seed is None or int(seed) < 0 else int(seed)
        order = params.get("time_order")
        order = None if order is None or len(order) == 0 else [str(x) for x in order]
        tvals = params.get("time_values")
        tvals = None if tvals is None or len(tvals) == 0 else [float(x) for x in tvals]
        timings = {str(k): float(v) for k, v in dict(d.get("timing", {})).items()}
        if "train_seconds" in d:
            timings["train"] = float(d["train_seconds"])
        config = {k: _plain(v) for k, v in params.items() if k not in RECORD_PARAMS}
        evaluation = d.get(evaluation_entry())
        motion = d.get("growth_vs_motion")
        return cls(
            use_rep=str(params["use_rep"]),
            time_key=str(params.get("time_key", "")),
            time=time,
            method=str(params.get("method", "vgfm")),
            dim=_dim_of(d),
            n_cells=_array(d.get("n_cells"), np.int64),
            population_size=_array(d.get("population_size"), np.float64),
            population_size_source=str(d.get("population_size_source", "")),
            held_out=_array(d.get("held_out"), bool),
            seed=seed,
            mod=str(params.get("mod") or "") or None,
            time_order=order,
            time_values=tvals,
            config=config,
            history={str(k): np.asarray(v) for k, v in dict(d.get("history", {})).items()},
            timings=timings,
            evaluation=None if evaluation is None else dict(evaluation),
            growth_vs_motion=None if motion is None else {
                str(k): np.asarray(v) for k, v in dict(motion).items()},
            model=None if d.get("model") is None else dict(d["model"]),
            format_version=int(d.get("format_version", 1)),
            package_version=str(d.get("package_version", "")),
            _relative_size=_array(d.get("relative_size"), np.float64),
        )

    # ------------------------------------------------------------------ the model's view
    def model_info(self) -> dict[str, Any]:
        """The metadata a :class:`vgfm.VGFM` carries (``model.info``), JSON-serialisable."""
        return {
            "use_rep": self.use_rep,
            "dim": None if self.dim is None else int(self.dim),
            "time_key": self.time_key,
            "times": self.times.tolist(),
            "time_labels": list(self.time_labels),
            "time_unit": "" if self.time is None else self.time.unit,
            "relative_size": self.relative_size.tolist(),
            "n_cells": None if self.n_cells is None else self.n_cells.tolist(),
            "held_out": None if self.held_out is None else self.held_out.tolist(),
            "seed": self.seed,
            "method": self.method,
        }

    @classmethod
    def from_model_info(cls, info: Mapping[str, Any], config: Mapping[str, Any] | None = None,
                        ) -> FitRecord:
        """A record (without history) from ``model.info``, for a model given by the user.

        Examples
        --------
        >>> rec = FitRecord.from_model_info({"use_rep": "X", "time_key": "t", "dim": 2,
        ...     "times": [0.0, 1.0], "time_labels": ["a", "b"], "relative_size": [1.0, 2.0]})
        >>> rec.time.labels, rec.relative_size.tolist()
        (('a', 'b'), [1.0, 2.0])
        """
        cfg = dict(config or {})
        held = info.get("held_out")
        return cls(
            use_rep=str(info["use_rep"]),
            time_key=str(info.get("time_key", "")),
            time=TimeMapping(tuple(str(x) for x in info["time_labels"]), info["times"],
                             unit=str(info.get("time_unit", ""))),
            method=str(info.get("method", cfg.get("method", "vgfm"))),
            dim=None if info.get("dim") is None else int(info["dim"]),
            n_cells=_array(info.get("n_cells"), np.int64),
            held_out=None if held is None else np.asarray(held, dtype=bool),
            seed=info.get("seed"),
            config={k: v for k, v in cfg.items() if k != "method"},
            _relative_size=_array(info.get("relative_size"), np.float64),
        )

    def replace(self, **changes: Any) -> FitRecord:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


def _dim_of(d: Mapping[str, Any]) -> int | None:
    if d.get("dim") is not None:
        return int(d["dim"])
    model = d.get("model")
    if isinstance(model, Mapping) and "info" in model:  # format 1 kept it in the model's JSON
        return int(json.loads(str(model["info"])).get("dim"))
    return None


def read_record(adata: AnnData, key: str) -> FitRecord:
    """The fit record stored by :func:`vgfm.tl.fit` in ``adata.uns[key]``.

    Raises
    ------
    KeyError
        When there is none, naming the call that writes it.

    Examples
    --------
    >>> import anndata
    >>> ad = anndata.AnnData(uns={"vgfm": {"params": {"use_rep": "X", "time_key": "t"}}})
    >>> read_record(ad, "vgfm").use_rep
    'X'
    """
    d = adata.uns.get(key)
    if not isinstance(d, Mapping) or "params" not in d:
        raise KeyError(
            f"adata.uns[{key!r}] with VGFM results is missing (found uns keys "
            f"{list(adata.uns.keys())}); run `vgfm.tl.fit(adata, key_added={key!r})` first."
        )
    return FitRecord.from_uns(d, key)
