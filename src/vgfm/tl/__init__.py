"""Tools: fit VGFM on AnnData/MuData and use the trained model."""

from vgfm.tl._diagnostics import coupling_diagnostic
from vgfm.tl._embedding import gene_velocity, growth_genes, velocity_embedding
from vgfm.tl._fates import cluster_transitions, fates, fit_stochastic, simulate_stochastic
from vgfm.tl._fit import evaluate, fit, simulate, velocity
from vgfm.tl._mapping import trajectory_embedding
from vgfm.tl._relaxation import choose_reg_m
from vgfm.tl._uncertainty import ensemble

__all__ = [
    "choose_reg_m",
    "cluster_transitions",
    "fates",
    "fit_stochastic",
    "simulate_stochastic",
    "ensemble",
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
