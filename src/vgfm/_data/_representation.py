"""Representations: the matrix VGFM models (``obsm[use_rep]`` or ``X``) and 2-D embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from vgfm._data._format import fmt_list, plural
from vgfm._data._keys import basis_key

__all__ = ["MAX_DENSIFY_ENTRIES", "MAX_DENSIFY_FEATURES", "get_embedding", "get_representation"]

#: Sparse ``use_rep="X"`` matrices above this many entries are refused rather than densified.
MAX_DENSIFY_ENTRIES = 50_000_000
#: … and above this many features, whatever the number of cells: the flow networks are sized
#: for low-dimensional representations (tens to a few thousand dimensions).
MAX_DENSIFY_FEATURES = 10_000


def get_representation(adata: AnnData, use_rep: str) -> np.ndarray:
    """Dense float32, C-contiguous **copy** of ``adata.obsm[use_rep]`` (or ``adata.X``).

    Parameters
    ----------
    adata
        Annotated data matrix, loaded in memory.
    use_rep
        An ``.obsm`` key (e.g. ``"X_pca"``) or ``"X"``.

    Returns
    -------
    float32 array ``(n_obs, d)`` that shares no memory with ``adata``.

    Examples
    --------
    >>> import anndata
    >>> ad = anndata.AnnData(np.zeros((4, 3)), obsm={"X_pca": np.ones((4, 2))})
    >>> x = get_representation(ad, "X_pca")
    >>> x.dtype, x.shape, x.flags["C_CONTIGUOUS"]
    (dtype('float32'), (4, 2), True)
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
        arr = np.array(mat.toarray(), dtype=np.float32, order="C", copy=True)
    else:
        try:
            arr = np.array(mat, dtype=np.float32, order="C", copy=True)
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
    bad_rows = ~np.isfinite(arr).all(axis=1)
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
