"""The validity suite's measurement helpers (benchmarks/validity.py) on tiny, fast fits."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "validity.py"
_spec = importlib.util.spec_from_file_location("validity_suite", _PATH)
validity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(validity)

TINY = {"stage1_steps": 20, "stage2_steps": 2, "val_every": 1, "hidden": 16}


def test_growth_agreement_against_scipy() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=200)
    pred = 0.5 * true + 0.1 * rng.normal(size=200) + 0.2
    a = validity.growth_agreement(pred, true, sd_true=2.0)
    assert a["pearson"] == pytest.approx(pearsonr(pred, true)[0])
    assert a["spearman"] == pytest.approx(spearmanr(pred, true)[0])
    assert a["mae"] == pytest.approx(np.abs(pred - true).mean())
    assert a["mae_sd"] == pytest.approx(a["mae"] / 2.0)
    assert math.isnan(validity.growth_agreement(np.zeros(5), true[:5], 1.0)["pearson"])


def test_blocks_forward_options_and_format() -> None:
    # one generator, tiny training: the block runs end to end and its numbers are consistent
    res = validity.no_false_growth_block([0], generators=["gaussian_bifurcation_50d"], **TINY)
    assert res["options"] == TINY
    run = res["generators"]["gaussian_bifurcation_50d"]["runs"][0]
    assert "error" not in run, run
    assert set(run["per_time"]) == {"0", "1"}
    assert run["max"] == max(run["per_time"].values()) >= 0
    table = validity.format_no_false_growth(res)
    assert "gaussian_bifurcation_50d" in table and f"{run['per_time']['0']:.3f}" in table
    # an unknown option is reported per run (the block records the failure and goes on)
    bad = validity.growth_block([0], generators=["gaussian_bifurcation_50d"], not_an_option=1)
    assert "not_an_option" in bad["generators"]["gaussian_bifurcation_50d"]["runs"][0]["error"]


def test_krumsiek11_binned_equal_sizes_and_bins(tmp_path) -> None:
    # the krumsiek11 layout (realization, time_step, genes), 3 realisations x 10 steps: bins of
    # consecutive steps, every realisation alike in every bin, so the sizes are equal
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = [{"realization": r, "time_step": float(s), "Gata2": rng.normal(), "Pu.1": s / 10}
            for r in range(3) for s in range(10)]
    pd.DataFrame(rows).to_csv(tmp_path / "krumsiek11_timeseries.csv", index=False)
    a = validity.load_krumsiek11_binned(tmp_path, n_bins=5)
    assert a.shape == (30, 2) and list(a.var_names) == ["Gata2", "Pu.1"]
    t = a.obs["time"].to_numpy()
    assert np.array_equal(np.unique(t), np.arange(5.0))
    steps = np.array([r["time_step"] for r in rows])
    assert np.array_equal(t, np.floor(steps / 2))  # steps 0-1 -> 0, ..., 8-9 -> 4
    counts = pd.crosstab(a.obs["time"], a.obs["realization"]).to_numpy()
    assert (counts == 2).all()
    with pytest.raises(FileNotFoundError, match="VGFM_DATA_DIR"):
        validity.load_krumsiek11_binned(None)
