"""The :class:`VGFM` model object: a trained velocity-growth field plus what it was fitted on."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgfm._core.networks import VelocityGrowthField
from vgfm._core.ode import integrate
from vgfm._core.train import TrainConfig, resolve_device, train
from vgfm._data import keys
from vgfm._data._containers import resolve_container
from vgfm._data._format import format_number
from vgfm._data._record import read_record
from vgfm._data._representation import float32_precision_warning, frame_origin, to_frame
from vgfm._data._times import time_origin

logger = logging.getLogger("vgfm")

#: Version of the model format written by :meth:`VGFM.save` and :meth:`VGFM.to_dict`.
#: 1: config, info and weights; 2: adds the representation fingerprint, the training record
#: and (in files) tensors only, read with ``weights_only=True``; 3: adds the coordinate
#: ``frame`` (float64 offsets of the representation and of the times, see
#: :attr:`VGFM.origin`). A model without offsets is written as version 2 (nothing in it needs
#: version 3), so older vgfm versions still read it; one with offsets is refused by them
#: rather than misread. Versions 1 and 2 load with zero offsets.
FORMAT_VERSION = 3
_FRAME_VERSION = 3
_MAGIC = "vgfm.VGFM"


class VGFM:
    """A trained joint velocity-growth model.

    Created by :func:`vgfm.tl.fit`; rebuilt from a saved file with :meth:`load` or from the
    ``adata.uns[key]`` written by ``fit`` with :meth:`from_adata`.

    Parameters
    ----------
    field
        The trained :class:`~vgfm._core.networks.VelocityGrowthField`.
    config
        The :class:`~vgfm._core.train.TrainConfig` used for training.
    info
        What the model was fitted on: ``use_rep``, ``dim``, ``time_key``, ``times``,
        ``time_labels``, ``relative_size``, ``n_cells``, ``held_out``, ``seed``.
    history
        Training curves.
    fingerprint
        Summary of the representation the model was fitted on
        (:func:`representation_fingerprint`); used by :meth:`check_adata` to refuse data of
        the same width but other content. ``None``: only the width is checked.
    training
        Wall-clock seconds and the selected checkpoint of the training run
        (``seconds``, ``best_step``, ``seconds_couplings``, ...).
    origin
        ``(d,)`` float64 offset of the representation: the network sees ``x - origin``
        (computed in float64, then cast to float32). Zeros (the default) for ordinary data;
        :meth:`fit` sets it to the data's mean when the data lie far from 0
        (:func:`vgfm._data._representation.frame_origin`).
    t_origin
        Float64 offset of the times: the network sees ``t - t_origin``. ``0.0`` unless the
        times lie far from 0 (e.g. seconds since an epoch).

    Examples
    --------
    >>> import vgfm
    >>> adata = vgfm.datasets.two_gene_grn(seed=0)
    >>> model = vgfm.tl.fit(adata, "time", use_rep="X", progress=False)  # doctest: +SKIP
    >>> v, g = model.predict(adata.X, adata.obs["time"].to_numpy())      # doctest: +SKIP
    """

    def __init__(
        self,
        field: VelocityGrowthField,
        *,
        config: TrainConfig,
        info: dict[str, Any],
        history: dict[str, np.ndarray] | None = None,
        fingerprint: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        origin: np.ndarray | Sequence[float] | None = None,
        t_origin: float = 0.0,
    ):
        self.field = field.eval()
        self.config = config
        self.info = dict(info)
        self.history = dict(history or {})
        self.fingerprint = None if not fingerprint else dict(fingerprint)
        self.training = dict(training or {})
        dim = int(field.dim)
        org = np.zeros(dim) if origin is None else np.array(origin, dtype=np.float64).reshape(-1)
        if org.shape != (dim,) or not np.all(np.isfinite(org)):
            raise ValueError(f"origin must hold {dim} finite numbers (one per dimension of the "
                             f"representation), got shape {org.shape}")
        t_org = float(t_origin)
        if not math.isfinite(t_org):
            raise ValueError(f"t_origin must be a finite number, got {t_origin!r}")
        self._origin = org
        self._t_origin = t_org

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Dimension of the representation the model was fitted on."""
        return int(self.field.dim)

    @property
    def use_rep(self) -> str:
        """The ``use_rep`` the model was fitted on (``"X"`` or an ``.obsm`` key)."""
        return str(self.info["use_rep"])

    @property
    def times(self) -> np.ndarray:
        """Observed numeric time points (sorted)."""
        return np.asarray(self.info["times"], dtype=float)

    @property
    def origin(self) -> np.ndarray:
        """``(d,)`` float64 offset subtracted from states before the float32 networks (a copy).

        Zeros unless the representation the model was fitted on lies far from 0 (more than
        :data:`vgfm._data._representation.RECENTRE_RATIO` data scales): then its mean, so
        that e.g. coordinates offset by 1e9 keep their full precision.
        """
        return self._origin.copy()

    @property
    def t_origin(self) -> float:
        """Float64 offset subtracted from times before the float32 networks (``0.0`` unless the
        fitted times lie far from 0, e.g. seconds since an epoch)."""
        return self._t_origin

    @property
    def has_offset(self) -> bool:
        """Whether the model works in a shifted frame (a non-zero :attr:`origin` or
        :attr:`t_origin`)."""
        return bool(np.any(self._origin)) or self._t_origin != 0.0

    def to_model_frame(self, x: Any, dtype: type = np.float32) -> np.ndarray:
        """States in the networks' frame, ``x - origin`` (subtracted in float64), as ``dtype``.

        The velocity, the growth rate and every distance are the same in both frames; only
        positions differ by :attr:`origin`.

        Examples
        --------
        >>> xm = model.to_model_frame(adata.X)  # doctest: +SKIP
        """
        return to_frame(x, self._origin, dtype)

    def from_model_frame(self, x: Any) -> np.ndarray:
        """Positions of the networks' frame back in the user's coordinates (float64).

        Examples
        --------
        >>> x = model.from_model_frame(model.to_model_frame(adata.X))  # doctest: +SKIP
        """
        return np.asarray(x, dtype=np.float64) + self._origin

    def to_model_times(self, t: Any) -> np.ndarray:
        """Times in the networks' frame, ``t - t_origin``, in float64.

        Examples
        --------
        >>> model.to_model_times([0.0, 1.0])  # doctest: +SKIP
        array([0., 1.])
        """
        return np.asarray(t, dtype=np.float64) - self._t_origin

    def with_field(self, field: VelocityGrowthField, *, config: TrainConfig | None = None
                   ) -> VGFM:
        """A model with another network trained in this model's frame (same info and offsets).

        Examples
        --------
        >>> member = model.with_field(result.field)  # doctest: +SKIP
        """
        return VGFM(field, config=config or self.config, info=self.info,
                    fingerprint=self.fingerprint, origin=self._origin, t_origin=self._t_origin)

    def __repr__(self) -> str:
        return (
            f"VGFM(method={self.config.method!r}, use_rep={self.use_rep!r}, dim={self.dim}, "
            f"times={np.round(self.times, 4).tolist()})"
        )

    # ------------------------------------------------------------------ prediction
    #: distance from the training centre, in units of the data's RMS spread per coordinate,
    #: beyond which a state counts as far outside the training data
    FAR_FROM_TRAINING = 10.0

    def _warn_far_from_training(self, x: np.ndarray, what: str) -> None:
        """Log a WARNING when states lie far outside the data the model was trained on."""
        if len(x) == 0:
            return
        center = self.field.center.detach().cpu().numpy().astype(np.float64) + self._origin
        scale = float(self.field.scale)
        dist = np.sqrt(((np.asarray(x, dtype=np.float64) - center) ** 2).mean(1)) / scale
        far = int((dist > self.FAR_FROM_TRAINING).sum())
        if far:
            logger.warning(
                "%d of %d %s lie more than %g data scales from the centre of the training data "
                "(largest %.3g): the model extrapolates there and its velocity and growth are "
                "not supported by any observed cell; check that the representation is the one "
                "the model was fitted on", far, len(x), what, self.FAR_FROM_TRAINING,
                float(dist.max()))

    def predict(
        self,
        x: np.ndarray,
        t: float | np.ndarray,
        *,
        batch_size: int = 65536,
        device: str | torch.device | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Velocity ``v(x, t)`` ``(n, d)`` and growth rate ``g(x, t)`` ``(n,)`` at given states.

        Evaluated in chunks of ``batch_size`` cells, so memory does not grow with ``n``.

        Examples
        --------
        >>> v, g = model.predict(adata.X, 0.0)  # doctest: +SKIP
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"states have shape {x.shape}; this model was fitted on {self.dim}-dimensional "
                f"{self.use_rep!r}. Pass cells in the same representation."
            )
        t64 = np.asarray(t, dtype=np.float64)
        if not np.isfinite(t64).all():
            raise ValueError(
                "t (the time of the cells) contains NaN or infinite values; pass finite times "
                f"within the fitted range [{self.times[0]:g}, {self.times[-1]:g}]."
            )
        self._warn_far_from_training(x, "states")
        # offsets are removed in float64, before the float32 networks see states and times
        t_arr = np.broadcast_to(self.to_model_times(t64).astype(np.float32), (len(x),)).copy()
        dev = resolve_device(device)
        fld = self.field.to(dev)
        vs, gs = [], []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                xb = torch.from_numpy(self.to_model_frame(x[s : s + batch_size])).to(dev)
                tb = torch.from_numpy(np.ascontiguousarray(t_arr[s : s + batch_size])).to(dev)
                v, g = fld(tb, xb)
                vs.append(v.cpu().numpy())
                gs.append(g[:, 0].cpu().numpy())
        self.field.cpu()
        if not vs:
            return np.zeros((0, self.dim), np.float32), np.zeros(0, np.float32)
        return np.concatenate(vs), np.concatenate(gs)

    def simulate(
        self,
        x0: np.ndarray,
        t_eval: Sequence[float],
        *,
        batch_size: int = 16384,
        device: str | torch.device | None = None,
        frame: str = "data",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Integrate cells ``x0`` (at ``t_eval[0]``, log-mass 0) to every time of ``t_eval``.

        Returns states ``(T, n, d)`` and log-masses ``(T, n)``; chunked over cells. With
        ``frame="data"`` (default) the states are in the user's coordinates, as float64
        (:attr:`origin` added back in float64); with ``frame="model"`` they are the float32
        states of the networks' frame, ``x - origin`` (what distances between predicted and
        observed cells should be computed in, with :meth:`to_model_frame` of the observed
        cells).

        Examples
        --------
        >>> x, log_m = model.simulate(adata.X[:10], [0.0, 1.0, 2.0])  # doctest: +SKIP
        """
        if frame not in ("data", "model"):
            raise ValueError(f"frame must be 'data' or 'model', got {frame!r}")
        x0 = np.asarray(x0)
        if x0.ndim != 2 or x0.shape[1] != self.dim:
            raise ValueError(
                f"start states have shape {x0.shape}; the model expects (n, {self.dim})."
            )
        self._warn_far_from_training(x0, "start states")
        t_list = [float(v) for v in t_eval]
        if not t_list or not np.isfinite(t_list).all():
            raise ValueError(f"t_eval must hold finite times, got {t_list!r}")
        if any(b <= a for a, b in zip(t_list[:-1], t_list[1:])):
            raise ValueError(f"t_eval must be strictly increasing, got {t_list!r}")
        t_model = self.to_model_times(t_list)  # float64 offsets from t_origin
        if np.any(np.diff(t_model.astype(np.float32)) <= 0):
            raise ValueError(
                f"t_eval {t_list!r} has times closer together than float32 resolves at their "
                f"distance from the model's time origin {self._t_origin:g}; pass coarser times")
        dev = resolve_device(device)
        fld = self.field.to(dev)
        xs, lms = [], []
        with torch.no_grad():
            for s in range(0, len(x0), batch_size):
                xb = torch.from_numpy(self.to_model_frame(x0[s : s + batch_size])).to(dev)
                x, lm = integrate(fld, xb, t_model.tolist(), n_steps=self.config.ode_steps)
                xs.append(x.cpu().numpy())
                lms.append(lm.cpu().numpy())
        self.field.cpu()
        if not xs:
            states = np.zeros((len(t_list), 0, self.dim), np.float32)
            log_mass = np.zeros((len(t_list), 0), np.float32)
        else:
            states, log_mass = np.concatenate(xs, axis=1), np.concatenate(lms, axis=1)
        return (states if frame == "model" else self.from_model_frame(states)), log_mass

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        snapshots: Sequence[np.ndarray | torch.Tensor],
        times: Sequence[float],
        *,
        population_size: Sequence[float] | None = None,
        holdout: int | None = None,
        config: TrainConfig | None = None,
        seed: int = 0,
        device: str | torch.device | None = None,
        progress: bool = False,
        source_prior: Sequence[np.ndarray | None] | None = None,
        info: dict[str, Any] | None = None,
        loadings: np.ndarray | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> VGFM:
        """Train a model on time-stamped snapshots (plain arrays) and return it.

        Calls :func:`vgfm._core.train.train` and records what the model was fitted on: the
        time points, relative population sizes, cell counts, the held-out time point, the
        seed, the training history and timings, and a fingerprint of the representation
        (:func:`representation_fingerprint` of all cells of ``snapshots``, plus ``loadings``
        and ``feature_names`` when given). :func:`vgfm.tl.fit` is the AnnData front end.

        Precision: the networks compute in float32. Data far from 0 (e.g. coordinates offset
        by 1e9, times in seconds since an epoch) are first moved, in float64, to a frame near
        0 (:attr:`origin`, :attr:`t_origin`); ordinary data are not moved (their results are
        bit-identical to a fit without this step).

        Parameters
        ----------
        snapshots
            One ``(n_k, d)`` array per time point, in time order.
        times
            Strictly increasing numeric times ``t_k``.
        population_size
            Population size per time point (any scale); default the cell counts.
        holdout
            Index of an interior time point left out of training.
        config
            :class:`~vgfm._core.train.TrainConfig`; ``None`` for the defaults.
        seed
            Seed of every random draw of training.
        device
            Torch device; ``None`` picks CUDA when available.
        progress
            Show progress bars.
        source_prior
            Prior on the source masses, passed to :func:`~vgfm._core.train.train`.
        info
            Extra entries of :attr:`info`, e.g. ``use_rep``, ``time_key`` and ``time_labels``
            (defaults: ``"X"``, ``""`` and the times as strings).
        loadings
            Loadings that produced the representation (``varm["PCs"]`` for ``X_pca``), hashed
            into the fingerprint so that a recomputed PCA is recognised later.
        feature_names
            Names of the representation's columns when they are genes (``use_rep="X"``).

        Returns
        -------
        VGFM
            The trained model (on the CPU).

        Examples
        --------
        >>> import numpy as np
        >>> from vgfm import VGFM
        >>> from vgfm._core.train import TrainConfig
        >>> rng = np.random.default_rng(0)
        >>> snaps = [rng.normal(size=(40, 2)), rng.normal(size=(50, 2)) + 1.0]
        >>> model = VGFM.fit(snaps, [0.0, 1.0], config=TrainConfig(stage1_steps=5,
        ...                  stage2_steps=0, hidden=8))
        >>> model.dim, model.info["n_cells"]
        (2, [40, 50])
        """
        cfg = config or TrainConfig()
        arrays = [np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s)
                  for s in snapshots]
        tvals = [float(t) for t in times]
        # large offsets are removed in float64 before anything is cast to float32
        widths = {a.shape[1] if a.ndim == 2 else -1 for a in arrays}
        origin = frame_origin(arrays) if len(widths) == 1 and -1 not in widths else None
        lost = None if origin is None or not np.any(origin) else float32_precision_warning(
            arrays, f"the representation {(info or {}).get('use_rep', '')!r}"
            if (info or {}).get("use_rep") else "the representation")
        if lost:
            logger.warning("%s", lost)
        t_origin = time_origin(tvals) if all(map(math.isfinite, tvals)) else 0.0
        if origin is not None and np.any(origin):
            logger.info("the representation lies far from 0 (centre up to %.3g): it is "
                        "recentred in float64 before the float32 networks see it",
                        float(np.abs(origin).max()))
        if t_origin:
            logger.info("times are measured from %.17g in float64 before the float32 "
                        "networks see them", t_origin)
        result = train([to_frame(a, origin) for a in arrays] if origin is not None else arrays,
                       [t - t_origin for t in tvals], population_size=population_size,
                       holdout=holdout, source_prior=source_prior, config=cfg, seed=seed,
                       device=device, progress=progress)
        counts = np.array([len(a) for a in arrays], dtype=np.int64)
        sizes = (counts.astype(float) if population_size is None
                 else np.asarray(population_size, dtype=float))
        record: dict[str, Any] = {
            "use_rep": "X",
            "dim": int(arrays[0].shape[1]),
            "time_key": "",
            "times": tvals,
            "time_labels": [format_number(t) for t in tvals],  # distinct, also far from 0
            "relative_size": (sizes / sizes[0]).tolist(),
            "n_cells": counts.tolist(),
            "held_out": [k == holdout for k in range(len(tvals))],
            "seed": int(seed),
        }
        record.update(info or {})
        fingerprint = representation_fingerprint(
            np.concatenate(arrays, axis=0), loadings=loadings, feature_names=feature_names)
        training = {"seconds": float(result.seconds), "best_step": int(result.best_step),
                    **_jsonable(dict(result.extra))}
        return cls(result.field, config=cfg, info=record, history=result.history,
                   fingerprint=fingerprint, training=training, origin=origin,
                   t_origin=t_origin)

    # ------------------------------------------------------------------ (de)serialisation
    def _frame_entries(self) -> dict[str, Any]:
        """``format_version`` and (for a model with offsets) ``frame`` of a written model."""
        if not self.has_offset:
            return {"format_version": 2}  # nothing here needs version 3: older vgfm reads it
        frame = {"origin": self._origin.tolist(), "t_origin": self._t_origin}
        return {"format_version": _FRAME_VERSION, "frame": json.dumps(frame)}

    def to_dict(self) -> dict[str, Any]:
        """h5ad-serialisable description: config, info and fingerprint (JSON), weights (numpy).

        A model with offsets (:attr:`origin`, :attr:`t_origin`) also carries ``frame``, JSON
        of the float64 offsets (format version 3).

        Examples
        --------
        >>> sorted(model.to_dict())  # doctest: +SKIP
        ['config', 'fingerprint', 'format_version', 'info', 'state', 'training']
        """
        state = {k: v.detach().cpu().numpy() for k, v in self.field.state_dict().items()}
        return {
            **self._frame_entries(),
            "config": json.dumps(self.config.to_dict()),
            "info": json.dumps(_jsonable(self.info)),
            "fingerprint": json.dumps(_jsonable(self.fingerprint or {})),
            "training": json.dumps(_jsonable(self.training)),
            "state": state,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], history: dict | None = None,
                  info: dict[str, Any] | None = None, *,
                  source: str = "the model record") -> VGFM:
        """Inverse of :meth:`to_dict`; ``info`` replaces the stored metadata (fit record) and
        ``source`` names the origin in error messages.

        Examples
        --------
        >>> rebuilt = VGFM.from_dict(model.to_dict())  # doctest: +SKIP
        """
        version = _check_version(d.get("format_version", 1), source)
        try:
            stored = json.loads(str(d["config"]))
            # records written before the interpolant options were trained on straight paths
            # at constant speed
            stored.setdefault("interpolant", "linear")
            stored.setdefault("interpolant_speed", "constant")
            stored.setdefault("growth_test", None)  # before the motion test
            stored.setdefault("bound_growth", False)  # before growth bounds
            stored.setdefault("net_of_motion", False)  # before growth targets net of motion
            stored.setdefault("coupling_momentum", 0.0)  # before the momentum option
            stored.setdefault("stiffened_targets", "plan")  # before shrunk targets
            stored.setdefault("growth_noise_test", None)  # before the noise test
            stored.setdefault("chord_gap", None)  # routes before the gap rule: every pair
            cfg = TrainConfig(**stored)
            info = json.loads(str(d["info"])) if info is None else dict(info)
            fingerprint = json.loads(str(d.get("fingerprint") or "{}")) or None
            training = json.loads(str(d.get("training") or "{}"))
            state = {k: torch.as_tensor(np.asarray(v)) for k, v in d["state"].items()}
            dim = int(info["dim"])
            fld = VelocityGrowthField(
                dim, center=torch.zeros(dim), scale=1.0, t_start=0.0, t_span=1.0,
                hidden=cfg.hidden, n_layers=cfg.n_layers,
                growth=any(k.startswith("growth_net.") for k in state),
                growth_form=_growth_form(state, dim), input_frame=_input_frame(state, dim),
            )
            if "growth_low" in state:
                fld.set_growth_bounds(state["growth_knots"], state["growth_low"],
                                      state["growth_high"])
            if "frame_knots" in state:
                fld.set_input_frame(state["frame_knots"], state["frame_center"],
                                    state["frame_log_scale"].exp())
            fld.load_state_dict(state)
            origin, t_origin = _read_frame(d.get("frame"), dim)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise ValueError(
                f"{source} is not a complete vgfm model (format version {version}): "
                f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
            ) from None
        hist = {str(k): np.asarray(v) for k, v in (history or {}).items()}
        return cls(fld, config=cfg, info=info, history=hist, fingerprint=fingerprint,
                   training=training, origin=origin, t_origin=t_origin)

    @classmethod
    def from_adata(cls, adata: Any, key: str = keys.DEFAULT_KEY, *,
                   mod: str | None = None) -> VGFM:
        """Rebuild the model that :func:`vgfm.tl.fit` stored in ``adata.uns[key]``.

        Examples
        --------
        >>> adata = anndata.read_h5ad("fitted.h5ad")  # doctest: +SKIP
        >>> model = vgfm.VGFM.from_adata(adata)       # doctest: +SKIP
        """
        data = resolve_container(adata, mod)
        if key not in data.uns or "model" not in data.uns[key]:
            raise KeyError(
                f"adata.uns[{key!r}] holds no fitted VGFM model; run vgfm.tl.fit(adata, "
                f"key_added={key!r}) first (or pass the model object)."
            )
        record = read_record(data, key)
        model = cls.from_dict(record.model, history=record.history, info=record.model_info(),
                              source=f"adata.uns[{key!r}]['model']")
        model.check_adata(data)
        return model

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write the model to ``path``: weights as tensors, config and fit record as JSON.

        The file is a :func:`torch.save` archive that holds only tensors, strings and numbers,
        so :meth:`load` reads it with ``torch.load(weights_only=True)`` (no Python object is
        ever unpickled). It is written to a temporary file in the same folder and moved into
        place in one step, so an interrupted save never leaves a partial file, and an
        existing ``path`` is left intact until the new file is complete.

        Parameters
        ----------
        path
            Destination file (``.pt`` by convention). Its folder must exist.
        overwrite
            Replace an existing file; by default an existing file is refused.

        Raises
        ------
        FileExistsError
            If ``path`` exists and ``overwrite=False``.
        IsADirectoryError, NotADirectoryError, FileNotFoundError
            If ``path`` is a folder, or its parent is missing or is a file.

        Examples
        --------
        >>> model.save("model.pt")                  # doctest: +SKIP
        >>> model.save("model.pt", overwrite=True)  # doctest: +SKIP
        """
        target = check_writable_path(path, what="model file", overwrite=overwrite)
        payload: dict[str, Any] = {
            "vgfm_model": _MAGIC,
            **self._frame_entries(),
            "vgfm_version": _package_version(),
            "config": json.dumps(self.config.to_dict()),
            "info": json.dumps(_jsonable(self.info)),
            "fingerprint": json.dumps(_jsonable(self.fingerprint or {})),
            "training": json.dumps(_jsonable(self.training)),
            "state": {k: v.detach().cpu().clone() for k, v in self.field.state_dict().items()},
            "history": {str(k): torch.from_numpy(np.array(v, copy=True))
                        for k, v in self.history.items()},
        }
        atomic_write(target, lambda f: torch.save(payload, f), overwrite=overwrite)
        logger.info("saved VGFM model to %s", target)

    @classmethod
    def load(cls, path: str | Path, adata: Any | None = None, *, mod: str | None = None) -> VGFM:
        """Read a model written by :meth:`save`; validate ``adata`` against it when given.

        The file is opened with ``torch.load(weights_only=True)``: a file that holds anything
        but tensors, strings and numbers (e.g. a pickled Python object) is refused without
        running it. The format version is checked, and with ``adata`` the data is checked
        against the representation the model was fitted on (:meth:`check_adata`).

        Raises
        ------
        FileNotFoundError, IsADirectoryError
            If ``path`` does not exist or is a folder.
        ValueError
            If the file is not a vgfm model (foreign, truncated, pickled objects), was written
            by a newer format version, or ``adata`` does not match the model.
        KeyError
            If ``adata`` lacks the model's representation.

        Examples
        --------
        >>> model = vgfm.VGFM.load("model.pt", adata)  # doctest: +SKIP
        """
        p = Path(path)
        if p.is_dir():
            raise IsADirectoryError(f"model file {str(p)!r} is a directory, not a file written "
                                    "by VGFM.save")
        if not p.is_file():
            raise FileNotFoundError(f"model file {str(p)!r} does not exist")
        if not zipfile.is_zipfile(p):
            raise ValueError(
                f"model file {str(p)!r} is not a vgfm model: it is not a torch archive written "
                "by VGFM.save (truncated, or another kind of file). Nothing in it was run."
            )
        try:
            payload = torch.load(p, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            found = re.search(r"GLOBAL ([\w.]+)", str(err))
            what = f" (it refers to {found.group(1)})" if found else ""
            raise ValueError(
                f"model file {str(p)!r} was refused: it contains Python objects other than "
                f"tensors, strings and numbers{what}, which are never unpickled (nothing in it "
                "was run). Only files written by VGFM.save are read."
            ) from None
        except Exception as err:  # torch raises RuntimeError, OSError, EOFError, ...
            raise ValueError(
                f"model file {str(p)!r} could not be read as a vgfm model (truncated or "
                f"damaged?): {type(err).__name__}: {' '.join(str(err).split())[:200]}"
            ) from None
        if not isinstance(payload, dict) or payload.get("vgfm_model") != _MAGIC:
            raise ValueError(
                f"model file {str(p)!r} is a torch file but not a vgfm model (no vgfm marker): "
                "only files written by VGFM.save are read."
            )
        _check_version(payload.get("format_version"), f"model file {str(p)!r}")
        history = payload.get("history") or {}
        model = cls.from_dict(
            payload,
            history={k: v.numpy() if isinstance(v, torch.Tensor) else v
                     for k, v in history.items()},
            source=f"model file {str(p)!r}",
        )
        if adata is not None:
            model.check_adata(resolve_container(adata, mod))
        return model

    def check_adata(self, adata: Any, use_rep: str | None = None) -> None:
        """Raise a clear error if ``adata`` does not carry this model's representation.

        Checks the representation's width, then (when the model has a fingerprint) its
        content: different PCA loadings (``varm["PCs"]`` for ``X_pca``) or different gene
        names (``use_rep="X"``) of the same size are refused; a large shift of the data's
        centre or scale against the training data is logged as a WARNING.

        Examples
        --------
        >>> model.check_adata(adata)  # doctest: +SKIP
        """
        rep = use_rep or self.use_rep
        if rep == "X":
            data = adata.X
        elif rep in adata.obsm:
            data = adata.obsm[rep]
        else:
            raise KeyError(
                f"the model was fitted on use_rep={rep!r}, which is not in adata.obsm "
                f"(available: {list(adata.obsm.keys())}). Compute the same representation "
                "(e.g. project new cells with the PCA loadings of the training data) first."
            )
        found = np.shape(data)[1]
        if found != self.dim:
            raise ValueError(
                f"the model was fitted on {self.dim}-dimensional {rep!r}, but this data has "
                f"{found} dimensions there; apply the model only to data in the same "
                "representation."
            )
        if not self.fingerprint:
            return
        loadings = None
        if rep == "X_pca" and "PCs" in getattr(adata, "varm", {}):
            loadings = np.asarray(adata.varm["PCs"])
        names = list(map(str, adata.var_names)) if rep == "X" else None
        current = representation_fingerprint(data, loadings=loadings, feature_names=names)
        errors, warns = compare_fingerprints(self.fingerprint, current, use_rep=rep)
        if errors:
            raise ValueError(
                f"this data's {rep!r} has the model's width ({self.dim}) but other content: "
                + "; ".join(errors)
            )
        for text in warns:
            logger.warning("%s", text)


# ---------------------------------------------------------------------------- fingerprints
def representation_fingerprint(
    x: Any,
    *,
    loadings: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Summary of a representation, stored with a model to recognise its data later.

    Pure function of arrays (no AnnData): the AnnData side passes ``x`` (the ``use_rep``
    matrix), ``loadings`` (``varm["PCs"]`` when ``use_rep="X_pca"``) and ``feature_names``
    (``var_names`` when ``use_rep="X"``).

    Parameters
    ----------
    x
        ``(n, d)`` matrix, dense or scipy sparse.
    loadings
        ``(n_genes, >= d)`` loadings of a PCA; the first ``d`` columns are hashed (SHA-256 of
        their float32 bytes).
    feature_names
        Names of the ``d`` columns; hashed.

    Returns
    -------
    dict
        ``dim``, ``n_cells``, ``mean`` and ``std`` (per column, float64), ``scale`` (root mean
        per-column variance about the mean), ``loadings_sha256`` / ``loadings_shape`` and
        ``features_sha256`` (``None`` when not given).

    Examples
    --------
    >>> import numpy as np
    >>> fp = representation_fingerprint(np.array([[0.0, 1.0], [2.0, 3.0]]))
    >>> fp["dim"], fp["mean"], fp["scale"]
    (2, [1.0, 2.0], 1.0)
    """
    from scipy import sparse

    if sparse.issparse(x):
        mat = sparse.csr_matrix(x, dtype=np.float64)
        mean = np.asarray(mat.mean(axis=0)).ravel()
        sq = np.asarray(mat.multiply(mat).mean(axis=0)).ravel()
        var = np.clip(sq - mean**2, 0.0, None)
    else:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"representation must be a 2-d matrix, got shape {arr.shape}")
        mean = arr.mean(axis=0) if len(arr) else np.zeros(arr.shape[1])
        var = arr.var(axis=0) if len(arr) else np.zeros(arr.shape[1])
    dim = int(np.shape(x)[1])
    fp: dict[str, Any] = {
        "dim": dim,
        "n_cells": int(np.shape(x)[0]),
        "mean": mean.tolist(),
        "std": np.sqrt(var).tolist(),
        "scale": float(np.sqrt(var.mean())) if dim else 0.0,
        "loadings_sha256": None,
        "loadings_shape": None,
        "features_sha256": None,
    }
    if loadings is not None:
        load = np.asarray(loadings)
        if load.ndim == 2 and load.shape[1] >= dim:
            block = np.ascontiguousarray(load[:, :dim], dtype=np.float32)
            fp["loadings_sha256"] = hashlib.sha256(block.tobytes()).hexdigest()
            fp["loadings_shape"] = [int(block.shape[0]), dim]
    if feature_names is not None:
        joined = "\x1f".join(map(str, feature_names)).encode("utf-8")
        fp["features_sha256"] = hashlib.sha256(joined).hexdigest()
    return fp


#: Centre shift (root mean square per column, in units of the fitted scale) above which a
#: WARNING is logged.
CENTER_SHIFT_WARN = 3.0
#: Ratio of scales (either way) above which a WARNING is logged.
SCALE_RATIO_WARN = 4.0


def compare_fingerprints(
    fitted: dict[str, Any], current: dict[str, Any], *, use_rep: str = "X_pca"
) -> tuple[list[str], list[str]]:
    """Compare the fingerprint of the training data with that of new data.

    Returns ``(errors, warnings)``, each a list of sentences. Errors: same width but different
    PCA loadings (same number of genes) or different feature names. Warnings: the centre has
    moved by more than :data:`CENTER_SHIFT_WARN` fitted scales (root mean square per column),
    the overall scale changed by more than a factor :data:`SCALE_RATIO_WARN`, or the loadings
    cannot be compared (missing, or another number of genes).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> compare_fingerprints(representation_fingerprint(x), representation_fingerprint(x))
    ([], [])
    >>> errors, warns = compare_fingerprints(representation_fingerprint(x),
    ...                                      representation_fingerprint(10 * x))
    >>> errors, len(warns)
    ([], 1)
    """
    errors: list[str] = []
    warns: list[str] = []
    if int(fitted.get("dim", current["dim"])) != int(current["dim"]):
        errors.append(f"width {current['dim']} instead of {fitted['dim']}")
        return errors, warns
    fl, cl = fitted.get("loadings_sha256"), current.get("loadings_sha256")
    if fl and cl and fl != cl:
        if fitted.get("loadings_shape") == current.get("loadings_shape"):
            errors.append(
                f"the PCA loadings varm['PCs'] differ from those of the training data (SHA-256 "
                f"{cl[:12]}… instead of {fl[:12]}…), so {use_rep!r} was recomputed (other genes, "
                "other preprocessing or another PCA run) and its coordinates mean something "
                "else. Project these cells onto the training PCA (e.g. scanpy.tl.ingest, or "
                "X @ PCs of the training data) or refit the model on this representation"
            )
        else:
            warns.append(
                f"varm['PCs'] has shape {current.get('loadings_shape')} instead of "
                f"{fitted.get('loadings_shape')} (genes subset?): cannot verify that "
                f"{use_rep!r} is the PCA the model was fitted on"
            )
    elif fl and not cl:
        warns.append(f"varm['PCs'] is missing: cannot verify that {use_rep!r} is the PCA the "
                     "model was fitted on")
    ff, cf = fitted.get("features_sha256"), current.get("features_sha256")
    if ff and cf and ff != cf:
        errors.append(
            "the feature (gene) names differ from those of the training data; reorder or "
            "subset the genes to the training genes (adata[:, genes]) or refit"
        )
    if errors:
        return errors, warns
    scale = float(fitted.get("scale") or 0.0)
    if scale > 0 and current.get("n_cells", 0) >= 2:
        shift = (np.asarray(current["mean"]) - np.asarray(fitted["mean"])) / scale
        rms_shift = float(np.sqrt(np.mean(shift**2)))
        ratio = float(current["scale"]) / scale
        if rms_shift > CENTER_SHIFT_WARN:
            warns.append(
                f"the centre of {use_rep!r} lies {rms_shift:.3g} training scales (root mean "
                f"square per column) from that of the training data (warning above "
                f"{CENTER_SHIFT_WARN:g}): the model is applied far outside the data it was "
                "fitted on; check that this is the same representation (not shifted or "
                "recomputed)"
            )
        if not 1 / SCALE_RATIO_WARN <= ratio <= SCALE_RATIO_WARN:
            warns.append(
                f"the spread of {use_rep!r} is {ratio:.3g} times that of the training data "
                f"(warning outside [1/{SCALE_RATIO_WARN:g}, {SCALE_RATIO_WARN:g}]): check that "
                "the representation was not rescaled or recomputed"
            )
    return errors, warns


# ------------------------------------------------------------------------------ file helpers
def check_writable_path(path: str | Path, *, what: str = "output file",
                        overwrite: bool = True) -> Path:
    """Check, before any work, that a file can be written at ``path``; return it as a Path.

    Refuses a folder, a parent that is missing or is a file, an unwritable folder, and (with
    ``overwrite=False``) an existing file, each with an error naming ``path``.

    Examples
    --------
    >>> check_writable_path("/")  # doctest: +SKIP
    Traceback (most recent call last):
    IsADirectoryError: output file '/' is a directory; give a file name inside it
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{what} {str(p)!r} is a directory; give a file name inside it "
                                f"(e.g. {str(p / 'model.pt')!r})")
    parent = p.parent
    for anc in [parent, *parent.parents]:
        if anc.exists() and not anc.is_dir():
            raise NotADirectoryError(f"{what} {str(p)!r}: {str(anc)!r} is a file, not a folder")
        if anc.exists():
            break
    if not parent.is_dir():
        raise FileNotFoundError(f"{what} {str(p)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {str(p)!r}: folder {str(parent)!r} is not writable")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{what} {str(p)!r} already exists; pass overwrite=True to "
                              "replace it")
    return p


