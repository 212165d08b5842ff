"""Every AnnData key :mod:`vgfm` reads or writes, in one place.

Each function derives a field name from the user's prefix (``key_added`` / ``key``, default
``"vgfm"``) so that ``pp``, ``tl``, ``pl`` and the CLI never spell a key themselves.
``docs/storage.md`` is tested against :data:`WRITTEN_FIELDS` and :data:`RECORD_ENTRIES`
(``tests/test_structure.py``): every field listed here is documented there and vice versa.

To add a field: add a function here, add it to :data:`WRITTEN_FIELDS`, document it in
``docs/storage.md``.
"""

from __future__ import annotations

__all__ = [
    "DATASET_FIELDS",
    "DEFAULT_KEY",
    "DEFAULT_TIME_KEY",
    "DEFAULT_USE_REP",
    "RECORD_ENTRIES",
    "RECORD_PARAMS",
    "WRITTEN_FIELDS",
    "basis_key",
    "bin_time_key",
    "derived_fields",
    "evaluation_entry",
    "gene_velocity_key",
    "growth_genes_key",
    "growth_key",
    "numeric_time_key",
    "population_size_key",
    "time_bins_key",
    "time_mapping_key",
    "trajectories_key",
    "velocity_embedding_key",
    "velocity_key",
]

DEFAULT_KEY = "vgfm"
DEFAULT_USE_REP = "X_pca"
DEFAULT_TIME_KEY = "time"


# -------------------------------------------------------------------------------- tl fields
def velocity_key(key: str = DEFAULT_KEY) -> str:
    """``adata.obsm`` key of the velocity in the fitted representation.

    Examples
    --------
    >>> velocity_key("run1")
    'run1_velocity'
    """
    return f"{key}_velocity"


def growth_key(key: str = DEFAULT_KEY) -> str:
    """``adata.obs`` key of the growth rate.

    Examples
    --------
    >>> growth_key()
    'vgfm_growth'
    """
    return f"{key}_growth"


def gene_velocity_key(key: str = DEFAULT_KEY) -> str:
    """``adata.layers`` key of the gene-space velocity (``use_rep="X_pca"`` only).

    Examples
    --------
    >>> gene_velocity_key()
    'vgfm_velocity'
    """
    return f"{key}_velocity"


def trajectories_key(key: str = DEFAULT_KEY) -> str:
    """``adata.uns`` key of simulated trajectories.

    Examples
    --------
    >>> trajectories_key()
    'vgfm_trajectories'
    """
    return f"{key}_trajectories"


def velocity_embedding_key(key: str = DEFAULT_KEY, basis: str = "umap") -> str:
    """``adata.obsm`` key of the velocity projected on ``obsm[f"X_{basis}"]``.

    Examples
    --------
    >>> velocity_embedding_key("vgfm", "umap")
    'vgfm_velocity_umap'
    """
    return f"{key}_velocity_{basis}"


def growth_genes_key(key: str = DEFAULT_KEY) -> str:
    """``adata.uns`` key of the growth-associated gene ranking.

    Examples
    --------
    >>> growth_genes_key()
    'vgfm_growth_genes'
    """
    return f"{key}_growth_genes"


def basis_key(basis: str) -> str:
    """``adata.obsm`` key of an embedding, scanpy style (``"umap"`` -> ``"X_umap"``).

    Examples
    --------
    >>> basis_key("umap"), basis_key("X_pca")
    ('X_umap', 'X_pca')
    """
    return basis if basis.startswith("X_") else f"X_{basis}"


def evaluation_entry() -> str:
    """Entry of ``uns[key]`` (the fit record) with the table of :func:`vgfm.tl.evaluate`.

    Examples
    --------
    >>> evaluation_entry()
    'evaluation'
    """
    return "evaluation"


# -------------------------------------------------------------------------------- pp fields
def numeric_time_key(time_key: str = DEFAULT_TIME_KEY) -> str:
    """Default ``adata.obs`` column written by :func:`vgfm.pp.numeric_time`.

    Examples
    --------
    >>> numeric_time_key("day")
    'day_numeric'
    """
    return f"{time_key}_numeric"


def time_mapping_key(key_added: str) -> str:
    """``adata.uns`` key of the label -> time mapping written by :func:`vgfm.pp.numeric_time`.

    Examples
    --------
    >>> time_mapping_key("day_numeric")
    'day_numeric_mapping'
    """
    return f"{key_added}_mapping"


def time_bins_key(key_added: str) -> str:
    """``adata.uns`` key of the bin edges written by :func:`vgfm.pp.bin_time`.

    Examples
    --------
    >>> time_bins_key("t_bin")
    't_bin_bins'
    """
    return f"{key_added}_bins"


def population_size_key(key: str = DEFAULT_KEY) -> str:
    """``adata.uns`` key written by :func:`vgfm.pp.population_size`.

    Examples
    --------
    >>> population_size_key()
    'vgfm_population_size'
    """
    return f"{key}_population_size"


