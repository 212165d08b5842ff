"""Curves over time or training steps: population size and training history."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgfm._anndata_utils import get_fit_info, resolve_container
from vgfm._constants import DEFAULT_KEY, trajectories_key
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
    adata: Any,
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
    info = get_fit_info(data, key)
    for field in ("times", "relative_size"):
        if field not in info:
            raise KeyError(
                f"adata.uns[{key!r}][{field!r}] is missing; re-run `vgfm.tl.fit` to record it."
            )
    times = _as_array(info["times"])
    r = _as_array(info["relative_size"])
    labels = info.get("time_labels")
    labels = [f"{t:g}" for t in times] if labels is None else [str(s) for s in labels]
    held = _as_array(info.get("held_out", np.zeros(times.size, dtype=bool)), dtype=bool)
    if held.size != times.size:
        held = np.zeros(times.size, dtype=bool)
    time_key = info["params"].get("time_key") or "time"

    fig, ax_ = new_axes(ax, figsize=(5.0, 3.8))
    traj = data.uns.get(trajectories_key(key))
    if isinstance(traj, dict) and "log_mass" in traj and "t" in traj:
        t_sim = _as_array(traj["t"])
        lm = np.asarray(traj["log_mass"], dtype=np.float64)
        with np.errstate(over="ignore"):
            pred = np.nanmean(np.exp(lm), axis=1)
        start = np.flatnonzero(np.isclose(times, t_sim[0]))
        if start.size:
            pred = pred * r[start[0]]
        else:
            logger.warning(
                "trajectories start at t=%g, not an observed time point; plotting the mean "
                "particle mass relative to the start.",
                t_sim[0],
            )
        ax_.plot(t_sim, pred, color=_PRED_COLOR, lw=1.8, label="predicted (simulation)", zorder=2)
    evaluation = info.get("evaluation")
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


def history(
    adata: Any,
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

    Stage 1 (flow matching) and stage 2 (distribution fitting) losses are drawn one after the
    other on a shared step axis (log scale when all losses are positive; a dotted line marks
    the change of stage); the validation W1 of stage 2 is drawn on a twin y axis on the right.
    Raw values are faint; a trailing moving average is drawn on top.

    Parameters
    ----------
    adata
        AnnData (or MuData) after :func:`vgfm.tl.fit`.
    key
        The ``key_added`` used in :func:`vgfm.tl.fit`.
    smooth_window
        Moving-average window; ``None`` uses ``max(1, n // 50)`` per curve.
    title
        Axes title.
    mod
        For a MuData: modality holding the fields; ``None`` uses the joint object.
    ax, show, save
        As in :func:`vgfm.pl.growth` (``save=True`` writes ``vgfm_history.png``).

    Returns
    -------
    The loss :class:`~matplotlib.axes.Axes` (the W1 twin axis is in ``ax.figure.axes``)
    unless the figure was shown.

    Examples
    --------
    >>> import vgfm
    >>> vgfm.tl.fit(adata, time_key="day")  # doctest: +SKIP
    >>> ax = vgfm.pl.history(adata, show=False)  # doctest: +SKIP
    """
    data = resolve_container(adata, mod)
    info = get_fit_info(data, key)
    hist = info.get("history")
    if not isinstance(hist, dict):
        raise KeyError(f"adata.uns[{key!r}]['history'] is missing; it is written by `vgfm.tl.fit`.")
    s1 = _as_array(hist.get("stage1_loss"))
    s2 = _as_array(hist.get("stage2_loss"))
    w1 = _as_array(hist.get("val_w1"))
    fig, ax_ = new_axes(ax, figsize=(5.5, 3.8))
    n1, n2 = s1.size, s2.size
    handles = []

    def _curve(axis: Axes, x: np.ndarray, y: np.ndarray, color: str, label: str) -> None:
        w = smooth_window if smooth_window is not None else max(1, y.size // 50)
        if w > 1:
            axis.plot(x, y, color=color, alpha=0.25, lw=0.8)
        (line,) = axis.plot(x, _moving_average(y, w), color=color, lw=1.6, label=label)
        handles.append(line)

    if n1:
        _curve(ax_, np.arange(1, n1 + 1), s1, "#1f77b4", "stage 1 loss")
    if n2:
        _curve(ax_, np.arange(n1 + 1, n1 + n2 + 1), s2, "#ff7f0e", "stage 2 loss")
    if n1 and n2:
        ax_.axvline(n1 + 0.5, color="0.5", ls=":", lw=1)
    losses = np.concatenate([s1, s2])
    finite = losses[np.isfinite(losses)]
    if finite.size and (finite > 0).all():
        ax_.set_yscale("log")
    if w1.size:
        ax2 = ax_.twinx()
        if n2 and w1.size == n2:
            xw = np.arange(n1 + 1, n1 + n2 + 1)
        elif n2:
            xw = np.linspace(n1 + 1, n1 + n2, w1.size)
        else:
            xw = np.arange(n1 + 1, n1 + w1.size + 1)
        (line,) = ax2.plot(
            xw,
            w1,
            color="#2ca02c",
            lw=1.4,
            marker="." if w1.size < 60 else None,
            label="validation W1",
        )
        handles.append(line)
        ax2.set_ylabel("validation W1", color="#2ca02c")
        ax2.tick_params(axis="y", colors="#2ca02c")
    if not (n1 or n2 or w1.size):
        ax_.text(
            0.5,
            0.5,
            "no training history recorded",
            ha="center",
            va="center",
            transform=ax_.transAxes,
            color="0.4",
        )
    ax_.set_xlabel("training step" + (" (stage 1 | stage 2)" if n1 and n2 else ""))
    ax_.set_ylabel("loss")
    ax_.set_title(title or f"{method_label(data, key)} training history")
    if handles:
        ax_.legend(
            handles=handles,
            fontsize="small",
            frameon=False,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncol=len(handles),
        )
    return finish(ax_, ax_given=ax is not None, show=show, save=save, name="history")
