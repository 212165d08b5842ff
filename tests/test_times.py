"""Time labels -> times: one case per label problem of issues 11 (item 1-2) and 12 (item 5, 13)."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import vgfm
from vgfm._data._times import P0_IN_EMBRYONIC_DAYS, cell_times, parse_time_labels, resolve_times


def make(labels, *, per_label: int = 2, categories=None, ordered: bool = False, dim: int = 2,
         seed: int = 0):
    cells = [lab for lab in labels for _ in range(per_label)]
    obs = pd.DataFrame({"t": cells}, index=[f"c{i}" for i in range(len(cells))])
    if categories is not None:
        obs["t"] = pd.Categorical(obs["t"], categories=categories, ordered=ordered)
    rng = np.random.default_rng(seed)
    a = ad.AnnData(np.zeros((len(cells), 1), np.float32), obs=obs)
    a.obsm["X_pca"] = rng.normal(size=(len(cells), dim)).astype(np.float32)
    return a


def mapping_of(labels, **kw):
    _, m = resolve_times(make(labels, **{k: v for k, v in kw.items() if k != "order"}), "t",
                         order=kw.get("order"))
    return dict(zip(m.labels, m.values.tolist())), m.unit


# ---------------------------------------------------------------- issue 11 item 1: units
def test_hours_and_days_are_converted_not_misordered():
    # before: 2d, 3d sorted before 12h (times [2, 3, 12, 24, 36])
    got, unit = mapping_of(["12h", "24h", "36h", "2d", "3d"])
    assert unit == "day"
    assert got == {"12h": 0.5, "24h": 1.0, "36h": 1.5, "2d": 2.0, "3d": 3.0}


def test_hours_then_days():
    # before: [0, 6, 1, 2, 3] -- "6h" came after "1d"
    got, unit = mapping_of(["0h", "6h", "1d", "2d", "3d"])
    assert unit == "day" and list(got.values()) == [0.0, 0.25, 1.0, 2.0, 3.0]


def test_minutes_and_hours_and_weeks():
    assert mapping_of(["30min", "1h", "90 min"]) == ({"30min": 0.5, "1h": 1.0,
                                                     "90 min": 1.5}, "hour")
    assert mapping_of(["week 1", "2w", "10 days"])[0] == {"week 1": 1.0, "10 days": 10 / 7,
                                                           "2w": 2.0}


def test_single_unit_keeps_its_numbers():
    # same numbers as before the unit-aware parser, unit now named
    assert mapping_of(["8h", "0h", "24h"]) == ({"0h": 0.0, "8h": 8.0, "24h": 24.0}, "hour")
    assert mapping_of(["day 2", "day 0"]) == ({"day 0": 0.0, "day 2": 2.0}, "day")
    assert mapping_of(["E14.5", "E12.5"]) == ({"E12.5": 12.5, "E14.5": 14.5}, "embryonic day")
    assert mapping_of(["P3", "P0"]) == ({"P0": 0.0, "P3": 3.0}, "postnatal day")


def test_embryonic_and_postnatal_on_one_axis(caplog):
    # issue 12 item 5: E16.5, E18.5, P0 gave P0 first
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        got, unit = mapping_of(["P0", "E16.5", "E18.5", "P2"])
    assert unit == "embryonic day"
    assert got == {"E16.5": 16.5, "E18.5": 18.5, "P0": P0_IN_EMBRYONIC_DAYS,
                   "P2": P0_IN_EMBRYONIC_DAYS + 2}
    assert "P0 = E19.5" in caplog.text and "time_values=" in caplog.text


def test_twelve_hours_before_one_day():
    # issue 12 item 5: 12h, 1d, 2d put 12h last
    got, _ = mapping_of(["2d", "12h", "1d"])
    assert list(got) == ["12h", "1d", "2d"]


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        (["0", "6h", "1d"], "with a time unit"),
        (["E14.5", "day 2"], "developmental stages"),
        (["A1", "B2"], "mixes label prefixes"),
    ],
)
def test_inconsistent_labels_are_refused_with_the_remedy(labels, fragment, adata_fingerprint,
                                                          assert_same_adata):
    a = make(labels)
    before = adata_fingerprint(a)
    with pytest.raises(ValueError) as info:
        vgfm.tl.fit(a, "t", progress=False)
    msg = str(info.value)
    assert fragment in msg
    for remedy in ("time_order=", "time_values=", "ordered categorical", "vgfm.pp.numeric_time"):
        assert remedy in msg, remedy
    assert_same_adata(before, adata_fingerprint(a))


def test_mapping_and_unit_logged_at_info(caplog):
    with caplog.at_level(logging.INFO, logger="vgfm"):
        resolve_times(make(["12h", "1d"]), "t")
    assert "'12h' -> 0.5, '1d' -> 1 (day)" in caplog.text


# ---------------------------------------------------------------- issue 12 item 5: "day-1"
def test_day_minus_one_is_not_plus_one():
    got, _ = mapping_of(["day-1", "day0", "day1", "day2"])
    assert got == {"day-1": -1.0, "day0": 0.0, "day1": 1.0, "day2": 2.0}


def test_hyphen_separator_used_by_every_label():
    assert mapping_of(["day-2", "day-7"])[0] == {"day-2": 2.0, "day-7": 7.0}
    assert mapping_of(["day -1", "day 1"])[0] == {"day -1": -1.0, "day 1": 1.0}


# ---------------------------------------------------------------- issue 11 item 2
def test_ordered_categorical_gives_the_order(caplog):
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        got, unit = mapping_of(["late", "early", "mid"], categories=["early", "mid", "late"],
                               ordered=True)
    assert list(got.items()) == [("early", 0.0), ("mid", 1.0), ("late", 2.0)] and unit == ""
    assert "ordered categorical" in caplog.text


def test_ordered_categorical_keeps_parsed_times_when_they_agree():
    got, unit = mapping_of(["d4", "d0"], categories=["d0", "d2", "d4"], ordered=True)
    assert got == {"d0": 0.0, "d4": 4.0} and unit == "day"


def test_ordered_categorical_overrides_inconsistent_labels():
    # mixed, unconvertible labels: the categorical order is the remedy
    got, _ = mapping_of(["baseline", "6h", "1d"], categories=["baseline", "6h", "1d"],
                        ordered=True)
    assert list(got) == ["baseline", "6h", "1d"]


def test_unordered_categorical_is_parsed():
    got, _ = mapping_of(["d4", "d0"], categories=["d4", "d0"], ordered=False)
    assert list(got) == ["d0", "d4"]


def test_error_names_fit_options_not_order():
    with pytest.raises(ValueError) as info:
        resolve_times(make(["early", "late"]), "t")
    msg = str(info.value)
    assert "time_order=" in msg and "time_values=" in msg
    assert "Pass order=" not in msg


def test_pd_cut_intervals_use_midpoints():
    t = np.linspace(0.0, 4.0, 40)
    a = ad.AnnData(np.zeros((40, 1), np.float32),
                   obs=pd.DataFrame({"t": pd.cut(t, [-0.5, 1.5, 2.5, 4.5])},
                                    index=[f"c{i}" for i in range(40)]))
    times, m = resolve_times(a, "t")
    np.testing.assert_allclose(m.values, [0.5, 2.0, 3.5])
    assert m.labels == ("(-0.5, 1.5]", "(1.5, 2.5]", "(2.5, 4.5]")
    np.testing.assert_allclose(times[t < 1.5], 0.5)


def test_continuous_column_short_error_suggests_bin_time():
    t = np.linspace(0.0, 1.0, 130)
    a = ad.AnnData(np.zeros((130, 1), np.float32),
                   obs=pd.DataFrame({"t": t}, index=[f"c{i}" for i in range(130)]))
    with pytest.raises(ValueError) as info:
        resolve_times(a, "t")
    msg = str(info.value)
    assert len(msg) < 400 and "vgfm.pp.bin_time(adata, 't'" in msg and "130 distinct" in msg


def test_bin_time_then_fit_reads_bins():
    rng = np.random.default_rng(0)
    t = rng.uniform(0.0, 3.0, 150)
    a = ad.AnnData(np.zeros((150, 1), np.float32),
                   obs=pd.DataFrame({"t": t}, index=[f"c{i}" for i in range(150)]))
    vgfm.pp.bin_time(a, "t", n_bins=3)
    edges = a.uns["t_bin_bins"]["edges"]
    np.testing.assert_allclose(edges, np.quantile(t, [0, 1 / 3, 2 / 3, 1]))
    counts = a.uns["t_bin_bins"]["n_cells"]
    assert counts.sum() == 150 and counts.min() >= 49
    _, m = resolve_times(a, "t_bin")
    np.testing.assert_allclose(m.values, 0.5 * (edges[:-1] + edges[1:]))
    for k, mid in enumerate(m.values):
        inside = (t >= edges[k]) & (t <= edges[k + 1])
        assert np.all(np.isclose(a.obs["t_bin"].to_numpy()[inside], mid) | (t[inside] ==
                                                                           edges[k + 1]))


def test_bin_time_refuses_labels_and_bad_bins():
    a = make(["d0", "d1"])
    with pytest.raises(TypeError, match="numeric_time"):
        vgfm.pp.bin_time(a, "t")
    a.obs["x"] = np.arange(a.n_obs, dtype=float)
    with pytest.raises(ValueError, match="n_bins"):
        vgfm.pp.bin_time(a, "x", n_bins=1)


# ---------------------------------------------------------------- one implementation
def test_parse_time_labels_is_the_single_parser():
    vals, unit = parse_time_labels(["12h", "1d"])
    assert unit == "day" and vals.tolist() == [0.5, 1.0]


def test_readers_reuse_the_fit_mapping():
    a = make(["12h", "1d", "2d"], per_label=20)
    _, m = resolve_times(a, "t")
    np.testing.assert_array_equal(cell_times(a, "t", m), np.repeat([0.5, 1.0, 2.0], 20))


TINY = {"stage1_steps": 3, "stage2_steps": 0, "hidden": 8, "batch_size": 16}


def test_fit_and_readers_with_unit_labels():
    a = make(["2d", "12h", "1d"], per_label=20)
    model = vgfm.tl.fit(a, "t", population_size=[1, 1, 1], progress=False, **TINY)
    np.testing.assert_array_equal(model.times, [0.5, 1.0, 2.0])
    assert a.uns["vgfm"]["time_unit"] == "day" and model.info["time_unit"] == "day"
    df = vgfm.tl.evaluate(a)
    assert df["label"].tolist() == ["1d", "2d"]
    vgfm.tl.simulate(a, start_time="12h", n_per_interval=1)
    np.testing.assert_allclose(a.uns["vgfm_trajectories"]["t"], [0.5, 1.0, 2.0])


def test_time_order_options_everywhere():
    a = make(["early", "late", "mid"], per_label=20)
    order, values = ["early", "mid", "late"], [0.0, 1.0, 3.0]
    df = vgfm.tl.coupling_diagnostic(a, "t", use_rep="X_pca", time_order=order,
                                     time_values=values, reg_m_values=[1.0])
    assert df["t_end"].tolist() == [1.0, 3.0]
    vgfm.tl.fit(a, "t", time_order=order, time_values=values, population_size=[1, 1, 1],
                progress=False, **TINY)
    assert a.uns["vgfm"]["params"]["time_order"].tolist() == order
    # new cells with a label the fit did not see: the reader takes the same options
    b = make(["early", "later"], per_label=5)
    vgfm.tl.velocity(b, vgfm.get_model(a), time_order=["early", "later"], time_values=[0, 2])
    assert b.obsm["vgfm_velocity"].shape == (10, 2)
    with pytest.raises(ValueError, match="time_order="):
        vgfm.tl.velocity(b, vgfm.get_model(a))


# ---------------------------------------------------------------- issue 12 item 13
def test_velocity_time_accepts_labels():
    a = make(["day 0", "day 2"], per_label=20)
    model = vgfm.tl.fit(a, "t", population_size=[1, 1], progress=False, **TINY)
    b = a.copy()
    vgfm.tl.velocity(a, model, time="day 2")
    vgfm.tl.velocity(b, model, time=2.0)
    np.testing.assert_array_equal(a.obsm["vgfm_velocity"], b.obsm["vgfm_velocity"])
    with pytest.raises(ValueError, match="not a time point of the fit"):
        vgfm.tl.velocity(a, model, time="day 5")
