"""What a *correct* prediction scores on the spread criteria of the Gaussian benchmarks.

The spread block of ``benchmarks/validity.py`` (and ``vgfm.tl.evaluate``) compares the
mass-weighted particles rolled out from the first snapshot with the observed cells at the next
time point: energy distance over its two-half floor (target <= 2) and variance ratio (target
[0.9, 1.1]).  Both the energy distance and the floor are V-statistics, so they carry a sampling
term that shrinks with the number of *effective* particles, ``1 / sum(w_i^2)``.  A prediction
whose masses differ between cells (growth) has fewer effective particles than cells, and scores
higher by sampling alone.

This script builds, for the Gaussian benchmark construction (``gaussian_{50d,1000d_regen}``:
400 cells at (0, 0) and 100 at (0, 2.5) at t = 0; 200 at (1, 0), 200 at (-1, 0) and 1000 at
(0, 2.5) at t = 1; every coordinate with N(0, 0.005) noise), two *perfect* predictions of the
t = 1 snapshot from the 500 first-snapshot cells and scores them against the observed t = 1
cells of the benchmark file:

* ``true growth``: each of the 500 particles at a fresh draw of the true t = 1 law of its
  cluster, the 100 upper particles with mass 10 (the true tenfold growth), the 400 lower ones
  with mass 1;
* ``growth as transport``: 500 particles of mass 1, drawn from the t = 1 law as a whole (the
  upper cluster filled by moving cells there instead of by growth: the right population with
  the wrong growth).

Both are exactly right about the population at t = 1; only the first is right about which
cells grow.  Repeated over ``--draws`` independent draws.

Usage::

    python benchmarks/spread_oracle.py            # both dimensions, 10 draws
    python benchmarks/spread_oracle.py --draws 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from vgfm._core.metrics import spread

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validity  # benchmarks/validity.py: data folder

FILES = {50: "gaussian_50d.csv", 1000: "gaussian_1000d_regen.csv"}
NOISE_SD = float(np.sqrt(0.005))


def _cluster(rng: np.random.Generator, n: int, centre: tuple[float, float], dim: int):
    x = rng.normal(0.0, NOISE_SD, size=(n, dim))
    x[:, 0] += centre[0]
    x[:, 1] += centre[1]
    return x


def oracle_rows(y: np.ndarray, draws: int) -> list[dict]:
    """Spread of the two perfect predictions against the observed t = 1 cells ``y``."""
    dim = y.shape[1]
    rows = []
    for s in range(draws):
        rng = np.random.default_rng(s)
        lower = np.vstack([_cluster(rng, 200, (1.0, 0.0), dim),
                           _cluster(rng, 200, (-1.0, 0.0), dim)])
        upper = _cluster(rng, 100, (0.0, 2.5), dim)
        mass = np.r_[np.ones(400), np.full(100, 10.0)]
        grown = spread(np.vstack([lower, upper]), y, mass, seed=s)
        # the t = 1 law with equal masses: 2 lower : 5 upper, 500 particles
        k = rng.binomial(500, 1000 / 1400)
        moved = np.vstack([_cluster(rng, (500 - k) // 2, (1.0, 0.0), dim),
                           _cluster(rng, 500 - k - (500 - k) // 2, (-1.0, 0.0), dim),
                           _cluster(rng, k, (0.0, 2.5), dim)])
        flat = spread(moved, y, seed=s)
        rows.append({"draw": s, "ess_true_growth": mass.sum() ** 2 / (mass**2).sum(),
                     "ratio_true_growth": grown.variance_ratio,
                     "ed_floor_true_growth": grown.energy_ratio,
                     "ratio_transport": flat.variance_ratio,
                     "ed_floor_transport": flat.energy_ratio})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--data-dir", default=None, help="folder of the benchmark CSV files")
    args = p.parse_args(argv)
    ddir = validity.find_data_dir(args.data_dir)
    if ddir is None:
        print("benchmark data not found (../shared/data or VGFM_DATA_DIR): nothing to score",
              file=sys.stderr)
        return 1
    print("| data | prediction | effective particles | variance ratio | ED / floor "
          "(mean, min-max) |")
    print("|---|---|---|---|---|")
    for dim, fname in FILES.items():
        path = Path(ddir) / fname
        if not path.exists():
            print(f"| {fname} | (file absent) | | | |")
            continue
        df = pd.read_csv(path)
        y = df[df["samples"] == 1].drop(columns="samples").to_numpy(dtype=float)
        r = pd.DataFrame(oracle_rows(y, args.draws))
        for label, col, ess in (("true growth (upper x10)", "true_growth",
                                 f"{r['ess_true_growth'].mean():.0f}"),
                                ("growth as transport (equal masses)", "transport", "500")):
            ed = r[f"ed_floor_{col}"]
            print(f"| {dim}-D | {label} | {ess} | {r[f'ratio_{col}'].mean():.3f} | "
                  f"{ed.mean():.2f} ({ed.min():.2f}-{ed.max():.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
