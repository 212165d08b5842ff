"""Representations: the matrix VGFM models (``obsm[use_rep]`` or ``X``) and 2-D embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from vgfm._data._format import fmt_list, plural
from vgfm._data._keys import basis_key

__all__ = [
    "MAX_DENSIFY_ENTRIES",
    "MAX_DENSIFY_FEATURES",
    "FLOAT32_RESOLUTION_WARN",
    "RECENTRE_RATIO",
    "centre_and_scale",
    "float32_precision_warning",
    "frame_origin",
    "get_embedding",
    "get_representation",
    "representation_dtype",
    "stored_states",
    "to_frame",
]

#: Sparse ``use_rep="X"`` matrices above this many entries are refused rather than densified.
MAX_DENSIFY_ENTRIES = 50_000_000
#: … and above this many features, whatever the number of cells: the flow networks are sized
#: for low-dimensional representations (tens to a few thousand dimensions).
MAX_DENSIFY_FEATURES = 10_000


#: A representation whose centre lies more than this many data scales from 0 is recentred (in
#: float64) before it is cast to float32: at that distance float32 still resolves
#: ``2**-17`` (~8e-6) of the data's spread, beyond it the cast starts to merge cells
#: (an offset of 1e9 merges all of them). Below it the data are used exactly as before.
RECENTRE_RATIO = 64.0

#: Source dtypes that float32 holds exactly; every other numeric dtype is kept in float64.
_FLOAT32_EXACT = frozenset(np.dtype(t) for t in ("bool", "int8", "uint8", "int16", "uint16",
                                                  "float16", "float32"))


def representation_dtype(dtype: np.dtype | None) -> type:
    """``np.float32`` when float32 holds every value of ``dtype`` exactly, else ``np.float64``.

    Examples
    --------
    >>> representation_dtype(np.dtype("float32")), representation_dtype(np.dtype("float64"))
    (<class 'numpy.float32'>, <class 'numpy.float64'>)
    """
    return np.float32 if dtype is not None and np.dtype(dtype) in _FLOAT32_EXACT else np.float64


def frame_origin(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Offset subtracted (in float64) from a representation before any float32 computation.

    The per-column mean of all rows of ``arrays`` (accumulated in float64) when it lies more
    than :data:`RECENTRE_RATIO` data scales (root mean per-column variance) from 0 in some
    column, else zeros: ordinary data (PCA coordinates, log expression) are not moved, so
    their float32 values, and every number computed from them, stay exactly as they are.

    Parameters
    ----------
    arrays
        ``(n_k, d)`` arrays (e.g. one per time point), any float or integer dtype.

    Returns
    -------
    float64 array ``(d,)``.

    Examples
    --------
    >>> x = np.array([[0.0, 1.0], [2.0, 3.0]])
    >>> frame_origin([x]).tolist(), frame_origin([x + 1e9]).tolist()
    ([0.0, 0.0], [1000000001.0, 1000000002.0])
    """
    mean, scale = centre_and_scale(arrays)
    if np.all(np.abs(mean) <= RECENTRE_RATIO * scale):
        return np.zeros(len(mean))
    return mean


