"""Growth-sign uncertainty from an ensemble: the mask and its drawing (one implementation).

Used by :func:`vgfm.pl.growth` (``uncertainty=True``) and :func:`vgfm.pl.hatch_uncertain`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from vgfm._data._containers import resolve_container
from vgfm._data._keys import DEFAULT_KEY, growth_key
from vgfm.pl._utils import BACKGROUND_GREY, default_point_size

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection

__all__ = ["UNCERTAIN_LABEL", "draw_uncertain", "uncertain_sign"]

#: Label of the matplotlib collection holding the uncertain cells (hatched or greyed).
UNCERTAIN_LABEL = "uncertain sign"


def _ensemble_hint(key: str) -> str:
    extra = "" if key == DEFAULT_KEY else f" with key_added={key!r}"
    return f"run `vgfm.tl.ensemble(adata)`{extra} first"


def uncertain_sign(adata: Any, *, key: str = DEFAULT_KEY, z: float = 2.0,
                   mod: str | None = None) -> np.ndarray:
    """Boolean mask of cells whose growth sign is not certain: ``|mean| < z · sd``.

    Reads ``obs[f"{key}_growth_sd"]`` (written by :func:`vgfm.tl.ensemble`) and the ensemble
    mean ``obs[f"{key}_growth_mean"]`` (or the fitted ``obs[f"{key}_growth"]`` when the mean
    is absent). Cells with a missing mean or sd count as uncertain.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.ensemble`.
    key
        The ``key_added`` of :func:`vgfm.tl.ensemble`.
    z
        Number of standard deviations ``|mean|`` must reach for a certain sign (> 0).
    mod
        For a MuData: modality holding the fields.

    Returns
    -------
    ``(n_obs,)`` boolean array, ``True`` where the sign is uncertain.

    Examples
    --------
    >>> import anndata, numpy as np, pandas as pd
    >>> ad = anndata.AnnData(np.zeros((3, 1)), obs=pd.DataFrame(
    ...     {"vgfm_growth_mean": [1.0, 0.1, -1.0], "vgfm_growth_sd": [0.1, 0.1, 0.6]},
    ...     index=["a", "b", "c"]))
    >>> uncertain_sign(ad).tolist()
    [False, True, True]
    """
    if not (np.isfinite(z) and z > 0):
        raise ValueError(f"z (standard deviations for a certain sign) must be > 0, got {z!r}.")
    data = resolve_container(adata, mod)
    sd_key = f"{key}_growth_sd"
    if sd_key not in data.obs:
        raise KeyError(
            f"adata.obs[{sd_key!r}] (ensemble standard deviation of the growth rate) is "
            f"missing; {_ensemble_hint(key)}."
        )
    mean_key = f"{key}_growth_mean" if f"{key}_growth_mean" in data.obs else growth_key(key)
    if mean_key not in data.obs:
        raise KeyError(
            f"adata.obs[{f'{key}_growth_mean'!r}] (ensemble mean of the growth rate) is "
            f"missing; {_ensemble_hint(key)}."
        )
    mean = np.asarray(data.obs[mean_key], dtype=np.float64)
    sd = np.asarray(data.obs[sd_key], dtype=np.float64)
    return ~(np.abs(mean) >= z * sd)


def draw_uncertain(
    ax: Axes,
    emb: np.ndarray,
    mask: np.ndarray,
    *,
    mode: str = "hatch",
    size: float | None = None,
    hatch: str = "////",
    color: str = "#4d4d4d",
) -> PathCollection:
    """Draw the cells of ``mask`` on ``ax``: hatched circles on top, or grey dots (``"mask"``).

    ``"mask"`` paints the cells in the background grey underneath (``zorder`` 0.5; the caller
    leaves them out of its coloured scatter); ``"hatch"`` draws hatched, unfilled circles of
    twice the default area over them. The returned collection is labelled
    :data:`UNCERTAIN_LABEL`.
    """
    mask = np.asarray(mask, dtype=bool)
    n = emb.shape[0]
    if mode == "mask":
        s = default_point_size(n) if size is None else size
        return ax.scatter(emb[mask, 0], emb[mask, 1], c=BACKGROUND_GREY, s=s, linewidths=0,
                          rasterized=True, label=UNCERTAIN_LABEL, zorder=0.5)
    if mode != "hatch":
        raise ValueError(f"mode must be 'hatch' or 'mask', got {mode!r}.")
    s = 2.0 * default_point_size(n) if size is None else size
    return ax.scatter(emb[mask, 0], emb[mask, 1], s=s, facecolors="none", edgecolors=color,
                      hatch=hatch, linewidths=0.3, label=UNCERTAIN_LABEL, zorder=3)
