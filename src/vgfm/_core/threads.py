"""CPU thread control for torch work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n_threads)``; restore the old value afterwards.

    ``None`` leaves torch's setting alone.  VGFM's networks are small, so intra-op threads
    buy little, while two OpenMP pools (torch's and the one numba leaves behind after
    ``sc.pp.neighbors``/``sc.tl.umap``) competing for a few cores can slow small torch
    operations down by one to two orders of magnitude; one thread is the robust default.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if n_threads is None:
        yield
        return
    if int(n_threads) < 1:
        raise ValueError(f"n_threads must be >= 1 or None, got {n_threads!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