def atomic_write(path: str | Path, write: Callable[[Any], Any], *,
                 overwrite: bool = True, binary: bool | None = True,
                 suffix: str = "") -> Path:
    """Write a file through a temporary file in the same folder, then move it into place.

    ``write`` receives an open file object (or, with ``binary=None``, nothing is opened and it
    receives the temporary path, whose name ends in ``suffix``). The temporary file is flushed to disk and renamed over
    ``path`` with :func:`os.replace` (atomic on POSIX and Windows), so readers see either the
    old file or the complete new one, never a partial file; on any error or interruption the
    temporary file is removed and ``path`` is left as it was. With ``overwrite=False`` the
    final step refuses to replace a file that appeared meanwhile.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> _ = atomic_write(p, lambda f: f.write(b"data"))
    >>> p.read_bytes()
    b'data'
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}",
                                    dir=target.parent)
    tmp = Path(tmp_name)
    try:
        if binary is None:
            os.close(fd)
            write(tmp)
        else:
            with os.fdopen(fd, "wb" if binary else "w") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if target exists: no clobbering, even in a race
            except FileExistsError:
                raise FileExistsError(f"{str(target)!r} already exists; pass overwrite=True "
                                      "to replace it") from None
            except OSError:  # file system without hard links
                if target.exists():
                    raise FileExistsError(f"{str(target)!r} already exists") from None
                os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def _input_frame(state: dict[str, torch.Tensor], dim: int) -> str:
    """What the saved field's networks see of ``x``, read from its tensors (older files:
    ``"global"``)."""
    return ("global+time" if int(state["velocity_net.0.weight"].shape[1]) == 2 * dim + 1
            else "global")


def _growth_form(state: dict[str, torch.Tensor], dim: int) -> str:
    """The growth form of a saved field, read from its tensors (older files: ``"xt"``)."""
    if any(k.startswith("growth_offset.") for k in state):
        return "x+t"
    weight = state.get("growth_net.0.weight")
    return "x" if weight is not None and int(weight.shape[1]) == dim else "xt"


def _read_frame(frame: Any, dim: int) -> tuple[np.ndarray, float]:
    """Offsets stored under ``frame`` (JSON); zeros when absent (format versions 1 and 2)."""
    if frame is None or (isinstance(frame, str) and not frame):
        return np.zeros(dim), 0.0
    d = json.loads(str(frame))
    if not isinstance(d, dict):
        raise ValueError(f"frame must be a JSON object, found {type(d).__name__}")
    origin = np.asarray(d.get("origin", [0.0] * dim), dtype=np.float64).reshape(-1)
    t_origin = float(d.get("t_origin", 0.0))
    if origin.shape != (dim,) or not np.all(np.isfinite(origin)) or not math.isfinite(t_origin):
        raise ValueError(f"frame must hold {dim} finite origin values and a finite t_origin, "
                         f"found {origin.shape[0]} values and t_origin {t_origin!r}")
    return origin, t_origin


def _check_version(version: Any, source: str) -> int:
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise ValueError(f"{source} has no valid vgfm format version (found {version!r}); "
                         "it was not written by vgfm") from None
    if v > FORMAT_VERSION or v < 1:
        raise ValueError(
            f"{source} has model format version {v}, but this vgfm ({_package_version()}) "
            f"reads format versions 1 to {FORMAT_VERSION}; upgrade vgfm to read it"
            if v > FORMAT_VERSION else
            f"{source} has unknown model format version {v} (this vgfm reads 1 to "
            f"{FORMAT_VERSION})"
        )
    return v


def _package_version() -> str:
    try:
        return version("vgfm")
    except PackageNotFoundError:  # pragma: no cover - source checkout without install
        return "0.0.0"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
