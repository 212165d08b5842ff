"""How much of dyngen's hold-out W1 no interpolation can remove: the branch shares.

A hold-out score (``benchmarks/validity.py``, block ``holdout``) compares the population a
model predicts at a left-out time ``t_k`` with the cells observed there. A model that sees only
the neighbouring snapshots ``t_{k-1}`` and ``t_{k+1}`` can place the cells well, but how many of
them sit in each branch at ``t_k`` it can only interpolate from the neighbours. dyngen's cell
counts per time point (156 / 112 / 63 / 96 / 301) are a sampling design, and so are its branch
shares: the upper branch holds 58 % of the branched cells at day 1, 46 % at day 2, 74 % at day
3 and 29 % at day 4. Days 2 and 3 lie outside the range their neighbours span.

This script measures the part of the hold-out W1 that comes from the shares alone. A cell is
in the upper branch when its second coordinate exceeds 0.5 and in the lower branch when it is
below -1.2 with the first coordinate above -1 (the two branches are more than 5 apart; the
other cells have not yet branched). For each left-out day the share is clipped into the range
of the two neighbouring days, the observed cells are reweighted branch by branch to that share,
and the **composition cost** is the exact W1 (``vgfm._core.metrics.wasserstein1``, as the
hold-out block scores) between the observed cells and the
same cells reweighted: what a prediction that puts every cell exactly where it was observed,
but with branch shares between the neighbours', would still score. It is not a strict lower
bound (a prediction may place mass between the branches), but any model whose shares stay
between the neighbours' pays about that much.

Usage::

    python benchmarks/holdout_composition.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from vgfm._core.metrics import wasserstein1

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validity  # benchmarks/validity.py: data folder and dataset loader


def branches(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of dyngen's upper and lower branch (see the module docstring)."""
    return x[:, 1] > 0.5, (x[:, 1] < -1.2) & (x[:, 0] > -1.0)


def upper_share(x: np.ndarray) -> float:
    """Share of the branched cells in the upper branch (NaN when none has branched)."""
    up, lo = branches(x)
    n = up.sum() + lo.sum()
    return float(up.sum() / n) if n else float("nan")


def composition_cost(x: np.ndarray, share: float) -> float:
    """W1 between the cells ``x`` and the same cells with the branched ones reweighted so that
    the upper branch holds ``share`` of the branched mass (unbranched cells keep theirs).

    Examples
    --------
    Two cells per branch, 5 apart; moving a quarter of the mass across costs 0.25 x 5:

    >>> x = np.array([[0.0, 3.0], [0.0, 3.0], [0.0, -2.0], [0.0, -2.0]])
    >>> round(composition_cost(x, 0.25), 6)
    1.25
    """
    up, lo = branches(x)
    n = len(x)
    branched = (up.sum() + lo.sum()) / n
    q = np.full(n, 1.0 / n)
    q[up] = branched * share / up.sum()
    q[lo] = branched * (1.0 - share) / lo.sum()
    # the hold-out block's own W1: the reweighted copy against the observed cells
    return float(wasserstein1(x, x, q).value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    ddir = validity.find_data_dir(args.data_dir)
    if ddir is None:
        print("benchmark data folder not found (../shared/data or VGFM_DATA_DIR); nothing to do")
        return 0
    a = validity.load_dataset("dyngen_5d", ddir)
    t = a.obs["time"].to_numpy(dtype=float)
    x = np.asarray(a.X, dtype=np.float64)
    times = np.unique(t)
    shares = {k: upper_share(x[t == k]) for k in times}
    print("day  cells  upper share  neighbours' range  interpolated  composition W1")
    costs = []
    for k in range(1, len(times) - 1):
        lo_hi = [shares[times[k - 1]], shares[times[k + 1]]]
        lo_hi = [v for v in lo_hi if np.isfinite(v)]
        s = shares[times[k]]
        s_int = float(np.clip(s, min(lo_hi), max(lo_hi)))
        c = composition_cost(x[t == times[k]], s_int)
        costs.append(c)
        rng = "–".join(f"{v:.2f}" for v in sorted(lo_hi))
        print(f"{times[k]:3g}  {int((t == times[k]).sum()):5d}  {s:11.2f}  {rng:>17}  "
              f"{s_int:12.2f}  {c:14.3f}")
    print(f"\nmean over the left-out days: {np.mean(costs):.3f} (issue 9 target for the "
          "hold-out mean W1: 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
