"""Reproduce the VGFM paper's comparison with default settings (no per-dataset tuning).

Runs ``vgfm.tl.fit`` + ``vgfm.tl.evaluate`` on the benchmark snapshot files for
``method="vgfm"`` and ``method="otcfm"`` over several seeds, then a hold-out run (each interior
time point of simulation gene and dyngen left out in turn), and prints markdown tables next to
the published rows of METHOD.md §5.  For the 1000-D Gaussian data it also prints the sampling
floor: W1 between two independent samples of the true law, drawn with the generator.

Usage::

    python benchmarks/paper_table.py                      # everything, 3 seeds
    python benchmarks/paper_table.py --datasets simulation_gene_2d --seeds 0
    VGFM_DATA_DIR=/path/to/data python benchmarks/paper_table.py

The data live in ``../shared/data`` of the development checkout (or ``VGFM_DATA_DIR``); when
they are absent the script says so and exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import vgfm
from vgfm._core.metrics import wasserstein1

DATASETS = ["simulation_gene_2d", "dyngen_5d", "gaussian_1000d_regen", "mouse_hematopoiesis_2d"]
HOLDOUT_DATASETS = ["simulation_gene_2d", "dyngen_5d"]
PUBLISHED = {  # METHOD.md §5 (mean over time points, W1 / RME)
    "simulation_gene_2d": {"OT-CFM": (0.302, None), "DeepRUOT": (0.068, 0.016),
                           "VGFM (paper)": (0.046, 0.006), "authors' code, re-run": (0.058, 0.011)},
    "dyngen_5d": {"OT-CFM": (3.926, None), "DeepRUOT": (0.474, 0.199),
                  "VGFM (paper)": (0.420, 0.053), "authors' code, re-run": (0.56, 0.09)},
    "gaussian_1000d_regen": {"OT-CFM": (10.126, None), "VGFM (paper)": (3.010, 0.037)},
    "mouse_hematopoiesis_2d": {},
}


def data_dir() -> Path | None:
    """Benchmark data folder: $VGFM_DATA_DIR, else ../shared/data next to the checkout."""
    env = os.environ.get("VGFM_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for c in candidates:
        if (c / "simulation_gene_2d.csv").exists():
            return c
    return None


def run_one(adata, method: str, seed: int, holdout=None) -> tuple[float, float, float, object]:
    t0 = time.perf_counter()
    vgfm.tl.fit(adata, "time", use_rep="X", method=method, seed=seed, progress=False,
                holdout_time=holdout)
    df = vgfm.tl.evaluate(adata)
    return float(df["w1"].mean()), float(df["rme"].mean()), time.perf_counter() - t0, df


def fmt(values: list[float], digits: int = 3) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.{digits}f}"


def sampling_floor(adata, seed: int = 0) -> float:
    """W1 between two independent samples (observed size) of the 1000-D Gaussian law at t=1."""
    n1 = int((adata.obs["time"] == adata.obs["time"].max()).sum())
    dim = adata.n_vars
    noise = float(np.sqrt(0.005))
    a = vgfm.datasets.sample_gaussian_bifurcation_law(n1, 1.0, n_dims=dim, noise_sd=noise,
                                                      seed=seed)
    b = vgfm.datasets.sample_gaussian_bifurcation_law(n1, 1.0, n_dims=dim, noise_sd=noise,
                                                      seed=seed + 1000)
    return wasserstein1(a, b).value


def growth_check(ddir: Path, seeds: list[int]) -> None:
    """Mean predicted growth at t=0 on gaussian_50d: upper cluster vs ln 10, lower vs 0."""
    adata = vgfm.datasets.load_benchmark("gaussian_50d", ddir)
    t0 = adata.obs["time"] == adata.obs["time"].min()
    upper = t0 & (adata.X[:, 1] > 1.25)
    lower = t0 & (adata.X[:, 1] <= 1.25)
    print("\nGrowth on gaussian_50d at t=0 (truth: upper ln 10 = 2.303, lower 0)\n")
    print("| seed | mean g upper | rel. error vs ln 10 | mean g lower |")
    print("|---|---|---|---|")
    for seed in seeds:
        vgfm.tl.fit(adata, "time", use_rep="X", seed=seed, progress=False)
        g = adata.obs["vgfm_growth"].to_numpy()
        gu, gl = float(g[upper].mean()), float(g[lower].mean())
        print(f"| {seed} | {gu:.3f} | {abs(gu - np.log(10)) / np.log(10):.1%} | {gl:+.3f} |",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=["vgfm", "otcfm"])
    p.add_argument("--no-holdout", action="store_true")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    ddir = data_dir()
    if ddir is None:
        print("Benchmark data not found: set VGFM_DATA_DIR or run from a checkout with "
              "../shared/data beside it. Nothing was measured.", file=sys.stderr)
        return 1
    print(f"data: {ddir}; torch threads: {args.threads}; seeds: {args.seeds}\n")
    print("| dataset | method | W1 (mean ± sd) | RME (mean ± sd) | fit+evaluate s (mean) |")
    print("|---|---|---|---|---|")
    for name in args.datasets:
        adata = vgfm.datasets.load_benchmark(name, ddir)
        for method in args.methods:
            w1s, rmes, secs = [], [], []
            for seed in args.seeds:
                w1, rme, sec, _ = run_one(adata, method, seed)
                w1s.append(w1), rmes.append(rme), secs.append(sec)
            print(f"| {name} | {method} (ours) | {fmt(w1s)} | {fmt(rmes, 4)} | "
                  f"{np.mean(secs):.1f} |", flush=True)
        for label, (w1, rme) in PUBLISHED.get(name, {}).items():
            print(f"| {name} | {label} (published) | {w1:.3f} | "
                  f"{'—' if rme is None else f'{rme:.3f}'} | |")
        if name.startswith("gaussian_1000d"):
            print(f"| {name} | sampling floor (two true-law samples) | {sampling_floor(adata):.3f}"
                  " | | |", flush=True)
    growth_check(ddir, args.seeds)
    if args.no_holdout:
        return 0
    print("\nHold-out: each interior time point left out in turn; W1/RME at the held-out time.\n")
    print("| dataset | held-out time | method | W1 (mean ± sd) | RME (mean ± sd) |")
    print("|---|---|---|---|---|")
    for name in [d for d in HOLDOUT_DATASETS if d in args.datasets]:
        adata = vgfm.datasets.load_benchmark(name, ddir)
        times = np.sort(adata.obs["time"].unique())
        for t in times[1:-1]:
            for method in args.methods:
                w1s, rmes = [], []
                for seed in args.seeds:
                    _, _, _, df = run_one(adata, method, seed, holdout=float(t))
                    row = df[df["held_out"]].iloc[0]
                    w1s.append(row["w1"]), rmes.append(row["rme"])
                print(f"| {name} | {t:g} | {method} | {fmt(w1s)} | {fmt(rmes, 4)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
