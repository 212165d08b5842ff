"""vgfm.tl.choose_reg_m: elbow of the coupling diagnostic's L-curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import vgfm
from vgfm.tl._relaxation import _elbow_reg_m

GRID = [0.01, 0.1, 0.3, 1.0, 3.0, 10.0]
# normalised: u = [0, .022, .056, .111, .556, 1], w = [1, .596, .293, .040, .010, 0];
# distance to the chord u + w = 1 is |u + w - 1| / sqrt(2), largest (0.849 / sqrt 2) at index 3
COST = [0.1, 0.12, 0.15, 0.2, 0.6, 1.0]
KL = [1.0, 0.6, 0.3, 0.05, 0.02, 0.01]


def _table(k: int, cost, kl, grid=GRID) -> pd.DataFrame:
    return pd.DataFrame({"interval": k, "reg_m": grid, "transport_cost": cost,
                         "marginal_kl": kl})


def test_elbow_of_a_hand_computed_curve():
    assert _elbow_reg_m(_table(0, COST, KL), None) == 1.0
    # the order of the rows does not matter
    assert _elbow_reg_m(_table(0, COST, KL).iloc[::-1], None) == 1.0


def test_median_over_intervals_and_interval_selection():
    # second interval: corner moved to index 2 (reg_m 0.3); third: index 4 (reg_m 3)
    t1 = _table(1, [0.1, 0.15, 0.2, 0.7, 0.9, 1.0], [1.0, 0.4, 0.05, 0.03, 0.01, 0.0])
    t2 = _table(2, [0.1, 0.11, 0.12, 0.13, 0.2, 1.0], [1.0, 0.9, 0.8, 0.7, 0.05, 0.0])
    both = pd.concat([_table(0, COST, KL), t1, t2], ignore_index=True)
    assert _elbow_reg_m(both, 1) == 0.3
    assert _elbow_reg_m(both, 2) == 3.0
    assert _elbow_reg_m(both, None) == 1.0  # median of 1.0, 0.3, 3.0
    assert _elbow_reg_m(pd.concat([t1, t2]), None) == 0.3  # lower middle value


def test_agrees_with_the_chord_construction_on_a_real_diagnostic():
    adata = vgfm.datasets.two_gene_grn(n_cells_0=150, seed=0)
    grid = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0]
    diag = vgfm.tl.coupling_diagnostic(adata, "time", use_rep="X", reg_m_values=grid,
                                       intervals=[1], max_cells=200, seed=0)
    cost = diag["transport_cost"].to_numpy()
    kl = diag["marginal_kl"].to_numpy()
    u = (cost - cost.min()) / np.ptp(cost)
    w = (kl - kl.min()) / np.ptp(kl)
    # area of the triangle (first, i, last) is proportional to the distance to the chord
    area = np.abs((u[-1] - u[0]) * (w - w[0]) - (w[-1] - w[0]) * (u - u[0]))
    expected = grid[int(np.argmax(area))]
    assert vgfm.tl.choose_reg_m(adata, diagnostic=diag) == expected
    # without a table it computes the same diagnostic itself
    assert vgfm.tl.choose_reg_m(adata, "time", use_rep="X", reg_m_values=grid, interval=1,
                                max_cells=200, seed=0) == expected


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['marginal_kl'\]"):
        vgfm.tl.choose_reg_m(None, diagnostic=_table(0, COST, KL).drop(columns="marginal_kl"))
    with pytest.raises(ValueError, match="2 distinct reg_m values; an elbow needs at least 3"):
        _elbow_reg_m(_table(0, COST[:2], KL[:2], GRID[:2]), None)
    with pytest.raises(ValueError, match=r"interval=5 is not in the diagnostic .*\[0\]"):
        _elbow_reg_m(_table(0, COST, KL), 5)
