"""Public API conventions (scanpy's ``test_sig_conventions`` style), for every public function
of ``pp``, ``tl``, ``pl`` and ``datasets``:

- AnnData/MuData first, annotated (``Data``, never ``Any``); options keyword-only;
- ``key`` reads a fit, ``key_added`` names what is written;
- writers have ``copy=False`` and return the modified copy with ``copy=True`` (never a tuple);
- ``mod=`` wherever AnnData is read; the time-order options wherever times are read;
- ``seed`` / ``device`` / ``progress`` / ``n_threads`` spelled and defaulted the same way;
- numpydoc docstrings with Parameters, Returns and a runnable Examples section.
"""

from __future__ import annotations

import inspect
import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import vgfm

MODULES = {"pp": vgfm.pp, "tl": vgfm.tl, "pl": vgfm.pl, "datasets": vgfm.datasets}
PUBLIC = [
    (f"{mod_name}.{name}", getattr(mod, name))
    for mod_name, mod in MODULES.items()
    for name in mod.__all__
    if inspect.isfunction(getattr(mod, name))
]
IDS = [p[0] for p in PUBLIC]
DATA_FUNCS = [p for p in PUBLIC if not p[0].startswith("datasets.")]
DATA_IDS = [p[0] for p in DATA_FUNCS]

# options that may be passed positionally after ``adata`` (everything else is keyword-only):
# the ``time_key`` column (fit(adata, "day") reads like scanpy's groupby), the ``model`` of the
# functions that use one, and the required ``sizes`` of pp.population_size (data, no default)
POSITIONAL_ALLOWED = {
    "tl.fit": {"time_key"},
    "tl.velocity": {"model"},
    "tl.simulate": {"model"},
    "tl.evaluate": {"model"},
    "pp.numeric_time": {"time_key"},
    "pp.bin_time": {"time_key"},
    "tl.coupling_diagnostic": {"time_key"},
    "tl.choose_reg_m": {"time_key"},
    "pp.population_size": {"sizes"},
    "tl.fates": {"groupby"},
    "tl.cluster_transitions": {"groupby"},
}
# leading positional arguments of dataset generators/loaders: what is generated or read
DATASET_POSITIONAL = {"name", "path", "n_cells", "n_cells_0", "n_dims", "time", "data_dir"}

WRITERS = {"tl.fit", "tl.velocity", "tl.simulate", "tl.evaluate", "tl.velocity_embedding",
           "tl.gene_velocity", "tl.trajectory_embedding", "tl.growth_genes", "pp.numeric_time",
           "pp.bin_time", "pp.population_size", "pp.growth_prior"}
FATES = {"tl.fit_stochastic", "tl.simulate_stochastic", "tl.fates", "tl.cluster_transitions",
         "tl.ensemble"}  # issue 10
WRITERS |= FATES
READ_ONLY = {"pp.check_representation", "tl.coupling_diagnostic", "tl.choose_reg_m"}
# writers of new results named by the user (no fit to read): key_added, no key
NEW_RESULTS = {"tl.fit", "pp.numeric_time", "pp.bin_time", "pp.population_size",
               "pp.growth_prior"}
# readers of a fit that also write under a name of their own: key and key_added
READ_AND_NAME = {"tl.velocity", "tl.evaluate", "tl.fates", "tl.cluster_transitions",
                 "tl.ensemble"}
# functions reading the cells' time points
TIME_READERS = {"tl.fit", "tl.coupling_diagnostic", "tl.velocity", "tl.simulate", "tl.evaluate",
                "pp.numeric_time", "pp.population_size", "tl.choose_reg_m"} | FATES
# functions running the model (torch): device and n_threads
TORCH_WORK = {"tl.fit", "tl.velocity", "tl.simulate", "tl.evaluate"} | FATES
SHARED_DEFAULTS = {"seed": 0, "device": None, "progress": None, "n_threads": 1, "mod": None,
                   "copy": False, "time_order": None, "time_values": None}
EMBEDDING_PLOTS = {"pl.growth", "pl.velocity", "pl.trajectories"}

# Known violations in files owned by other helpers; each entry must still be a violation (the
# test fails when it is fixed, so that the entry is removed) -- see test_known_exceptions.
KNOWN_EXCEPTIONS = {
    # datasets/ (helpers `validity`, `fates`): seed and sizes are positional
    ("datasets.large_time_course", "keyword-only"): "n_dims, n_times, seed positional",
    ("datasets.load_benchmark", "keyword-only"): "data_dir positional is allowed; ok",
}


