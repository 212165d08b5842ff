"""Package structure: the import graph (issue 8 acceptance) and the key registry vs storage.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import vgfm
from vgfm._data import _keys

SRC = Path(__file__).resolve().parents[1] / "src" / "vgfm"
DOCS = Path(__file__).resolve().parents[1] / "docs"

# Function-body imports of vgfm modules that are allowed, with the reason:
LAZY_ALLOWED = {
    # start-up time of the command line (`vgfm --version`, argument errors): the CLI imports
    # the library only in the sub-command that needs it
    "vgfm.cli",
}
# Known violations in files owned by other helpers; each must still be present (the test
# fails once it is fixed, so that the entry is removed):
KNOWN = {
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported vgfm module, inside a function body?)`` for every import of ``path``."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names
                             if a.name.split(".")[0] == "vgfm")
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0 \
                    and child.module.split(".")[0] == "vgfm":
                for a in child.names:
                    sub = f"{child.module}.{a.name}"
                    target = sub if (SRC.parent / Path(*sub.split("."))).with_suffix(".py") \
                        .exists() or (SRC.parent / Path(*sub.split("."))).is_dir() \
                        else child.module
                    found.append((target, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


GRAPH = {_module_name(p): _imports(p) for p in sorted(SRC.rglob("*.py"))}


def _violations() -> dict[tuple[str, str], str]:
    out = {}
    for mod, imports in GRAPH.items():
        for target, in_function in imports:
            if mod.startswith(("vgfm.pl", "vgfm._core")) and target.startswith("vgfm.tl"):
                out[(mod, target)] = "imports tl"
            if mod.startswith("vgfm.tl") and target.startswith("vgfm.pp._"):
                out[(mod, target)] = "tl imports pp's private module"
            if mod.startswith("vgfm._data") and target.startswith(
                    ("vgfm.pp", "vgfm.tl", "vgfm.pl", "vgfm._model", "vgfm.cli")):
                out[(mod, target)] = "the data layer imports a layer above it"
            if mod.startswith("vgfm._core") and not target.startswith("vgfm._core"):
                out[(mod, target)] = "_core imports outside _core"
            if in_function and mod not in LAZY_ALLOWED:
                out[(mod, target)] = "function-body import of a vgfm module"
    return out


def test_graph_was_parsed():
    assert "vgfm.tl._fit" in GRAPH and "vgfm._data._times" in GRAPH
    assert ("vgfm._data._times", False) in GRAPH["vgfm.tl._fit"]


def test_import_graph_layers():
    bad = {k: v for k, v in _violations().items() if k not in KNOWN}
    assert not bad, "\n".join(f"{a} -> {b}: {why}" for (a, b), why in sorted(bad.items()))


def test_known_violations_are_still_real():
    found = _violations()
    stale = [k for k in KNOWN if k not in found]
    assert not stale, f"fixed, remove from KNOWN: {stale}"


def test_removed_modules_stay_removed():
    for gone in ("pp/_validate.py", "_anndata_utils.py", "_constants.py"):
        assert not (SRC / gone).exists(), gone


def test_core_imports_no_anndata_stack():
    for mod, path in ((m, p) for p in SRC.joinpath("_core").rglob("*.py")
                      for m in [_module_name(p)]):
        text = path.read_text()
        for lib in ("anndata", "scanpy", "pandas", "matplotlib", "mudata"):
            assert not re.search(rf"^\s*(import|from) {lib}\b", text, flags=re.M), (mod, lib)


# ------------------------------------------------------------------ keys vs storage.md
STORAGE = (DOCS / "storage.md").read_text()
_FIELD_RE = re.compile(r'`((?:obs|obsm|uns|layers)\["[^"`]+"\])')


def _section(title: str, text: str = STORAGE) -> str:
    start = text.index(title)
    nxt = text.find("\n## ", start + len(title))
    return text[start: nxt if nxt >= 0 else len(text)]


def _documented(title: str) -> set[str]:
    return set(_FIELD_RE.findall(_section(title)))


def test_every_written_field_is_documented_and_vice_versa():
    documented = (_documented("## Written by `vgfm.tl.fit`")
                  | _documented("## Written by the other tools")
                  | _documented("## Written by `vgfm.pp`"))
    registry = set(_keys.WRITTEN_FIELDS)
    # inside "written" sections, read-only fields are named too (varm["PCs"], X_{basis})
    read_here = {'obsm["X_{basis}"]', 'uns["{key}"]["evaluation"]'}
    assert registry - documented == set(), f"in _keys but not in storage.md: {registry - documented}"
    extra = documented - registry - read_here
    assert not extra, f"in storage.md but not in vgfm._data._keys: {extra}"


def test_dataset_fields_documented_and_vice_versa():
    documented = _documented("## Datasets")
    assert documented == set(_keys.DATASET_FIELDS), documented ^ set(_keys.DATASET_FIELDS)


def test_record_entries_documented_and_vice_versa():
    table = _section("### The fit record")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = set()
    for row in rows:
        first = row.split("|")[1]
        documented |= set(re.findall(r"`([a-z_]+)`", first))
    assert documented == set(_keys.RECORD_ENTRIES), documented ^ set(_keys.RECORD_ENTRIES)
    params_row = next(r for r in rows if r.startswith("| `params`"))
    for name in _keys.RECORD_PARAMS:
        assert f"`{name}`" in params_row, name


def test_key_helpers_produce_the_registered_templates():
    probes = {
        'obsm["{key}_velocity"]': f'obsm["{_keys.velocity_key("{key}")}"]',
        'obs["{key}_growth"]': f'obs["{_keys.growth_key("{key}")}"]',
        'layers["{key}_velocity"]': f'layers["{_keys.gene_velocity_key("{key}")}"]',
        'uns["{key}_trajectories"]': f'uns["{_keys.trajectories_key("{key}")}"]',
        'obsm["{key}_velocity_{basis}"]':
            f'obsm["{_keys.velocity_embedding_key("{key}", "{basis}")}"]',
        'uns["{key}_growth_genes"]': f'uns["{_keys.growth_genes_key("{key}")}"]',
        'obs["{time_key}_numeric"]': f'obs["{_keys.numeric_time_key("{time_key}")}"]',
        'uns["{key_added}_mapping"]': f'uns["{_keys.time_mapping_key("{key_added}")}"]',
        'obs["{time_key}_bin"]': f'obs["{_keys.bin_time_key("{time_key}")}"]',
        'uns["{key_added}_bins"]': f'uns["{_keys.time_bins_key("{key_added}")}"]',
        'uns["{key}_population_size"]': f'uns["{_keys.population_size_key("{key}")}"]',
    }
    for template, produced in probes.items():
        assert template in _keys.WRITTEN_FIELDS and template == produced, template


def test_fit_writes_exactly_the_record_entries():
    rng = np.random.default_rng(0)
    t = np.repeat([0.0, 1.0, 2.0], 15)
    a = ad.AnnData(rng.normal(size=(45, 2)).astype(np.float32),
                   obs=pd.DataFrame({"time": t}, index=[f"c{i}" for i in range(45)]))
    vgfm.tl.fit(a, "time", use_rep="X", population_size=[1, 2, 3], holdout_time=1,
                progress=False, stage1_steps=3, stage2_steps=0, hidden=8)
    vgfm.tl.evaluate(a)
    assert set(a.uns["vgfm"]) == set(_keys.RECORD_ENTRIES)
    assert set(_keys.RECORD_PARAMS) <= set(a.uns["vgfm"]["params"])


@pytest.mark.parametrize("name", ["py.typed"])
def test_package_marker_files(name):
    assert (SRC / name).exists()
