"""Projection of VGFM velocities on a 2-D embedding, gene-space velocities, growth genes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse

from vgfm._data._containers import Data, resolve_container
from vgfm._data._keys import (
    DEFAULT_KEY,
    basis_key,
    gene_velocity_genes_key,
    gene_velocity_key,
    growth_genes_key,
    growth_key,
    velocity_embedding_key,
    velocity_key,
)
from vgfm._data._record import read_record
from vgfm._data._representation import (
    frame_origin,
    get_embedding,
    get_representation,
    to_frame,
)
from vgfm._data._times import at_time, cell_times

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger("vgfm")

__all__ = ["velocity_embedding", "gene_velocity", "gene_velocity_arrays", "growth_genes"]

#: Largest cells x genes gene-velocity layer written by default (2 GB of float32).
MAX_GENE_VELOCITY_ENTRIES = 500_000_000

#: Number of float entries processed at once when projecting over graph edges.
_EDGE_CHUNK_ENTRIES = 4_000_000
_DEFAULT_N_NEIGHBORS = 30


# --------------------------------------------------------------------------------------------
# velocity_embedding
# --------------------------------------------------------------------------------------------
def _get_velocity(adata: AnnData, key: str) -> tuple[np.ndarray, str]:
    vkey = velocity_key(key)
    if vkey not in adata.obsm:
        raise KeyError(
            f"adata.obsm[{vkey!r}] (VGFM velocities) is missing; available obsm keys: "
            f"{list(adata.obsm.keys())}. Run `vgfm.tl.fit(adata, key_added={key!r})` first."
        )
    try:
        use_rep = read_record(adata, key).use_rep
    except KeyError:
        use_rep = None
    if use_rep is None:
        raise KeyError(
            f"adata.uns[{key!r}]['params']['use_rep'] is missing, so the representation the "
            f"velocities live in is unknown; run `vgfm.tl.fit(adata, key_added={key!r})`."
        )
    return np.asarray(adata.obsm[vkey], dtype=np.float64), str(use_rep)


def _knn_graph(
    adata: AnnData, rep: np.ndarray, n_neighbors: int | None
) -> tuple[sparse.csr_matrix, str]:
    """Binary kNN adjacency without self loops (rows = cells, columns = neighbours)."""
    if n_neighbors is None and "connectivities" in getattr(adata, "obsp", {}):
        graph = sparse.csr_matrix(adata.obsp["connectivities"], copy=True)
        source = "adata.obsp['connectivities']"
    else:
        from sklearn.neighbors import NearestNeighbors

        k = _DEFAULT_N_NEIGHBORS if n_neighbors is None else int(n_neighbors)
        if k < 1:
            raise ValueError(f"n_neighbors must be >= 1; got {n_neighbors}.")
        k = min(k, rep.shape[0] - 1)
        if k < 1:
            raise ValueError("velocity_embedding needs at least 2 cells.")
        nn = NearestNeighbors(n_neighbors=k + 1).fit(rep)
        idx = nn.kneighbors(rep, return_distance=False)
        n = rep.shape[0]
        rows = np.repeat(np.arange(n), k + 1)
        graph = sparse.csr_matrix(
            (np.ones(idx.size), (rows, idx.ravel())), shape=(n, n), dtype=np.float64
        )
        source = f"a {k}-nearest-neighbour graph on the fitted representation"
    graph.setdiag(0)
    graph.eliminate_zeros()
    graph.sort_indices()
    graph.data[:] = 1.0
    return graph, source


def _project_velocity(
    rep: np.ndarray,
    velocity: np.ndarray,
    emb: np.ndarray,
    graph: sparse.csr_matrix,
    scale: float,
) -> np.ndarray:
    """Vectorised transition-probability projection (see :func:`velocity_embedding`)."""
    n = rep.shape[0]
    rows = np.repeat(np.arange(n), np.diff(graph.indptr))
    cols = graph.indices
    n_edges = rows.size
    finite = np.all(np.isfinite(velocity), axis=1)
    v = np.where(finite[:, None], velocity, 0.0)
    v_norm = np.linalg.norm(v, axis=1)

    cos = np.zeros(n_edges)
    chunk = max(1, _EDGE_CHUNK_ENTRIES // max(rep.shape[1], 1))
    for start in range(0, n_edges, chunk):  # loop over edge chunks (memory), not over cells
        r = rows[start : start + chunk]
        c = cols[start : start + chunk]
        disp = rep[c] - rep[r]
        denom = np.linalg.norm(disp, axis=1) * v_norm[r]
        dot = np.einsum("ij,ij->i", disp, v[r])
        with np.errstate(invalid="ignore", divide="ignore"):
            cos[start : start + chunk] = np.where(denom > 0, dot / denom, 0.0)

    # softmax of scale * cos over each cell's neighbours (row-max shift for stability)
    logits = scale * cos
    row_max = np.full(n, -np.inf)
    np.maximum.at(row_max, rows, logits)
    weights = np.exp(logits - row_max[rows])
    row_sum = np.bincount(rows, weights=weights, minlength=n)
    degree = np.bincount(rows, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = weights / row_sum[rows]

    # unit displacement vectors in the embedding
    de = emb[cols] - emb[rows]
    de_norm = np.linalg.norm(de, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(de_norm[:, None] > 0, de / de_norm[:, None], 0.0)

    out = np.zeros((n, emb.shape[1]))
    for dim in range(emb.shape[1]):
        expected = np.bincount(rows, weights=p * unit[:, dim], minlength=n)
        uniform = np.bincount(rows, weights=unit[:, dim], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, dim] = expected - np.where(degree > 0, uniform / degree, 0.0)
    out[degree == 0] = 0.0
    out[~finite] = np.nan
    return out


def _velocity_embedding_array(
    adata: AnnData,
    *,
    basis: str = "umap",
    key: str = DEFAULT_KEY,
    n_neighbors: int | None = None,
    scale: float = 10.0,
) -> np.ndarray:
    """Compute the embedded velocity without writing anything to ``adata``."""
    emb = get_embedding(adata, basis)
    velocity, use_rep = _get_velocity(adata, key)
    rep = get_representation(adata, use_rep)
    rep = to_frame(rep, frame_origin([rep]), rep.dtype)  # neighbours far from 0 lose digits
    if velocity.shape != rep.shape:
        raise ValueError(
            f"adata.obsm[{velocity_key(key)!r}] has shape {velocity.shape} but the fitted "
            f"representation {use_rep!r} has shape {rep.shape}; re-run `vgfm.tl.fit`."
        )
    graph, source = _knn_graph(adata, rep, n_neighbors)
    logger.debug("velocity_embedding: using %s", source)
    return _project_velocity(rep, velocity, emb, graph, float(scale))


def velocity_embedding(
    adata: Data,
    *,
    basis: str = "umap",
    key: str = DEFAULT_KEY,
    n_neighbors: int | None = None,
    scale: float = 10.0,
    mod: str | None = None,
    copy: bool = False,
) -> Data | None:
    r"""Project VGFM velocities onto a 2-D embedding such as UMAP.

    The velocity ``v_i`` of cell ``i`` lives in the representation the model was fitted on
    (``adata.uns[key]["params"]["use_rep"]``, e.g. ``"X_pca"``). It is turned into a
    displacement in the embedding through transition probabilities on a k-nearest-neighbour
    graph, as in scVelo:

    1. Neighbours ``j`` of ``i`` come from ``adata.obsp["connectivities"]`` (the
       :func:`scanpy.pp.neighbors` graph, binarised) when it exists and ``n_neighbors`` is
       ``None``; otherwise from a ``n_neighbors``-nearest-neighbour graph (default 30) built
       with :class:`sklearn.neighbors.NearestNeighbors` on the fitted representation.
    2. ``cos_ij`` is the cosine similarity between ``x_j - x_i`` (fitted representation)
       and ``v_i``.
    3. ``p_ij = exp(scale * cos_ij) / sum_k exp(scale * cos_ik)`` over the neighbours of ``i``.
    4. With ``u_ij = (e_j - e_i) / ||e_j - e_i||`` the unit vectors in the embedding,

       .. math:: \tilde v_i = \sum_j p_{ij} u_{ij} - \frac{1}{k_i} \sum_j u_{ij},

       the second term removing the drift that uniform transitions would produce.

    A cell with zero velocity gets ``p_ij = 1/k_i`` and hence a zero embedded velocity; cells
    whose velocity is not finite get ``NaN``. The result is a direction field (each entry
    bounded by 2 in norm), not a displacement per unit time. The computation is vectorised over
    the edges of the sparse graph.

    Parameters
    ----------
    adata
        AnnData (or MuData) holding ``obsm["X_<basis>"]``, ``obsm["<key>_velocity"]`` and
        ``uns[key]`` from :func:`vgfm.tl.fit`.
    basis
        Embedding name; ``obsm["X_<basis>"]`` is used (first two columns).
    key
        The ``key_added`` used in :func:`vgfm.tl.fit`.
    n_neighbors
        Build a fresh kNN graph with this many neighbours instead of using
        ``obsp["connectivities"]``.
    scale
        Inverse temperature of the softmax; larger values concentrate the transition
        probabilities on the best-aligned neighbours.
    mod
        For a MuData: modality to read from and write to; ``None`` uses the joint object.
    copy
        Return a modified copy instead of writing in place.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes
    ``obsm["<key>_velocity_<basis>"]`` (n_obs × 2, float) — e.g. ``obsm["vgfm_velocity_umap"]``.

    Examples
    --------
    >>> import scanpy as sc, vgfm
    >>> vgfm.tl.fit(adata, time_key="day")  # doctest: +SKIP
    >>> sc.pp.neighbors(adata); sc.tl.umap(adata)  # doctest: +SKIP
    >>> vgfm.tl.velocity_embedding(adata, basis="umap")  # doctest: +SKIP
    >>> adata.obsm["vgfm_velocity_umap"].shape  # doctest: +SKIP
    (n_obs, 2)
    """
    container = resolve_container(adata, mod)
    emb_velocity = _velocity_embedding_array(
        container, basis=basis, key=key, n_neighbors=n_neighbors, scale=scale
    )
    out = adata.copy() if copy else adata
    target = resolve_container(out, mod)
    field = velocity_embedding_key(key, basis)
    target.obsm[field] = emb_velocity
    logger.info("added adata.obsm[%r] (velocity projected on %r)", field, basis_key(basis))
    return out if copy else None


# --------------------------------------------------------------------------------------------
# gene_velocity
# --------------------------------------------------------------------------------------------
def gene_velocity_arrays(
    adata: AnnData,
    velocity: np.ndarray,
    *,
    use_rep: str,
    key: str = DEFAULT_KEY,
    max_entries: int | None = MAX_GENE_VELOCITY_ENTRIES,
) -> tuple[np.ndarray, np.ndarray]:
    """The one rule for the gene-space velocity layer; computes, writes nothing.

    ``velocity`` (n_obs × d, in ``use_rep`` = ``"X_pca"``) is mapped back with the first ``d``
    columns of ``adata.varm["PCs"]`` (more columns are allowed: the leading ones belong to the
    leading components; fewer are refused), in float32, ``2048`` cells at a time. Genes whose
    loadings are all zero were not used by the PCA (outside its ``mask_var``, e.g. not highly
    variable): their velocity is unknown and set to ``NaN``, and a warning says how many.

    Returns
    -------
    layer
        ``(n_obs, n_vars)`` float32, ``NaN`` for genes outside the PCA.
    genes
        ``(n_vars,)`` bool, genes with a velocity (scVelo's ``var["<vkey>_genes"]``).
    """
    if use_rep != "X_pca":
        raise ValueError(
            f"gene_velocity needs velocities fitted on 'X_pca' (with PCA loadings in "
            f"adata.varm['PCs']); adata.uns[{key!r}]['params']['use_rep'] is {use_rep!r}."
        )
    varm = getattr(adata, "varm", None)
    if varm is None or "PCs" not in varm:
        raise KeyError(
            "adata.varm['PCs'] (PCA loadings) is missing, so velocities cannot be mapped to "
            "genes; compute PCA with `sc.pp.pca(adata)` on this object before fitting."
        )
    velocity = np.asarray(velocity)
    n_obs, d = velocity.shape
    pcs = np.asarray(varm["PCs"])
    if pcs.shape[1] < d:
        raise ValueError(
            f"adata.varm['PCs'] has {pcs.shape[1]} components but adata.obsm"
            f"[{velocity_key(key)!r}] has {d} columns; the loadings must cover every fitted "
            "component (was PCA recomputed after fitting?)."
        )
    if pcs.shape[1] > d:
        logger.info(
            "gene_velocity: using the first %d of the %d columns of adata.varm['PCs']",
            d,
            pcs.shape[1],
        )
    n_vars = pcs.shape[0]
    if max_entries is not None and n_obs * n_vars > int(max_entries):
        raise ValueError(
            f"the gene-space velocity layer would hold {n_obs} x {n_vars} = {n_obs * n_vars:,} "
            f"float32 entries ({4 * n_obs * n_vars / 1e9:.1f} GB), more than max_entries="
            f"{int(max_entries):,}; subset the genes (e.g. `adata[:, "
            "adata.var.highly_variable]`) or pass a larger max_entries= (None: no limit)."
        )
    loadings = pcs[:, :d].astype(np.float32)
    genes = np.any(loadings != 0, axis=1)
    if not genes.all():
        logger.warning(
            "gene_velocity: %d of %d genes were not used by the PCA (zero loadings, e.g. not "
            "highly variable); their velocity is unknown and set to NaN "
            "(adata.var[%r] is False for them).",
            int((~genes).sum()),
            n_vars,
            gene_velocity_genes_key(key),
        )
    layer = np.full((n_obs, n_vars), np.nan, dtype=np.float32)
    used = loadings[genes].T  # (d, n_used)
    v32 = velocity.astype(np.float32)
    for start in range(0, n_obs, 2048):
        stop = min(start + 2048, n_obs)
        layer[start:stop, genes] = v32[start:stop] @ used
    return layer, genes


def gene_velocity(
    adata: Data,
    *,
    key: str = DEFAULT_KEY,
    max_entries: int | None = MAX_GENE_VELOCITY_ENTRIES,
    mod: str | None = None,
    copy: bool = False,
) -> Data | None:
    """Map VGFM velocities from PCA space back to gene space.

    With ``use_rep="X_pca"`` and the loadings ``varm["PCs"]`` (n_vars × n_pcs) written by
    :func:`scanpy.pp.pca`, the gene-space velocity is the linear back-projection
    ``v_genes = v_pca @ PCs[:, :d].T`` (PCA is linear, so this is the exact pushforward of the
    velocity onto the PCA's genes; centring does not matter for a velocity). It is computed in
    float32 and refused above ``max_entries`` cells × genes (the layer is dense).

    Genes the PCA did not use (outside its ``mask_var``, e.g. not highly variable: their
    loadings are zero) get ``NaN``, not 0 — their velocity is unknown — with a warning, and
    ``var["<key>_velocity_genes"]`` marks the genes that have one (the name scVelo reads to
    restrict :func:`scvelo.tl.velocity_graph` to them; scVelo also drops ``NaN`` genes).

    This is the one rule for the layer: :func:`vgfm.tl.fit` writes it the same way when asked
    to.

    Parameters
    ----------
    adata
        AnnData (or MuData with ``mod=``) after :func:`vgfm.tl.fit` with ``use_rep="X_pca"``.
    key
        The ``key_added`` used in :func:`vgfm.tl.fit`.
    max_entries
        Largest ``n_obs * n_vars`` accepted (default 5e8, 2 GB of float32); ``None``: no limit.
    mod
        For a MuData: modality to read from and write to.
    copy
        Return a modified copy instead of writing in place.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes ``layers["<key>_velocity"]``
    (n_obs × n_vars, ``float32``, ``NaN`` outside the PCA's genes) and
    ``var["<key>_velocity_genes"]`` (bool).

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.fit(adata, time_key="day", use_rep="X_pca")  # doctest: +SKIP
    >>> vgfm.tl.gene_velocity(adata)  # doctest: +SKIP
    >>> adata.layers["vgfm_velocity"].shape == adata.shape  # doctest: +SKIP
    True
    """
    container = resolve_container(adata, mod)
    velocity, use_rep = _get_velocity(container, key)
    layer, genes = gene_velocity_arrays(
        container, velocity, use_rep=use_rep, key=key, max_entries=max_entries
    )
    out = adata.copy() if copy else adata
    target = resolve_container(out, mod)
    field = gene_velocity_key(key)
    target.layers[field] = layer
    target.var[gene_velocity_genes_key(key)] = genes
    logger.info(
        "added adata.layers[%r] (gene-space velocity, v @ PCs.T) and adata.var[%r]",
        field,
        gene_velocity_genes_key(key),
    )
    return out if copy else None


# --------------------------------------------------------------------------------------------
# growth_genes
# --------------------------------------------------------------------------------------------
def _column_ranks(X: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(X, axis=0).astype(np.float64)


def _correlate(
    X: Any, g: np.ndarray, method: Literal["pearson", "spearman"], chunk_genes: int = 2000
) -> np.ndarray:
    """Correlation of every column of ``X`` (dense or sparse, n × p) with ``g`` (n,)."""
    n, p = X.shape
    if n < 3:
        return np.full(p, np.nan)
    if method == "spearman":
        g = _column_ranks(g[:, None])[:, 0]
        out = np.empty(p)
        for start in range(0, p, chunk_genes):
            block = X[:, start : start + chunk_genes]
            block = block.toarray() if sparse.issparse(block) else np.asarray(block)
            out[start : start + chunk_genes] = _correlate(
                _column_ranks(block), g, "pearson", chunk_genes
            )
        return out
    gc = g - g.mean()
    g_ss = float(gc @ gc)
    if sparse.issparse(X):
        X = sparse.csr_matrix(X, dtype=np.float64)
        mean = np.asarray(X.mean(axis=0)).ravel()
        sq = np.asarray(X.multiply(X).mean(axis=0)).ravel()
        # sum_i x_ij (g_i - gbar) equals sum_i (x_ij - xbar)(g_i - gbar)
        cov = np.asarray(X.T @ gc).ravel()
    else:
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        sq = (X * X).mean(axis=0)
        cov = X.T @ gc
    var_ss = np.maximum(sq - mean**2, 0.0) * n
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.sqrt(var_ss * g_ss)
    corr[~np.isfinite(corr)] = np.nan
    return np.clip(corr, -1.0, 1.0)


def _ranking(genes: np.ndarray, corr: np.ndarray, n_top: int) -> dict[str, np.ndarray]:
    order = np.argsort(-np.nan_to_num(np.abs(corr), nan=-1.0), kind="stable")[:n_top]
    return {
        "gene": np.asarray(genes[order], dtype=str).astype(object),
        "correlation": corr[order].astype(np.float64),
    }


def growth_genes(
    adata: Data,
    *,
    key: str = DEFAULT_KEY,
    layer: str | None = None,
    method: Literal["pearson", "spearman"] = "spearman",
    n_top: int | None = 50,
    mod: str | None = None,
    copy: bool = False,
) -> pd.DataFrame | Data:
    """Rank genes by their correlation with the learned growth rate.

    For every observed time point, and over all cells, the correlation (Spearman by default,
    or Pearson) between each gene's expression and ``obs["<key>_growth"]`` is computed,
    vectorised over genes (sparse matrices are supported; Spearman densifies blocks of genes).
    Within a time point, a positive correlation means the gene marks cells that expand faster
    than their contemporaries. Genes are ranked by the absolute correlation; the sign is kept.

    Parameters
    ----------
    adata
        AnnData (or MuData with ``mod=``) after :func:`vgfm.tl.fit`.
    key
        The ``key_added`` used in :func:`vgfm.tl.fit`.
    layer
        Expression layer to use; ``None`` uses ``.X``.
    method
        ``"spearman"`` (rank correlation, robust to scaling) or ``"pearson"``.
    n_top
        Number of genes returned and kept in each stored ranking; ``None`` keeps every gene.
    mod
        For a MuData: modality to read from and write to.
    copy
        Write into a copy of ``adata`` and return the copy (the table is in its ``uns``).

    Returns
    -------
    :class:`pandas.DataFrame`
        The ``n_top`` genes with the largest absolute overall correlation, sorted by it
        (descending; genes without a finite correlation last), × (one column per time label,
        then ``"overall"``) correlations (the modified copy when ``copy=True``). Writes
        ``uns["<key>_growth_genes"]`` = ``{"params": {...}, "time_labels": (K,),
        "overall": {"gene": (n_top,), "correlation": (n_top,)},
        "per_time": {label: {"gene", "correlation"}}}`` — dicts of arrays, h5ad-serialisable.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.fit(adata, time_key="day")  # doctest: +SKIP
    >>> table = vgfm.tl.growth_genes(adata, n_top=20)  # doctest: +SKIP
    >>> adata.uns["vgfm_growth_genes"]["overall"]["gene"][:5]  # doctest: +SKIP
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman'; got {method!r}.")
    if n_top is not None and int(n_top) < 1:
        raise ValueError(f"n_top must be >= 1 or None; got {n_top}.")
    container = resolve_container(adata, mod)
    n_keep = container.n_vars if n_top is None else int(n_top)
    gkey = growth_key(key)
    if gkey not in container.obs:
        raise KeyError(
            f"adata.obs[{gkey!r}] (VGFM growth rates) is missing; run "
            f"`vgfm.tl.fit(adata, key_added={key!r})` first."
        )
    record = read_record(container, key)
    time_key = record.time_key or None
    if layer is None:
        X = container.X
        if X is None:
            raise KeyError("adata.X is empty; pass `layer=` with the expression to use.")
    else:
        if layer not in container.layers:
            raise KeyError(
                f"adata.layers[{layer!r}] is missing; available layers: "
                f"{list(container.layers.keys())}."
            )
        X = container.layers[layer]
    g = np.asarray(container.obs[gkey], dtype=np.float64)
    genes = np.asarray(container.var_names, dtype=object)
    ok = np.isfinite(g)

    labels: list[str] = []
    masks: list[np.ndarray] = []
    if time_key is not None:
        t = cell_times(container, time_key, record.time)
        uns_times = (record.times if record.time is not None
                     else np.unique(t[np.isfinite(t)]))
        uns_labels = record.time_labels if record.time is not None else None
        if uns_labels is None or len(uns_labels) != len(uns_times):
            uns_labels = [f"{x:g}" for x in uns_times]
        for tk, lab in zip(uns_times, uns_labels):
            masks.append(at_time(t, tk, uns_times) & ok)
            labels.append(str(lab))

    columns: dict[str, np.ndarray] = {}
    per_time: dict[str, dict[str, np.ndarray]] = {}
    for lab, m in zip(labels, masks):
        idx = np.flatnonzero(m)
        corr = _correlate(X[idx], g[idx], method)
        columns[lab] = corr
        per_time[lab.replace("/", "_")] = _ranking(genes, corr, n_keep)
    overall_idx = np.flatnonzero(ok)
    overall = _correlate(X[overall_idx], g[overall_idx], method)
    columns["overall"] = overall
    table = pd.DataFrame(columns, index=pd.Index(genes.astype(str), name="gene"))
    order = np.argsort(-np.nan_to_num(np.abs(overall), nan=-1.0), kind="stable")[:n_keep]
    table = table.iloc[order]

    result = {
        "params": {
            "key": key,
            "layer": "X" if layer is None else layer,
            "method": method,
            "n_top": n_keep,
        },
        "time_labels": np.asarray(labels, dtype=object),
        "overall": _ranking(genes, overall, n_keep),
        "per_time": per_time,
    }
    out = adata.copy() if copy else adata
    target = resolve_container(out, mod)
    field = growth_genes_key(key)
    target.uns[field] = result
    logger.info("added adata.uns[%r] (genes ranked by %s correlation with growth)", field, method)
    return out if copy else table
