"""The standard figures of a fitted file, shared by ``vgfm plot`` and ``vgfm demo``.

One recipe (:func:`standard_figures`) so that the command line and the demo draw the same
figures with the same options. It calls the public :mod:`vgfm.pl` functions, after deriving
with :mod:`vgfm.tl` the fields they read when those are missing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vgfm import pl, tl
from vgfm._data import keys as C
from vgfm._data import read_record, resolve_container

logger = logging.getLogger("vgfm")

__all__ = ["standard_figures", "N_TRAJECTORIES"]

#: Simulated paths drawn in the trajectory figure (a readable subset of all simulated cells).
N_TRAJECTORIES = 100


def _time_key(container: Any, key: str) -> str | None:
    """The time column of the fit, when it is still in ``obs`` (used to colour cells)."""
    time_key = read_record(container, key).time_key
    if time_key and str(time_key) in container.obs:
        return str(time_key)
    return None


def standard_figures(
    adata: Any,
    output_dir: str | Path,
    *,
    key: str = C.DEFAULT_KEY,
    basis: str | None = None,
    n_paths: int = N_TRAJECTORIES,
    seed: int = 0,
    mod: str | None = None,
) -> dict[str, Path]:
    """Write the standard figures of a fitted AnnData/MuData as PNG files.

    ``growth_<basis>.png`` (:func:`vgfm.pl.growth`, its default colour limit),
    ``velocity_<basis>.png`` (:func:`vgfm.pl.velocity`) and, after :func:`vgfm.tl.simulate`,
    ``trajectories_<basis>.png`` (:func:`vgfm.pl.trajectories`, ``n_paths`` paths) when the
    embedding exists; ``mass.png`` (:func:`vgfm.pl.mass`) and ``history.png``
    (:func:`vgfm.pl.history`) always. Cells are coloured by the fit's time column. A missing
    velocity projection ``obsm["<key>_velocity_<basis>"]`` is computed first with
    :func:`vgfm.tl.velocity_embedding` (written to ``adata``).

    Parameters
    ----------
    adata
        Data after :func:`vgfm.tl.fit` (and optionally :func:`vgfm.tl.simulate`).
    output_dir
        Folder receiving the PNG files (created if needed; files of the same name are
        replaced).
    key
        The ``key_added`` of the fit.
    basis
        Embedding (``obsm["X_<basis>"]``) of the growth, velocity and trajectory figures.
        ``None``: ``"umap"``, and those figures are skipped with a WARNING when
        ``obsm["X_umap"]`` is missing; a named basis that is missing raises.
    n_paths
        Simulated paths drawn in the trajectory figure.
    seed
        Seed of the choice of the drawn paths.
    mod
        For a MuData: the modality holding the fields.

    Returns
    -------
    dict
        Figure name (``"growth"``, ``"velocity"``, ``"trajectories"``, ``"mass"``,
        ``"history"``) → path of the PNG written.

    Raises
    ------
    KeyError
        If ``basis`` is given and ``obsm["X_<basis>"]`` is missing, or the fit is missing.

    Examples
    --------
    >>> from vgfm._figures import standard_figures
    >>> paths = standard_figures(adata, "figures/")  # doctest: +SKIP
    >>> sorted(paths)                                # doctest: +SKIP
    ['growth', 'history', 'mass', 'trajectories', 'velocity']
    """
    import matplotlib.pyplot as plt

    container = resolve_container(adata, mod)
    color = _time_key(container, key)  # raises KeyError, naming vgfm.tl.fit, without a fit
    name = (basis or "umap").removeprefix("X_")
    emb_key = C.basis_key(name)
    has_basis = emb_key in container.obsm
    if basis is not None and not has_basis:
        raise KeyError(f"adata.obsm[{emb_key!r}] (the basis of the figures) is missing; "
                       f"available obsm keys: {list(container.obsm.keys())}")
    outdir = Path(output_dir)
    outdir.mkdir(parents=True, exist_ok=True)
    common: dict[str, Any] = {"key": key, "mod": mod, "show": False}
    jobs: list[tuple[str, str, Any, dict[str, Any]]] = []
    if has_basis:
        # plots only draw: derive the velocity projection they read when it is missing (in
        # memory; the caller decides whether the data is written back)
        if C.velocity_embedding_key(key, name) not in container.obsm:
            tl.velocity_embedding(adata, basis=name, key=key, mod=mod)
        jobs += [("growth", f"growth_{name}.png", pl.growth, {"basis": name}),
                 ("velocity", f"velocity_{name}.png", pl.velocity,
                  {"basis": name, "color": color})]
        traj = container.uns.get(C.trajectories_key(key))
        if isinstance(traj, dict) and C.trajectory_embedding_key(name) not in traj:
            tl.trajectory_embedding(adata, basis=name, key=key, mod=mod)
        if C.trajectories_key(key) in container.uns:
            jobs.append(("trajectories", f"trajectories_{name}.png", pl.trajectories,
                         {"basis": name, "color": color, "n_paths": n_paths, "seed": seed}))
        else:
            logger.info("no uns[%r]: skipping the trajectory figure (run vgfm.tl.simulate or "
                        "`vgfm simulate` first)", C.trajectories_key(key))
    else:
        logger.warning("obsm[%r] is missing: skipping the growth, velocity and trajectory "
                       "figures (compute a UMAP, or name another basis)", emb_key)
    jobs += [("mass", "mass.png", pl.mass, {}), ("history", "history.png", pl.history, {})]
    written: dict[str, Path] = {}
    for label, filename, plot, kwargs in jobs:
        path = outdir / filename
        ax = plot(adata, save=path, **common, **kwargs)
        plt.close(ax.figure)
        written[label] = path
    return written
