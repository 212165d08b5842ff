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
  observed cells cover the way), or when the two landmarks are not connected.

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
        self.dist, pred = shortest_path(graph, method="D", directed=False,
                                        return_predecessors=True)
        self.pred = pred.astype(np.int64)
        self.nearest = [tree.query(z, k=1)[1].astype(np.int64) for z in self.z]
        logger.debug("routes: %d landmarks, rank %d", m, self.P.shape[0])

    def _paths(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Landmark paths ``a -> b`` as ``(B, H)`` node indices (short paths padded with ``a``
        at the start; an unreachable pair is ``b`` throughout)."""
        cur = b.copy()
        back = [cur]
        active = (cur != a) & np.isfinite(self.dist[a, b])
        while active.any():
            nxt = np.where(active, self.pred[a, np.where(active, cur, a)], cur)
            cur = np.where(active, nxt, cur)
            back.append(cur.copy())
            active = active & (cur != a)
        return np.stack(back[::-1], 1)

    def _points(self, nodes: np.ndarray, a: np.ndarray, b: np.ndarray, zi: np.ndarray,
                zj: np.ndarray) -> np.ndarray:
        """Route points ``(B, H, r)``: the cells themselves replace their nearest landmarks
        (``a`` pads the start of a short path, ``b`` ends it)."""
        pts = self.zl[nodes]
        pts = np.where((nodes == a[:, None])[:, :, None], zi[:, None, :], pts)
        return np.where((nodes == b[:, None])[:, :, None], zj[:, None, :], pts)

    def _routes(self, k0: int, i: torch.Tensor, k1: int, j: torch.Tensor) -> tuple[np.ndarray, ...]:
        """Principal coordinates of the cells, route points, segment lengths, route lengths and
        which pairs follow their route (see the module docstring for when the chord is kept)."""
        ii, jj = i.cpu().numpy(), j.cpu().numpy()
        zi, zj = self.z[k0][ii], self.z[k1][jj]
        a, b = self.nearest[k0][ii], self.nearest[k1][jj]
        pts = self._points(self._paths(a, b), a, b, zi, zj)
        # repeated nodes (padding) are zero-length segments
        seg = np.linalg.norm(np.diff(pts, axis=1), axis=2)  # (B, H-1)
        total = seg.sum(1)
        chord = np.linalg.norm(zj - zi, axis=1)
        follow = (np.isfinite(self.dist[a, b]) & (a != b) & (total > 0)
                  & (total <= self.max_detour * chord + 1e-12)
                  & (seg.max(1, initial=0.0) <= self.max_hop * chord))
        return zi, zj, pts, seg, total, follow

    def interpolate(self, k0: int, i: torch.Tensor, k1: int, j: torch.Tensor, s: torch.Tensor,
                    *, dt: float, x0: torch.Tensor | None = None,
                    x1: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions and velocities at fractions ``s`` of the routes ``(k0, i) -> (k1, j)``.

        ``x0``/``x1`` are the full coordinates of the cells (taken from the principal
        coordinates when ``None``, which is exact when ``d <= rank``); returned tensors have
        their dtype and device.
        """
        sv = s.detach().cpu().numpy().astype(np.float64).reshape(-1)
        zi, zj, pts, seg, total, bend = self._routes(k0, i, k1, j)
        base_z = (1 - sv)[:, None] * zi + sv[:, None] * zj
        zs, dz = base_z.copy(), zj - zi
        if bend.any():
            sb, pb, tb = seg[bend], pts[bend], total[bend]
            cum = np.concatenate([np.zeros((len(sb), 1)), np.cumsum(sb, 1)], 1)
            target = sv[bend] * tb
            q = np.clip((cum[:, 1:] < target[:, None]).sum(1), 0, sb.shape[1] - 1)
            r = np.arange(len(sb))
            # skip zero-length segments (repeated end points) at the target arc length
            length = sb[r, q]
            frac = np.where(length > 0, (target - cum[r, q]) / np.where(length > 0, length, 1), 0)
            start, end = pb[r, q], pb[r, q + 1]
            zs[bend] = start + frac[:, None] * (end - start)
            with np.errstate(invalid="ignore", divide="ignore"):
                tangent = np.where(length[:, None] > 0, (end - start) / length[:, None], 0.0)
            dz[bend] = tb[:, None] * tangent
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
