"""Keys, defaults and option literals shared by every layer of :mod:`vgfm`.

Everything that names a field in an AnnData object is derived here from the user's
``key_added``/``key`` so that ``pp``, ``tl``, ``pl`` and ``cli`` never hard-code a key.
"""

from __future__ import annotations

from typing import Literal

DEFAULT_KEY = "vgfm"
DEFAULT_USE_REP = "X_pca"
DEFAULT_TIME_KEY = "time"

Method = Literal["vgfm", "otcfm"]
METHODS: tuple[str, ...] = ("vgfm", "otcfm")

VelocityKind = Literal["stream", "grid", "arrows"]
VELOCITY_KINDS: tuple[str, ...] = ("stream", "grid", "arrows")

#: Dense ``use_rep="X"`` matrices above this many entries are refused rather than densified.
MAX_DENSIFY_ENTRIES = 50_000_000


def velocity_key(key: str = DEFAULT_KEY) -> str:
    """``adata.obsm`` key of the velocity in the fitted representation."""
    return f"{key}_velocity"


def growth_key(key: str = DEFAULT_KEY) -> str:
    """``adata.obs`` key of the growth rate."""
    return f"{key}_growth"


def trajectories_key(key: str = DEFAULT_KEY) -> str:
    """``adata.uns`` key of simulated trajectories."""
    return f"{key}_trajectories"


def velocity_embedding_key(key: str = DEFAULT_KEY, basis: str = "umap") -> str:
    """``adata.obsm`` key of the velocity projected on ``obsm[f"X_{basis}"]``."""
    return f"{key}_velocity_{basis}"


def gene_velocity_key(key: str = DEFAULT_KEY) -> str:
    """``adata.layers`` key of the gene-space velocity (``use_rep="X_pca"`` only)."""
    return f"{key}_velocity"


def growth_genes_key(key: str = DEFAULT_KEY) -> str:
    """``adata.uns`` key of the growth-associated gene ranking."""
    return f"{key}_growth_genes"


def basis_key(basis: str) -> str:
    """``adata.obsm`` key of an embedding, scanpy style (``"umap"`` -> ``"X_umap"``)."""
    return basis if basis.startswith("X_") else f"X_{basis}"


def trajectory_embedding_key(basis: str = "umap") -> str:
    """Entry of ``adata.uns[trajectories_key(key)]`` holding the states mapped on ``basis``."""
    return basis.removeprefix("X_")


def gene_velocity_genes_key(key: str = DEFAULT_KEY) -> str:
    """``adata.var`` key (bool) of the genes with a gene-space velocity (scVelo's name)."""
    return f"{velocity_key(key)}_genes"
