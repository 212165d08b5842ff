"""AnnData / MuData containers: which object holds the fields to read or write."""

from __future__ import annotations

from anndata import AnnData
from mudata import MuData

__all__ = ["Data", "copy_target", "is_mudata", "resolve_container"]

#: What every public function accepts as its first argument.
Data = AnnData | MuData


def is_mudata(data: object) -> bool:
    """Whether ``data`` is a :class:`~mudata.MuData`.

    Examples
    --------
    >>> import anndata, numpy as np
    >>> is_mudata(anndata.AnnData(np.zeros((1, 1))))
    False
    """
    return isinstance(data, MuData)


def resolve_container(data: Data, mod: str | None = None) -> AnnData:
    """Return the object whose ``obs`` / ``obsm`` / ``uns`` hold the fields to read or write.

    Parameters
    ----------
    data
        An :class:`~anndata.AnnData` or a :class:`~mudata.MuData`.
    mod
        ``None`` (default): ``data`` itself. For a MuData this is the joint object, whose
        ``obs``, ``obsm``, ``obsp`` and ``uns`` are used (e.g. a joint ``X_umap``
        computed with ``muon``). A modality name (``"rna"``): ``data.mod[mod]``.

    Returns
    -------
    AnnData-like
        ``data`` or ``data.mod[mod]`` (not a copy: writing to it writes to ``data``).

    Raises
    ------
    KeyError
        If ``mod`` is not a modality of ``data``.
    TypeError
        If ``mod`` is given but ``data`` is not a MuData.

    Examples
    --------
    >>> import numpy as np, anndata, mudata
    >>> mdata = mudata.MuData({"rna": anndata.AnnData(np.ones((3, 2)))})
    >>> resolve_container(mdata, "rna") is mdata.mod["rna"]
    True
    """
    if mod is None:
        return data
    if not is_mudata(data):
        raise TypeError(
            f"mod={mod!r} selects a modality of a MuData, but a {type(data).__name__} was given; "
            "drop `mod=` for an AnnData."
        )
    if mod not in data.mod:
        raise KeyError(
            f"mod={mod!r} is not a modality of this MuData; available modalities: "
            f"{list(data.mod.keys())}."
        )
    return data.mod[mod]


def copy_target(data: Data, copy: bool, mod: str | None) -> tuple[Data, AnnData]:
    """``(object to hand back, container to write into)``; a copy of ``data`` when ``copy``.

    Examples
    --------
    >>> import anndata, numpy as np
    >>> a = anndata.AnnData(np.zeros((2, 1)))
    >>> out, target = copy_target(a, True, None)
    >>> out is a, target is out
    (False, True)
    """
    if copy:
        data = data.copy()
    return data, resolve_container(data, mod)
