"""Small helpers shared by :mod:`vgfm.tl` and :mod:`vgfm.pl` to read AnnData / MuData fields.

Nothing here writes to the data object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vgfm._constants import basis_key

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "resolve_container",
    "get_representation",
    "get_embedding",
    "get_fit_info",
    "obs_times",
]


def _is_mudata(data: Any) -> bool:
    try:
        from mudata import MuData
    except ImportError:  # pragma: no cover - mudata is a dependency
        return False
    return isinstance(data, MuData)


def resolve_container(data: Any, mod: str | None = None) -> AnnData:
    """Return the object whose ``obs`` / ``obsm`` / ``uns`` hold the fields to read or write.

    Parameters
    ----------
    data
        An :class:`~anndata.AnnData` or a :class:`~mudata.MuData`.
    mod
        ``None`` (default): ``data`` itself. For a MuData this is the joint object, whose
        ``obs``, ``obsm``, ``obsp`` and ``uns`` are used (e.g. a joint ``X_umap``
        computed with ``muon``). A modality name (``"rna"``): ``data.mod[mod]``.

    Returns
    -------
    AnnData-like
        ``data`` or ``data.mod[mod]`` (not a copy: writing to it writes to ``data``).

    Raises
    ------
    KeyError
        If ``mod`` is not a modality of ``data``.
    TypeError
        If ``mod`` is given but ``data`` is not a MuData.

    Examples
    --------
    >>> import numpy as np, anndata, mudata
    >>> from vgfm._anndata_utils import resolve_container
    >>> mdata = mudata.MuData({"rna": anndata.AnnData(np.ones((3, 2)))})
    >>> resolve_container(mdata, "rna") is mdata.mod["rna"]
    True
    """
    if mod is None:
        return data
    if not _is_mudata(data):
        raise TypeError(
            f"mod={mod!r} selects a modality of a MuData, but a {type(data).__name__} was given; "
            "drop `mod=` for an AnnData."
        )
    if mod not in data.mod:
        raise KeyError(
            f"mod={mod!r} is not a modality of this MuData; available modalities: "
            f"{list(data.mod.keys())}."
        )
    return data.mod[mod]


def get_representation(adata: AnnData, use_rep: str) -> np.ndarray:
    """Dense float32 copy of ``use_rep``; the validator of :mod:`vgfm.pp` (one implementation).

    Examples
    --------
    >>> import numpy as np, anndata
    >>> from vgfm._anndata_utils import get_representation
    >>> ad = anndata.AnnData(np.zeros((4, 3)), obsm={"X_pca": np.ones((4, 2))})
    >>> get_representation(ad, "X_pca").shape
    (4, 2)
    """
    from vgfm.pp._validate import get_representation as _get

    return _get(adata, use_rep)


def get_embedding(adata: AnnData, basis: str) -> np.ndarray:
    """First two columns of ``adata.obsm["X_<basis>"]`` as a dense ``float64`` array.

    Examples
    --------
    >>> import numpy as np, anndata
    >>> from vgfm._anndata_utils import get_embedding
    >>> ad = anndata.AnnData(np.zeros((4, 3)), obsm={"X_umap": np.ones((4, 2))})
    >>> get_embedding(ad, "umap").shape
    (4, 2)
    """
    key = basis_key(basis)
    if key not in adata.obsm:
        name = key.removeprefix("X_")
        raise KeyError(
            f"adata.obsm[{key!r}] (the {name!r} embedding) is missing; available obsm keys: "
            f"{list(adata.obsm.keys())}. Compute it first, e.g. `sc.pp.neighbors(adata); "
            f"sc.tl.{name}(adata)`, or pass another `basis=`."
        )
    emb = np.asarray(adata.obsm[key], dtype=np.float64)
    if emb.ndim != 2 or emb.shape[1] < 2:
        raise ValueError(
            f"adata.obsm[{key!r}] must have at least 2 columns; found shape {emb.shape}."
        )
    return emb[:, :2]


def get_fit_info(adata: AnnData, key: str) -> dict:
    """The ``adata.uns[key]`` dict written by :func:`vgfm.tl.fit` (with its ``"params"``).

    Examples
    --------
    >>> import anndata, numpy as np
    >>> from vgfm._anndata_utils import get_fit_info
    >>> ad = anndata.AnnData(np.zeros((2, 2)), uns={"vgfm": {"params": {"use_rep": "X"}}})
    >>> get_fit_info(ad, "vgfm")["params"]["use_rep"]
    'X'
    """
    info = adata.uns.get(key)
    if not isinstance(info, dict) or "params" not in info:
        raise KeyError(
            f"adata.uns[{key!r}] with VGFM results is missing (found uns keys "
            f"{list(adata.uns.keys())}); run `vgfm.tl.fit(adata, key_added={key!r})` first."
        )
    return info


def obs_times(
    adata: AnnData,
    time_key: str,
    labels: Any = None,
    values: Any = None,
) -> np.ndarray:
    """Numeric time of every cell from ``adata.obs[time_key]``.

    Numeric columns are used as they are. Labels are looked up in the mapping stored at fit
    time (``labels`` -> ``values``, e.g. ``uns[key]["time_labels"]``/``["times"]``) when given
    and complete, otherwise parsed by :func:`vgfm.pp._validate.resolve_times`.

    Examples
    --------
    >>> import anndata, numpy as np, pandas as pd
    >>> from vgfm._anndata_utils import obs_times
    >>> ad = anndata.AnnData(np.zeros((2, 2)), obs=pd.DataFrame({"day": ["early", "late"]},
    ...                      index=["a", "b"]))
    >>> obs_times(ad, "day", labels=["early", "late"], values=[0.0, 2.0])
    array([0., 2.])
    """
    if time_key not in adata.obs:
        raise KeyError(
            f"adata.obs[{time_key!r}] (the time key VGFM was fitted with) is missing; "
            f"available obs columns: {list(adata.obs.columns)}."
        )
    col = adata.obs[time_key]
    if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
        return np.asarray(col, dtype=np.float64)
    if labels is not None and values is not None:
        lookup = dict(zip((str(v) for v in labels), np.asarray(values, dtype=np.float64)))
        cell_labels = col.astype(str).to_numpy()
        if set(cell_labels) <= set(lookup):
            return np.array([lookup[v] for v in cell_labels], dtype=np.float64)
    from vgfm.pp._validate import resolve_times  # lazy: pp sits above this module

    times, _ = resolve_times(adata, time_key)
    return np.asarray(times, dtype=np.float64)