def _params(fn):
    return list(inspect.signature(fn).parameters.values())


def _section(doc: str, title: str) -> str | None:
    """Body of a numpydoc section (``Title`` underlined with dashes), or None."""
    m = re.search(rf"^{title}\n-{{{len(title)}}}\n(.*?)(?=^\S[^\n]*\n-{{3,}}\n|\Z)", doc,
                  flags=re.S | re.M)
    return m.group(1) if m else None


def _keyword_only_violations(name, fn) -> list[str]:
    params = _params(fn)
    if name.startswith("datasets."):
        allowed = DATASET_POSITIONAL
        rest = params
    else:
        allowed = POSITIONAL_ALLOWED.get(name, set())
        rest = params[1:]
    positional = [p.name for p in rest if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    return [p for p in positional if p not in allowed]


def test_public_lists_are_complete():
    names = set(IDS)
    assert {"tl.fit", "tl.velocity", "tl.simulate", "tl.evaluate", "tl.velocity_embedding",
            "pl.growth", "pl.velocity", "pl.trajectories", "pl.mass", "pp.bin_time"} <= names
    data_names = set(DATA_IDS)
    assert data_names == WRITERS | READ_ONLY | {n for n in data_names if n.startswith("pl.")}
    assert callable(vgfm.get_model) and "get_model" in vgfm.__all__


@pytest.mark.parametrize(("name", "fn"), DATA_FUNCS, ids=DATA_IDS)
def test_data_first_and_annotated(name, fn):
    first = _params(fn)[0]
    assert first.name == "adata", name
    assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and first.default is first.empty
    ann = str(first.annotation)
    assert ann == "Data", f"{name}: adata is annotated {ann!r}; use vgfm._data.Data"
    assert vgfm._data.Data.__args__ == (ad.AnnData, vgfm._data._containers.MuData)


@pytest.mark.parametrize(("name", "fn"), PUBLIC, ids=IDS)
def test_keyword_only_options(name, fn):
    bad = _keyword_only_violations(name, fn)
    if (name, "keyword-only") in KNOWN_EXCEPTIONS and bad:
        pytest.skip(f"known, owned elsewhere: {KNOWN_EXCEPTIONS[(name, 'keyword-only')]}")
    assert not bad, f"{name}: {bad} should be keyword-only"
    assert not any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in _params(fn)), name


def test_known_exceptions_are_still_needed():
    fns = dict(PUBLIC)
    for (name, rule), why in KNOWN_EXCEPTIONS.items():
        assert rule == "keyword-only"
        if why.endswith("; ok"):
            assert not _keyword_only_violations(name, fns[name]), name
            continue
        assert _keyword_only_violations(name, fns[name]), (
            f"{name} now follows the convention; remove it from KNOWN_EXCEPTIONS"
        )


