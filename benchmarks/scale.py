"""Scaling of ``vgfm.tl.fit`` + ``vgfm.tl.evaluate`` with the number of cells (default settings).

For each size, a fresh subprocess generates ``vgfm.datasets.large_time_course(n, n_dims=50,
n_times=5)``, runs ``vgfm.tl.fit(adata, "time", use_rep="X", progress=False)`` and
``vgfm.tl.evaluate(adata)`` with default settings, and reports

* wall time of the fit and of the evaluation (data generation excluded);
* the fit's phases from ``uns["vgfm"]["timing"]``: couplings, stage 1 and stage 2 per step
  (stage 2 includes checkpoint scoring, also shown on its own);
* peak resident memory of the subprocess (``ru_maxrss``) after generating the data, after
  the fit and at the end (the exact EMDs of the evaluation, ``max_cells`` x ``max_cells``,
  need ~2 GB at the default 6000);
* W1 and RME averaged over the time points after the first, with the standard error of the
  mean W1 (``sqrt(sum se_k^2) / K`` from the subsampling rule of
  :func:`vgfm._core.metrics.wasserstein1`; 0 when every snapshot is compared exactly).

Timings depend on the machine's load: the 1-minute load average at the start of each run is
printed next to it.  ``--threads`` sets ``torch.set_num_threads`` in each subprocess; ``fit``
and ``evaluate`` then apply their own ``n_threads`` default while they run.

Usage::

    python benchmarks/scale.py                          # 10k, 50k, 200k, 1M cells
    python benchmarks/scale.py --sizes 10000 200000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time


def run_one(n: int, threads: int, seed: int) -> dict:
    """Fit and evaluate on ``n`` cells in this process; return the measurements."""
    import numpy as np
    import torch

    import vgfm

    torch.set_num_threads(threads)
    load = os.getloadavg()[0]
    adata = vgfm.datasets.large_time_course(n, n_dims=50, n_times=5, seed=seed)
    counts = adata.obs["time"].value_counts().sort_index().to_numpy()
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    vgfm.tl.fit(adata, "time", use_rep="X", progress=False, seed=seed)
    t_fit = time.perf_counter() - t0
    rss_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    df = vgfm.tl.evaluate(adata)
    t_eval = time.perf_counter() - t0

    uns = adata.uns["vgfm"]
    timing = dict(uns.get("timing", {}))
    hist = uns["history"]
    n1, n2 = len(hist["stage1_loss"]), len(hist["stage2_loss"])
    se = np.asarray(df["w1_se"], dtype=float)
    return {
        "n": n,
        "cells_per_time": counts.tolist(),
        "load": load,
        "fit_s": t_fit,
        "eval_s": t_eval,
        "couplings_s": timing.get("seconds_couplings", math.nan),
        "stage1_ms_per_step": 1000 * timing.get("seconds_stage1", math.nan) / max(n1, 1),
        "stage2_s_per_step": timing.get("seconds_stage2", math.nan) / max(n2, 1),
        "validation_s": timing.get("seconds_validation", math.nan),
        "rss_data_mb": rss_data,
        "rss_fit_mb": rss_fit,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "w1": float(df["w1"].mean()),
        "w1_se": float(math.sqrt(float((se**2).sum())) / len(se)),
        "rme": float(df["rme"].mean()),
    }


def _fmt_n(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def table(rows: list[dict]) -> str:
    head = ("| cells | cells per time | load | fit (s) | couplings (s) | stage 1 (ms/step) "
            "| stage 2 (s/step) | scoring (s) | evaluate (s) | peak RSS data / fit / all (MB) "
            "| W1 ± se | RME |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        if "error" in r:
            lines.append(f"| {_fmt_n(r['n'])} | {r['error']} |" + " |" * 10)
            continue
        lines.append(
            f"| {_fmt_n(r['n'])} | {'/'.join(str(c) for c in r['cells_per_time'])} "
            f"| {r['load']:.1f} | {r['fit_s']:.1f} | {r['couplings_s']:.1f} "
            f"| {r['stage1_ms_per_step']:.1f} | {r['stage2_s_per_step']:.2f} "
            f"| {r['validation_s']:.1f} | {r['eval_s']:.1f} "
            f"| {r['rss_data_mb']:.0f} / {r['rss_fit_mb']:.0f} / {r['rss_peak_mb']:.0f} "
            f"| {r['w1']:.3f} ± {r['w1_se']:.3f} | {r['rme']:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+",
                    default=[10_000, 50_000, 200_000, 1_000_000])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=None, help="seconds per size")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one is not None:  # child: one size, JSON on the last stdout line
        print(json.dumps(run_one(args.one, args.threads, args.seed)), flush=True)
        return 0

    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--threads", str(args.threads),
               "--seed", str(args.seed)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            rows.append({"n": n, "error": f"timeout after {args.timeout:.0f} s"})
            print(f"{n}: timeout", file=sys.stderr, flush=True)
            continue
        if proc.returncode != 0:
            rows.append({"n": n, "error": f"exit {proc.returncode}"})
            print(proc.stderr[-3000:], file=sys.stderr, flush=True)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"torch.set_num_threads({args.threads}) in each subprocess; fit/evaluate with their "
          f"defaults (including n_threads, which sets torch's threads while they run); "
          f"seed {args.seed}")
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
