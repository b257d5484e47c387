"""The plots of a compare, one line per configuration: training loss and measured metrics against the step.

``plots/train_loss.png``: the logged training loss (thin) and its exponential moving average
(thick) against the training step, log scale. ``plots/<metric>.png``: each curve metric measured at
every saved checkpoint, with error bars where the metric has an uncertainty. Figures use
:mod:`nidiff.viz.output`: an Agg canvas, no ``pyplot``, PNGs written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nidiff.compare.logs import TrainingLog, read_log
from nidiff.compare.options import CURVE_METRICS, ERRORS
from nidiff.compare.report import label, varying_keys
from nidiff.viz.output import new_figure, save_figure

__all__ = ["AXIS_LABELS", "curve_figure", "loss_figure", "smooth", "write_plots"]

AXIS_LABELS: dict[str, str] = {
    "test_loss": "held-out loss (eq. 25, EMA network)",
    "bits_per_dim": "bits/dim (test split)",
    "fid": "FID",
    "kid": "KID",
}


def smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction, ``[N] -> [N]``."""
    out, average = np.empty_like(values), 0.0
    for i, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out[i] = average / (1 - weight ** (i + 1))
    return out


def loss_figure(runs: list[tuple[str, TrainingLog]]) -> Figure:
    """Logged training loss against the step, one colour per configuration."""
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    for i, (name, log) in enumerate(runs):
        if not log.steps.size:
            continue
        color = f"C{i % 10}"
        ax.plot(log.steps, log.loss, color=color, alpha=0.3, linewidth=0.8)
        ax.plot(log.steps, smooth(log.loss), color=color, linewidth=2.0, label=name)
    losses = np.concatenate([log.loss for _, log in runs])
    if losses.size and losses.min() > 0 and losses.max() / losses.min() > 10:  # a long run spans decades
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="training step", ylabel="training loss (eq. 25)", title="Training loss (thick: moving average)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def curve_figure(metric: str, runs: list[tuple[str, list[dict[str, Any]]]]) -> Figure:
    """``metric`` at every measured checkpoint against the step, one line per configuration."""
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    for i, (name, curve) in enumerate(runs):
        points = [p for p in curve if p.get(metric) is not None]
        if not points:
            continue
        steps = [p["step"] for p in points]
        values = [p[metric] for p in points]
        errors = [p.get(ERRORS.get(metric, ""), 0.0) for p in points] if metric in ERRORS else None
        ax.errorbar(steps, values, yerr=errors, color=f"C{i % 10}", marker="o", capsize=3, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ylabel = AXIS_LABELS.get(metric, metric)
    ax.set(xlabel="training step", ylabel=ylabel, title=f"{ylabel} at each checkpoint")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def write_plots(directory: Path, results: list[dict[str, Any]]) -> list[Path]:
    """Write the figures of ``results`` into ``directory/plots``; returns their paths."""
    directory = Path(directory)
    if not results:
        return []
    keys = varying_keys(results)
    names = [label(r, keys) for r in results]
    paths = [save_figure(loss_figure([(n, read_log(directory / r["job"])) for n, r in zip(names, results)]),
                         directory / "plots" / "train_loss.png", overwrite=True)]
    for metric in CURVE_METRICS:
        if any(metric in p for r in results for p in r["curve"]):
            fig = curve_figure(metric, [(n, r["curve"]) for n, r in zip(names, results)])
            paths.append(save_figure(fig, directory / "plots" / f"{metric}.png", overwrite=True))
    return paths
