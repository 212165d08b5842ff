"""The :class:`VGFM` model object: a trained velocity-growth field plus what it was fitted on."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgfm._core.networks import VelocityGrowthField
from vgfm._core.ode import integrate
from vgfm._core.train import TrainConfig, resolve_device
from vgfm._data import keys
from vgfm._data._containers import resolve_container
from vgfm._data._record import read_record

logger = logging.getLogger("vgfm")

_FORMAT_VERSION = 1


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
    ):
        self.field = field.eval()
        self.config = config
        self.info = dict(info)
        self.history = dict(history or {})

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

    def __repr__(self) -> str:
        return (
            f"VGFM(method={self.config.method!r}, use_rep={self.use_rep!r}, dim={self.dim}, "
            f"times={np.round(self.times, 4).tolist()})"
        )

    # ------------------------------------------------------------------ prediction
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
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"states have shape {x.shape}; this model was fitted on {self.dim}-dimensional "
                f"{self.use_rep!r}. Pass cells in the same representation."
            )
        t_arr = np.broadcast_to(np.asarray(t, dtype=np.float32), (len(x),)).copy()  # writable
        dev = resolve_device(device)
        fld = self.field.to(dev)
        vs, gs = [], []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[s : s + batch_size])).to(dev)
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
    ) -> tuple[np.ndarray, np.ndarray]:
        """Integrate cells ``x0`` (at ``t_eval[0]``, log-mass 0) to every time of ``t_eval``.

        Returns states ``(T, n, d)`` and log-masses ``(T, n)``; chunked over cells.

        Examples
        --------
        >>> x, log_m = model.simulate(adata.X[:10], [0.0, 1.0, 2.0])  # doctest: +SKIP
        """
        x0 = np.asarray(x0, dtype=np.float32)
        if x0.ndim != 2 or x0.shape[1] != self.dim:
            raise ValueError(
                f"start states have shape {x0.shape}; the model expects (n, {self.dim})."
            )
        dev = resolve_device(device)
        fld = self.field.to(dev)
        xs, lms = [], []
        with torch.no_grad():
            for s in range(0, len(x0), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x0[s : s + batch_size])).to(dev)
                x, lm = integrate(fld, xb, list(map(float, t_eval)),
                                  n_steps=self.config.ode_steps)
                xs.append(x.cpu().numpy())
                lms.append(lm.cpu().numpy())
        self.field.cpu()
        return np.concatenate(xs, axis=1), np.concatenate(lms, axis=1)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """h5ad-serialisable description: config (JSON), info, weights (numpy arrays)."""
        state = {k: v.detach().cpu().numpy() for k, v in self.field.state_dict().items()}
        return {
            "format_version": _FORMAT_VERSION,
            "config": json.dumps(self.config.to_dict()),
            "info": json.dumps(_jsonable(self.info)),
            "state": state,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], history: dict | None = None,
                  info: dict[str, Any] | None = None) -> VGFM:
        """Inverse of :meth:`to_dict`; ``info`` replaces the stored metadata (fit record)."""
        cfg = TrainConfig(**json.loads(str(d["config"])))
        info = json.loads(str(d["info"])) if info is None else dict(info)
        state = {k: torch.as_tensor(np.asarray(v)) for k, v in d["state"].items()}
        dim = int(info["dim"])
        fld = VelocityGrowthField(
            dim, center=torch.zeros(dim), scale=1.0, t_start=0.0, t_span=1.0,
            hidden=cfg.hidden, n_layers=cfg.n_layers, growth=cfg.method == "vgfm",
        )
        fld.load_state_dict(state)
        return cls(fld, config=cfg, info=info, history=history)

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
        model = cls.from_dict(record.model, history=record.history, info=record.model_info())
        model.check_adata(data)
        return model

    def save(self, path: str | Path) -> None:
        """Write the model (weights, config, fit info, history) to ``path`` (torch format).

        Examples
        --------
        >>> model.save("model.pt")  # doctest: +SKIP
        """
        payload = self.to_dict()
        payload["history"] = {k: np.asarray(v) for k, v in self.history.items()}
        torch.save(payload, Path(path))
        logger.info("saved VGFM model to %s", path)

    @classmethod
    def load(cls, path: str | Path, adata: Any | None = None, *, mod: str | None = None) -> VGFM:
        """Read a model written by :meth:`save`; validate ``adata`` against it when given.

        Raises
        ------
        ValueError
            If ``adata`` lacks the model's representation or its dimension differs.

        Examples
        --------
        >>> model = vgfm.VGFM.load("model.pt", adata)  # doctest: +SKIP
        """
        payload = torch.load(Path(path), map_location="cpu", weights_only=False)
        model = cls.from_dict(payload, history=payload.get("history"))
        if adata is not None:
            model.check_adata(resolve_container(adata, mod))
        return model

    def check_adata(self, adata: Any, use_rep: str | None = None) -> None:
        """Raise a clear error if ``adata`` does not carry this model's representation."""
        rep = use_rep or self.use_rep
        if rep == "X":
            found = adata.shape[1]
        elif rep in adata.obsm:
            found = np.shape(adata.obsm[rep])[1]
        else:
            raise KeyError(
                f"the model was fitted on use_rep={rep!r}, which is not in adata.obsm "
                f"(available: {list(adata.obsm.keys())}). Compute the same representation "
                "(e.g. project new cells with the PCA loadings of the training data) first."
            )
        if found != self.dim:
            raise ValueError(
                f"the model was fitted on {self.dim}-dimensional {rep!r}, but this data has "
                f"{found} dimensions there; apply the model only to data in the same "
                "representation."
            )


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
