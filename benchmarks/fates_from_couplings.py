"""Fates read off the couplings themselves, against the lineage truth (a diagnostic of tl.fates).

``vgfm.tl.fates`` simulates the fitted field; the field was regressed on the couplings of every
interval. This script asks how much of its error the couplings already carry. It records the
plans that ``vgfm.tl.fit`` computes on ``datasets.lineage_branching`` (the final plan of every
interval, after the motion test), chains them as WOT does,

    D = (pi_1 / a_1) (pi_2 / a_2) ... (pi_K / a_K)     (row i of pi_k divided by a_k,i)

so that ``D[i, j]`` is the mass at the last time point in cell ``j`` descending from early cell
``i``, and scores ``D``'s branch shares (fates) and row sums (expected descendants) as
``benchmarks/fates.py`` scores ``tl.fates``: Pearson over the early cells pooled over branches,
mean share of the lower (dying) branch against the truth, Spearman of the descendants.

Only the couplings are computed (``stage1_steps=1, stage2_steps=0``), so a run takes seconds.

Usage::

    python benchmarks/fates_from_couplings.py --seeds 0 1 2
    python benchmarks/fates_from_couplings.py --option growth_test=None --option reg_m_motion=0
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import vgfm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fates as fates_bench  # benchmarks/fates.py: scoring of the early cells
import validity  # benchmarks/validity.py: option parsing

_train = importlib.import_module("vgfm._core.train")


def recorded_plans(adata, **options) -> list[np.ndarray]:
    """Full plans ``(n_k, n_{k+1})`` of every interval of a default fit of ``adata``.

    Wraps the two coupling functions the trainer calls and keeps the last coupling computed for
    each pair of snapshot sizes (the motion test recouples an interval after its first plan).
    """
    seen: dict[tuple[int, int], object] = {}
    originals = {n: getattr(_train, n) for n in ("couple_interval", "uniform_growth_coupling")}

    def wrap(fn):
        def inner(x0, x1, *args, **kwargs):
            c = fn(x0, x1, *args, **kwargs)
            seen[(len(x0), len(x1))] = c
            return c
        return inner

    try:
        for n, fn in originals.items():
            setattr(_train, n, wrap(fn))
        vgfm.tl.fit(adata, "time", use_rep="X", progress=False, stage1_steps=1,
                    stage2_steps=0, **options)
    finally:
        for n, fn in originals.items():
            setattr(_train, n, fn)
    t = adata.obs["time"].to_numpy(dtype=float)
    sizes = [int((t == v).sum()) for v in np.unique(t)]
    plans = []
    for k in range(len(sizes) - 1):
        c = seen[(sizes[k], sizes[k + 1])]
        p = np.zeros((sizes[k], sizes[k + 1]))
        for s, g, b in zip(c.source, c.target, c.plans):
            p[np.ix_(s.numpy(), g.numpy())] += b.double().numpy()
        plans.append(p)
    return plans


def chained(plans: list[np.ndarray]) -> np.ndarray:
    """``D = prod_k pi_k / a_k`` (row sums of ``pi_k`` over ``a_k``: growth factors).

    Examples
    --------
    Every cell doubles on each of two intervals and stays in place:

    >>> p = np.eye(2) * 1.0  # a_i = 0.5, plan rows 1.0: factor 2
    >>> chained([p, p * 2]).round(6).tolist()
    [[8.0, 0.0], [0.0, 8.0]]
    """
    out = None
    for p in plans:
        step = p * p.shape[0]  # a_k,i = 1 / n_k (relative masses; constants cancel in shares)
        out = step if out is None else out @ step
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    logging.getLogger("vgfm").setLevel(logging.ERROR)
    options = validity._parse_set(args.option)
    rows = []
    for seed in args.seeds:
        a = vgfm.datasets.lineage_branching(300, n_replicates=200, seed=seed)
        d = chained(recorded_plans(a, seed=seed, **options))
        t = a.obs["time"].to_numpy(dtype=float)
        last = a.obs[fates_bench.BRANCH].to_numpy()[t == t.max()]
        names = list(a.obsm["true_fates"].columns)
        desc = np.stack([d[:, last == c].sum(1) for c in names], 1)
        pred = pd.DataFrame(np.nan, index=a.obs_names, columns=names)
        pred.loc[a.obs_names[t == t.min()]] = desc / desc.sum(1, keepdims=True)
        r = fates_bench._early_agreement(a, pred)
        truth = fates_bench._early_agreement(a, a.obsm["true_fates"])
        rho = spearmanr(desc.sum(1), a.obs["true_descendants"].to_numpy()[t == t.min()])[0]
        rows.append({"seed": seed, "fates_pearson": r["fates_pearson"],
                     "fates_mae": r["fates_mae"], "share_lower": r["share_lower"],
                     "true_share_lower": truth["share_lower"], "desc_spearman": rho})
    df = pd.DataFrame(rows)
    print(f"options: {options or 'defaults'}")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("mean:", df.drop(columns="seed").mean().round(3).to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
