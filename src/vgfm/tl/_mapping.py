"""Placement of simulated states on a 2-D embedding (for :func:`vgfm.pl.trajectories`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from vgfm._data._containers import Data, resolve_container
from vgfm._data._keys import DEFAULT_KEY, trajectories_key, trajectory_embedding_key
from vgfm._data._record import read_record
from vgfm._data._representation import (
    frame_origin,
    get_embedding,
    get_representation,
    to_frame,
)

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger("vgfm")

__all__ = ["trajectory_embedding"]

MappingMethod = Literal["auto", "umap", "knn"]
_MAPPING_METHODS = ("auto", "umap", "knn")
#: A mapped state farther than this many typical nearest-cell distances from every observed
#: cell of the embedding is flagged as lying off the data.
OFF_DATA_FACTOR = 3.0


# --------------------------------------------------------------------------------------------
# which representation was uns["neighbors"] computed on?
# --------------------------------------------------------------------------------------------
def _neighbors_representation(
    container: AnnData, neighbors_key: str
) -> tuple[str | None, int | None, str]:
    """``(obsm key or "X", number of leading columns or None, reason if unusable)``.

    Mirrors :func:`scanpy.pp.neighbors`'s choice of representation as recorded in
    ``uns[neighbors_key]["params"]``: ``use_rep`` when given (``n_pcs`` leading columns of
    ``X_pca``), ``X_pca[:, :n_pcs]`` when only ``n_pcs`` is recorded, otherwise ``X_pca`` for
    more than 50 variables and ``X`` below.
    """
    neigh = container.uns.get(neighbors_key)
    if not isinstance(neigh, dict) or "params" not in neigh:
        return None, None, f"adata.uns[{neighbors_key!r}] is missing (run `sc.pp.neighbors`)"
    params = neigh["params"]
    n_pcs = params.get("n_pcs")
    n_pcs = None if n_pcs is None else int(n_pcs)
    use_rep = params.get("use_rep")
    if use_rep is not None:
        return str(use_rep), n_pcs if use_rep == "X_pca" else None, ""
    if n_pcs is not None or (container.n_vars > 50 and "X_pca" in container.obsm):
        return "X_pca", n_pcs, ""
    return "X", None, ""


def _umap_ready(
    container: AnnData, basis: str, use_rep: str, d: int, neighbors_key: str
) -> tuple[int | None, str]:
    """Columns of the fitted representation the UMAP was built on, or why it cannot be used."""
    if basis.removeprefix("X_") != "umap":
        return None, f"the UMAP transform applies to basis='umap' only (basis={basis!r})"
    rep_key, n_cols, reason = _neighbors_representation(container, neighbors_key)
    if rep_key is None:
        return None, reason
    if rep_key != use_rep:
        return None, (
            f"adata.uns[{neighbors_key!r}] was computed on {rep_key!r} but the fit used "
            f"{use_rep!r}; run `sc.pp.neighbors(adata, use_rep={use_rep!r})` and `sc.tl.umap`"
        )
    if n_cols is not None and n_cols > d:
        return None, f"the neighbours used {n_cols} columns of {rep_key!r}, the fit only {d}"
    umap = container.uns.get("umap")
    if not isinstance(umap, dict) or not {"a", "b"} <= set(umap.get("params", {})):
        return None, "adata.uns['umap']['params'] (written by `sc.tl.umap`) is missing"
    return (d if n_cols is None else n_cols), ""


def _umap_transform(
    rep: np.ndarray,
    emb: np.ndarray,
    states: np.ndarray,
    *,
    k: int,
    a: float,
    b: float,
    n_epochs: int,
    negative_sample_rate: int,
    seed: int,
) -> np.ndarray:
    """UMAP's out-of-sample transform (McInnes et al. 2018, as in ``umap.UMAP.transform``).

    1. the ``k`` nearest observed cells of each state in ``rep`` (exact search) and their
       membership strengths :func:`_fuzzy_weights`;
    2. initial position: the membership-weighted mean of the neighbours' embedding positions;
    3. ``n_epochs`` of gradient steps on UMAP's cross-entropy with the observed cells held
       fixed: attraction to each neighbour with the low-dimensional similarity
       ``1 / (1 + a d^(2b))``, weighted by its membership relative to the strongest, and
       repulsion from ``negative_sample_rate`` random cells per unit of attraction; gradients
       clipped to ``[-4, 4]`` per coordinate and a learning rate decaying linearly from 1/4.
       The expected per-epoch update of UMAP's edge sampling is applied in full
       (deterministic given ``seed``, which draws the negative samples).

    A state that coincides with an observed cell (e.g. a start cell) is placed on that cell.
    """
    from sklearn.neighbors import NearestNeighbors

    k = int(min(k, rep.shape[0]))
    nn = NearestNeighbors(n_neighbors=k).fit(rep)
    dist, idx = nn.kneighbors(states)
    w = _fuzzy_weights(dist)
    y = np.einsum("sk,skc->sc", w, emb[idx]) / w.sum(axis=1, keepdims=True)
    exact = _coincides(dist, rep)
    y[exact] = emb[idx[exact, 0]]
    p = w / w.max(axis=1, keepdims=True)
    p[exact] = (
        0.0  # states that coincide with a cell stay on it  # UMAP samples each edge in proportion to its weight
    )
    anchors = emb[idx]  # (M, k, 2)
    n_neg = max(int(round(negative_sample_rate * float(np.median(p.sum(axis=1))))), 1)
    rng = np.random.default_rng(seed)
    for epoch in range(int(n_epochs)):
        alpha = 0.25 * (1.0 - epoch / float(n_epochs))
        diff = y[:, None, :] - anchors
        d2 = np.einsum("skc,skc->sk", diff, diff)
        with np.errstate(divide="ignore", invalid="ignore"):
            coeff = np.where(d2 > 0, -2.0 * a * b * d2 ** (b - 1.0) / (1.0 + a * d2**b), 0.0)
        grad = np.clip(coeff[..., None] * diff, -4.0, 4.0)
        y = y + alpha * np.einsum("sk,skc->sc", p, grad)
        neg = emb[rng.integers(0, emb.shape[0], size=(y.shape[0], n_neg))]
        diff = y[:, None, :] - neg
        d2 = np.einsum("skc,skc->sk", diff, diff)
        coeff = 2.0 * b / ((0.001 + d2) * (1.0 + a * d2**b))
        grad = np.clip(coeff[..., None] * diff, -4.0, 4.0)
        grad[d2 <= 0] = 0.0
        y = y + alpha * grad.sum(axis=1) * (
            p.sum(axis=1, keepdims=True) * negative_sample_rate / n_neg
        )
    y[exact] = emb[idx[exact, 0]]
    return y


def _fuzzy_weights(dist: np.ndarray, n_iter: int = 64) -> np.ndarray:
    """UMAP's smooth-kNN membership strengths ``exp(-(d - rho) / sigma)`` per row.

    ``rho`` is the distance to the nearest neighbour and ``sigma`` solves
    ``sum_j exp(-(d_j - rho) / sigma) = log2(k)`` (bisection), as in McInnes et al. (2018).
    """
    k = dist.shape[1]
    target = np.log2(max(k, 2))
    rho = dist[:, :1]
    excess = np.maximum(dist - rho, 0.0)
    lo = np.zeros(dist.shape[0])
    hi = np.full(dist.shape[0], np.inf)
    mid = np.ones(dist.shape[0])
    for _ in range(n_iter):
        s = np.exp(-excess / mid[:, None]).sum(axis=1)
        big = s > target
        hi = np.where(big, mid, hi)
        lo = np.where(big, lo, mid)
        mid = np.where(np.isinf(hi), mid * 2.0, 0.5 * (lo + hi))
    scale = np.maximum(mid, 1e-12)
    return np.exp(-excess / scale[:, None])


def _map_knn(
    rep: np.ndarray,
    emb: np.ndarray,
    states: np.ndarray,
    k: int,
    components: np.ndarray | None,
) -> np.ndarray:
    """Fuzzy-weighted mean of the ``k`` nearest cells, restricted to one graph component.

    Weights are UMAP's membership strengths (:func:`_fuzzy_weights`), which is also how UMAP
    initialises the out-of-sample transform. Only neighbours in the same connected component
    of the neighbour graph as the nearest cell contribute, so a state is never averaged across
    disconnected islands of the embedding.
    """
    from sklearn.neighbors import NearestNeighbors

    k = int(min(k, rep.shape[0]))
    nn = NearestNeighbors(n_neighbors=k).fit(rep)
    dist, idx = nn.kneighbors(states)
    w = _fuzzy_weights(dist)
    if components is not None:
        same = components[idx] == components[idx[:, :1]]
        w = np.where(same, w, 0.0)
    w[:, 0] = np.maximum(w[:, 0], 1e-300)  # the nearest cell always counts
    out = np.einsum("sk,skc->sc", w, emb[idx]) / w.sum(axis=1, keepdims=True)
    exact = _coincides(dist, rep)
    out[exact] = emb[idx[exact, 0]]
    return out


def _coincides(dist: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """States at (numerically) zero distance from an observed cell, e.g. the start cells."""
    scale = float(np.ptp(rep)) if rep.size else 1.0
    return dist[:, 0] <= 1e-6 * max(scale, 1e-300)


def _graph_components(container: AnnData, rep: np.ndarray, k: int) -> np.ndarray:
    """Connected components of ``obsp["connectivities"]``, or of a ``k``-NN graph on ``rep``."""
    graph = container.obsp["connectivities"] if "connectivities" in container.obsp else None
    if graph is None or graph.shape[0] != rep.shape[0]:
        from sklearn.neighbors import kneighbors_graph

        graph = kneighbors_graph(rep, n_neighbors=min(k, rep.shape[0] - 1))
    _, labels = connected_components(sparse.csr_matrix(graph), directed=False)
    return labels


def _off_data_rep(rep: np.ndarray, states: np.ndarray) -> np.ndarray:
    """States farther than ``OFF_DATA_FACTOR`` x the median 5-NN cell distance from every
    observed cell in the fitted representation (the embedding cannot show them there)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(6, rep.shape[0])
    nn = NearestNeighbors(n_neighbors=k).fit(rep)
    d_self, _ = nn.kneighbors(rep)
    threshold = OFF_DATA_FACTOR * (float(np.median(d_self[:, -1])) if k > 1 else 0.0)
    out = np.zeros(states.shape[0], dtype=bool)
    ok = np.all(np.isfinite(states), axis=1)
    if ok.any():
        d, _ = nn.kneighbors(states[ok], n_neighbors=1)
        out[ok] = d[:, 0] > threshold
    return out


