"""Logging follows scanpy's verbosity; progress bars are quiet when stderr is not a terminal."""

from __future__ import annotations

import io
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import vgfm
import vgfm._model
import vgfm.tl._fit
from vgfm._data._options import resolve_progress


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def vgfm_logger():
    logger = logging.getLogger("vgfm")
    level, verbosity = logger.level, sc.settings.verbosity
    logger.setLevel(vgfm._logging.FOLLOW_SCANPY)
    handler = _Collect()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)
    logger.setLevel(level)
    sc.settings.verbosity = verbosity


def test_logging_follows_scanpy_verbosity(vgfm_logger):
    logger, handler = vgfm_logger
    sc.settings.verbosity = "warning"
    logger.info("hidden")
    logger.warning("shown")
    sc.settings.verbosity = "info"
    logger.info("now shown")
    sc.settings.verbosity = "error"
    logger.warning("hidden too")
    assert [r.getMessage() for r in handler.records] == ["shown", "now shown"]


def test_explicit_logger_level_overrides_scanpy(vgfm_logger):
    logger, handler = vgfm_logger
    sc.settings.verbosity = "error"
    logger.setLevel(logging.INFO)
    logger.info("shown")
    assert [r.getMessage() for r in handler.records] == ["shown"]


def test_fallback_handler_writes_to_scanpy_logfile(vgfm_logger, monkeypatch):
    logger, _ = vgfm_logger
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    stream = io.StringIO()
    old = sc.settings.logfile
    sc.settings.logfile = stream
    try:
        sc.settings.verbosity = "info"
        logger.info("to scanpy's log file")
    finally:
        sc.settings.logfile = old
    assert "to scanpy's log file" in stream.getvalue()


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_none_is_quiet_without_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert resolve_progress(None) is False
    monkeypatch.setattr("sys.stderr", _Tty())
    assert resolve_progress(None) is True
    assert resolve_progress(False) is False
    with pytest.raises(TypeError, match="progress"):
        resolve_progress("yes")


def test_fit_progress_default_reaches_training_quiet(monkeypatch):
    seen = {}
    original = vgfm._model.train

    def spy(*args, **kwargs):
        seen["progress"] = kwargs["progress"]
        return original(*args, **kwargs)

    monkeypatch.setattr(vgfm._model, "train", spy)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    rng = np.random.default_rng(0)
    t = np.repeat([0.0, 1.0], 20)
    a = ad.AnnData(rng.normal(size=(40, 2)).astype(np.float32),
                   obs=pd.DataFrame({"t": t}, index=[f"c{i}" for i in range(40)]))
    vgfm.tl.fit(a, "t", use_rep="X", population_size=[1, 1], stage1_steps=2, stage2_steps=0,
                hidden=8)
    assert seen["progress"] is False
