"""tl.evaluate reports the spread of the prediction (issue 9): variance ratio and energy distance."""

from __future__ import annotations

import numpy as np

import vgfm
from vgfm._core.metrics import spread


def test_evaluate_spread_columns_match_independent_computation():
    adata = vgfm.datasets.two_gene_grn(n_cells_0=60, seed=1)
    model = vgfm.tl.fit(adata, "time", use_rep="X", stage1_steps=30, stage2_steps=0,
                        progress=False, population_size=adata.uns["true_population_size"])
    note = adata.uns["vgfm"]["growth_last_time"]
    assert "(2) has no outgoing interval" in note and "[1.5, 2]" in note
    df = vgfm.tl.evaluate(adata)
    assert {"variance_ratio", "energy_distance", "energy_floor", "off_data_mass"} <= set(
        df.columns)
    x = np.asarray(adata.X, dtype=np.float32)
    t = adata.obs["time"].to_numpy(float)
    times = np.unique(t)
    xs, lms = model.simulate(x[t == times[0]], times)
    for k in range(1, len(times)):
        m = np.exp(lms[k].astype(np.float64))
        y = x[t == times[k]]
        ref = spread(xs[k], y, m, max_cells=2000, seed=k)
        row = df.iloc[k - 1]
        np.testing.assert_allclose(row["variance_ratio"], ref.variance_ratio, rtol=1e-6)
        np.testing.assert_allclose(row["energy_distance"], ref.energy_distance, rtol=1e-6)
        np.testing.assert_allclose(row["energy_floor"], ref.energy_floor, rtol=1e-6)
        assert row["off_data_mass"] == ref.off_data_mass
        assert 0.0 <= row["off_data_mass"] <= 1.0
        # an independent check of the variance ratio from its definition
        w = m / m.sum()
        mu = w @ xs[k].astype(np.float64)
        pred_var = w @ ((xs[k] - mu) ** 2).sum(1)
        obs_var = ((y - y.mean(0)) ** 2).sum(1).mean()
        np.testing.assert_allclose(row["variance_ratio"], pred_var / obs_var, rtol=1e-4)
