"""Public API conventions (scanpy style): signatures, annotations, numpydoc docstrings."""

from __future__ import annotations

import inspect
import re

import pytest

import vgfm

MODULES = {"pp": vgfm.pp, "tl": vgfm.tl, "pl": vgfm.pl}
PUBLIC = [
    (f"{mod_name}.{name}", getattr(mod, name))
    for mod_name, mod in MODULES.items()
    for name in mod.__all__
]
IDS = [p[0] for p in PUBLIC]

# options that may be passed positionally after ``adata`` (everything else is keyword-only):
# ``time_key`` of fit (and of pp.numeric_time, the same column, called the same way), the
# ``model`` of the functions that use one, and the required ``sizes`` of pp.population_size
# (data, not an option: it has no default)
POSITIONAL_ALLOWED = {
    "tl.fit": {"time_key"},
    "tl.velocity": {"model"},
    "tl.simulate": {"model"},
    "tl.evaluate": {"model"},
    "pp.numeric_time": {"time_key"},
    "tl.coupling_diagnostic": {"time_key"},  # mirrors tl.fit(adata, time_key)
    "pp.population_size": {"sizes"},
}
# tl / pp functions that write into adata (and so need ``copy``)
WRITERS = {"tl.fit", "tl.velocity", "tl.simulate", "tl.velocity_embedding", "tl.gene_velocity",
           "tl.trajectory_embedding",
           "tl.growth_genes", "pp.numeric_time", "pp.population_size"}
READ_ONLY = {"pp.check_representation", "tl.evaluate", "tl.coupling_diagnostic"}  # evaluate only adds uns[key]["evaluation"]
EMBEDDING_PLOTS = {"pl.growth", "pl.velocity", "pl.trajectories"}


def _params(fn):
    return list(inspect.signature(fn).parameters.values())


def _section(doc: str, title: str) -> str | None:
    """Body of a numpydoc section (``Title`` underlined with dashes), or None."""
    m = re.search(rf"^{title}\n-{{{len(title)}}}\n(.*?)(?=^\S[^\n]*\n-{{3,}}\n|\Z)", doc,
                  flags=re.S | re.M)
    return m.group(1) if m else None


def test_public_lists_are_complete():
    names = set(IDS)
    assert {"tl.fit", "tl.velocity", "tl.simulate", "tl.evaluate", "tl.velocity_embedding",
            "pl.growth", "pl.velocity", "pl.trajectories", "pl.mass"} <= names
    assert names == WRITERS | READ_ONLY | {n for n in names if n.startswith("pl.")}


@pytest.mark.parametrize(("name", "fn"), PUBLIC, ids=IDS)
def test_adata_first_and_keyword_only_options(name, fn):
    params = _params(fn)
    first = params[0]
    assert first.name == "adata", name
    assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and first.default is first.empty
    allowed = POSITIONAL_ALLOWED.get(name, set())
    positional = {p.name for p in params[1:] if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD}
    assert positional <= allowed, f"{name}: {sorted(positional - allowed)} should be keyword-only"
    for p in params[1:]:
        assert p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY,
                          inspect.Parameter.VAR_KEYWORD), f"{name}: {p.name} is {p.kind}"
    assert not any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params), name


@pytest.mark.parametrize(("name", "fn"), PUBLIC, ids=IDS)
def test_type_annotations(name, fn):
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without annotation {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return annotation"


@pytest.mark.parametrize(("name", "fn"), PUBLIC, ids=IDS)
def test_numpydoc_docstring(name, fn):
    doc = inspect.getdoc(fn)
    assert doc, f"{name} has no docstring"
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


@pytest.mark.parametrize(("name", "fn"), [p for p in PUBLIC if p[0].startswith("pl.")],
                         ids=[n for n in IDS if n.startswith("pl.")])
def test_plots_have_ax_show_save(name, fn):
    p = inspect.signature(fn).parameters
    for opt in ("ax", "show", "save"):
        assert opt in p, f"{name}: no {opt}="
        assert p[opt].kind is inspect.Parameter.KEYWORD_ONLY and p[opt].default is None
    if name in EMBEDDING_PLOTS:
        assert "basis" in p and p["basis"].default == "umap", name


def test_keys_are_options_not_hard_coded():
    for name, fn in PUBLIC:
        p = inspect.signature(fn).parameters
        if name.startswith(("tl.", "pl.")) and name != "tl.fit":
            assert "key" in p and p["key"].default == "vgfm", name
    assert inspect.signature(vgfm.tl.fit).parameters["key_added"].default == "vgfm"


def test_fit_contract():
    p = inspect.signature(vgfm.tl.fit).parameters
    expected = {"use_rep": "X_pca", "key_added": "vgfm", "population_size": None,
                "holdout_time": None, "seed": 0, "device": None, "progress": True}
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
    assert {"VGFM", "pp", "tl", "pl", "datasets"} <= set(vgfm.__all__)
