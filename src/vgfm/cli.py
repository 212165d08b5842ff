"""Command line interface: ``vgfm fit | simulate | evaluate | plot | demo``.

A thin wrapper over :mod:`vgfm.tl`, :mod:`vgfm.pl` and :class:`vgfm.VGFM`: every subcommand
reads an ``.h5ad`` (or ``.h5mu``) file, calls the library and writes files. The argument
parser is built inside :func:`main`, logging is configured there (to stderr), and user errors
end with one line ``vgfm: error: <message>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("vgfm")

#: Exceptions that stem from bad input files or options; reported in one line, exit status 2.
#: (``FileNotFoundError``, ``IsADirectoryError``, ``NotADirectoryError``, ``FileExistsError``
#: and ``PermissionError`` are all ``OSError``s raised by the path checks of this module.)
USER_ERRORS: tuple[type[BaseException], ...] = (
    KeyError,
    ValueError,
    TypeError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
    PermissionError,
)
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Exit status after SIGTERM (128 + SIGTERM).
EXIT_TERMINATED = 143

_FIT_EXAMPLES = """\
Examples:
  vgfm fit data.h5ad --time-key day --use-rep X_pca -o fitted.h5ad
  vgfm fit data.h5ad --time-key day --holdout-time "day 2" -o fitted.h5ad --save-model model.pt
  vgfm fit data.h5ad --time-key day --population-size 1e4 2.5e4 6e4 -o fitted.h5ad
  vgfm fit data.h5ad --time-key day --population-size-file sizes.csv -o fitted.h5ad
  vgfm fit data.h5ad --time-key day --option reg=0.05 --option stage1_steps=500 -o fitted.h5ad
  vgfm fit multiome.h5mu --mod rna --time-key day -o fitted.h5mu
  vgfm fit data.h5ad --time-key stage --time-order early mid late -o fitted.h5ad
  vgfm fit data.h5ad --time-key stage --time-order early mid late --time-values 0 1.5 4 \
      -o fitted.h5ad

A population-size file is a CSV with a header row and one row per time point: either two
columns (time label or value, then size; a column named "size" is used when present) or a
single column of sizes in time order, e.g.
  time,size
  day 0,12000
  day 2,30000
Options (--option NAME=VALUE) are the training options of vgfm.tl.fit: reg, reg_m,
reg_m_motion, motion_noise_floor, net_of_motion (False: growth targets as the coupling gives
them), growth_test, growth_noise_test (e.g. 3: intervals whose growth differences are within
sampling noise grow alike; None: off, the default), sigma,
hidden, n_layers, stage1_steps, batch_size, lr, stage2_steps, ...

Files are written atomically (a temporary file in the same folder, then renamed), so OUT may
equal IN: an interrupted run leaves the previous file intact. --save-model is checked before
training and replaces an existing file.
"""

_SIMULATE_EXAMPLES = """\
Examples:
  vgfm simulate fitted.h5ad -o simulated.h5ad
  vgfm simulate fitted.h5ad --start-time "day 2" --n-cells 200 --seed 1 -o simulated.h5ad

The model is rebuilt from uns[KEY] of the input; the trajectories are written to
uns["KEY_trajectories"] of the output.
"""

_EVALUATE_EXAMPLES = """\
Examples:
  vgfm evaluate fitted.h5ad
  vgfm evaluate fitted.h5ad --json > evaluation.json
  vgfm evaluate fitted.h5ad -o fitted.h5ad

One row per observed time point after the first: W1 distance between the predicted and the
observed cells (in the fitted representation) and relative population-size error (RME).
With -o the data, with the table in uns["KEY"]["evaluation"], is written to OUT; without it
no file is written.
"""

_PLOT_EXAMPLES = """\
Examples:
  vgfm plot fitted.h5ad -o figures/
  vgfm plot fitted.h5ad -o figures/ --basis tsne --key vgfm

