"""Curves over time or training steps: population size and training history."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from vgfm._data._containers import Data, resolve_container
from vgfm._data._keys import DEFAULT_KEY, trajectories_key
from vgfm._data._record import read_record
from vgfm._data._times import at_time
from vgfm.pl._utils import finish, method_label, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

logger = logging.getLogger("vgfm")

__all__ = ["mass", "history"]

_OBS_COLOR = "#1f77b4"
_PRED_COLOR = "#d62728"


def _as_array(value: Any, dtype: Any = np.float64) -> np.ndarray:
    return np.atleast_1d(np.asarray(value, dtype=dtype)) if value is not None else np.array([])


def mass(
    adata: Data,
    *,
    key: str = DEFAULT_KEY,
    logy: bool = False,
    title: str | None = None,
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> Axes | None:
    """Predicted versus observed relative population size over time.

    - Observed: ``r_k = uns[key]["relative_size"]`` at the observed times (dots; hollow dots
      labelled "held out" for time points held out of training).
    - Predicted (line): when ``uns["<key>_trajectories"]`` exists, the mean over particles of
      ``exp(log_mass)`` at every simulated time, multiplied by ``r_k`` of the start time when
      the simulation starts at an observed time point (particles start with mass 1).
    - Predicted at observed times (crosses): ``uns[key]["evaluation"]["predicted_size"]`` after
      :func:`vgfm.tl.evaluate`.

    The x axis is the user's time, ticked with ``uns[key]["time_labels"]``.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.fit`.
    key
        The ``key_added`` used in :func:`vgfm.tl.fit`.
    logy
        Logarithmic y axis.
    title
        Axes title; a default naming the method is used when ``None``.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax, show, save
        As in :func:`vgfm.pl.growth` (``save=True`` writes ``vgfm_mass.png``).

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` unless the figure was shown. Observed points carry the
    labels ``"observed"`` and ``"observed (held out)"``.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.simulate(adata); vgfm.tl.evaluate(adata)  # doctest: +SKIP
    >>> ax = vgfm.pl.mass(adata, show=False)  # doctest: +SKIP
    """
    data = resolve_container(adata, mod)
    record = read_record(data, key)
    try:
        times = _as_array(record.times)
        r = _as_array(record.relative_size)
    except KeyError as err:
        raise KeyError(
            f"adata.uns[{key!r}] records no time points or sizes ({err}); re-run `vgfm.tl.fit` "
            "to record them."
        ) from err
    labels = [str(s) for s in record.time_labels]
    held = _as_array(
        record.held_out if record.held_out is not None else np.zeros(times.size, dtype=bool),
        dtype=bool,
    )
    if held.size != times.size:
        held = np.zeros(times.size, dtype=bool)
    time_key = record.time_key or "time"

    fig, ax_ = new_axes(ax, figsize=(5.0, 3.8))
    traj = data.uns.get(trajectories_key(key))
    if isinstance(traj, dict) and "log_mass" in traj and "t" in traj:
        t_sim = _as_array(traj["t"])
        lm = np.asarray(traj["log_mass"], dtype=np.float64)
        with np.errstate(over="ignore"):
            pred = np.nanmean(np.exp(lm), axis=1)
        start = np.flatnonzero(at_time(times, float(t_sim[0]), times))
        if start.size:
            pred = pred * r[start[0]]
        else:
            logger.warning(
                "trajectories start at t=%g, not an observed time point; plotting the mean "
                "particle mass relative to the start.",
                t_sim[0],
            )
        ax_.plot(t_sim, pred, color=_PRED_COLOR, lw=1.8, label="predicted (simulation)", zorder=2)
    evaluation = record.evaluation
    if isinstance(evaluation, dict) and "predicted_size" in evaluation and "time" in evaluation:
        ax_.scatter(
            _as_array(evaluation["time"]),
            _as_array(evaluation["predicted_size"]),
            marker="x",
            s=45,
            color=_PRED_COLOR,
            linewidths=1.5,
            zorder=4,
            label="predicted (evaluate)",
        )
    ax_.scatter(
        times[~held],
        r[~held],
        s=45,
        color=_OBS_COLOR,
        edgecolors=_OBS_COLOR,
        zorder=3,
        label="observed",
    )
    if held.any():
        ax_.scatter(
            times[held],
            r[held],
            s=60,
            facecolors="white",
            edgecolors=_OBS_COLOR,
            linewidths=1.8,
            zorder=3,
            label="observed (held out)",
        )
        for t_h, r_h in zip(times[held], r[held]):
            ax_.annotate(
                "held out",
                (t_h, r_h),
                textcoords="offset points",
                xytext=(0, 9),
                ha="center",
                fontsize="small",
                color=_OBS_COLOR,
            )
    if logy:
        ax_.set_yscale("log")
    ax_.set_xticks(times)
    ax_.set_xticklabels(labels)
    ax_.set_xlabel(str(time_key))
    ax_.set_ylabel("relative population size")
    ax_.set_title(title or f"{method_label(data, key)} population size")
    ax_.legend(fontsize="small", frameon=False)
    ax_.grid(alpha=0.3)
    return finish(ax_, ax_given=ax is not None, show=show, save=save, name="mass")


def _moving_average(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or y.size < window:
        return y
    kernel = np.ones(window) / window
    core = np.convolve(y, kernel, mode="valid")
    head = np.cumsum(y[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, core])


_S1_COLOR = "#1f77b4"
_S2_COLOR = "#ff7f0e"
_VAL_COLOR = "#2ca02c"


def _curve(
    axis: Axes, x: np.ndarray, y: np.ndarray, color: str, label: str, window: int | None
) -> Any:
    """Raw values faint, trailing moving average on top; returns the line for the legend."""
    w = window if window is not None else max(1, y.size // 50)
    if w > 1:
        axis.plot(x, y, color=color, alpha=0.25, lw=0.8)
    (line,) = axis.plot(x, _moving_average(y, w), color=color, lw=1.6, label=label)
    return line


def _plain_number(value: float, _pos: Any = None) -> str:
    """``0.4``, ``2``, ``10``, ``0.005``, ``2e+04``: plain numbers for log-axis ticks."""
    return f"{value:.3g}"


def _log_if_positive(axis: Axes, y: np.ndarray, min_ratio: float = 1.0) -> None:
    """Log y axis when every value is positive and they span at least ``min_ratio``.

    Ticks are readable plain numbers: at 1, 2 and 5 times powers of ten when the data span at
    most two decades (else at powers of ten only), all in one format (``0.4``, ``1``, ``10``),
    with unlabelled minor ticks.
    """
    finite = y[np.isfinite(y)]
    if finite.size and (finite > 0).all() and finite.max() / finite.min() >= min_ratio:
        axis.set_yscale("log")
        decades = np.log10(finite.max() / finite.min())
        subs = (1.0, 2.0, 5.0) if decades <= 2.0 else (1.0,)
        axis.yaxis.set_major_locator(LogLocator(base=10.0, subs=subs))
        axis.yaxis.set_major_formatter(FuncFormatter(_plain_number))
        axis.yaxis.set_minor_locator(LogLocator(base=10.0, subs=np.arange(2, 10) * 1.0))
        axis.yaxis.set_minor_formatter(NullFormatter())


def _no_data(axis: Axes, text: str) -> None:
    axis.text(0.5, 0.5, text, ha="center", va="center", transform=axis.transAxes, color="0.4")


def _selected_index(score: np.ndarray) -> int | None:
    """Index of the selected checkpoint: first minimum of the finite validation scores."""
    finite = np.isfinite(score)
    if not finite.any():
        return None
    return int(np.flatnonzero(finite)[np.argmin(score[finite])])


STILL_IMPROVING = (
    "selected checkpoint = last stage-2 step: training was still improving;\n"
    "try a larger stage2_steps= in vgfm.tl.fit"
)


def _still_improving(score: np.ndarray, best: int) -> bool:
    """The selected checkpoint is the last scored one (and there was more than one)."""
    return score.size > 1 and best == score.size - 1


def _stage1_panel(axis: Axes, s1: np.ndarray, window: int | None) -> None:
    if s1.size:
        _curve(axis, np.arange(1, s1.size + 1), s1, _S1_COLOR, "stage 1 loss", window)
        _log_if_positive(axis, s1)
    else:
        _no_data(axis, "no stage-1 training history recorded")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    axis.set_xlabel("stage 1 step")
    axis.set_ylabel("stage 1 loss")
    axis.grid(alpha=0.3)


def _stage2_panel(
    axis: Axes, s2: np.ndarray, score: np.ndarray, score_step: np.ndarray, window: int | None
) -> None:
    handles = []
    if s2.size:
        handles.append(
            _curve(axis, np.arange(1, s2.size + 1), s2, _S2_COLOR, "stage 2 loss", window)
        )
        _log_if_positive(axis, s2, min_ratio=20.0)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    axis.set_xlabel("stage 2 step")
    axis.set_ylabel("stage 2 loss", color=_S2_COLOR if s2.size else "black")
    axis.grid(alpha=0.3)
    if score.size:
        twin = axis.twinx()
        (line,) = twin.plot(
            score_step,
            score,
            color=_VAL_COLOR,
            lw=1.4,
            marker="o" if score.size <= 60 else None,
            ms=3.5,
            label="validation score",
        )
        handles.append(line)
        best = _selected_index(score)
        if best is not None:
            (star,) = twin.plot(
                [score_step[best]],
                [score[best]],
                ls="none",
                marker="*",
                ms=15,
                markerfacecolor="gold",
                markeredgecolor="black",
                markeredgewidth=0.8,
                zorder=5,
                clip_on=False,
                label="selected checkpoint",
            )
            handles.append(star)
            if _still_improving(score, best):
                axis.text(
                    0.5,
                    -0.30,
                    STILL_IMPROVING,
                    transform=axis.transAxes,
                    ha="center",
                    va="top",
                    fontsize="small",
                    color="#b2182b",
                    bbox={"facecolor": "white", "edgecolor": "#b2182b", "alpha": 0.85},
                    zorder=6,
                )
                logger.warning(
                    "pl.history: the selected checkpoint is the last stage-2 step: %s",
                    STILL_IMPROVING.replace("\n", " "),
                )
        twin.set_ylabel("validation score (lower is better)", color=_VAL_COLOR)
        twin.tick_params(axis="y", colors=_VAL_COLOR)
        if s2.size:
            axis.tick_params(axis="y", colors=_S2_COLOR)
    if not (s2.size or score.size):
        _no_data(axis, "no stage-2 training history recorded")
    if handles:
        axis.legend(
            handles=handles,
            fontsize="small",
            frameon=False,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.18),
            ncol=len(handles),
        )


def history(
    adata: Data,
    *,
    key: str = DEFAULT_KEY,
    smooth_window: int | None = None,
    title: str | None = None,
    mod: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | bool | None = None,
) -> Axes | None:
    """Training curves from ``uns[key]["history"]``.

    Without ``ax`` a figure with two panels side by side is drawn:

    - left, stage 1 (flow matching): the loss per step ``history["stage1_loss"]``, log y axis
      when all losses are positive;
    - right, stage 2 (distribution fitting): the loss per step ``history["stage2_loss"]`` and,
      on a twin y axis, the checkpoint score ``history["val_score"]`` at the stage-2 steps
      ``history["val_step"]`` (step 0 = end of stage 1). The score is the energy distance
      between the rollout and the observed cells of every later snapshot plus the relative
      error of the population size (lower is better); the checkpoint kept by
      :func:`vgfm.tl.fit` (the first minimum of the score) is marked with a star labelled
      ``"selected checkpoint"``. When that is the last stage-2 step, training was still
      improving: the panel says so, naming the option
      (``stage2_steps=`` of :func:`vgfm.tl.fit`), and a warning is logged.

    Log axes are ticked with plain numbers (``0.4``, ``1``, ``10``).

    Raw losses are faint; a trailing moving average is drawn on top.

    With ``ax``, only one panel is drawn into it: the stage-2 panel when there is stage-2 loss
    history, else the stage-1 panel.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.fit`.
    key
        The ``key_added`` used in :func:`vgfm.tl.fit`.
    smooth_window
        Moving-average window; ``None`` uses ``max(1, n // 50)`` per curve.
    title
        Figure title (axes title when ``ax`` is given); a default naming the method is used
        when ``None``.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax, show, save
        As in :func:`vgfm.pl.growth` (``save=True`` writes ``vgfm_history.png``).

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` of the last panel drawn (the stage-2 loss axes of the
    two-panel figure, or ``ax`` when given) unless the figure was shown. ``ax.figure.axes``
    holds all panels, including the twin axes of the validation score.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.fit(adata, time_key="day")  # doctest: +SKIP
    >>> ax = vgfm.pl.history(adata, show=False)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    data = resolve_container(adata, mod)
    hist = read_record(data, key).history
    if not hist:
        raise KeyError(f"adata.uns[{key!r}]['history'] is missing; it is written by `vgfm.tl.fit`.")
    s1 = _as_array(hist.get("stage1_loss"))
    s2 = _as_array(hist.get("stage2_loss"))
    score = _as_array(hist.get("val_score"))
    score_step = _as_array(hist.get("val_step"))
    if score_step.size != score.size:
        logger.warning(
            "history['val_step'] does not match history['val_score']; spreading the scores "
            "evenly over the stage-2 steps."
        )
        score_step = np.linspace(0.0, float(s2.size), score.size)
    name = method_label(data, key)

    if ax is not None:
        if s2.size:
            _stage2_panel(ax, s2, score, score_step, smooth_window)
            ax.set_title(title or f"{name} training, stage 2")
        else:
            _stage1_panel(ax, s1, smooth_window)
            ax.set_title(title or f"{name} training, stage 1")
        return finish(ax, ax_given=True, show=show, save=save, name="history")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.0), layout="constrained")
    _stage1_panel(ax1, s1, smooth_window)
    ax1.set_title("stage 1: flow matching", fontsize="medium")
    _stage2_panel(ax2, s2, score, score_step, smooth_window)
    ax2.set_title("stage 2: distribution fitting", fontsize="medium")
    fig.suptitle(title or f"{name} training history")
    return finish(ax2, ax_given=False, show=show, save=save, name="history")
