"""Plots of VGFM results: growth and velocity on embeddings, trajectories, population size.

Every function reads fields written by :mod:`vgfm.tl`, never modifies its input and returns
the :class:`~matplotlib.axes.Axes` when ``show=False``.
"""

from __future__ import annotations

from vgfm.pl._curves import history, mass
from vgfm.pl._embedding_plots import growth, trajectories, velocity
from vgfm.pl._genes import growth_genes

__all__ = ["growth", "velocity", "trajectories", "mass", "history", "growth_genes"]
