"""Routes along the data: interpolants that follow the cells instead of cutting across empty space.

A straight interpolant ``(1-s) x_i + s x_j`` between coupled cells of two snapshots puts the
population of an unobserved time on the chord between them.  When the cells travel along a
curved manifold (a differentiation trajectory that bends), the chord crosses a region where no
cell was ever observed, and so does the learned flow at the times between snapshots.

:class:`GraphRoutes` replaces the chord by the shortest path through a k-nearest-neighbour graph
of the observed cells (landmarks of the given snapshots pooled; the trainer builds one graph per
interval from its two snapshots, so that a route does not pass through cells of other times),
in the leading principal directions of the data:

* the route of a pair ``(x_i, x_j)`` is ``z_i -> z_{p_1} -> ... -> z_{p_m} -> z_j``, where
  ``z = P (x - mu)`` are the ``rank`` leading principal coordinates and ``p_1 .. p_m`` the
  interior landmarks of the graph's shortest path between the landmarks nearest to ``i`` and
  ``j`` (edge weights: squared Euclidean lengths in ``z``, so that routes prefer many short
  hops through dense regions to a long one across a sparse region);
* the interpolant moves at constant speed along the route, and the coordinates outside the
  leading directions follow the chord::

      x_s = (1-s) x_i + s x_j + P^T (z(s) - (1-s) z_i - s z_j)
      u   = (x_j - x_i + P^T (z'(s) - (z_j - z_i))) / dt

  so a route equal to the chord gives back the straight interpolant exactly;
* a pair keeps the chord when its route is more than ``max_detour`` times longer than the chord
  in ``z`` (within a cluster the graph's zig-zag is longer than the short chord and carries no
  information), when one hop of the route is longer than ``max_hop`` times the chord (the route
  jumps a gap where no cell was observed, e.g. between two snapshots that do not overlap, and
  would only add a detour through the clouds on either side: a route is followed where the
  observed cells cover the way), or when the two landmarks are not connected;
* with ``chord_gap``, a pair also keeps the chord unless the chord *leaves* the cells: at a
  quarter, half or three quarters of the way between the two landmarks, the distance to the
  ``n_neighbors``-th nearest landmark exceeds ``chord_gap`` times the same distance at either
  end.  Inside a broad cloud the chord stays where cells are and a route would only pull the
  pair towards the cloud's dense core; across the inside of a bend it does not.

Routes are computed on at most ``n_landmarks`` cells, so memory is ``O(n_landmarks^2)``
whatever the number of cells.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path
from scipy.spatial import cKDTree

logger = logging.getLogger("vgfm")

__all__ = ["GraphRoutes"]


class GraphRoutes:
    """Shortest paths through a kNN graph of the training cells (see the module docstring).

    Parameters
    ----------
    snapshots
        Training snapshots ``(n_k, d)``; routes are asked for by ``(snapshot, row)``.
    n_landmarks
        Largest number of graph nodes (a uniform subsample of the pooled cells).
    n_neighbors
        Neighbours per node of the kNN graph (made symmetric).
    rank
        Number of principal directions the routes bend in (all of them when ``d <= rank``).
    max_detour
        Longest route, relative to the chord in the principal coordinates, still followed.
    max_hop
        Longest hop of a followed route, relative to the chord.
    chord_gap
        Follow a route only where the chord leaves the cells (see the module docstring);
        ``None``: wherever the length rules allow.
    generator
        Seeded generator for the landmark subsample.

    Examples
    --------
    Cells on a half circle: the route between its ends follows the arc, not the diameter.

    >>> import numpy as np, torch
    >>> a = np.linspace(0, np.pi, 200)
    >>> arc = np.c_[np.cos(a), np.sin(a)]
    >>> r = GraphRoutes([arc[:100], arc[100:]], n_neighbors=4)
    >>> x, u = r.interpolate(0, torch.tensor([0]), 1, torch.tensor([99]), torch.tensor([0.5]),
    ...                      dt=1.0)
    >>> bool(abs(float(x.norm()) - 1.0) < 0.02)  # the midpoint lies on the circle
    True
    >>> bool(abs(float(u.norm()) - np.pi) < 0.05)  # speed: arc length / dt
    True
    """

    def __init__(self, snapshots: Sequence[np.ndarray | torch.Tensor], *,
                 n_landmarks: int = 2000, n_neighbors: int = 10, rank: int = 10,
                 max_detour: float = 2.0, max_hop: float = 0.5,
                 chord_gap: float | None = None,
                 generator: torch.Generator | None = None):
        xs = [np.asarray(s.detach().cpu().numpy() if isinstance(s, torch.Tensor) else s,
                         dtype=np.float64) for s in snapshots]
        pooled = np.concatenate(xs)
        n, d = pooled.shape
        self.mu = pooled.mean(0)
        if d <= rank:
            self.P = np.eye(d)
        else:
            cen = pooled - self.mu
            if n > 20_000:  # principal directions from a subsample
                pick = torch.randperm(n, generator=generator)[:20_000].numpy()
                cen = cen[pick]
            _, _, vt = np.linalg.svd(cen, full_matrices=False)
            self.P = vt[:rank]
        self.max_detour = float(max_detour)
        self.z = [(x - self.mu) @ self.P.T for x in xs]
        zall = np.concatenate(self.z)
        if n > n_landmarks:
            keep = np.sort(torch.randperm(n, generator=generator)[:n_landmarks].numpy())
        else:
            keep = np.arange(n)
        self.zl = zall[keep]
        m = len(self.zl)
        tree = cKDTree(self.zl)
        k = int(min(n_neighbors + 1, m))
        dist, idx = tree.query(self.zl, k=k)
        self.max_hop = float(max_hop)
        rows = np.repeat(np.arange(m), k - 1)
        # squared edge lengths: a path pays more for one long hop across a sparse region than
        # for several short ones through dense regions, so routes follow where cells are
        graph = coo_matrix((dist[:, 1:].ravel() ** 2 + 1e-12, (rows, idx[:, 1:].ravel())),
                           shape=(m, m)).tocsr()
        self._graph = graph
        self._tree, self._k = tree, k - 1
        self._radius = dist[:, -1]  # distance to the n_neighbors-th other landmark
        # the distance from a landmark to its n_neighbors-th nearest landmark, itself included
        # (what the gap rule's query measures at a point)
        self._own_radius = dist[:, max(k - 2, 0)]
        if chord_gap is not None and not chord_gap > 0:
            raise ValueError(f"chord_gap must be positive or None, got {chord_gap!r}")
        self.chord_gap = None if chord_gap is None else float(chord_gap)
        # per pair of landmarks: 2 where their chord leaves the cells, 1 where not, 0 unknown
        self._leaves = None if chord_gap is None else np.zeros((m, m), dtype=np.int8)
        # the shortest-path tables, one row per landmark a route starts from, filled the first
        # time a route from it is asked for (np.zeros: rows never filled take no memory)
        self._done = np.zeros(m, dtype=bool)
        self.pred = np.zeros((m, m), dtype=np.int32)
        self.arc = np.zeros((m, m))
        self.hop = np.zeros((m, m), dtype=np.float32)
        self.first = np.zeros((m, m), dtype=np.int32)
        self.nearest = [tree.query(z, k=1)[1].astype(np.int64) for z in self.z]
        logger.debug("routes: %d landmarks, rank %d", m, self.P.shape[0])

    def _tree_rows(self, a: np.ndarray) -> None:
        """Fill the tables' rows of the landmarks ``a`` that have none yet.

        Per pair ``(a, v)``, along the shortest path from ``a`` to ``v``: the predecessor of
        ``v`` (``pred``), the path's Euclidean length ``arc`` (``inf`` when not connected), its
        longest hop after the first (``hop``) and the node after ``a`` (``first``).  The paths
        from one landmark form a tree; each quantity is accumulated towards the root by pointer
        jumping (every node's sum over the next ``2^r`` edges towards ``a``, then the ancestor
        ``2^r`` edges up), so a row takes ``log2`` of its longest path passes, and a route
        needs no walk along its nodes except to place a point on it.
        """
        roots = np.unique(a[~self._done[a]])
        if len(roots) == 0:
            return
        m, n = len(self.zl), len(roots)
        dist, pred = shortest_path(self._graph, method="D", directed=False,
                                   return_predecessors=True, indices=roots)
        dist, pred = dist.reshape(n, m), pred.reshape(n, m)
        # the root, and a node the root does not reach, point to themselves
        anc = np.where(pred < 0, np.arange(m)[None, :], pred).astype(np.int64)
        edge = np.empty((n, m))
        for lo in range(0, n, 64):  # (64, m, rank) at a time
            edge[lo : lo + 64] = np.linalg.norm(self.zl[None, :, :] - self.zl[anc[lo : lo + 64]],
                                                axis=2)
        arc = edge.ravel()
        hop = np.where(anc == roots[:, None], 0.0, edge).ravel()  # the first edge left out
        first = np.broadcast_to(np.arange(m)[None, :], (n, m)).ravel().copy()
        offset = np.repeat(np.arange(n) * m, m)  # flat index of each row's start
        flat = anc.ravel() + offset
        while True:
            up = anc.ravel()[flat]  # the ancestor twice as far up (the root stays the root)
            done = up == anc.ravel()
            if done.all():
                break
            arc = arc + arc[flat]
            hop = np.maximum(hop, hop[flat])
            first = np.where(done, first, first[flat])
            anc = up.reshape(n, m)
            flat = up + offset
        arc = arc.reshape(n, m)
        arc[~np.isfinite(dist)] = np.inf
        self.pred[roots] = pred
        self.arc[roots] = arc
        self.hop[roots] = hop.reshape(n, m)
        self.first[roots] = first.reshape(n, m)
        self._done[roots] = True

    def _routes(self, k0: int, i: torch.Tensor, k1: int, j: torch.Tensor) -> tuple[np.ndarray, ...]:
        """The routes of pairs ``(k0, i) -> (k1, j)`` and which pairs follow them (see the module
        docstring for when the chord is kept).

        A route runs ``z_i -> z_{p_1} -> ... -> z_{p_m} -> z_j``: the cells themselves replace
        the end landmarks ``a`` and ``b`` of the graph path.  Returns the principal coordinates
        of the cells, ``a``, ``p_1``, ``p_m``, the lengths of the first and last segments and
        of the landmark part, the route lengths and the ``follow`` mask.
        """
        ii, jj = i.cpu().numpy(), j.cpu().numpy()
        zi, zj = self.z[k0][ii], self.z[k1][jj]
        a, b = self.nearest[k0][ii], self.nearest[k1][jj]
        n = len(a)
        pm, p1 = a.copy(), a.copy()
        first_len, inner, last_len, total = (np.zeros(n) for _ in range(4))
        follow = a != b
        if self.chord_gap is not None and follow.any():
            follow[follow] = self._chord_leaves(a[follow], b[follow])
        if not follow.any():
            return zi, zj, a, p1, pm, first_len, inner, last_len, total, follow
        c = np.flatnonzero(follow)
        ac, bc = a[c], b[c]
        self._tree_rows(ac)
        pmc = self.pred[ac, bc].astype(np.int64)  # the node before b (a when an edge joins them)
        pmc = np.where(pmc < 0, ac, pmc)  # not connected
        p1c = self.first[ac, pmc].astype(np.int64)
        with np.errstate(invalid="ignore"):
            inner[c] = self.arc[ac, pmc] - self.arc[ac, p1c]
            first_len[c] = np.linalg.norm(self.zl[p1c] - zi[c], axis=1)
            last_len[c] = np.linalg.norm(zj[c] - self.zl[pmc], axis=1)
            total[c] = first_len[c] + inner[c] + last_len[c]
            longest = np.maximum(np.maximum(first_len[c], last_len[c]), self.hop[ac, pmc])
            chord = np.linalg.norm(zj[c] - zi[c], axis=1)
            # a route of one edge (pm == a) is the chord, which never passes the hop rule
            follow[c] = (np.isfinite(self.arc[ac, bc]) & (pmc != ac) & (total[c] > 0)
                         & (total[c] <= self.max_detour * chord + 1e-12)
                         & (longest <= self.max_hop * chord))
        pm[c], p1[c] = pmc, p1c
        return zi, zj, a, p1, pm, first_len, inner, last_len, total, follow

    def _chord_leaves(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether the chord between landmarks ``a`` and ``b`` crosses a region sparser than
        both ends: at a quarter, half or three quarters of the way, the distance to the
        ``n_neighbors``-th nearest landmark exceeds ``chord_gap`` times the larger of the same
        distance at the two ends.  Computed once per pair of landmarks."""
        known = self._leaves[a, b]
        todo = known == 0
        if todo.any():
            m = len(self.zl)
            key = np.unique(a[todo] * m + b[todo])
            pa, pb = key // m, key % m
            za, zb = self.zl[pa], self.zl[pb]
            ends = np.maximum(self._radius[pa], self._radius[pb])
            span = np.linalg.norm(zb - za, axis=1)
            leaves = np.zeros(len(key), dtype=bool)
            # the distance to the k-th nearest landmark is 1-Lipschitz: at a point p it is at
            # most |p - l| + (the same distance at any landmark l), so a point close to an end,
            # or close to some landmark whose k nearest are close, cannot leave
            own = self._own_radius
            # per pair, a landmark near the midpoint and the bound it gives there (inf: none)
            mid_bound = np.full(len(key), np.inf)
            for f in (0.5, 0.25, 0.75):
                # the bounds from the two ends and, a quarter span away, the midpoint's landmark
                known_bound = np.minimum(np.minimum(own[pa] + f * span, own[pb] + (1 - f) * span),
                                         (mid_bound + abs(f - 0.5) * span) * (1 + 1e-9))
                ask = ~leaves & (known_bound > self.chord_gap * ends)
                idx = np.flatnonzero(ask)
                if len(idx) == 0:
                    continue
                pts = za[idx] + f * (zb[idx] - za[idx])
                bound = self.chord_gap * ends[idx]
                # any landmark gives the bound, so an approximate nearest one (eps) will do
                near, at = self._tree.query(pts, k=1, eps=1.0)
                if f == 0.5:
                    mid_bound[idx] = near + own[at]
                unsure = near + own[at] >= bound * (1 - 1e-9)
                idx, pts, bound = idx[unsure], pts[unsure], bound[unsure]
                # the rest are queried in groups of similar bound, each searched no farther
                # than its largest bound (a neighbour beyond it is returned as inf: it leaves)
                order = np.argsort(bound)
                idx, pts, bound = idx[order], pts[order], bound[order]
                for part in np.array_split(np.arange(len(idx)), min(8, max(len(idx), 1))):
                    if len(part) == 0:
                        continue
                    d, _ = self._tree.query(pts[part], k=self._k,
                                            distance_upper_bound=float(bound[part[-1]]) * 1.0001)
                    leaves[idx[part]] = np.asarray(d).reshape(len(part), -1)[:, -1] > bound[part]
            code = np.where(leaves, 2, 1).astype(np.int8)
            self._leaves[pa, pb] = code
            self._leaves[pb, pa] = code
            known = self._leaves[a, b]
        return known == 2

    def _place(self, a: np.ndarray, p1: np.ndarray, pm: np.ndarray, zi: np.ndarray,
               zj: np.ndarray, first_len: np.ndarray, inner: np.ndarray,
               last_len: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points at arc length ``target`` along routes, and the unit tangents there."""
        zs = np.empty_like(zi)
        tangent = np.zeros_like(zi)

        def on_segment(sel, start, end, along, length):
            frac = np.where(length > 0, along / np.where(length > 0, length, 1.0), 0.0)
            zs[sel] = start + frac[:, None] * (end - start)
            tangent[sel] = np.where(length[:, None] > 0,
                                    (end - start) / np.where(length > 0, length, 1.0)[:, None],
                                    0.0)

        head = target <= first_len
        tail = ~head & (target >= first_len + inner)
        mid = ~head & ~tail
        if head.any():
            on_segment(head, zi[head], self.zl[p1[head]], target[head], first_len[head])
        if tail.any():  # measured back from the cell, so that the route ends exactly on it
            on_segment(tail, zj[tail], self.zl[pm[tail]], first_len[tail] + inner[tail]
                       + last_len[tail] - target[tail], last_len[tail])
            tangent[tail] = -tangent[tail]
        if mid.any():
            am = a[mid]
            # arc length from a at which the point lies, then back from p_m along the path to
            # the last node not beyond it
            goal = self.arc[am, p1[mid]] + target[mid] - first_len[mid]
            cur, nxt = pm[mid].copy(), pm[mid].copy()
            active = self.arc[am, cur] > goal
            while active.any():
                nxt = np.where(active, cur, nxt)
                cur = np.where(active, self.pred[am, cur], cur)
                active = active & (self.arc[am, cur] > goal)
            start_arc = self.arc[am, cur]
            on_segment(mid, self.zl[cur], self.zl[nxt], goal - start_arc,
                       self.arc[am, nxt] - start_arc)
        return zs, tangent

    def interpolate(self, k0: int, i: torch.Tensor, k1: int, j: torch.Tensor, s: torch.Tensor,
                    *, dt: float, x0: torch.Tensor | None = None,
                    x1: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions and velocities at fractions ``s`` of the routes ``(k0, i) -> (k1, j)``.

        ``x0``/``x1`` are the full coordinates of the cells (taken from the principal
        coordinates when ``None``, which is exact when ``d <= rank``); returned tensors have
        their dtype and device.
        """
        sv = s.detach().cpu().numpy().astype(np.float64).reshape(-1)
        zi, zj, a, p1, pm, first_len, inner, last_len, total, bend = self._routes(k0, i, k1, j)
        base_z = (1 - sv)[:, None] * zi + sv[:, None] * zj
        zs, dz = base_z.copy(), zj - zi
        if bend.any():
            pts, tangent = self._place(a[bend], p1[bend], pm[bend], zi[bend], zj[bend],
                                       first_len[bend], inner[bend], last_len[bend],
                                       sv[bend] * total[bend])
            zs[bend] = pts
            dz[bend] = total[bend][:, None] * tangent
        dev_z = zs - base_z
        dvel_z = dz - (zj - zi)
        ref = x0 if x0 is not None else s
        dtype, device = ref.dtype if ref.is_floating_point() else torch.float32, ref.device
        P = torch.as_tensor(self.P, dtype=dtype, device=device)
        bend_x = torch.as_tensor(dev_z, dtype=dtype, device=device) @ P
        bend_u = torch.as_tensor(dvel_z, dtype=dtype, device=device) @ P
        if x0 is None or x1 is None:
            mu = torch.as_tensor(self.mu, dtype=dtype, device=device)
            x0 = torch.as_tensor(zi, dtype=dtype, device=device) @ P + mu
            x1 = torch.as_tensor(zj, dtype=dtype, device=device) @ P + mu
        st = torch.as_tensor(sv, dtype=dtype, device=device).reshape(-1, 1)
        x = (1 - st) * x0 + st * x1 + bend_x
        u = (x1 - x0 + bend_u) / dt
        return x, u

    def detour_share(self, k0: int, i: torch.Tensor, k1: int, j: torch.Tensor) -> float:
        """Share of the pairs ``(k0, i) -> (k1, j)`` that follow a route rather than the chord."""
        return float(self._routes(k0, i, k1, j)[-1].mean())
