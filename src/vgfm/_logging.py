"""Logging of the ``"vgfm"`` logger, following :attr:`scanpy.settings.verbosity`.

While the ``"vgfm"`` logger has the level :data:`FOLLOW_SCANPY` (the default), a record is emitted only
when scanpy's verbosity admits its level (scanpy's default ``"warning"`` shows warnings and
errors; ``sc.settings.verbosity = "info"`` shows what every function wrote). Records propagate
to the root logger as usual; when the application configured no logging at all, they are
written to ``sc.settings.logfile`` (stderr by default), as scanpy's own messages are.
Setting a level on the logger (``logging.getLogger("vgfm").setLevel(...)``) overrides
scanpy's verbosity.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["FOLLOW_SCANPY", "install", "scanpy_level"]

_LOGGER = logging.getLogger("vgfm")
_SCANPY_DEFAULT = logging.WARNING
#: Level of the ``"vgfm"`` logger meaning "follow scanpy's verbosity" (lets every record reach
#: the filter; any other level set by the user or by pytest's ``caplog`` decides instead).
FOLLOW_SCANPY = 1


def scanpy_level() -> int:
    """Logging level matching scanpy's verbosity (``WARNING`` while scanpy is not imported).

    Examples
    --------
    >>> scanpy_level() in (10, 15, 20, 30, 40)
    True
    """
    sc = sys.modules.get("scanpy")
    settings = getattr(sc, "settings", None)
    verbosity = getattr(settings, "verbosity", None)
    level = getattr(verbosity, "level", None)
    return int(level) if isinstance(level, int) else _SCANPY_DEFAULT


class _VerbosityFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _LOGGER.level not in (FOLLOW_SCANPY, logging.NOTSET):
            return True  # an explicit level on the logger decides
        return record.levelno >= scanpy_level()


class _FallbackHandler(logging.Handler):
    """Writes to scanpy's log file only when nobody configured logging."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return  # the root logger (the application, pytest's caplog) shows it
        if any(isinstance(h, logging.StreamHandler) for h in _LOGGER.handlers):
            return  # a stream handler on the vgfm logger itself (the command line) shows it
        sc = sys.modules.get("scanpy")
        stream = getattr(getattr(sc, "settings", None), "logfile", None) or sys.stderr
        try:
            stream.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def install() -> None:
    """Attach the verbosity filter and the fallback handler (idempotent)."""
    if _LOGGER.level == logging.NOTSET:
        _LOGGER.setLevel(FOLLOW_SCANPY)
    if not any(isinstance(f, _VerbosityFilter) for f in _LOGGER.filters):
        _LOGGER.addFilter(_VerbosityFilter())
    if not any(isinstance(h, _FallbackHandler) for h in _LOGGER.handlers):
        handler = _FallbackHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        _LOGGER.addHandler(handler)