@pytest.mark.parametrize(("name", "fn"), PUBLIC, ids=IDS)
def test_type_annotations(name, fn):
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without annotation {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return annotation"
    assert "tuple" not in str(sig.return_annotation), f"{name} returns a tuple"


@pytest.mark.parametrize(("name", "fn"), PUBLIC, ids=IDS)
def test_numpydoc_docstring(name, fn):
    doc = inspect.getdoc(fn)
    assert doc, f"{name} has no docstring"
    assert "{" + "adata}" not in doc, f"{name}: unfilled shared parameter text"
    summary = doc.splitlines()[0]
    assert summary.strip() and summary.rstrip().endswith("."), f"{name}: summary line {summary!r}"
    params = [p for p in _params(fn) if p.kind is not inspect.Parameter.VAR_KEYWORD]
    section = _section(doc, "Parameters")
    if params:
        assert section is not None, f"{name}: no 'Parameters' section"
        documented = set()
        for line in section.splitlines():
            if line and not line[0].isspace():  # "name", "a, b" or "name : type"
                head = line.split(" : ")[0]
                documented |= {s.strip().lstrip("*") for s in head.split(",")}
        undocumented = [p.name for p in params if p.name not in documented]
        assert not undocumented, f"{name}: parameters not in the docstring {undocumented}"
    examples = _section(doc, "Examples")
    assert examples is not None and ">>>" in examples, f"{name}: no 'Examples' section"
    assert _section(doc, "Returns") is not None, f"{name}: no 'Returns' section"


@pytest.mark.parametrize(("name", "fn"), [p for p in PUBLIC if p[0] in WRITERS],
                         ids=[n for n in IDS if n in WRITERS])
def test_writers_have_copy(name, fn):
    p = inspect.signature(fn).parameters
    assert "copy" in p, name
    assert p["copy"].kind is inspect.Parameter.KEYWORD_ONLY and p["copy"].default is False
    assert "copy" in (_section(inspect.getdoc(fn), "Parameters") or "")


@pytest.mark.parametrize(("name", "fn"), DATA_FUNCS, ids=DATA_IDS)
def test_key_and_key_added(name, fn):
    p = inspect.signature(fn).parameters
    if name == "pp.check_representation":  # reads no fit and writes nothing
        assert "key" not in p and "key_added" not in p, name
    elif name in NEW_RESULTS:
        assert "key_added" in p and "key" not in p, name
    elif name in READ_AND_NAME:
        assert "key" in p and "key_added" in p, name
    else:
        assert "key" in p and "key_added" not in p, name
        assert p["key"].default == "vgfm", name
    for opt in ("key", "key_added"):
        if opt in p:
            assert p[opt].kind is inspect.Parameter.KEYWORD_ONLY, (name, opt)
    # no other spelling of a key option
    odd = [n for n in p if n.endswith("key") and n not in ("key", "time_key")]
    assert not odd, f"{name}: {odd}"


@pytest.mark.parametrize(("name", "fn"), DATA_FUNCS, ids=DATA_IDS)
def test_mod_time_order_and_shared_options(name, fn):
    p = inspect.signature(fn).parameters
    assert "mod" in p, f"{name}: no mod= (AnnData is read)"
    if name in TIME_READERS:
        assert {"time_order", "time_values"} <= set(p), f"{name}: no time_order=/time_values="
    if name in TORCH_WORK:
        assert {"device", "n_threads"} <= set(p), f"{name}: no device=/n_threads="
    for opt, default in SHARED_DEFAULTS.items():
        if opt in p:
            assert p[opt].kind is inspect.Parameter.KEYWORD_ONLY, (name, opt)
            assert p[opt].default == default, (name, opt, p[opt].default)


@pytest.mark.parametrize(("name", "fn"), [p for p in PUBLIC if p[0].startswith("pl.")],
                         ids=[n for n in IDS if n.startswith("pl.")])
def test_plots_have_ax_show_save(name, fn):
    p = inspect.signature(fn).parameters
    for opt in ("ax", "show", "save"):
        assert opt in p, f"{name}: no {opt}="
        assert p[opt].kind is inspect.Parameter.KEYWORD_ONLY and p[opt].default is None
    if name in EMBEDDING_PLOTS:
        assert "basis" in p and p["basis"].default == "umap", name


def test_fit_contract():
    p = inspect.signature(vgfm.tl.fit).parameters
    expected = {"use_rep": "X_pca", "key_added": "vgfm", "population_size": None,
                "holdout_time": None, "seed": 0, "device": None, "progress": None}
    for k, v in expected.items():
        assert p[k].default == v and p[k].kind is inspect.Parameter.KEYWORD_ONLY, k
    assert p["options"].kind is inspect.Parameter.VAR_KEYWORD
    p = inspect.signature(vgfm.tl.simulate).parameters
    for k, v in {"key": "vgfm", "start_time": None, "n_cells": None, "t_eval": None,
                 "seed": 0}.items():
        assert p[k].default == v, k


def test_model_class_api():
    cls = vgfm.VGFM
    for meth in ("save", "load", "from_adata", "predict", "simulate"):
        assert callable(getattr(cls, meth)), meth
        doc = inspect.getdoc(getattr(cls, meth))
        assert doc and "Examples" in doc, meth
    assert isinstance(inspect.getattr_static(cls, "load"), classmethod)
    assert isinstance(inspect.getattr_static(cls, "from_adata"), classmethod)
    assert list(inspect.signature(cls.load).parameters)[:2] == ["path", "adata"]
    assert inspect.signature(cls.from_adata).parameters["key"].default == "vgfm"
    assert vgfm.VGFM is vgfm._model.VGFM
    assert {"VGFM", "pp", "tl", "pl", "datasets", "get_model"} <= set(vgfm.__all__)


# ------------------------------------------------------------------ behaviour of copy=True
@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    times = np.repeat([0.0, 1.0, 2.0], 30)
    x = (rng.normal(0, 0.3, (90, 2)) + times[:, None] * [1.0, 0.0]).astype(np.float32)
    pcs = np.linalg.qr(rng.normal(size=(5, 2)))[0]
    adata = ad.AnnData((x @ pcs.T).astype(np.float32),
                       obs=pd.DataFrame({"time": times}, index=[f"c{i}" for i in range(90)]))
    adata.obsm["X_pca"] = x
    adata.obsm["X_umap"] = x.copy()
    adata.varm["PCs"] = pcs
    vgfm.tl.fit(adata, "time", population_size=[1, 1, 1], progress=False, stage1_steps=5,
                stage2_steps=0, hidden=8, gene_velocity=False)
    return adata


COPY_CALLS = {
    "tl.fit": lambda a: vgfm.tl.fit(a, "time", population_size=[1, 1, 1], progress=False,
                                    stage1_steps=3, stage2_steps=0, hidden=8, copy=True),
    "tl.velocity": lambda a: vgfm.tl.velocity(a, key_added="again", copy=True),
    "tl.simulate": lambda a: vgfm.tl.simulate(a, n_cells=3, copy=True),
    "tl.evaluate": lambda a: vgfm.tl.evaluate(a, copy=True),
    "tl.velocity_embedding": lambda a: vgfm.tl.velocity_embedding(a, copy=True),
    "tl.gene_velocity": lambda a: vgfm.tl.gene_velocity(a, copy=True),
    "tl.trajectory_embedding": lambda a: vgfm.tl.trajectory_embedding(
        vgfm.tl.simulate(a, n_cells=3, copy=True), copy=True),
    "tl.growth_genes": lambda a: vgfm.tl.growth_genes(a, copy=True),
    "pp.numeric_time": lambda a: vgfm.pp.numeric_time(a, "time", copy=True),
    "pp.bin_time": lambda a: vgfm.pp.bin_time(a, "time", n_bins=2, copy=True),
    "pp.population_size": lambda a: vgfm.pp.population_size(a, [1, 2, 3], copy=True),
    "tl.fit_stochastic": lambda a: vgfm.tl.fit_stochastic(a, steps=2, copy=True),
    "tl.simulate_stochastic": lambda a: vgfm.tl.simulate_stochastic(
        vgfm.tl.fit_stochastic(a, steps=2, copy=True), n_cells=3, n_samples=2, copy=True),
    "tl.fates": lambda a: vgfm.tl.fates(vgfm.tl.fit_stochastic(a, steps=2, copy=True), "time",
                                        n_samples=2, copy=True),
    "tl.cluster_transitions": lambda a: vgfm.tl.cluster_transitions(
        vgfm.tl.fit_stochastic(a, steps=2, copy=True), "time", n_samples=2, copy=True),
    "tl.ensemble": lambda a: vgfm.tl.ensemble(a, n_models=2, copy=True),
    "pp.growth_prior": lambda a: vgfm.pp.growth_prior(
        a, proliferation_genes=["0"], apoptosis_genes=["1"], min_genes=1, ctrl_size=2,
        copy=True),
}


def test_copy_calls_cover_every_writer():
    assert set(COPY_CALLS) == WRITERS


@pytest.mark.parametrize("name", sorted(COPY_CALLS))
def test_copy_true_returns_the_modified_copy(name, fitted, adata_fingerprint, assert_same_adata):
    before = adata_fingerprint(fitted)
    out = COPY_CALLS[name](fitted)
    assert isinstance(out, ad.AnnData) and out is not fitted, f"{name} returned {type(out)}"
    assert_same_adata(before, adata_fingerprint(fitted))
    changed = {k for k in ("obs", "obsm", "uns", "layers")
               if set(getattr(out, k).keys()) != set(getattr(fitted, k).keys())}
    if name not in ("tl.fit", "tl.evaluate", "pp.population_size", "tl.fit_stochastic"):
        assert changed, f"{name}: the copy has no new field"
