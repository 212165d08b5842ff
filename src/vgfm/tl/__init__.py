"""Tools: fit VGFM on AnnData/MuData and use the trained model."""

from vgfm.tl._diagnostics import coupling_diagnostic
from vgfm.tl._embedding import gene_velocity, growth_genes, velocity_embedding
from vgfm.tl._fit import evaluate, fit, simulate, velocity
from vgfm.tl._mapping import trajectory_embedding
from vgfm.tl._relaxation import choose_reg_m

__all__ = [
    "choose_reg_m",
    "coupling_diagnostic",
    "evaluate",
    "fit",
    "gene_velocity",
    "growth_genes",
    "simulate",
    "trajectory_embedding",
    "velocity",
    "velocity_embedding",
]