def centre_and_scale(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """Per-column mean and scale (root mean per-column variance) of all rows, in float64.

    Examples
    --------
    >>> centre_and_scale([np.array([[0.0, 0.0], [2.0, 2.0]])])
    (array([1., 1.]), 1.0)
    """
    arrays = [np.asarray(a) for a in arrays]
    arrays = [a for a in arrays if a.ndim == 2 and len(a)]
    if not arrays:
        return np.zeros(0), 0.0
    n = sum(len(a) for a in arrays)
    mean = sum(a.sum(axis=0, dtype=np.float64) for a in arrays) / n
    sq = sum(np.square(a - mean, dtype=np.float64).sum(axis=0) for a in arrays) / n
    return mean, float(np.sqrt(sq.mean()))


#: Relative float32 resolution (spacing of float32 numbers at the data's distance from 0, in
#: units of the data's spread) above which a float32 representation is reported as degraded.
FLOAT32_RESOLUTION_WARN = 1e-3


def float32_precision_warning(arrays: Sequence[np.ndarray], field_name: str) -> str | None:
    """A warning when a float32 representation lies so far from 0 that float32 has already
    rounded away its spread (nothing downstream can recover it), else ``None``.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    >>> float32_precision_warning([x], "X") is None
    True
    >>> float32_precision_warning([x + np.float32(1e9)], "X")[:40]
    'X is float32 and lies far from 0 (centre'
    """
    if not any(np.asarray(a).dtype == np.float32 for a in arrays):
        return None
    mean, scale = centre_and_scale(arrays)
    if not len(mean):
        return None
    spacing = float(np.spacing(np.float32(np.abs(mean).max())))
    if spacing <= FLOAT32_RESOLUTION_WARN * scale:
        return None
    return (
        f"{field_name} is float32 and lies far from 0 (centre up to {np.abs(mean).max():.3g}, "
        f"spread {scale:.3g}): float32 numbers there are {spacing:.3g} apart, so the data "
        "were already rounded before vgfm read them (cells may coincide, distances such as "
        "W1 are unreliable). Store the representation as float64, or subtract its mean, "
        "before fitting."
    )


def to_frame(x: np.ndarray, origin: np.ndarray | None, dtype: type = np.float32) -> np.ndarray:
    """``x - origin`` computed in float64, then cast to ``dtype`` (C-contiguous).

    With a zero (or ``None``) origin this is a plain cast, so data that were not recentred
    give bit-identical arrays.

    Examples
    --------
    >>> to_frame(np.array([[1e9 + 0.5]]), np.array([1e9])).tolist()
    [[0.5]]
    """
    if origin is None or not np.any(origin):
        return np.ascontiguousarray(x, dtype=dtype)
    out = np.asarray(x, dtype=np.float64) - np.asarray(origin, dtype=np.float64)
    return np.ascontiguousarray(out, dtype=dtype)


def stored_states(xs: np.ndarray, origin: np.ndarray | None) -> np.ndarray:
    """Simulated states as stored in ``uns``: float32 (what the networks compute), or float64
    when the model works in a shifted frame (a non-zero ``origin``: float32 would merge
    states far from 0).

    Examples
    --------
    >>> stored_states(np.zeros((1, 1, 2)), np.zeros(2)).dtype
    dtype('float32')
    >>> stored_states(np.full((1, 1, 2), 1e9), np.full(2, 1e9)).dtype
    dtype('float64')
    """
    shifted = origin is not None and bool(np.any(origin))
    return np.asarray(xs, dtype=np.float64 if shifted else np.float32)


def get_representation(adata: AnnData, use_rep: str) -> np.ndarray:
    """Dense, C-contiguous **copy** of ``adata.obsm[use_rep]`` (or ``adata.X``) in float32 or
    float64.

    The copy is float32 when the source's dtype fits float32 exactly (float32, float16, small
    integers) and float64 otherwise (float64 sources, large integers), so that no precision of
    the user's data is lost here; the model casts to float32 only after subtracting a large
    offset in float64 (:func:`frame_origin`).

    Parameters
    ----------
    adata
        Annotated data matrix, loaded in memory.
    use_rep
        An ``.obsm`` key (e.g. ``"X_pca"``) or ``"X"``.

    Returns
    -------
    float32 or float64 array ``(n_obs, d)`` that shares no memory with ``adata``.

    Examples
    --------
    >>> import anndata
    >>> ad = anndata.AnnData(np.zeros((4, 3), dtype=np.float32),
    ...                      obsm={"X_pca": np.ones((4, 2))})
    >>> x = get_representation(ad, "X_pca")
    >>> x.dtype, x.shape, x.flags["C_CONTIGUOUS"]
    (dtype('float64'), (4, 2), True)
    >>> get_representation(ad, "X").dtype
    dtype('float32')
    """
    if not isinstance(use_rep, str):
        raise TypeError(f"use_rep must be a str (an .obsm key or 'X'), got {use_rep!r}.")
    if getattr(adata, "isbacked", False):
        raise ValueError(
            f"adata is backed on disk ({adata.filename}); VGFM needs the representation "
            f"{use_rep!r} in memory. Load it first with adata = adata.to_memory()."
        )
    if use_rep == "X":
        field_name = "adata.X"
        mat = adata.X
        if mat is None:
            raise ValueError(
                "adata.X is None; expected a cells × features matrix. Pass use_rep= naming an "
                f".obsm key instead (available: {fmt_list(adata.obsm.keys())})."
            )
    else:
        field_name = f"adata.obsm[{use_rep!r}]"
        if use_rep not in adata.obsm:
            raise KeyError(
                f"use_rep={use_rep!r} is not a key of adata.obsm; available .obsm keys: "
                f"{fmt_list(adata.obsm.keys(), limit=50)} (or use_rep='X'). Compute it first, "
                "e.g. sc.pp.pca(adata) for use_rep='X_pca'."
            )
        mat = adata.obsm[use_rep]

    if isinstance(mat, pd.DataFrame):
        mat = mat.to_numpy()

    if sparse.issparse(mat):
        n_rows, n_cols = mat.shape
        if n_rows * n_cols > MAX_DENSIFY_ENTRIES or n_cols > MAX_DENSIFY_FEATURES:
            raise ValueError(
                f"{field_name} is sparse with {n_rows} × {n_cols} = {n_rows * n_cols:,} entries, "
                f"more than VGFM densifies (at most {MAX_DENSIFY_ENTRIES:,} entries and "
                f"{MAX_DENSIFY_FEATURES:,} features). Compute a low-dimensional representation "
                "first, e.g. sc.pp.pca(adata), and pass use_rep='X_pca'."
            )
        arr = np.array(mat.toarray(), dtype=representation_dtype(mat.dtype), order="C",
                       copy=True)
    else:
        try:
            arr = np.array(mat, dtype=representation_dtype(getattr(mat, "dtype", None)),
                           order="C", copy=True)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{field_name} could not be converted to a float array "
                f"(found {type(mat).__name__}); expected a numeric cells × features matrix."
            ) from err

    if arr.ndim != 2:
        raise ValueError(
            f"{field_name} has {arr.ndim} dimension(s) with shape {arr.shape}; expected a 2-D "
            "cells × features matrix."
        )
    if arr.shape[0] != adata.n_obs:
        raise ValueError(
            f"{field_name} has {arr.shape[0]} rows but adata has {adata.n_obs} cells; expected "
            "one row per cell."
        )
    if arr.shape[1] == 0:
        raise ValueError(
            f"{field_name} has 0 columns; expected at least one feature. Pass use_rep= naming a "
            "non-empty representation."
        )
    # float64 copies are checked against the float32 range the networks compute in
    bad_rows = ~np.isfinite(arr).all(axis=1) if arr.dtype == np.float32 else \
        ~(np.abs(arr) <= np.finfo(np.float32).max).all(axis=1)
    n_bad = int(bad_rows.sum())
    if n_bad:
        examples = list(np.asarray(adata.obs_names)[bad_rows][:5])
        accessor = "adata.X" if use_rep == "X" else f"adata.obsm[{use_rep!r}]"
        raise ValueError(
            f"{field_name} has non-finite values (NaN or ±inf, also float32 overflow) in "
            f"{plural(n_bad, 'cell')} (rows) out of {arr.shape[0]}, e.g. {fmt_list(examples)}. "
            f"Remove those cells, e.g. adata = adata[np.isfinite({accessor}).all(axis=1)].copy() "
            "(densify a sparse X first), or recompute the representation."
        )
    return arr


def get_embedding(adata: AnnData, basis: str) -> np.ndarray:
    """First two columns of ``adata.obsm["X_<basis>"]`` as a dense ``float64`` array.

    Examples
    --------
    >>> import anndata
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
