"""Training callbacks: sample grids from the EMA weights, and RNG state in checkpoints."""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
import numpy as np
import torch

from nidiff.images import make_grid, save_png
from nidiff.sampling import SamplingPlan, draw

__all__ = ["StepCheckpoint", "SampleGrid", "RNGState", "sample_grid"]


@torch.no_grad()
def sample_grid(module, n: int, plan: SamplingPlan, seed: int, path: Path, scale: int = 0) -> Path:
    """Sample ``n`` images with the EMA network from a fixed noise seed and save them as one PNG."""
    device = module.device
    g = torch.Generator(device=device).manual_seed(seed)
    net = module.ema.module
    was_training = net.training
    net.eval()
    x = draw(module.diffusion, net, plan, n, generator=g, device=device)
    net.train(was_training)
    return save_png(make_grid(x, scale=scale), path)


class SampleGrid(L.Callback):
    """Every ``every_n_steps`` optimizer steps (and at the end) write ``samples/step_XXXXXXX.png``.

    The grid follows the ``sample`` settings of the run: ``n`` images drawn with ``sampler``
    (and its ``options``) on ``steps`` steps of ``grid`` with ``x_clip``, from the noise of ``seed``,
    each tile upscaled ``scale`` times (0: enough for a grid at least 512 pixels wide).
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int = 5000, n: int = 64, steps: int = 250, seed: int = 0,
                 x_clip: str | None = None, sampler: str = "ancestral", grid: str = "uniform",
                 options: dict | None = None, scale: int = 0):
        if every_n_steps < 1 or n < 1:
            raise ValueError("sample grid: every_n_steps and n must be positive")
        self.dirpath = Path(dirpath)
        self.every_n_steps, self.n, self.seed, self.scale = every_n_steps, n, seed, scale
        self.plan = SamplingPlan(sampler, steps, grid, options or {}, x_clip)
        self.last_path: Path | None = None
        self._last_step: int | None = None

    def _write(self, trainer: L.Trainer, module) -> None:
        if trainer.global_step == self._last_step:  # a skipped (non-finite) step left the step as it was
            return
        self._last_step = trainer.global_step
        if trainer.is_global_zero:
            path = self.dirpath / f"step_{trainer.global_step:07d}.png"
            self.last_path = sample_grid(module, self.n, self.plan, self.seed, path, self.scale)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._write(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            self._write(trainer, module)


class StepCheckpoint(ModelCheckpoint):
    """``step_XXXXXXX.ckpt`` and ``last.ckpt`` every ``every_n_steps`` and at the last step, all from inside a step.

    A checkpoint written after ``fit`` returns records a finished epoch, and a run resumed from it
    would start the next epoch and see other batches than a run that had not stopped. So the last
    step (``trainer.max_steps``, when not a multiple of ``every_n_steps``, or the step at which
    the trainer was told to stop, by ``trainer.max_time`` for instance) is written from inside the
    step like the others, and nothing is written at the end of training (Lightning's
    ``ModelCheckpoint`` would write ``last.ckpt`` again there). Lightning runs checkpoint callbacks
    after the others, so its timer has set ``should_stop`` by the time this one looks.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int) -> None:
        super().__init__(dirpath=dirpath, filename="step_{step:07d}", auto_insert_metric_name=False,
                         every_n_train_steps=every_n_steps, save_top_k=-1, save_last=True)
        self.every_n_steps = every_n_steps
        self._final_step: int | None = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        step = trainer.global_step
        last = step == trainer.max_steps or trainer.should_stop
        if last and step % self.every_n_steps and step != self._final_step:
            self._final_step = step
            trainer.save_checkpoint(Path(self.dirpath) / f"step_{step:07d}.ckpt")
            trainer.save_checkpoint(Path(self.dirpath) / "last.ckpt")

    def on_train_end(self, trainer, module) -> None:
        """Nothing: the last step was checkpointed from inside it."""


class RNGState(L.Callback):
    """Per-process random streams, saved in every checkpoint and restored on resume.

    Under DDP each process reseeds torch with ``seed + rank`` when training starts, so that the
    processes draw different ``t`` and noise for their shards (the data order is the sampler's,
    not drawn from these). A checkpoint holds the Python, NumPy, torch CPU and current-CUDA-device
    states of every process, gathered to the one file rank 0 writes; each process restores its own.
    Stored as tensors and plain numbers only, so checkpoints load with ``weights_only=True``.
    """

    def __init__(self) -> None:
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, module, stage: str) -> None:
        self._trainer = trainer
        if trainer.world_size > 1:  # a checkpoint being resumed sets the states again after this
            torch.manual_seed(torch.initial_seed() + trainer.global_rank)

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """``[world_size, ...]``: every process's ``tensor`` (one process: ``tensor[None]``)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1:
            return tensor[None]
        device = trainer.strategy.root_device
        return trainer.strategy.all_gather(tensor.to(device)).cpu()

    def state_dict(self) -> dict:
        version, words, gauss = random.getstate()
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "torch": torch.get_rng_state(),
            "torch_per_rank": self._gather(torch.get_rng_state()),
        }
        if torch.cuda.is_available():
            state["cuda_per_rank"] = self._gather(torch.cuda.get_rng_state())
        return state

    def load_state_dict(self, state: dict) -> None:
        py, npy = state["python"], state["numpy"]
        random.setstate((py["version"], tuple(py["words"].tolist()), py["gauss"]))
        np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                             npy["has_gauss"], npy["cached"]))
        rank = self._trainer.global_rank if self._trainer is not None else 0
        per_rank = state.get("torch_per_rank")
        own = per_rank[rank] if per_rank is not None and rank < len(per_rank) else state["torch"]
        torch.set_rng_state(own.to(torch.uint8).contiguous().clone())  # a row view is not a generator state
        cuda = state.get("cuda_per_rank")
        if cuda is not None and rank < len(cuda) and torch.cuda.is_available():
            torch.cuda.set_rng_state(cuda[rank].to(torch.uint8).contiguous().clone())
