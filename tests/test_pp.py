"""Tests of the preparation layer :mod:`vgfm.pp` and its validators."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import vgfm.pp
from vgfm._data import _representation
from vgfm._data._holdout import check_holdout_time
from vgfm._data._population import resolve_population_size, stored_population_size
from vgfm._data._representation import get_representation
from vgfm._data._times import TimeMapping, cells_per_time, resolve_times


def make_adata(time_values, *, n_vars: int = 4, seed: int = 0, categorical: bool = False):
    rng = np.random.default_rng(seed)
    n = len(time_values)
    obs = pd.DataFrame({"time": list(time_values)}, index=[f"c{i}" for i in range(n)])
    if categorical:
        obs["time"] = obs["time"].astype("category")
    adata = ad.AnnData(
        X=rng.normal(size=(n, n_vars)).astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=[f"g{j}" for j in range(n_vars)]),
    )
    adata.obsm["X_pca"] = rng.normal(size=(n, 3))
    adata.uns["note"] = {"a": np.arange(3), "b": "text"}
    return adata


@pytest.fixture
def adata():
    # 3 cells at day 4, 2 at day 0, 3 at day 2; deliberately unsorted
    return make_adata(
        ["day 4", "day 0", "day 2", "day 4", "day 2", "day 0", "day 4", "day 2"], categorical=True
    )


@pytest.fixture
def mapping3():
    return TimeMapping(("day 0", "day 2", "day 4"), np.array([0.0, 2.0, 4.0]))


# --------------------------------------------------------------------------------------------
# resolve_times: parsing
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["day 2", "day 0", "day 10"], {"day 0": 0.0, "day 2": 2.0, "day 10": 10.0}),
        (["E14.5", "E12.5", "E9"], {"E9": 9.0, "E12.5": 12.5, "E14.5": 14.5}),
        (["8h", "0h", "24h"], {"0h": 0.0, "8h": 8.0, "24h": 24.0}),
        (["D4", "D0"], {"D0": 0.0, "D4": 4.0}),
        (["t=3", "t=-1"], {"t=-1": -1.0, "t=3": 3.0}),
        (["12 hours", "6 hours"], {"6 hours": 6.0, "12 hours": 12.0}),
        (["day-2", "day-7"], {"day-2": 2.0, "day-7": 7.0}),
        (["1e3", "0.5"], {"0.5": 0.5, "1e3": 1000.0}),
    ],
)
@pytest.mark.parametrize("categorical", [False, True])
def test_resolve_times_parses_labels(labels, expected, categorical):
    cells = [lab for lab in labels for _ in range(2)]  # two cells per label
    a = make_adata(cells, categorical=categorical)
    times, mapping = resolve_times(a, "time")
    ordered = sorted(expected, key=expected.get)
    assert mapping.labels == tuple(ordered)
    np.testing.assert_array_equal(mapping.values, [expected[k] for k in ordered])
    assert times.dtype == np.float64 and times.shape == (len(cells),)
    np.testing.assert_array_equal(times, [expected[c] for c in cells])


def test_resolve_times_numeric_column():
    a = make_adata([2.5, 0, 0, 2.5, 7, 7, 0])
    times, mapping = resolve_times(a, "time")
    assert mapping.labels == ("0", "2.5", "7")
    np.testing.assert_array_equal(mapping.values, [0.0, 2.5, 7.0])
    np.testing.assert_array_equal(times, [2.5, 0, 0, 2.5, 7, 7, 0])


def test_resolve_times_integer_categorical():
    a = make_adata([3, 1, 1, 3], categorical=True)
    times, mapping = resolve_times(a, "time")
    assert mapping.labels == ("1", "3")
    np.testing.assert_array_equal(times, [3.0, 1.0, 1.0, 3.0])


def test_resolve_times_ignores_unused_categories(adata):
    adata.obs["time"] = adata.obs["time"].cat.add_categories(["day 99"])
    _, mapping = resolve_times(adata, "time")
    assert mapping.labels == ("day 0", "day 2", "day 4")


def test_resolve_times_order_default_values():
    a = make_adata(["late", "early", "mid", "early", "late", "mid"])
    times, mapping = resolve_times(a, "time", order=["early", "mid", "late"])
    assert mapping.labels == ("early", "mid", "late")
    np.testing.assert_array_equal(mapping.values, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(times, [2, 0, 1, 0, 2, 1])


def test_resolve_times_order_and_values():
    a = make_adata(["late", "early", "mid", "early", "late", "mid"])
    times, mapping = resolve_times(a, "time", order=["early", "mid", "late"], values=[0, 1.5, 6])
    np.testing.assert_array_equal(mapping.values, [0.0, 1.5, 6.0])
    np.testing.assert_array_equal(times, [6.0, 0.0, 1.5, 0.0, 6.0, 1.5])


def test_resolve_times_order_overrides_parsing_and_drops_unused(caplog):
    a = make_adata(["day 0", "day 0", "day 2", "day 2"])
    with caplog.at_level(logging.WARNING, logger="vgfm"):
        times, mapping = resolve_times(
            a, "time", order=["day 0", "day 1", "day 2"], values=[10, 11, 12]
        )
    assert mapping.labels == ("day 0", "day 2")
    np.testing.assert_array_equal(mapping.values, [10.0, 12.0])
    np.testing.assert_array_equal(times, [10, 10, 12, 12])
    assert "day 1" in caplog.text


def test_resolve_times_numeric_column_with_numeric_order():
    a = make_adata([0, 0, 1, 1, 2, 2])
    times, mapping = resolve_times(a, "time", order=[0, 1, 2], values=[0.0, 3.0, 4.0])
    np.testing.assert_array_equal(times, [0, 0, 3, 3, 4, 4])
    assert mapping.labels == ("0", "1", "2")


# --------------------------------------------------------------------------------------------
# resolve_times: errors leave adata untouched
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cells", "kwargs", "exc", "fragments"),
    [
        (
            ["day 0"] * 4,
            {},
            ValueError,
            ["adata.obs['time']", "1 distinct time point", "at least 2"],
        ),
        (["day 0", "day 0", "day 2"], {}, ValueError, ["adata.obs['time']", "'day 2' (1 cell)"]),
        (
            ["early", "early", "late", "late"],
            {},
            ValueError,
            ["adata.obs['time']", "'early'", "'late'", "order="],
        ),
        (["day 1 rep 2", "day 1 rep 2", "d0", "d0"], {}, ValueError, ["'day 1 rep 2'", "order="]),
        (["day 2", "D2", "day 2", "D2"], {}, ValueError, ["same time", "'D2'"]),
        (
            [0.0, 0.0, np.nan, 1.0, 1.0],
            {},
            ValueError,
            ["adata.obs['time']", "1 cell without a time point", "notna"],
        ),
        (
            ["a", "a", "b", "b", "c", "c"],
            {"order": ["a", "b"]},
            ValueError,
            ["adata.obs['time']", "missing from time_order", "'c'"],
        ),
        (
            ["a", "a", "b", "b"],
            {"order": ["a", "b"], "values": [1, 1]},
            ValueError,
            ["strictly increasing"],
        ),
        (
            ["a", "a", "b", "b"],
            {"order": ["a", "b"], "values": [1, 2, 3]},
            ValueError,
            ["time_values has 3", "time_order has 2"],
        ),
        (["a", "a", "b", "b"], {"values": [1, 2]}, ValueError, ["values=", "order="]),
        ([0.0, 0.0, np.inf, np.inf], {}, ValueError, ["non-finite", "'inf'"]),
    ],
)
def test_resolve_times_errors(cells, kwargs, exc, fragments, adata_fingerprint, assert_same_adata):
    a = make_adata(cells)
    before = adata_fingerprint(a)
    with pytest.raises(exc) as info:
        resolve_times(a, "time", **kwargs)
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, (frag, msg)
    assert_same_adata(before, adata_fingerprint(a))
    # the public function raises the same error and writes nothing
    with pytest.raises(exc):
        vgfm.pp.numeric_time(a, "time", **{f"time_{k}": v for k, v in kwargs.items()})
    assert_same_adata(before, adata_fingerprint(a))


def test_missing_time_key_lists_columns(adata, adata_fingerprint, assert_same_adata):
    adata.obs["batch"] = "b1"
    before = adata_fingerprint(adata)
    with pytest.raises(KeyError) as info:
        vgfm.pp.numeric_time(adata, "day")
    msg = str(info.value)
    assert "time_key='day'" in msg and "'time'" in msg and "'batch'" in msg
    assert_same_adata(before, adata_fingerprint(adata))


def test_fingerprint_detects_changes(adata, adata_fingerprint, assert_same_adata):
    before = adata_fingerprint(adata)
    adata.uns["note"]["a"][0] = 42
    with pytest.raises(AssertionError):
        assert_same_adata(before, adata_fingerprint(adata))
    adata.uns["note"]["a"][0] = 0
    assert_same_adata(before, adata_fingerprint(adata))
    adata.obsm["X_pca"][1, 1] += 1.0
    with pytest.raises(AssertionError):
        assert_same_adata(before, adata_fingerprint(adata))


# --------------------------------------------------------------------------------------------
# TimeMapping
# --------------------------------------------------------------------------------------------
def test_time_mapping_roundtrip_h5ad(tmp_path, mapping3):
    a = make_adata([0, 0, 1, 1])
    a.uns["m"] = mapping3.to_dict()
    path = tmp_path / "m.h5ad"
    a.write_h5ad(path)
    back = TimeMapping.from_dict(ad.read_h5ad(path).uns["m"])
    assert back == mapping3
    assert back.values.dtype == np.float64


def test_time_mapping_validation():
    with pytest.raises(ValueError, match="strictly increasing"):
        TimeMapping(("a", "b"), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="one value per label"):
        TimeMapping(("a", "b"), np.array([1.0]))
    with pytest.raises(ValueError, match="'labels' and 'values'"):
        TimeMapping.from_dict({"labels": ["a"]})
    m = TimeMapping(("a", "b"), [0, 1])
    with pytest.raises(ValueError):
        m.values[0] = 5.0  # read-only


def test_time_mapping_find(mapping3):
    assert mapping3.find("day 2") == 1
    assert mapping3.find(4) == 2
    assert mapping3.find(np.float32(0.0)) == 0
    assert mapping3.find("4") == 2
    assert mapping3.find("day 3") is None
    assert mapping3.find(True) is None


# --------------------------------------------------------------------------------------------
# numeric_time
# --------------------------------------------------------------------------------------------
def test_numeric_time_writes_fields(adata, caplog):
    with caplog.at_level(logging.INFO, logger="vgfm"):
        assert vgfm.pp.numeric_time(adata) is None
    np.testing.assert_array_equal(adata.obs["time_numeric"], [4, 0, 2, 4, 2, 0, 4, 2])
    assert adata.obs["time_numeric"].dtype == np.float64
    m = TimeMapping.from_dict(adata.uns["time_numeric_mapping"])
    assert m.labels == ("day 0", "day 2", "day 4")
    np.testing.assert_array_equal(m.values, [0, 2, 4])
    assert "time_numeric" in caplog.text


def test_numeric_time_copy_and_key_added(adata, adata_fingerprint, assert_same_adata):
    before = adata_fingerprint(adata)
    out = vgfm.pp.numeric_time(
        adata, "time", time_order=["day 0", "day 2", "day 4"], time_values=[0, 1, 5], key_added="t", copy=True
    )
    assert_same_adata(before, adata_fingerprint(adata))
    np.testing.assert_array_equal(out.obs["t"], [5, 0, 1, 5, 1, 0, 5, 1])
    np.testing.assert_array_equal(out.uns["t_mapping"]["values"], [0, 1, 5])
    assert "X_umap" not in out.obsm


# --------------------------------------------------------------------------------------------
# population sizes
# --------------------------------------------------------------------------------------------
N_CELLS = np.array([2, 3, 3])


@pytest.mark.parametrize(
    "sizes",
    [
        [100, 300, 500],
        (100.0, 300.0, 500.0),
        np.array([100, 300, 500]),
        {"day 4": 500, "day 0": 100, "day 2": 300},
        {0: 100, 2.0: 300, 4: 500},
        {"day 0": 100, 2: 300, "4": 500},
        pd.Series({"day 2": 300, "day 0": 100, "day 4": 500}),
        pd.Series([100, 300, 500], index=[0.0, 2.0, 4.0]),
    ],
)
def test_resolve_population_size_forms(sizes, mapping3):
    out = resolve_population_size(sizes, mapping3, N_CELLS)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [100.0, 300.0, 500.0])


def test_resolve_population_size_default_is_cell_counts(mapping3):
    out = resolve_population_size(None, mapping3, N_CELLS)
    np.testing.assert_array_equal(out, [2.0, 3.0, 3.0])
    assert out.dtype == np.float64


@pytest.mark.parametrize(
    ("sizes", "exc", "fragments"),
    [
        ([1, 2], ValueError, ["population_size has 2", "expected 3", "'day 0', 'day 2', 'day 4'"]),
        ({"day 0": 1, "day 2": 2}, ValueError, ["population_size", "'day 4'"]),
        ({"day 0": 1, "day 2": 2, "day 4": 3, "day 9": 4}, ValueError, ["'day 9'"]),
        ({"day 0": 1, 0: 2, "day 2": 2, "day 4": 3}, ValueError, ["same time point"]),
        ([1, 0, 3], ValueError, ["population_size", "> 0", "'day 2': 0.0"]),
        ([1, -2, 3], ValueError, ["'day 2': -2.0"]),
        ([1, np.nan, 3], ValueError, ["finite", "'day 2': nan"]),
        ([1, np.inf, 3], ValueError, ["finite", "'day 2': inf"]),
        (["a", 1, 2], TypeError, ["numbers"]),
        (5.0, TypeError, ["population_size", "sequence"]),
        ("100", TypeError, ["population_size"]),
    ],
)
def test_resolve_population_size_errors(sizes, exc, fragments, mapping3):
    with pytest.raises(exc) as info:
        resolve_population_size(sizes, mapping3, N_CELLS)
    for frag in fragments:
        assert frag in str(info.value), (frag, str(info.value))


def test_population_size_stores_and_is_read_back(adata, tmp_path):
    vgfm.pp.population_size(adata, {"day 2": 30, "day 0": 10, "day 4": 50}, time_key="time")
    stored = adata.uns["vgfm_population_size"]
    assert list(stored["labels"]) == ["day 0", "day 2", "day 4"]
    np.testing.assert_array_equal(stored["values"], [0, 2, 4])
    np.testing.assert_array_equal(stored["size"], [10, 30, 50])
    # survives an h5ad round trip and is aligned to the mapping used by tl.fit
    path = tmp_path / "p.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    _, mapping = resolve_times(back, "time")
    np.testing.assert_array_equal(stored_population_size(back, "vgfm", mapping), [10, 30, 50])
    assert stored_population_size(back, "other", mapping) is None


def test_stored_population_size_subset_and_value_match(adata):
    vgfm.pp.population_size(adata, [10, 30, 50], time_key="time", key_added="k")
    # subset to two time points: extra stored entries are ignored
    sub = adata[adata.obs["time"] != "day 2"].copy()
    _, m_sub = resolve_times(sub, "time")
    np.testing.assert_array_equal(stored_population_size(sub, "k", m_sub), [10, 50])
    # a different labelling of the same times matches by value
    m_num = TimeMapping(("0", "2", "4"), np.array([0.0, 2.0, 4.0]))
    np.testing.assert_array_equal(stored_population_size(adata, "k", m_num), [10, 30, 50])
    m_other = TimeMapping(("0", "3"), np.array([0.0, 3.0]))
    with pytest.raises(ValueError, match="vgfm_population_size|k_population_size"):
        stored_population_size(adata, "k", m_other)
    adata.uns["k_population_size"] = {"size": [1, 2, 3]}
    with pytest.raises(ValueError, match="'labels', 'values', 'size'"):
        stored_population_size(adata, "k", m_num)


def test_population_size_error_leaves_adata(adata, adata_fingerprint, assert_same_adata):
    before = adata_fingerprint(adata)
    with pytest.raises(ValueError, match="expected 3"):
        vgfm.pp.population_size(adata, [1, 2], time_key="time")
    with pytest.raises(ValueError, match="sizes=None"):
        vgfm.pp.population_size(adata, None, time_key="time")
    assert_same_adata(before, adata_fingerprint(adata))
    out = vgfm.pp.population_size(adata, [1, 2, 3], time_key="time", key_added="p", copy=True)
    assert_same_adata(before, adata_fingerprint(adata))
    np.testing.assert_array_equal(out.uns["p_population_size"]["size"], [1, 2, 3])


def test_cells_per_time(adata):
    times, mapping = resolve_times(adata, "time")
    np.testing.assert_array_equal(cells_per_time(times, mapping), [2, 3, 3])


# --------------------------------------------------------------------------------------------
# holdout time
# --------------------------------------------------------------------------------------------
def test_check_holdout_time(mapping3):
    assert check_holdout_time(None, mapping3) is None
    assert check_holdout_time("day 2", mapping3) == 1
    assert check_holdout_time(2, mapping3) == 1
    assert check_holdout_time(2.0, mapping3) == 1
    with pytest.raises(ValueError, match=r"holdout_time='day 3'.*'day 0', 'day 2', 'day 4'"):
        check_holdout_time("day 3", mapping3)
    with pytest.raises(ValueError, match=r"first time point.*'day 2'"):
        check_holdout_time("day 0", mapping3)
    with pytest.raises(ValueError, match="last time point"):
        check_holdout_time(4, mapping3)
    two = TimeMapping(("a", "b"), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="only 2 time points"):
        check_holdout_time("b", two)


# --------------------------------------------------------------------------------------------
# representation
# --------------------------------------------------------------------------------------------
def test_get_representation_is_a_copy_in_source_precision(adata, adata_fingerprint,
                                                          assert_same_adata):
    before = adata_fingerprint(adata)
    x = get_representation(adata, "X_pca")
    # float64 sources stay float64 (precision far from 0, issue 12 item 11); float32 stays
    expected = np.float32 if adata.obsm["X_pca"].dtype == np.float32 else np.float64
    assert x.dtype == expected and x.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(x, adata.obsm["X_pca"])
    assert get_representation(ad.AnnData(np.ones((2, 2), np.float32)), "X").dtype == np.float32
    x[:] = 123.0
    xx = get_representation(adata, "X")
    assert not np.shares_memory(xx, adata.X)
    np.testing.assert_array_equal(xx, adata.X)
    xx[:] = -1.0
    assert_same_adata(before, adata_fingerprint(adata))


def test_get_representation_fortran_and_view(adata):
    adata.obsm["F"] = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(8, 3))
    x = get_representation(adata, "F")
    assert x.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(x, np.arange(24).reshape(8, 3))
    view = adata[2:5]
    np.testing.assert_array_equal(get_representation(view, "F"), np.arange(6, 15).reshape(3, 3))


def test_get_representation_dataframe(adata):
    adata.obsm["df"] = pd.DataFrame(
        {"u": np.arange(8.0), "v": -np.arange(8.0)}, index=adata.obs_names
    )
    x = get_representation(adata, "df")
    np.testing.assert_array_equal(x, np.stack([np.arange(8.0), -np.arange(8.0)], axis=1))
    assert x.dtype == np.float64  # float64 columns keep their precision


def test_sparse_small_densified(adata):
    dense = np.array(adata.X)
    dense[dense < 0.3] = 0.0
    adata.X = sparse.csr_matrix(dense)
    adata.obsm["sp"] = sparse.csc_matrix(dense[:, :2])
    np.testing.assert_array_equal(get_representation(adata, "X"), dense)
    np.testing.assert_array_equal(get_representation(adata, "sp"), dense[:, :2])


def test_sparse_huge_refused(adata, monkeypatch, adata_fingerprint, assert_same_adata):
    adata.X = sparse.csr_matrix(np.array(adata.X))
    monkeypatch.setattr(_representation, "MAX_DENSIFY_ENTRIES", 10)
    before = adata_fingerprint(adata)
    with pytest.raises(ValueError) as info:
        vgfm.pp.check_representation(adata, use_rep="X")
    msg = str(info.value)
    assert "adata.X" in msg and "sc.pp.pca" in msg and "use_rep='X_pca'" in msg and "32" in msg
    assert_same_adata(before, adata_fingerprint(adata))


def test_backed_refused(adata, tmp_path):
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    try:
        with pytest.raises(ValueError, match=r"backed.*to_memory\(\)"):
            get_representation(backed, "X_pca")
        with pytest.raises(ValueError, match="to_memory"):
            vgfm.pp.check_representation(backed, use_rep="X")
    finally:
        backed.file.close()


def test_missing_rep_lists_obsm_keys(adata, adata_fingerprint, assert_same_adata):
    adata.obsm["X_umap"] = np.zeros((adata.n_obs, 2))
    before = adata_fingerprint(adata)
    with pytest.raises(KeyError) as info:
        vgfm.pp.check_representation(adata, use_rep="X_scvi")
    msg = str(info.value)
    assert "use_rep='X_scvi'" in msg and "'X_pca'" in msg and "'X_umap'" in msg
    assert_same_adata(before, adata_fingerprint(adata))


def test_nonfinite_rows_refused(adata, adata_fingerprint, assert_same_adata):
    adata.obsm["X_pca"][1, 0] = np.nan
    adata.obsm["X_pca"][4, 2] = np.inf
    adata.obsm["X_pca"][4, 1] = np.nan
    before = adata_fingerprint(adata)
    with pytest.raises(ValueError) as info:
        get_representation(adata, "X_pca")
    msg = str(info.value)
    assert "adata.obsm['X_pca']" in msg and "2 cells" in msg and "'c1', 'c4'" in msg
    assert "np.isfinite(adata.obsm['X_pca'])" in msg
    assert_same_adata(before, adata_fingerprint(adata))


def test_bad_shapes_refused(adata):
    adata.obsm["empty"] = np.zeros((adata.n_obs, 0))
    with pytest.raises(ValueError, match=r"adata.obsm\['empty'\] has 0 columns"):
        get_representation(adata, "empty")
    adata.obsm["cube"] = np.zeros((adata.n_obs, 2, 2))
    with pytest.raises(ValueError, match=r"adata.obsm\['cube'\] has 3 dimension"):
        get_representation(adata, "cube")


def test_check_representation_logs(adata, caplog):
    with caplog.at_level(logging.INFO, logger="vgfm"):
        assert vgfm.pp.check_representation(adata) is None
    assert "8 cells × 3 dimensions" in caplog.text
