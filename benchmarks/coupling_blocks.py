"""Blocked couplings versus the full plan: how good are the blocked growth targets?

``couple_interval`` never builds an ``n x m`` plan: beyond ``coupling_block`` cells a side it
couples random blocks of at most ``coupling_block`` source cells to random target subsets of
proportional size, each block a discretisation of the same two populations.  This script
measures what that costs in accuracy on data where the full plan still fits in memory.

For each interval it computes the growth targets ``gamma_i = log(w_i / a_i) / dt`` of every
source cell from the full plan (one block holding all cells) and from blocked couplings with
block sizes 512, 1024 and 2048 (enough blocks to cover every source cell, so each cell gets
one blocked target), then prints

* ``corr``: Pearson correlation of blocked and full targets over the source cells;
* ``MAE / sd``: mean absolute difference divided by the standard deviation of the full
  targets;
* ``mean err``: difference of the means (blocked - full), in growth-rate units, and the same
  relative to the sd;
* ``plans MB``: size of the plans that are kept (float32), the quantity bounded by
  ``coupling_max_blocks * coupling_block**2`` in training (here every source cell is
  covered, so the blocked total grows with the cells; training keeps at most 8 blocks);
* ``peak MB``: peak increase of the resident memory during the coupling (sampled every
  2 ms from ``/proc/self/statm``; the script re-executes itself with a fixed
  ``MALLOC_MMAP_THRESHOLD_`` so freed matrices leave the resident set), and the seconds it
  took.

Settings are the defaults of :class:`vgfm._core.train.TrainConfig` (``reg``, ``reg_m``).

Usage::

    python benchmarks/coupling_blocks.py
    python benchmarks/coupling_blocks.py --blocks 512 1024 --threads 2
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time

import numpy as np
import torch

import vgfm
from vgfm._core.couplings import couple_interval
from vgfm._core.train import TrainConfig

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE / 2**20


class PeakRSS:
    """Context manager: peak resident-memory increase (MB) over its body."""

    def __enter__(self):
        self.base = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())
        self.increase = self.peak - self.base


def growth_targets(x0, x1, *, mass1, dt, block, cfg, seed):
    """Growth target of every source cell (NaN if uncovered), plans MB, peak MB, seconds."""
    n0, n1 = len(x0), len(x1)
    n_blocks = math.ceil(max(n0, n1) / block)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with PeakRSS() as mem:
        c = couple_interval(x0, x1, mass0=1.0, mass1=mass1, dt=dt, options={"reg": cfg.reg, "reg_m": cfg.reg_m},
                             max_block=block, max_blocks=n_blocks,
                            generator=gen)
    secs = time.perf_counter() - t0
    out = np.full(n0, np.nan)
    for s, g in zip(c.source, c.growth):
        out[s.cpu().numpy()] = g.cpu().numpy()
    plans_mb = sum(p.numel() * p.element_size() for p in c.plans) / 2**20
    del c
    return out, plans_mb, mem.increase, secs


def intervals():
    """(name, x0, x1, dt, relative mass ratio) of the test intervals."""
    ad = vgfm.datasets.large_time_course(25_000, n_dims=50, n_times=5, seed=0)
    t = ad.obs["time"].to_numpy()
    ts = np.unique(t)
    for k in (0, 2):
        x0, x1 = ad.X[t == ts[k]], ad.X[t == ts[k + 1]]
        yield (f"large_time_course 50-D, t{k}->t{k + 1}", x0, x1, ts[k + 1] - ts[k],
               len(x1) / len(x0))
    for d in (10, 50):
        ad = vgfm.datasets.gaussian_bifurcation(d, n_cells_0=2000, n_times=2, seed=0)
        t = ad.obs["time"].to_numpy()
        ts = np.unique(t)
        x0, x1 = ad.X[t == ts[0]], ad.X[t == ts[1]]
        yield f"gaussian_bifurcation {d}-D", x0, x1, ts[1] - ts[0], len(x1) / len(x0)


def main() -> int:
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:  # make freed matrices leave the RSS
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig()

    lines = [
        "| data | source x target cells | coupling | corr | MAE / sd | mean err (sd units) "
        "| plans MB | peak MB | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, x0, x1, dt, ratio in intervals():
        x0 = torch.as_tensor(np.asarray(x0), dtype=torch.float32)
        x1 = torch.as_tensor(np.asarray(x1), dtype=torch.float32)
        size = f"{len(x0)} x {len(x1)}"
        full, pmb, mem, secs = growth_targets(x0, x1, mass1=ratio, dt=dt,
                                         block=max(len(x0), len(x1)), cfg=cfg, seed=args.seed)
        sd = float(full.std())
        lines.append(f"| {name} | {size} | full plan (sd of targets {sd:.3f}) | 1 | 0 | 0 "
                     f"| {pmb:.0f} | {mem:.0f} | {secs:.1f} |")
        print(lines[-1], flush=True)
        for b in args.blocks:
            g, pmb, mem, secs = growth_targets(x0, x1, mass1=ratio, dt=dt, block=b, cfg=cfg,
                                          seed=args.seed)
            ok = np.isfinite(g)
            corr = float(np.corrcoef(g[ok], full[ok])[0, 1])
            mae = float(np.abs(g[ok] - full[ok]).mean()) / sd
            err = float(g[ok].mean() - full.mean())
            lines.append(f"| {name} | {size} | blocks of {b} | {corr:.3f} | {mae:.3f} "
                         f"| {err:+.4f} ({err / sd:+.3f}) | {pmb:.0f} | {mem:.0f} "
                         f"| {secs:.1f} |")
            print(lines[-1], flush=True)
    print()
    print(f"reg={cfg.reg}, reg_m={cfg.reg_m}; torch threads {args.threads}; seed {args.seed}")
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
