"""CellRank 2 hand-off: VelocityKernel on vgfm's velocity -> GPCCA macrostates -> fates.

Skipped (with the reason) where CellRank is not installed or the installed pair cannot work:
CellRank 2.0.x calls ``numpy.testing.assert_array_equal(x=..., y=...)``, keywords that numpy
2.3 removed; ``pip install "vgfm[cellrank]"`` resolves to a working pair (see
docs/cellrank.md).
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from packaging.version import Version

import vgfm
from vgfm._demo import lift_to_genes

# CellRank 2.0.x (the release installable on Python < 3.12) calls numpy.testing with the x=/y=
# keywords that numpy 2.0-2.2 deprecate (and 2.3 removed): warnings from the dependency, not
# from vgfm
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use of keyword argument `[xy]` is deprecated:DeprecationWarning"
)


def _cellrank_or_skip():
    try:
        cr_version = Version(version("cellrank"))
    except PackageNotFoundError:
        pytest.skip("cellrank is not installed; pip install 'vgfm[cellrank]'")
    np_version = Version(np.__version__)
    if cr_version < Version("2.1") and np_version >= Version("2.3"):
        pytest.skip(
            f"cellrank {cr_version} cannot run with numpy {np_version} (it passes the x=/y= "
            "keywords numpy 2.3 removed from numpy.testing); pip install 'vgfm[cellrank]' "
            "picks numpy<2.3 on Python<3.12 and cellrank>=2.3 on Python>=3.12"
        )
    with warnings.catch_warnings():
        # cellrank 2.0.x reads numpy.core.overrides at import, deprecated since numpy 2.0
        warnings.filterwarnings("ignore", "numpy.core.overrides is deprecated",
                                DeprecationWarning)
        import cellrank as cr  # optional extra: imported only when present

    return cr


@pytest.fixture(scope="module")
def cr():
    return _cellrank_or_skip()


@pytest.fixture(scope="module")
def fitted(cr):
    """A lifted two-gene switch (two branches) with vgfm velocities in 5 PCs."""
    adata = lift_to_genes(
        vgfm.datasets.two_gene_grn(n_cells_0=50, times=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0), seed=0)
    )
    sc.pp.pca(adata, n_comps=5)
    sc.pp.neighbors(adata, n_neighbors=15, use_rep="X_pca")
    vgfm.tl.fit(adata, "day", use_rep="X_pca", progress=False, stage1_steps=150,
                stage2_steps=5, hidden=16)
    return adata


def test_velocity_kernel_gpcca_fates(cr, fitted):
    adata = fitted
    vk = cr.kernels.VelocityKernel(adata, attr="obsm", xkey="X_pca", vkey="vgfm_velocity")
    vk.compute_transition_matrix(show_progress_bar=False)
    t = vk.transition_matrix
    t = t.toarray() if hasattr(t, "toarray") else np.asarray(t)
    assert t.shape == (adata.n_obs, adata.n_obs)
    assert t.min() >= 0
    np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-6)

    # the kernel reads our velocity in our space: expected moves follow it
    x = adata.obsm["X_pca"].astype(np.float64)
    v = adata.obsm["vgfm_velocity"].astype(np.float64)
    step = t @ x - x
    cos = (step * v).sum(1) / (np.linalg.norm(step, axis=1) * np.linalg.norm(v, axis=1) + 1e-12)
    assert np.median(cos) > 0.5

    g = cr.estimators.GPCCA(vk)
    g.compute_schur(n_components=6)
    g.compute_macrostates(n_states=2, cluster_key="branch")
    ms = g.macrostates
    terminal = list(ms.cat.categories)
    time = adata.obs["time"].to_numpy()
    # both macrostates are made of late cells (the simulation ends at t = 2)
    assert all(time[(ms == n).to_numpy()].mean() > 1.4 for n in terminal)
    branch_of = {}
    for n in terminal:
        counts = adata.obs["branch"][(ms == n).to_numpy()].value_counts(normalize=True)
        assert counts.iloc[0] > 0.8  # each terminal macrostate sits in one branch
        branch_of[n] = counts.index[0]
    assert set(branch_of.values()) == {"gene_1_high", "gene_2_high"}

    g.set_terminal_states(states=terminal)
    g.compute_fate_probabilities(show_progress_bar=False)
    fp = pd.DataFrame(np.asarray(g.fate_probabilities), index=adata.obs_names,
                      columns=g.fate_probabilities.names)
    np.testing.assert_allclose(fp.sum(1), 1.0, atol=1e-3)
    to_g1 = next(n for n, b in branch_of.items() if b == "gene_1_high")
    late = time >= 1.0
    in_g1 = (adata.obs["branch"] == "gene_1_high").to_numpy()
    # committed cells are fated to the terminal state of their own branch
    assert fp[to_g1][late & in_g1].mean() > fp[to_g1][late & ~in_g1].mean() + 0.5


# ---------------------------------------------------------------------------------------------
# table 5 of benchmarks/fates.py: CellRank from the same velocities against lineage truth
# ---------------------------------------------------------------------------------------------
_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "fates.py"


def _fates_benchmark():
    spec = importlib.util.spec_from_file_location("fates_benchmark", _BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_cellrank_table_skips_without_cellrank(monkeypatch):
    bench = _fates_benchmark()
    monkeypatch.setitem(sys.modules, "cellrank", None)  # import cellrank -> ImportError
    out = bench.cellrank_table({})
    assert isinstance(out, str)
    assert out.startswith("skipped: cellrank is not importable")
    assert "vgfm[cellrank]" in out


@pytest.fixture(scope="module")
def lineage(cr):
    adata = vgfm.datasets.lineage_branching(80, n_replicates=40, seed=0)
    vgfm.tl.fit(adata, "time", use_rep="X", progress=False, seed=0, stage1_steps=300,
                stage2_steps=10)
    return adata


def test_benchmark_cellrank_fates_against_lineage_truth(cr, lineage):
    bench = _fates_benchmark()
    a = lineage
    branches = list(a.obs["branch"].cat.categories)
    last = (a.obs["time"] == a.obs["time"].max()).to_numpy()
    for w_ck in (0.0, 0.2):
        fp, step_cos = bench.cellrank_fates(a, cr, similarity="cosine", connectivity_weight=w_ck)
        assert list(fp.columns) == branches and list(fp.index) == list(a.obs_names)
        np.testing.assert_allclose(fp.sum(1), 1.0, atol=1e-3)
        # the terminal states are the branches' cells at the last time point: absorbed there
        for br in branches:
            own = last & (a.obs["branch"] == br).to_numpy()
            np.testing.assert_allclose(fp.loc[own, br], 1.0, atol=1e-6)
        # the walk follows vgfm's velocity in the fitted space
        assert step_cos > 0.7, step_cos
        # and the early cells' fates follow their true (lineage) fates
        agree = bench._early_agreement(a, fp)
        assert agree["fates_pearson"] > 0.7, agree
    truth = bench._early_agreement(a, a.obsm["true_fates"])
    assert truth["fates_pearson"] == pytest.approx(1.0)
    assert truth["fates_mae"] == 0.0
    assert truth["share_lower"] + truth["share_upper"] == pytest.approx(1.0)