def bin_time_key(time_key: str = DEFAULT_TIME_KEY) -> str:
    """Default ``adata.obs`` column written by :func:`vgfm.pp.bin_time`.

    Examples
    --------
    >>> bin_time_key("t")
    't_bin'
    """
    return f"{time_key}_bin"


# ----------------------------------------------------------------------------- the registry
#: Every field written by :mod:`vgfm`, as documented in ``docs/storage.md``: templates with
#: ``{key}`` (the prefix), ``{basis}`` (an embedding name), ``{time_key}`` and ``{key_added}``.
WRITTEN_FIELDS: dict[str, str] = {
    'obsm["{key}_velocity"]': "tl.fit, tl.velocity",
    'obs["{key}_growth"]': "tl.fit, tl.velocity",
    'layers["{key}_velocity"]': "tl.fit (opt-in), tl.gene_velocity",
    'uns["{key}"]': "tl.fit (the fit record)",
    'uns["{key}_trajectories"]': "tl.simulate",
    'obsm["{key}_velocity_{basis}"]': "tl.velocity_embedding",
    'uns["{key}_growth_genes"]': "tl.growth_genes",
    'obs["{time_key}_numeric"]': "pp.numeric_time",
    'uns["{key_added}_mapping"]': "pp.numeric_time",
    'obs["{time_key}_bin"]': "pp.bin_time",
    'uns["{key_added}_bins"]': "pp.bin_time",
    'uns["{key}_population_size"]': "pp.population_size",
}

#: Fields written by the loaders and generators of :mod:`vgfm.datasets` (fixed names: a new
#: object is returned, there is no prefix), as documented in ``docs/storage.md``.
DATASET_FIELDS: dict[str, str] = {
    'obs["time"]': "time point of each cell",
    'obs["time_index"]': "index of the time point",
    'obs["true_growth"]': "synthetic generators: true net growth rate",
    'obsm["X_latent"]': "synthetic_gene_expression: latent 2-D state",
    'obsm["X_phate"]': "dyngen: the five coordinates, for basis='phate'",
    'obsm["X_embedding"]': "mouse_hematopoiesis: the coordinates, for basis='embedding'",
    'uns["true_population_size"]': "synthetic generators: true population sizes",
    'uns["times"]': "synthetic generators: the time points",
    'uns["lift_matrix"]': "synthetic_gene_expression: latent -> gene map",
    'uns["time_bins"]': "dyngen_expression: bin edges of the simulation time",
    'uns["dataset"]': "provenance of every loader",
}

#: Entries of the fit record ``uns[key]`` (see :class:`vgfm._data._record.FitRecord`).
RECORD_ENTRIES: tuple[str, ...] = (
    "format_version",
    "package_version",
    "params",
    "dim",
    "times",
    "time_labels",
    "time_unit",
    "n_cells",
    "population_size",
    "population_size_source",
    "relative_size",
    "held_out",
    "growth_last_time",
    "growth_vs_motion",
    "history",
    "train_seconds",
    "timing",
    "model",
    "evaluation",
)

#: Named entries of ``uns[key]["params"]`` (the training options follow them).
RECORD_PARAMS: tuple[str, ...] = (
    "time_key",
    "use_rep",
    "method",
    "seed",
    "holdout_time",
    "mod",
    "time_order",
    "time_values",
)


def derived_fields(key: str, obsm_keys, uns_keys, layer_keys) -> dict[str, list[str]]:
    """Fields derived from an earlier fit under ``key`` that a refit makes stale.

    ``obsm[f"{key}_velocity_<basis>"]`` (velocity embeddings), ``uns[f"{key}_trajectories"]``,
    ``uns[f"{key}_growth_genes"]`` and the gene-space layer: they were computed from the
    previous velocity/growth and would silently disagree with the new one.

    Examples
    --------
    >>> derived_fields("vgfm", ["X_umap", "vgfm_velocity", "vgfm_velocity_umap"],
    ...                ["vgfm", "vgfm_trajectories"], ["vgfm_velocity"])
    {'obsm': ['vgfm_velocity_umap'], 'uns': ['vgfm_trajectories'], 'layers': ['vgfm_velocity']}
    """
    prefix = velocity_embedding_key(key, "")
    obsm = [k for k in obsm_keys if k.startswith(prefix) and k != velocity_key(key)]
    uns = [k for k in uns_keys if k in (trajectories_key(key), growth_genes_key(key))]
    layers = [k for k in layer_keys if k == gene_velocity_key(key)]
    return {"obsm": obsm, "uns": uns, "layers": layers}


def trajectory_embedding_key(basis: str = "umap") -> str:
    """Entry of ``adata.uns[trajectories_key(key)]`` holding the states mapped on ``basis``.

    Written by :func:`vgfm.tl.trajectory_embedding`, read by :func:`vgfm.pl.trajectories`.
    """
    return basis.removeprefix("X_")


def gene_velocity_genes_key(key: str = DEFAULT_KEY) -> str:
    """``adata.var`` key (bool) of the genes with a gene-space velocity (scVelo's name)."""
    return f"{velocity_key(key)}_genes"