Writes growth_BASIS.png, velocity_BASIS.png and trajectories_BASIS.png when obsm["X_BASIS"]
exists (trajectories after `vgfm simulate`), and mass.png and history.png always.
"""

_DEMO_EXAMPLES = """\
Examples:
  vgfm demo
  vgfm demo --output demo_output --seed 1

Fits the synthetic two-gene switch (vgfm.datasets.two_gene_grn) lifted to 30 genes, and writes
vgfm_demo.h5ad, evaluation.csv/.md, growth_genes.csv and PNG figures to the output folder.
"""


# ---------------------------------------------------------------------------------- parsing
def _option(text: str) -> tuple[str, Any]:
    """Parse ``NAME=VALUE`` into ``(name, value)``; the value as a Python literal if possible."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. reg=0.05), got {text!r}")
    raw = raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return name, lowered == "true"
    if lowered in ("none", "null"):
        return name, None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name, value


def _global_flags(suppress: bool) -> argparse.ArgumentParser:
    """``--quiet`` / ``--verbose``, accepted before and after the subcommand.

    The copy attached to the subcommands uses ``SUPPRESS`` defaults so that it does not reset
    a flag given before the subcommand.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-q", "--quiet", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="no progress bars; log only warnings and errors")
    parent.add_argument("-v", "--verbose", action="count",
                        default=argparse.SUPPRESS if suppress else 0,
                        help="more log output (debug messages, tracebacks of errors)")
    return parent


def _add_key(p: argparse.ArgumentParser, help_text: str, default: str) -> None:
    p.add_argument("--key", default=default, metavar="KEY",
                   help=f"{help_text} (default: %(default)s)")


def _add_mod(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mod", default=None, metavar="MOD",
                   help="for an .h5mu input: use this modality (e.g. rna) instead of the joint "
                        "object")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``vgfm`` argument parser (called by :func:`main`, never at import).

    Returns
    -------
    argparse.ArgumentParser
        Parser with the subcommands ``fit``, ``simulate``, ``evaluate``, ``plot``, ``demo``.

    Examples
    --------
    >>> from vgfm.cli import build_parser
    >>> build_parser().parse_args(["evaluate", "fitted.h5ad", "--json"]).json
    True
    """
    from vgfm import __version__

    # imported here, not at module level: `vgfm --version` answers before they are needed
    # (vgfm._data loads anndata, vgfm._core loads torch)
    from vgfm._core.methods import method_names
    from vgfm._data import keys as C

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="vgfm",
        description="Joint velocity-growth flow matching (VGFM) for single-cell time courses.",
        epilog="Examples:\n  vgfm demo\n  vgfm fit data.h5ad --time-key day -o fitted.h5ad\n"
               "  vgfm simulate fitted.h5ad -o fitted.h5ad\n  vgfm evaluate fitted.h5ad\n"
               "  vgfm plot fitted.h5ad -o figures/\n\n"
               "Run `vgfm COMMAND --help` for the options of each command.",
        formatter_class=fmt,
        parents=[_global_flags(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"vgfm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    flags = [_global_flags(suppress=True)]

    p = sub.add_parser("fit", help="fit VGFM on a time-course .h5ad / .h5mu",
                       description="Fit joint velocity-growth flow matching and write the velocity,\n"
                                   "growth rate and model into a copy of the data.",
                       epilog=_FIT_EXAMPLES, formatter_class=fmt, parents=flags)
    p.add_argument("input", metavar="IN", help="input .h5ad (or .h5mu) file")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file (same format as IN)")
    p.add_argument("--time-key", default=C.DEFAULT_TIME_KEY, metavar="KEY",
                   help="obs column with each cell's time, numeric or labels like 'day 2' "
                        "(default: %(default)s)")
    p.add_argument("--use-rep", default=C.DEFAULT_USE_REP, metavar="REP",
                   help="obsm key to model, or X (default: %(default)s)")
    p.add_argument("--time-order", nargs="+", default=None, metavar="LABEL",
                   help="all time labels, earliest first (for labels that do not sort by "
                        "themselves, e.g. --time-order early mid late)")
    p.add_argument("--time-values", nargs="+", type=float, default=None, metavar="T",
                   help="numeric time of each label of --time-order, in the same order "
                        "(default: 0, 1, 2, ...)")
    p.add_argument("--holdout-time", default=None, metavar="T",
                   help="interior time point (label or value) left out of training")
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--population-size", nargs="+", type=float, default=None, metavar="N",
                       help="population size of every time point, in time order")
    sizes.add_argument("--population-size-file", default=None, metavar="CSV",
                       help="CSV with the population size of every time point")
    p.add_argument("--method", choices=method_names(), default="vgfm",
                   help="vgfm (growth-aware) or otcfm (balanced baseline) (default: %(default)s)")
    p.add_argument("--device", default=None,
                   help="torch device, e.g. cpu or cuda (default: CUDA when available)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--key", dest="key_added", default=C.DEFAULT_KEY, metavar="KEY",
                   help="prefix of the fields written (default: %(default)s)")
    p.add_argument("--option", dest="options", action="append", type=_option, default=[],
                   metavar="NAME=VALUE", help="training option of vgfm.tl.fit (repeatable)")
    _add_mod(p)
    p.add_argument("--save-model", default=None, metavar="PATH",
                   help="also save the trained model (e.g. model.pt; replaces an existing "
                        "file; read it with vgfm.VGFM.load)")
    p.set_defaults(handler=_cmd_fit)

    p = sub.add_parser("simulate", help="simulate trajectories with a fitted model",
                       description="Simulate cell trajectories and lineage masses with the model\n"
                                   "stored in the input file.",
                       epilog=_SIMULATE_EXAMPLES, formatter_class=fmt, parents=flags)
    p.add_argument("input", metavar="IN", help="fitted .h5ad (or .h5mu) file")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file")
    _add_key(p, "key of the fit", C.DEFAULT_KEY)
    p.add_argument("--start-time", default=None, metavar="T",
                   help="time point (label or value) whose cells start (default: the first)")
    p.add_argument("--n-cells", type=int, default=None, metavar="N",
                   help="number of start cells drawn at random (default: all)")
    p.add_argument("--n-per-interval", type=int, default=10, metavar="N",
                   help="output times per observed interval (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start-cell draw "
                                                       "(default: %(default)s)")
    _add_mod(p)
    p.set_defaults(handler=_cmd_simulate)

    p = sub.add_parser("evaluate", help="print W1 and population-size error per time point",
                       description="Evaluate a fitted model against the observed snapshots.",
                       epilog=_EVALUATE_EXAMPLES, formatter_class=fmt, parents=flags)
    p.add_argument("input", metavar="IN", help="fitted .h5ad (or .h5mu) file")
    _add_key(p, "key of the fit", C.DEFAULT_KEY)
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    p.add_argument("-o", "--output", default=None, metavar="OUT",
                   help="also write the data with uns[KEY]['evaluation'] to OUT (may equal "
                        "IN); default: write nothing")
    _add_mod(p)
    p.set_defaults(handler=_cmd_evaluate)

    p = sub.add_parser("plot", help="write the standard figures as PNG files",
                       description="Write the standard vgfm figures of a fitted file.",
                       epilog=_PLOT_EXAMPLES, formatter_class=fmt, parents=flags)
    p.add_argument("input", metavar="IN", help="fitted .h5ad (or .h5mu) file")
    p.add_argument("-o", "--output", required=True, metavar="FIGDIR", help="output folder")
    p.add_argument("--basis", default=None,
                   help="embedding of the growth/velocity/trajectory plots (default: umap, "
                        "skipped when obsm['X_umap'] is missing)")
    _add_key(p, "key of the fit", C.DEFAULT_KEY)
    _add_mod(p)
    p.set_defaults(handler=_cmd_plot)

    p = sub.add_parser("demo", help="run the synthetic two-gene demo",
                       description="Fit the synthetic two-gene switch end to end and write the\n"
                                   "results and figures.",
                       epilog=_DEMO_EXAMPLES, formatter_class=fmt, parents=flags)
    p.add_argument("--output", default="demo_output", metavar="DIR",
                   help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--fast", action="store_true",
                   help="small data and short training: a smoke test, not a result")
    p.set_defaults(handler=_cmd_demo)
    return parser


# ------------------------------------------------------------------------------------- I/O
def _check_input(path: str) -> Path:
    """The input path exists and is a file (not a folder)."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"input {path!r} is a directory; give an .h5ad or .h5mu file")
    if not p.is_file():
        raise FileNotFoundError(f"input file {path!r} does not exist")
    return p


def _read(path: str, mod: str | None = None) -> Any:
    """Read an ``.h5ad`` or ``.h5mu`` file into memory; unreadable files are user errors."""
    p = _check_input(path)
    suffix = p.suffix.lower()
    if suffix not in (".h5ad", ".h5mu"):
        raise ValueError(f"input file {path!r} must end in .h5ad or .h5mu")
    if suffix == ".h5ad" and mod is not None:
        raise ValueError(f"--mod {mod!r} needs an .h5mu input; {path!r} is an .h5ad file")
    import h5py

    if not h5py.is_hdf5(p):
        raise ValueError(f"input file {path!r} is not an HDF5 file, so not a valid {suffix} "
                         "(empty, damaged or another format)")
    try:
        if suffix == ".h5ad":
            import anndata as ad

            return ad.read_h5ad(p)
        import mudata as md

        return md.read_h5mu(p)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:  # h5py/anndata raise OSError, KeyError, AnnDataReadError, ...
        logger.debug("traceback of the read error", exc_info=True)
        detail = " ".join(str(err).split())[:200]
        raise ValueError(f"input file {path!r} could not be read as {suffix} (truncated or "
                         f"damaged?): {type(err).__name__}: {detail}") from None


def _check_path(path: str, what: str) -> Path:
    """``path`` can become a file: it is not a folder and no existing ancestor is a file."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{what} {path!r} is a directory; give a file name")
    for ancestor in p.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise NotADirectoryError(f"{what} {path!r}: {str(ancestor)!r} is a file, "
                                         "not a folder")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise PermissionError(f"{what} {path!r}: folder {str(ancestor)!r} is not "
                                      "writable")
            break
    return p


