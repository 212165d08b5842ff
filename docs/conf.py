"""Sphinx configuration of the vgfm documentation.

Built with ``make docs`` (``python -m sphinx -W --keep-going -b html docs docs/_build/html``).
Tutorial notebooks live in ``../tutorials`` and are committed executed; they are copied into
``docs/tutorials/`` (git-ignored) at build time and rendered without execution.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

import vgfm  # noqa: E402

# -- project -----------------------------------------------------------------------------
project = "vgfm"
author = "vgfm developers"
copyright = f"{date.today().year}, {author}"
release = vgfm.__version__
version = ".".join(release.split(".")[:2])

# -- extensions --------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
napoleon_use_param = True
napoleon_custom_sections = [("Attributes", "params_style")]
typehints_use_signature = False
typehints_use_signature_return = False
always_document_param_types = False
typehints_defaults = "comma"

# notebooks are committed with outputs: never execute them during the docs build
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# no network: no intersphinx
intersphinx_mapping: dict = {}

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "_generated"]
templates_path: list[str] = []
suppress_warnings = [
    # optional type hints that only exist under TYPE_CHECKING (AnnData, Axes) are fine as text
    "sphinx_autodoc_typehints.forward_reference",
    "sphinx_autodoc_typehints.guarded_import",
    "config.cache",
]

# -- HTML --------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"vgfm {release}"
html_static_path: list[str] = []


# -- tutorials: copy ../tutorials/*.ipynb into docs/tutorials/ ---------------------------
def _copy_tutorials() -> None:
    src = ROOT / "tutorials"
    dst = HERE / "tutorials"
    dst.mkdir(exist_ok=True)
    wanted = {p.name for p in src.glob("*.ipynb")}
    for old in dst.glob("*.ipynb"):
        if old.name not in wanted:
            old.unlink()
    for nb in sorted(src.glob("*.ipynb")):
        target = dst / nb.name
        if not target.exists() or target.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, target)


# -- CLI help: captured from the argument parser of `vgfm.cli` ----------------------------
def _cli_help() -> None:
    out = HERE / "_generated"
    out.mkdir(exist_ok=True)
    target = out / "cli_help.md"
    try:
        import argparse

        from vgfm.cli import build_parser
    except Exception:  # the CLI is optional for the docs build
        target.write_text(
            "```{note}\nThe `vgfm` command-line module is not available in this build.\n```\n"
        )
        return
    os.environ.setdefault("COLUMNS", "100")
    parser = build_parser()
    parser.prog = "vgfm"
    parts = ["## `vgfm`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += [f"## `vgfm {name}`", "", "```text", sub.format_help().rstrip(), "```",
                          ""]
    text = "\n".join(parts)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


# -- guard: every public function of vgfm must be listed in api.md -----------------------
def _check_api_coverage(app) -> None:
    from sphinx.util import logging as sphinx_logging

    log = sphinx_logging.getLogger(__name__)
    api = (HERE / "api.md").read_text()
    import inspect

    import vgfm.datasets
    import vgfm.pl
    import vgfm.pp
    import vgfm.tl

    missing = []
    for mod_name, mod in (("tl", vgfm.tl), ("pp", vgfm.pp), ("pl", vgfm.pl),
                          ("datasets", vgfm.datasets)):
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name, None)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and f"{mod_name}.{name}" not in api:
                missing.append(f"vgfm.{mod_name}.{name}")
    if "   VGFM" not in api:
        missing.append("vgfm.VGFM")
    if missing:
        log.warning("public objects missing from docs/api.md: %s", ", ".join(missing))


def setup(app) -> None:
    app.connect("builder-inited", _check_api_coverage)


_copy_tutorials()
_cli_help()
