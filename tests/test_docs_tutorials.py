"""The tutorials run top to bottom, their committed outputs are complete, and the docs build.

- Structure checks of the committed notebooks (fast, always run).
- Execution of every notebook with nbclient in a fresh kernel, marked ``tutorials`` (slow:
  each notebook fits models). The notebooks run in subprocesses, two at a time, started when
  collection ends, so they execute while the other tests run; their tests come last and wait
  for them (``TutorialRuns`` in ``conftest.py``). Skipped ("benchmark data not found; set
  VGFM_DATA_DIR") when neither ``$VGFM_DATA_DIR`` nor ``../shared/data`` exists, since the
  notebooks would otherwise download their data.
- ``sphinx -W`` build of ``docs/`` into a temporary folder (as CI does), skipped when Sphinx
  or the docs extras are not installed.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("*.ipynb"))

nbformat = pytest.importorskip("nbformat")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_tutorials_exist() -> None:
    names = [p.name for p in TUTORIALS]
    assert names == [
        "01_quickstart.ipynb",
        "02_expression_to_dynamics.ipynb",
        "03_real_data_model_checking.ipynb",
        "04_multimodal.ipynb",
    ]


# --------------------------------------------------------------------------------------------
# committed notebooks: executed in order, no errors, figures present
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", TUTORIALS, ids=_ids(TUTORIALS))
def test_committed_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name} was not executed top to bottom in one session (execution counts "
        f"{counts}); re-execute it with `VGFM_DATA_DIR=../shared/data jupyter nbconvert "
        "--to notebook --execute --inplace`."
    )
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name} contains error outputs: {errors[0].get('ename')}"
    images = [
        o for c in code for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert images, f"{path.name} has no figure outputs"
    md = [c for c in nb.cells if c.cell_type == "markdown"]
    assert md and md[0].source.lstrip().startswith("# "), f"{path.name} needs a title"
    widgets = [o for c in code for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, f"{path.name} has widget outputs (use progress=False)"


# --------------------------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------------------------
@pytest.mark.tutorials
@pytest.mark.benchmark_data()
@pytest.mark.parametrize("path", TUTORIALS, ids=_ids(TUTORIALS))
def test_tutorial_executes(path: Path, benchmark_data_dir: Path, tutorial_runs) -> None:
    """The notebook runs top to bottom in a fresh kernel without errors.

    The notebooks are executed in subprocesses started when collection ends, two at a time,
    while the other tests run (``TutorialRuns`` in ``conftest.py``); this test waits for its
    notebook and reports the failing cell's traceback.
    """
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    assert tutorial_runs is not None, "the notebook executions were not started"
    code, output = tutorial_runs.wait(path.stem)
    assert code == 0, f"{path.name} failed (exit {code}):\n{output[-8000:]}"


# --------------------------------------------------------------------------------------------
# documentation
# --------------------------------------------------------------------------------------------
def test_api_page_lists_every_public_function() -> None:
    import vgfm

    api = (ROOT / "docs" / "api.md").read_text()
    missing = []
    for sub in ("tl", "pp", "pl", "datasets"):
        mod = getattr(vgfm, sub)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and f"{sub}.{name}" not in api:
                missing.append(f"vgfm.{sub}.{name}")
    assert not missing, f"add to docs/api.md: {missing}"


_DOCS_DEPS = ("sphinx", "myst_nb", "furo", "sphinx_autodoc_typehints")


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in _DOCS_DEPS),
    reason="Sphinx or the docs extras are not installed (pip install -e '.[docs]')",
)
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
        "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html"),
    ]
    env = dict(os.environ, MPLBACKEND="Agg")
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert res.returncode == 0, (
        f"sphinx -W failed (exit {res.returncode}):\n{res.stderr[-6000:]}\n{res.stdout[-2000:]}"
    )
    html = tmp_path / "html"
    for page in ("index", "api", "method", "storage", "cli", "changelog", "installation"):
        assert (html / f"{page}.html").is_file(), f"{page}.html was not built"
    for nb in TUTORIALS:
        assert (html / "tutorials" / f"{nb.stem}.html").is_file(), f"{nb.stem} not rendered"
