"""Numerical helper of the velocity plot: smoothing per-cell vectors on a grid."""

from __future__ import annotations

import numpy as np


def smooth_on_grid(
    emb: np.ndarray,
    vel: np.ndarray,
    *,
    n_grid: int,
    smooth: float = 1.0,
    n_neighbors: int = 30,
    mask_factor: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian-kernel average of per-cell 2-D velocities on a regular ``n_grid²`` grid.

    The bandwidth is ``sigma = smooth * max(grid step, median distance of a cell to its 5th
    nearest cell)``; each grid point averages the velocities of its ``n_neighbors`` nearest
    cells with weights ``exp(-d² / 2 sigma²)``. Grid points farther than
    ``mask_factor * sigma`` from every cell are set to ``NaN``.

    Returns
    -------
    xs, ys, U, V
        Grid coordinates (``(n_grid,)`` each) and velocity components of shape
        ``(n_grid, n_grid)`` indexed ``[y, x]`` (``streamplot`` / ``meshgrid`` layout).
    """
    from sklearn.neighbors import NearestNeighbors

    ok = np.all(np.isfinite(emb), axis=1) & np.all(np.isfinite(vel), axis=1)
    emb, vel = emb[ok], vel[ok]
    if emb.shape[0] == 0:
        raise ValueError("no cell has a finite embedding coordinate and velocity")
    lo, hi = emb.min(axis=0), emb.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    pad = 0.02 * span
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n_grid)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n_grid)
    step = float(np.mean([xs[1] - xs[0], ys[1] - ys[0]])) if n_grid > 1 else float(span.max())

    k_data = min(6, emb.shape[0])
    nn_self = NearestNeighbors(n_neighbors=k_data).fit(emb)
    d_self, _ = nn_self.kneighbors(emb)
    d_nn = float(np.median(d_self[:, -1])) if k_data > 1 else step
    sigma = smooth * max(step, d_nn)

    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    k = min(n_neighbors, emb.shape[0])
    dist, idx = nn_self.kneighbors(grid, n_neighbors=k)
    w = np.exp(-(dist**2) / (2.0 * sigma**2))
    wsum = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.einsum("gk,gkc->gc", w, vel[idx]) / wsum[:, None]
    far = dist[:, 0] > mask_factor * sigma
    avg[far | (wsum <= 0)] = np.nan
    U = avg[:, 0].reshape(gx.shape)
    V = avg[:, 1].reshape(gx.shape)
    return xs, ys, U, V
