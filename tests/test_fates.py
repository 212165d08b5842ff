"""Numerical checks of lineage truth, stochastic dynamics, fates and ensembles (issue 10)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import vgfm


# --------------------------------------------------------------------------------------------
# lineage-truth generator
# --------------------------------------------------------------------------------------------
def test_lineage_without_growth_keeps_population() -> None:
    a = vgfm.datasets.lineage_branching(80, n_replicates=5, birth_rate=0.0, death_rate=0.0,
                                        seed=1)
    sizes = a.uns["true_population_size"]
    np.testing.assert_array_equal(sizes, sizes[0])
    early = (a.obs["time"] == 0).to_numpy()
    np.testing.assert_array_equal(a.obs["true_descendants"].to_numpy()[early], 1.0)
    np.testing.assert_array_equal(a.obs["true_growth"].to_numpy(), 0.0)
    # every sampled cell's founder is a valid lineage, early cells are their own ancestors
    assert (a.obs["ancestor"][early] == a.obs_names[early]).all()


def test_lineage_balanced_birth_death_keeps_expected_population() -> None:
    b = 0.5
    a = vgfm.datasets.lineage_branching(100, n_lineages=3000, n_replicates=2,
                                        birth_rate=b, death_rate=b, seed=2)
    sizes = a.uns["true_population_size"]
    t_end = a.uns["times"][-1] - a.uns["times"][0]
    # critical birth-death process: E N_T = N_0, Var N_T = 2 b T N_0
    sd = math.sqrt(2 * b * t_end * sizes[0])
    assert abs(sizes[-1] - sizes[0]) < 4 * sd
    assert abs(sizes[-1] - sizes[0]) > 0  # births and deaths did happen


def test_lineage_descendants_constant_rate_exp_growth() -> None:
    b, d = 0.9, 0.4
    a = vgfm.datasets.lineage_branching(50, n_replicates=200, birth_rate=b, death_rate=d,
                                        seed=3)
    t_end = a.uns["times"][-1] - a.uns["times"][0]
    early = (a.obs["time"] == 0).to_numpy()
    desc = a.obs["true_descendants"].to_numpy()[early]
    se = a.obs["true_descendants_se"].to_numpy()[early]
    lam = b - d
    expected = math.exp(lam * t_end)
    # Var of a linear birth-death process started from one cell
    var1 = (b + d) / lam * expected * (expected - 1)
    se_mean = math.sqrt(var1 / (200 * len(desc)))
    step_bias = expected - (1 + lam * 0.01) ** round(t_end / 0.01)  # Euler step of the rates
    assert abs(desc.mean() - expected) < 4 * se_mean + step_bias
    z = (desc - expected) / se
    assert np.mean(np.abs(z) < 3) > 0.95
    np.testing.assert_allclose(a.obsm["true_fates"].to_numpy()[early].sum(1), 1.0)