def _check_output(data: Any, path: str) -> Path:
    """Fail early (before any computation) when ``path`` does not suit ``data``."""
    import mudata as md

    p = _check_path(path, "output file")
    is_mu = isinstance(data, md.MuData)
    expected = ".h5mu" if is_mu else ".h5ad"
    if p.suffix.lower() != expected:
        kind = "MuData (.h5mu)" if is_mu else "AnnData (.h5ad)"
        raise ValueError(f"output file {path!r} must end in {expected} for {kind} input")
    return p


def _write(data: Any, path: str) -> None:
    """Write ``data`` to ``path`` (h5ad / h5mu) atomically: temporary file, then rename.

    The previous file at ``path`` (possibly the input) stays intact until the new one is
    complete, whatever interrupts the write.
    """
    from vgfm._model import atomic_write

    p = _check_output(data, path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".h5mu":
        atomic_write(p, data.write_h5mu, binary=None, suffix=".h5mu")
    else:
        atomic_write(p, data.write_h5ad, binary=None, suffix=".h5ad")
    logger.info("wrote %s", p)


def _check_device(device: str | None) -> None:
    """Refuse a device torch does not have, before reading any data."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"--device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1): "
                         f"{err}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device!r}: CUDA is not available on this machine "
                             "(torch was built without CUDA or sees no GPU); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device!r}: only {torch.cuda.device_count()} CUDA "
                             "device(s) visible")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device!r}: MPS is not available on this machine; use "
                         "--device cpu")


def _read_population_sizes(path: str) -> Any:
    """Population sizes from a CSV: ``{time: size}`` (2+ columns) or a list (1 column)."""
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"population-size file {path!r} is a directory")
    if not p.is_file():
        raise FileNotFoundError(f"population-size file {path!r} does not exist")
    try:
        table = pd.read_csv(p, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"population-size file {path!r} is empty; it needs a header row and "
                         "one row per time point (see `vgfm fit --help`)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"population-size file {path!r} is not a readable CSV: "
                         f"{' '.join(str(err).split())}") from None
    if len(table) == 0:
        raise ValueError(f"population-size file {path!r} has a header but no rows; add one row "
                         "per time point")
    try:
        if table.shape[1] == 1:
            return [float(v) for v in table.iloc[:, 0]]
        cols = [str(c).strip().lower() for c in table.columns]
        size_col = next((i for i, c in enumerate(cols)
                         if c in ("size", "population_size", "n")), 1)
        time_col = 0 if size_col != 0 else 1
        return {str(t).strip(): float(s) for t, s in zip(table.iloc[:, time_col],
                                                          table.iloc[:, size_col])}
    except (TypeError, ValueError) as err:
        raise ValueError(f"population-size file {path!r}: sizes must be numbers ({err})") from None


# -------------------------------------------------------------------------------- commands
def _cmd_fit(args: argparse.Namespace, progress: bool) -> int:
    options: dict[str, Any] = {}
    for name, value in args.options:
        options[name] = value
    if args.time_values is not None and args.time_order is None:
        raise ValueError("--time-values needs --time-order (the labels the values belong to)")
    # every check that can fail without training runs before it
    _check_device(args.device)
    if args.population_size_file is not None:
        sizes = _read_population_sizes(args.population_size_file)
    else:
        sizes = args.population_size
    _check_path(args.output, "output file")
    if args.save_model:
        _check_path(args.save_model, "--save-model file")
        if Path(args.save_model).resolve() in (Path(args.output).resolve(),
                                                 Path(args.input).resolve()):
            raise ValueError(f"--save-model {args.save_model!r} names the input or output data "
                             "file; give the model its own file (e.g. model.pt)")
    data = _read(args.input, args.mod)
    _check_output(data, args.output)
    time_options: dict[str, Any] = {}
    if args.time_order is not None:
        time_options["time_order"] = list(args.time_order)
    if args.time_values is not None:
        time_options["time_values"] = list(args.time_values)

    import vgfm

    model = vgfm.tl.fit(
        data, args.time_key, use_rep=args.use_rep, key_added=args.key_added,
        method=args.method, population_size=sizes, holdout_time=args.holdout_time,
        seed=args.seed, device=args.device, progress=progress, mod=args.mod,
        **time_options, **options,
    )
    if isinstance(model, tuple):  # a tl.fit returning (data, model) as well
        model = model[-1]
    if args.save_model:
        # the model first: when it fails, the .h5ad has not been replaced yet
        Path(args.save_model).parent.mkdir(parents=True, exist_ok=True)
        model.save(args.save_model, overwrite=True)
    _write(data, args.output)
    return 0


def _cmd_simulate(args: argparse.Namespace, progress: bool) -> int:
    import vgfm

    _check_path(args.output, "output file")
    data = _read(args.input, args.mod)
    _check_output(data, args.output)
    vgfm.tl.simulate(data, key=args.key, start_time=args.start_time, n_cells=args.n_cells,
                     n_per_interval=args.n_per_interval, seed=args.seed, mod=args.mod)
    _write(data, args.output)
    return 0


class _DropRecords(logging.Filter):
    """Drop log records whose message starts with ``prefix`` (a claim that does not apply)."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _cmd_evaluate(args: argparse.Namespace, progress: bool) -> int:
    import vgfm
    from vgfm._demo import format_table

    if args.output is not None:
        _check_path(args.output, "output file")
    data = _read(args.input, args.mod)
    if args.output is not None:
        _check_output(data, args.output)
        table = vgfm.tl.evaluate(data, key=args.key, mod=args.mod)
        _write(data, args.output)
    else:
        # the table is only printed: tl.evaluate's note about the field it adds to the
        # in-memory object would suggest a file was changed
        drop = _DropRecords("vgfm.tl.evaluate added")
        logger.addFilter(drop)
        try:
            table = vgfm.tl.evaluate(data, key=args.key, mod=args.mod)
        finally:
            logger.removeFilter(drop)
        logger.info("no file written (pass -o OUT to keep the table in uns[%r]['evaluation'])",
                    args.key)
    if args.json:
        print(table.to_json(orient="records", double_precision=10))
    else:
        print(format_table(table))
    return 0


def _cmd_plot(args: argparse.Namespace, progress: bool) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from vgfm._figures import standard_figures

    _check_path(str(Path(args.output) / "figure.png"), "figure")  # FIGDIR must be a folder
    data = _read(args.input, args.mod)
    written = standard_figures(data, args.output, key=args.key, basis=args.basis, mod=args.mod)
    for path in written.values():
        logger.info("wrote %s", path)
    return 0


def _cmd_demo(args: argparse.Namespace, progress: bool) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from vgfm._demo import format_table, run_demo

    result = run_demo(args.output, seed=args.seed, progress=progress, fast=args.fast)
    cols = [c for c in ("label", "w1", "rme", "predicted_size", "observed_size")
            if c in result["evaluation"].columns]
    print(format_table(result["evaluation"][cols]))
    print(f"\nwrote {result['h5ad']}, {len(result['figures'])} figures and the evaluation "
          f"table to {Path(args.output)}/ in {result['seconds']:.0f} s")
    return 0


# ------------------------------------------------------------------------------------ main
def _error_message(err: BaseException) -> str:
    """One-line message of a user error (``str(KeyError)`` would add quotes)."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _configure_logging(quiet: bool, verbose: int) -> tuple[logging.Handler, int]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s [vgfm] %(message)s"))
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    old_level = logger.level
    logger.setLevel(level)
    logger.addHandler(handler)
    return handler, old_level


class _Terminated(BaseException):
    """Raised by the SIGTERM handler, so that temporary files are cleaned up on the way out."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated


def _install_sigterm() -> Any:
    """Turn SIGTERM into :class:`_Terminated` while a command runs (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vgfm`` command.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for bad input or options (one line
        ``vgfm: error: <message>`` on stderr), 130 after Ctrl-C and 143 after SIGTERM (one
        line, no traceback; output files are written atomically, so they are either the
        previous or the complete new file). Unexpected exceptions propagate.

    Examples
    --------
    >>> from vgfm.cli import main
    >>> main(["fit", "data.h5ad", "--time-key", "day", "-o", "fitted.h5ad"])  # doctest: +SKIP
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    leading = []
    for token in argv:  # global flags before the subcommand
        if not token.startswith("-"):
            break
        leading.append(token)
    if "--version" in leading:  # answered without importing the library (no torch, scanpy)
        from vgfm import __version__

        print(f"vgfm {__version__}")
        return 0
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, argparse usage errors
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    quiet = bool(getattr(args, "quiet", False))
    verbose = int(getattr(args, "verbose", 0) or 0)
    progress = not quiet and sys.stderr.isatty()
    handler, old_level = _configure_logging(quiet, verbose)
    previous_sigterm = _install_sigterm()
    try:
        with warnings.catch_warnings():
            if not verbose:
                # API-change notices of the libraries underneath (anndata, mudata, scanpy) are
                # addressed to developers; a command-line user cannot act on them
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
            return int(args.handler(args, progress))
    except USER_ERRORS as err:
        logger.debug("traceback of the error below", exc_info=True)
        print(f"vgfm: error: {_error_message(err)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `vgfm evaluate f.h5ad --json | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        logger.debug("traceback of the interruption", exc_info=True)
        print("vgfm: interrupted; files that were being written are left as they were",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("vgfm: terminated; files that were being written are left as they were",
              file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        _restore_sigterm(previous_sigterm)
        logger.removeHandler(handler)
        logger.setLevel(old_level)


if __name__ == "__main__":
    raise SystemExit(main())
