"""Training callbacks: sample grids from the EMA weights, and RNG state in checkpoints."""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch

from nidiff.images import make_grid, save_png
from nidiff.sampling import ancestral, uniform_grid

__all__ = ["FinalCheckpoint", "SampleGrid", "RNGState", "sample_grid"]


@torch.no_grad()
def sample_grid(module, n: int, steps: int, seed: int, path: Path, x_clip: str | None = None) -> Path:
    """Sample ``n`` images with the EMA network from a fixed noise seed and save them as one PNG."""
    device = module.device
    g = torch.Generator(device=device).manual_seed(seed)
    diffusion, net = module.diffusion, module.ema.module
    z = diffusion.prior_sample(n, generator=g, device=device)
    was_training = net.training
    net.eval()
    x = ancestral(diffusion, net, z, uniform_grid(steps, device=device), generator=g, x_clip=x_clip)
    net.train(was_training)
    return save_png(make_grid(x), path)


class SampleGrid(L.Callback):
    """Every ``every_n_steps`` optimizer steps (and at the end) write ``samples/step_XXXXXXX.png``."""

    def __init__(self, dirpath: str | Path, every_n_steps: int = 5000, n: int = 64, steps: int = 250, seed: int = 0,
                 x_clip: str | None = None):
        if every_n_steps < 1 or n < 1 or steps < 1:
            raise ValueError("sample grid: every_n_steps, n and steps must be positive")
        self.dirpath = Path(dirpath)
        self.every_n_steps, self.n, self.steps, self.seed = every_n_steps, n, steps, seed
        self.x_clip = x_clip
        self.last_path: Path | None = None
        self._last_step: int | None = None

    def _write(self, trainer: L.Trainer, module) -> None:
        if trainer.global_step == self._last_step:  # a skipped (non-finite) step left the step as it was
            return
        self._last_step = trainer.global_step
        if trainer.is_global_zero:
            path = self.dirpath / f"step_{trainer.global_step:07d}.png"
            self.last_path = sample_grid(module, self.n, self.steps, self.seed, path, self.x_clip)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._write(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            self._write(trainer, module)


class FinalCheckpoint(L.Callback):
    """At the last step, when it is not a multiple of ``every_n_steps``: ``step_XXXXXXX.ckpt`` and ``last.ckpt``.

    Written from inside the step, as the periodic checkpoints are: a checkpoint written after ``fit``
    returns records a finished epoch, and a run resumed from it would start the next epoch and see
    other batches than a run that had not stopped.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int) -> None:
        self.dirpath, self.every_n_steps = Path(dirpath), every_n_steps
        self._last_step: int | None = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == trainer.max_steps and step % self.every_n_steps and step != self._last_step:
            self._last_step = step
            trainer.save_checkpoint(self.dirpath / f"step_{step:07d}.ckpt")
            trainer.save_checkpoint(self.dirpath / "last.ckpt")


class RNGState(L.Callback):
    """Save the Python, NumPy and torch (CPU and CUDA) generator states in every checkpoint.

    Stored as tensors and plain numbers only, so checkpoints load with ``weights_only=True``.
    """

    def state_dict(self) -> dict:
        version, words, gauss = random.getstate()
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        py, npy = state["python"], state["numpy"]
        random.setstate((py["version"], tuple(py["words"].tolist()), py["gauss"]))
        np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                             npy["has_gauss"], npy["cached"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
