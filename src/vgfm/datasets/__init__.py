"""Datasets: the project's own synthetic time courses and readers for snapshot CSV files.

Generators (ground truth in ``obs["true_growth"]`` and ``uns["true_population_size"]``):
:func:`two_gene_grn`, :func:`three_gene_switch`, :func:`gaussian_bifurcation` (with :func:`sample_gaussian_bifurcation_law`)
and :func:`large_time_course`. Readers: :func:`read_snapshot_csv` and :func:`load_benchmark`.

Public time courses downloaded once from their original location (hash-checked, cached in
``VGFM_DATA_DIR`` or ``pooch.os_cache("vgfm")``): :func:`simulation_gene`, :func:`dyngen`,
:func:`dyngen_expression` and :func:`mouse_hematopoiesis`.
"""

from __future__ import annotations

from vgfm.datasets._csv import BENCHMARKS, DATA_DIR_ENV, load_benchmark, read_snapshot_csv
from vgfm.datasets._remote import (
    REMOTE_FILES,
    cache_dir,
    dyngen,
    dyngen_expression,
    fetch_file,
    mouse_hematopoiesis,
    simulation_gene,
)
from vgfm.datasets._synthetic import (
    gaussian_bifurcation,
    large_time_course,
    sample_gaussian_bifurcation_law,
    three_gene_switch,
    two_gene_grn,
)

__all__ = [
    "BENCHMARKS",
    "DATA_DIR_ENV",
    "REMOTE_FILES",
    "cache_dir",
    "dyngen",
    "dyngen_expression",
    "fetch_file",
    "mouse_hematopoiesis",
    "simulation_gene",
    "gaussian_bifurcation",
    "large_time_course",
    "load_benchmark",
    "read_snapshot_csv",
    "sample_gaussian_bifurcation_law",
    "three_gene_switch",
    "two_gene_grn",
]