def _off_data(
    emb: np.ndarray, mapped: np.ndarray, n_interior: int = 7, rep_off: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Flag mapped points, and straight segments between consecutive ones, away from the data.

    ``mapped`` is ``(T, N, 2)``. A point is off the data when it is farther than
    ``OFF_DATA_FACTOR`` x the median distance of a cell to its 5th nearest cell from every
    observed cell; a segment when one of ``n_interior`` equally spaced interior points is (a
    jump between islands of the embedding, drawn as a straight line across empty space).
    ``rep_off`` (``(T, N)``) marks points already known to be off the data in the fitted
    representation.
    """
    from sklearn.neighbors import NearestNeighbors

    k = min(6, emb.shape[0])
    nn = NearestNeighbors(n_neighbors=k).fit(emb)
    d_self, _ = nn.kneighbors(emb)
    typical = float(np.median(d_self[:, -1])) if k > 1 else 0.0
    threshold = OFF_DATA_FACTOR * typical

    def far(points: np.ndarray) -> np.ndarray:
        flat = points.reshape(-1, 2)
        out = np.zeros(flat.shape[0], dtype=bool)
        ok = np.all(np.isfinite(flat), axis=1)
        if ok.any():
            d, _ = nn.kneighbors(flat[ok], n_neighbors=1)
            out[ok] = d[:, 0] > threshold
        return out.reshape(points.shape[:-1])

    point_off = far(mapped)
    if rep_off is not None:
        point_off |= rep_off
    s = np.linspace(0.0, 1.0, n_interior + 2)[1:-1]
    a, b = mapped[:-1], mapped[1:]
    interior = a[None] + s[:, None, None, None] * (b - a)[None]  # (n_interior, T-1, N, 2)
    segment_off = far(interior).any(axis=0) | point_off[:-1] | point_off[1:]
    return point_off, segment_off, threshold


# --------------------------------------------------------------------------------------------
# public function
# --------------------------------------------------------------------------------------------
def trajectory_embedding(
    adata: Data,
    *,
    basis: str = "umap",
    key: str = DEFAULT_KEY,
    method: MappingMethod = "auto",
    n_neighbors: int = 15,
    neighbors: str = "neighbors",
    n_epochs: int = 100,
    seed: int = 0,
    mod: str | None = None,
    copy: bool = False,
) -> Data | None:
    """Place simulated states (``uns["<key>_trajectories"]["x"]``) on a 2-D embedding.

    Simulated states live in the fitted representation (``uns[key]["params"]["use_rep"]``),
    not in the embedding; :func:`vgfm.pl.trajectories` draws what this function stores.

    - ``method="umap"``: UMAP's own out-of-sample transform (the step behind
      :func:`scanpy.tl.ingest` and ``umap.UMAP.transform``), written out here: each state gets
      UMAP membership weights among its nearest observed cells in the fitted representation
      (as many as ``uns[neighbors]["params"]["n_neighbors"]``), starts at their weighted
      mean position and is then moved by gradient steps on UMAP's layout objective
      (parameters ``a``, ``b`` from ``uns["umap"]["params"]``) with the observed cells held
      fixed, so it settles among the cells it resembles instead of between them. It needs
      ``basis="umap"``, :func:`scanpy.pp.neighbors` computed on the fitted representation
      (``use_rep``, or ``n_pcs`` leading columns of ``X_pca``) and :func:`scanpy.tl.umap`.
      (``sc.tl.ingest`` itself is not called: it needs the query's gene expression, and with
      pynndescent 0.7 it fails while rebuilding the search index.)
    - ``method="knn"``: the mean embedding position of the ``n_neighbors`` nearest cells in the
      fitted representation, weighted by UMAP's membership strengths
      ``exp(-(d_j - d_1) / sigma)`` (``sigma`` calibrated so the weights sum to
      ``log2(n_neighbors)``), and restricted to cells in the same connected component of the
      neighbour graph (``obsp["connectivities"]``, else a kNN graph) as the nearest cell, so that
      a state is never averaged across disconnected islands. Works for any basis.
    - ``method="auto"``: ``"umap"`` when its requirements hold, otherwise ``"knn"`` (logged
      with the reason).

    In both methods a state that coincides with an observed cell (the start cells) is placed
    exactly on that cell.

    States farther than 3 x the median distance of a cell to its 5th nearest cell from every
    observed cell, in the fitted representation or (once mapped) in the embedding, are
    flagged as "off the data" (a mapping can only place them near the cells they are closest
    to), and so are straight segments between
    consecutive points that pass through empty space (typically a jump between disconnected
    islands of a UMAP, where the states move continuously in the fitted representation but
    the embedding has no cells in between); the plot draws them dashed and says so.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.simulate`, with ``obsm["X_<basis>"]``.
    basis
        Embedding name (``obsm["X_<basis>"]``).
    key
        The ``key`` used in :func:`vgfm.tl.fit` / :func:`vgfm.tl.simulate`.
    method
        ``"auto"``, ``"umap"`` or ``"knn"`` (see above).
    n_neighbors
        ``k`` of ``method="knn"``.
    neighbors
        ``uns`` entry of the :func:`scanpy.pp.neighbors` result (its ``key_added``, default
        ``"neighbors"``) whose representation and ``n_neighbors`` ``method="umap"`` uses.
    n_epochs
        Optimisation epochs of ``method="umap"`` (UMAP's transform default for up to 10,000
        cells).
    seed
        Seed of the negative samples of ``method="umap"``.
    mod
        For a MuData: modality to read from and write to; ``None`` uses the joint object.
    copy
        Return a modified copy instead of writing in place.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Adds to the ``uns["<key>_trajectories"]``
    dict of :func:`vgfm.tl.simulate`:

    - ``"<basis>"``: ``(T, N, 2)`` embedding coordinates of ``x`` (e.g. ``"umap"``);
    - ``"<basis>_off_data"``: ``(T, N)`` bool, state away from every observed cell (fitted
      representation or embedding);
    - ``"<basis>_gap"``: ``(T - 1, N)`` bool, the straight segment between consecutive points
      crosses empty space (an end is off the data, or the path jumps between islands);
    - ``"<basis>_params"``: ``{"method", "n_neighbors", "use_rep", "off_data_threshold"}``.

    They disappear with the dict when :func:`vgfm.tl.simulate` is run again.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.simulate(adata, n_cells=50)  # doctest: +SKIP
    >>> vgfm.tl.trajectory_embedding(adata, basis="umap")  # doctest: +SKIP
    >>> adata.uns["vgfm_trajectories"]["umap"].shape  # doctest: +SKIP
    (T, 50, 2)
    """
    if method not in _MAPPING_METHODS:
        raise ValueError(f"method must be one of {_MAPPING_METHODS}; got {method!r}.")
    if int(n_neighbors) < 1 or int(n_epochs) < 0:
        raise ValueError(
            f"n_neighbors must be >= 1 and n_epochs >= 0; got {n_neighbors}, {n_epochs}."
        )
    container = resolve_container(adata, mod)
    tkey = trajectories_key(key)
    traj = container.uns.get(tkey)
    if not isinstance(traj, dict) or "x" not in traj:
        raise KeyError(
            f"adata.uns[{tkey!r}] (simulated trajectories) is missing; run "
            f"`vgfm.tl.simulate(adata, key={key!r})` first."
        )
    emb = get_embedding(container, basis)
    use_rep = str(read_record(container, key).use_rep)
    rep = get_representation(container, use_rep)
    x = np.asarray(traj["x"], dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != rep.shape[1]:
        raise ValueError(
            f"adata.uns[{tkey!r}]['x'] must have shape (T, N, {rep.shape[1]}) to match "
            f"adata.obsm[{use_rep!r}]; found {x.shape}. Re-run `vgfm.tl.simulate`."
        )
    # neighbour searches far from 0 lose float64 digits: recentre cells and states alike
    origin = frame_origin([rep])
    rep, x = to_frame(rep, origin, rep.dtype), to_frame(x, origin, np.float64)
    T, N, d = x.shape
    states = x.reshape(-1, d)
    finite = np.all(np.isfinite(states), axis=1)

    chosen = method
    n_cols, reason = (None, "")
    if method in ("auto", "umap"):
        n_cols, reason = _umap_ready(container, basis, use_rep, d, neighbors)
        if n_cols is None:
            if method == "umap":
                raise ValueError(f"method='umap' cannot be used: {reason}.")
            logger.info("trajectory_embedding: using method='knn' because %s", reason)
            chosen = "knn"
        else:
            chosen = "umap"

    mapped = np.full((states.shape[0], 2), np.nan)
    k_used = int(n_neighbors)
    if finite.any():
        if chosen == "umap":
            assert n_cols is not None
            neigh_params = container.uns[neighbors]["params"]
            umap_params = container.uns["umap"]["params"]
            k_used = int(neigh_params.get("n_neighbors", 15))
            mapped[finite] = _umap_transform(
                rep[:, :n_cols],
                emb,
                states[finite][:, :n_cols],
                k=k_used,
                a=float(umap_params["a"]),
                b=float(umap_params["b"]),
                n_epochs=n_epochs,
                negative_sample_rate=int(umap_params.get("negative_sample_rate", 5)),
                seed=seed,
            )
        else:
            comps = _graph_components(container, rep, n_neighbors)
            mapped[finite] = _map_knn(rep, emb, states[finite], n_neighbors, comps)
    mapped = mapped.reshape(T, N, 2)
    rep_off = _off_data_rep(rep, states).reshape(T, N)
    off, gap, threshold = _off_data(emb, mapped, rep_off=rep_off)
    if gap.any():
        logger.warning(
            "trajectory_embedding: %.1f%% of the path segments on %r leave the observed cells "
            "(points farther than %.3g from every cell, or straight jumps between islands of "
            "the embedding); the plot draws them dashed.",
            100.0 * gap.mean(),
            basis,
            threshold,
        )

    out = adata.copy() if copy else adata
    target = resolve_container(out, mod)
    new_traj = dict(target.uns[tkey])
    name = trajectory_embedding_key(basis)
    new_traj[name] = mapped.astype(np.float32)
    new_traj[f"{name}_off_data"] = off
    new_traj[f"{name}_gap"] = gap
    new_traj[f"{name}_params"] = {
        "method": chosen,
        "n_neighbors": k_used,
        "use_rep": use_rep,
        "off_data_threshold": float(threshold),
    }
    target.uns[tkey] = new_traj
    logger.info(
        "added adata.uns[%r][%r] (simulated states on %r, method=%r)", tkey, name, basis, chosen
    )
    return out if copy else None
