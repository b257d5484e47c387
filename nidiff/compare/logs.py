"""The training log of a run (``logs/metrics.csv``): loss and images per second against the step.

A resumed run appends to the same file from its checkpoint on, so steps after that checkpoint can
appear twice; the last row written for a step is the one kept.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TrainingLog", "read_log"]

LOSS = "train/loss"
RATE = "train/images_per_s"


@dataclass(frozen=True)
class TrainingLog:
    """Logged values by training step (float64 arrays, ascending steps)."""

    steps: np.ndarray       # [N] steps with a logged loss
    loss: np.ndarray        # [N]
    rate_steps: np.ndarray  # [M] steps with a logged images/s
    rate: np.ndarray        # [M]

    def final_loss(self, window: int) -> float:
        """The mean of the last ``window`` logged losses (NaN when none was logged)."""
        return float(self.loss[-window:].mean()) if self.loss.size else math.nan

    def images_per_s(self) -> float:
        """The median of the logged training images per second: robust to the steps that also
        wrote a checkpoint or a sample grid (NaN when none was logged)."""
        return float(np.median(self.rate)) if self.rate.size else math.nan


def read_log(run_dir: Path) -> TrainingLog:
    """Read ``run_dir/logs/metrics.csv``; a missing file is an empty log."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    loss: dict[int, float] = {}
    rate: dict[int, float] = {}
    if path.is_file():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("step"):
                    continue
                step = int(float(row["step"]))
                for key, into in ((LOSS, loss), (RATE, rate)):
                    if row.get(key):
                        into[step] = float(row[key])

    def arrays(values: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
        steps = np.array(sorted(values), dtype=np.float64)
        return steps, np.array([values[int(s)] for s in steps], dtype=np.float64)

    steps, losses = arrays(loss)
    rate_steps, rates = arrays(rate)
    return TrainingLog(steps, losses, rate_steps, rates)
