"""The run's loggers, continued across resumes: ``logs/metrics.csv`` and ``tb/``.

Lightning's CSV logger deletes ``metrics.csv`` when it finds one. Ours keeps it: on a resume from
a checkpoint whose last logged row is ``step`` (Lightning's ``_batches_that_stepped`` when the
checkpoint was written), the rows up to ``step`` stay, the rows after it (logged by the killed
process after its last checkpoint, and about to be logged again) go, and new rows are appended.
It writes every logged row at once (``flush_logs_every_n_steps=1``). The row of the step a
checkpoint was written at is logged after that checkpoint, so the checkpoint carries it
(``pending_log``) and a resume adds it if the killed process had not. TensorBoard gets
``purge_step``, so that the steps logged again after a resume are not shown twice.
"""

from __future__ import annotations

import csv
import io
import math
import os

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from nidiff.atomic import atomic_write_text

__all__ = ["ContinuedCSVLogger", "logged_step", "run_loggers"]


def logged_step(checkpoint: dict) -> int | None:
    """The logging step of the last batch a Lightning checkpoint covers, or None if it does not say."""
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"])
    except (KeyError, TypeError):
        return None


class _ContinuedWriter(ExperimentWriter):
    """Appends to an existing ``metrics.csv``, keeping its rows with ``step <= keep_through``.

    ``keep_through=None``: a new run, no rows kept; ``math.inf``: a resume that keeps every row.
    """

    def __init__(self, log_dir: str, keep_through: float | None, pending: dict | None = None) -> None:
        self._keep_through, self._pending = keep_through, pending
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # instead of deleting the previous file
        if not os.path.isfile(self.metrics_file_path):
            return
        if self._keep_through is None:  # a new run: its directory was checked to hold no run
            os.remove(self.metrics_file_path)
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step", "") == "" or int(r["step"]) <= self._keep_through]
        if self._pending and not any(r.get("step") == str(self._keep_through) and r.get("train/loss") for r in rows):
            row = {"step": str(self._keep_through), **{k: repr(float(v)) for k, v in self._pending.items()}}
            keys += [k for k in row if k not in keys]
            rows.append(row)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_file_path, text.getvalue())
        self.metrics_keys = keys


class ContinuedCSVLogger(CSVLogger):
    """``CSVLogger(save_dir, name, version)`` that continues the file of a resumed run."""

    def __init__(self, save_dir: str | os.PathLike, name: str = "logs", version: str = "",
                 keep_through: float | None = None, pending: dict | None = None) -> None:
        super().__init__(save_dir, name=name, version=version, flush_logs_every_n_steps=1)
        self._keep_through, self._pending = keep_through, pending

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuedWriter(self.log_dir, self._keep_through, self._pending)
        return self._experiment


def run_loggers(run_dir: str | os.PathLike, resumed_from: dict | None) -> list:
    """``logs/metrics.csv`` and ``tb/`` of a run, continuing those of the checkpoint ``resumed_from``."""
    step = logged_step(resumed_from) if resumed_from is not None else None
    tb_extra = {} if step is None else {"purge_step": step + 1}
    keep = None if resumed_from is None else (math.inf if step is None else step)
    return [
        ContinuedCSVLogger(run_dir, name="logs", version="", keep_through=keep,
                           pending=None if resumed_from is None else resumed_from.get("pending_log")),
        TensorBoardLogger(run_dir, name="tb", version="", **tb_extra),
    ]
