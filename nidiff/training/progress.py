"""The training progress bar: optimizer steps done of ``trainer.max_steps``, not batches of an epoch.

One line, refreshed about once a second (``progress_refresh`` seconds): steps done and to do, the
last logged loss, images per second over the last refresh interval and the time left at that rate,
e.g. ``train  412/1000 [01:31<02:10, 4.5 step/s] loss=0.0431 img/s=144``. A run with a wall-clock
budget (``trainer.max_time``) that will end before ``max_steps`` shows the steps done and the time
left of the budget instead. A resumed run starts the bar at its checkpoint's step. Only the process
of rank 0 draws it.
"""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.callbacks import Timer
from tqdm import tqdm

__all__ = ["StepProgress"]


class StepProgress(L.Callback):
    """A tqdm bar over optimizer steps (Lightning's own bar counts batches per epoch)."""

    def __init__(self, refresh_seconds: float = 1.0) -> None:
        if not refresh_seconds > 0:
            raise ValueError(f"progress_refresh must be a number of seconds > 0, got {refresh_seconds!r}")
        self.refresh_seconds = float(refresh_seconds)
        self._bar: tqdm | None = None
        self._timer: Timer | None = None
        self._mark: tuple[float, int] = (0.0, 0)  # (time, images) at the last refresh

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        total = None if self._timer is not None and trainer.max_steps > 10**7 else trainer.max_steps
        self._bar = tqdm(total=total, initial=trainer.global_step, desc="train", unit="step",
                         dynamic_ncols=True, mininterval=self.refresh_seconds, smoothing=0.1)
        self._mark = (time.perf_counter(), 0)
        self._images = 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx) -> None:
        bar = self._bar
        if bar is None:
            return
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        self._images += int(x.shape[0]) * trainer.world_size
        now = time.perf_counter()
        if now - self._mark[0] >= self.refresh_seconds or trainer.global_step >= trainer.max_steps:
            loss = trainer.callback_metrics.get("train/loss")
            rate = (self._images - self._mark[1]) / max(now - self._mark[0], 1e-9)
            postfix = {"img/s": f"{rate:.0f}"}
            if self._timer is not None and bar.total is None:
                left = self._timer.time_remaining()
                if left is not None:
                    postfix["budget left"] = time.strftime("%H:%M:%S", time.gmtime(max(left, 0.0)))
            if loss is not None:
                postfix = {"loss": f"{float(loss):.4f}", **postfix}
            bar.set_postfix(postfix, refresh=False)
            self._mark = (now, self._images)
        bar.update(trainer.global_step - bar.n)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.update(trainer.global_step - self._bar.n)
            self._bar.close()
            self._bar = None

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self.on_train_end(trainer, module)
