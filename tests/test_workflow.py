"""The biologist's workflow on the dyngen expression data, end to end (small and fast).

scanpy preprocessing -> ``vgfm.tl.fit`` (non-numeric stage labels with an explicit order) ->
``vgfm.pp.growth_prior`` -> CellRank hand-off (when installed and working) -> scVelo stream
plot (when installed) -> the ``vgfm fit`` command line with ``--time-order``.

Skipped when the benchmark data are not found (set ``VGFM_DATA_DIR``).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from packaging.version import Version

import vgfm
from vgfm._core.metrics import wasserstein1

ROOT = Path(__file__).resolve().parents[1]
_FILES = ("dyngen_bifurcation_expression.csv", "dyngen_bifurcation_cell_info.csv")


def _data_dir() -> Path | None:
    for d in (os.environ.get("VGFM_DATA_DIR"), ROOT.parent / "shared" / "data"):
        if d and all((Path(d) / f).is_file() for f in _FILES):
            return Path(d)
    return None


DATA = _data_dir()
pytestmark = pytest.mark.skipif(DATA is None,
                                reason="benchmark data not found; set VGFM_DATA_DIR")

STAGES = ["early", "early-mid", "mid", "mid-late", "late"]
OPTIONS = {"stage1_steps": 300, "stage2_steps": 5, "hidden": 32}


@pytest.fixture(scope="module")
def prepared() -> ad.AnnData:
    """400 dyngen cells, stage labels without numbers, scanpy PCA / neighbours / UMAP."""
    full = vgfm.datasets.dyngen_expression(data_dir=DATA)
    rng = np.random.default_rng(0)
    adata = full[np.sort(rng.choice(full.n_obs, 400, replace=False))].copy()
    adata.obs["stage"] = pd.Categorical(
        [STAGES[int(t)] for t in adata.obs["time"]], categories=STAGES
    )
    sc.pp.pca(adata, n_comps=10, random_state=0)
    sc.pp.neighbors(adata, n_neighbors=30, use_rep="X_pca", random_state=0)
    sc.tl.umap(adata, random_state=0)
    return adata


@pytest.fixture(scope="module")
def fitted(prepared):
    adata = prepared.copy()
    # dyngen's genes are synthetic (TF / Target / HK): the built-in human sets cannot match
    with pytest.raises(ValueError, match="only 0 of the .* built-in human proliferation set"):
        vgfm.pp.growth_prior(adata)
    # a user-defined programme instead: the targets most correlated with late stages
    x = np.asarray(adata.X, dtype=float)
    t = adata.obs["time"].to_numpy(dtype=float)
    r = np.array([np.corrcoef(x[:, j], t)[0, 1] if x[:, j].std() > 0 else 0.0
                  for j in range(adata.n_vars)])
    order = np.argsort(r)
    late_genes = list(adata.var_names[order[-10:]])
    early_genes = list(adata.var_names[order[:10]])
    vgfm.pp.growth_prior(adata, proliferation_genes=late_genes, apoptosis_genes=early_genes)
    prior = adata.obs["growth_prior"].to_numpy()
    assert prior[t == 4].mean() > prior[t == 0].mean()

    extra = {}
    if "growth_prior" in inspect.signature(vgfm.tl.fit).parameters:
        extra["growth_prior"] = "growth_prior"
    model = vgfm.tl.fit(adata, "stage", use_rep="X_pca", time_order=STAGES, seed=0,
                        progress=False, **OPTIONS, **extra)
    return adata, model


def test_fit_learns_the_dynamics(fitted):
    adata, _ = fitted
    info = adata.uns["vgfm"]
    assert list(info["time_labels"]) == STAGES
    assert adata.obsm["vgfm_velocity"].shape == (adata.n_obs, 10)
    assert np.isfinite(adata.obs["vgfm_growth"]).all()
    vgfm.tl.simulate(adata, seed=0)
    ev = vgfm.tl.evaluate(adata)
    # the model moves cells towards the next snapshot: its W1 beats staying put
    x = adata.obsm["X_pca"]
    t = adata.obs["time"].to_numpy()
    for _, row in ev.iterrows():
        k = int(row["time"])
        stay = wasserstein1(x[t == 0], x[t == k]).value
        assert row["w1"] < 0.8 * stay, (k, row["w1"], stay)
    # cells move forward in time: the velocity points towards the nearest cells of the next
    # stage (a bifurcation: the mean of the next stage can lie between the branches)
    v = adata.obsm["vgfm_velocity"]
    cos = []
    for k in range(4):
        src, nxt = x[t == k], x[t == k + 1]
        d2 = ((src[:, None, :] - nxt[None, :, :]) ** 2).sum(-1)
        near = nxt[np.argsort(d2, axis=1)[:, :10]].mean(1) - src
        vk = v[t == k]
        cos.append(np.median((near * vk).sum(1) / (np.linalg.norm(near, axis=1)
                                                    * np.linalg.norm(vk, axis=1) + 1e-12)))
    # a random direction gives 0; with 300 training steps the middle stages are weakest
    assert min(cos) > 0.05 and np.mean(cos) > 0.25, cos


# CellRank 2.0.x calls numpy.testing with the x=/y= keywords numpy 2.0-2.2 deprecate
@pytest.mark.filterwarnings("ignore:Use of keyword argument `[xy]` is deprecated:DeprecationWarning")
def test_cellrank_handoff(fitted):
    try:
        cr_version = Version(version("cellrank"))
    except PackageNotFoundError:
        pytest.skip("cellrank is not installed; pip install 'vgfm[cellrank]'")
    if cr_version < Version("2.1") and Version(np.__version__) >= Version("2.3"):
        pytest.skip(f"cellrank {cr_version} cannot run with numpy {np.__version__} "
                    "(see tests/test_cellrank.py); pip install 'vgfm[cellrank]'")
    with warnings.catch_warnings():
        # cellrank 2.0.x reads numpy.core.overrides at import, deprecated since numpy 2.0
        warnings.filterwarnings("ignore", "numpy.core.overrides is deprecated",
                                DeprecationWarning)
        import cellrank as cr  # optional extra

    adata, _ = fitted
    vk = cr.kernels.VelocityKernel(adata, attr="obsm", xkey="X_pca", vkey="vgfm_velocity")
    vk.compute_transition_matrix(show_progress_bar=False)
    g = cr.estimators.GPCCA(vk)
    g.compute_schur(n_components=6)
    g.compute_macrostates(n_states=2)
    t = adata.obs["time"].to_numpy()
    ms = g.macrostates
    # a forward velocity field puts its macrostates among the later cells
    for n in ms.cat.categories:
        assert t[(ms == n).to_numpy()].mean() > t.mean() + 0.5
    g.set_terminal_states()
    g.compute_fate_probabilities(show_progress_bar=False)
    np.testing.assert_allclose(np.asarray(g.fate_probabilities).sum(1), 1.0, atol=1e-3)


def test_scvelo_stream(fitted):
    try:
        import scvelo as scv  # optional
    except ImportError as err:
        pytest.skip(f"scvelo is not importable ({err}); pip install scvelo")
    import matplotlib.pyplot as plt

    adata, _ = fitted
    vgfm.tl.velocity_embedding(adata, basis="umap")
    ax = scv.pl.velocity_embedding_stream(adata, basis="umap", vkey="vgfm_velocity",
                                          color="stage", show=False)
    segments = sum(len(c.get_segments()) for c in ax.collections
                   if hasattr(c, "get_segments"))
    assert segments > 50  # a stream, not an empty panel
    plt.close("all")


def test_cli_fit_with_time_order(prepared, tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "vgfm.cli", "fit", "--help"],
                               capture_output=True, text=True, env=_env()).stdout
    if "--time-order" not in help_text:
        pytest.skip("this vgfm CLI has no --time-order option")
    src = prepared.copy()
    src.obs["stage"] = src.obs["stage"].astype(str)  # plain strings: the order must come from the CLI
    path = tmp_path / "dyngen.h5ad"
    src.write_h5ad(path)
    out = tmp_path / "fitted.h5ad"
    opts = [a for k, v in OPTIONS.items() for a in ("--option", f"{k}={v}")]
    res = subprocess.run(
        [sys.executable, "-m", "vgfm.cli", "fit", str(path), "--time-key", "stage",
         "--time-order", *STAGES, "--use-rep", "X_pca", "-o", str(out), *opts],
        capture_output=True, text=True, env=_env(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    fitted_cli = ad.read_h5ad(out)
    assert list(fitted_cli.uns["vgfm"]["time_labels"]) == STAGES
    np.testing.assert_array_equal(fitted_cli.uns["vgfm"]["times"], [0, 1, 2, 3, 4])
    # without the order, alphabetical labels would put "late" before "mid": refused or
    # ordered differently, never silently the same
    bad = subprocess.run(
        [sys.executable, "-m", "vgfm.cli", "fit", str(path), "--time-key", "stage",
         "--use-rep", "X_pca", "-o", str(tmp_path / "bad.h5ad"), *opts],
        capture_output=True, text=True, env=_env(),
    )
    assert bad.returncode == 2 and "order" in bad.stderr


def _env() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    return env
