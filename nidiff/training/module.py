"""The LightningModule: eq. 25 through the engine, Adam with warm-up, EMA of the weights.

| paper / recipe                              | code                               |
| ------------------------------------------- | ---------------------------------- |
| algorithm 2, eq. 25 (epsilon loss)          | ``training_step``                  |
| Adam, learning rate (table 5 / section 6)   | ``configure_optimizers``           |
| EMA decay 0.9999                            | ``self.ema`` (sampling, evaluation)|

Warm-up: the paper gives none; we use DDPM's linear warm-up of 5,000 steps (Ho et al. 2020, their
released CIFAR10 configuration), which a recipe can set to 0. Gradient clipping (DDPM's 1.0) is
the Trainer's ``gradient_clip_val``.

The loss, the optimizer, the warm-up, the EMA and the speed options (``channels_last``,
``compile``) are those of :mod:`nidiff.training.step`, which the benchmarks time. Under DDP every
process draws its own ``t`` and noise for its own shard of the batch, gradients are averaged by
DDP, and the logged loss is the mean over processes (``sync_dist``).
"""

from __future__ import annotations

import time

import lightning as L
import torch
from torch import Tensor, nn

from nidiff.diffusion import GaussianDiffusion
from nidiff.training.ema import EMA
from nidiff.training.step import LinearWarmup, build_optimizer, compile_network, mark_step, training_loss

__all__ = ["DiffusionModule", "count_parameters"]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class DiffusionModule(L.LightningModule):
    """Trains ``net`` to predict the noise of ``diffusion``; ``ema.module`` is the network to sample."""

    def __init__(
        self,
        net: nn.Module,                      # the denoiser, net(z_t [B,C,H,W], t [B]) -> [B,C,H,W]
        diffusion: GaussianDiffusion,        # basis + schedule (not averaged, not optimised)
        lr: float = 2e-4,                    # Adam learning rate (table 5)
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 5000,            # linear warm-up (DDPM's value; the paper is silent)
        ema_decay: float = 0.9999,           # section 6
        channels_last: bool = False,         # NHWC weights and activations (docs/performance.md)
        compile: str | None = None,          # torch.compile mode of the network, or None
    ) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.warmup = LinearWarmup(warmup_steps)
        if channels_last:
            net.to(memory_format=torch.channels_last)
        self.net = net
        self.diffusion = diffusion
        self.ema = EMA(net, decay=ema_decay)  # before compiling: the copy is a plain module
        compile_network(net, compile)
        self.lr, self.betas, self.adam_eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.warmup_steps = int(warmup_steps)
        self._last_time: float | None = None
        # the diffusion's buffers (basis matrices, eigenvalue tables) are constants, equal on every
        # process: DDP need not broadcast them before every forward
        self._ddp_params_and_buffers_to_ignore = [f"diffusion.{name}" for name, _ in diffusion.named_buffers()]

    def forward(self, z_t: Tensor, t: Tensor) -> Tensor:
        return self.net(z_t, t)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        mark_step(self.net)
        loss = training_loss(self.diffusion, self.net, x)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=x.shape[0],
                 sync_dist=True)
        now = time.perf_counter()
        if self._last_time is not None:
            rate = x.shape[0] * self.trainer.world_size / max(now - self._last_time, 1e-9)
            self.log("train/images_per_s", rate, prog_bar=True, on_step=True, on_epoch=False, batch_size=x.shape[0])
        self._last_time = now
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.ema.update(self.net)

    def configure_optimizers(self):
        opt = build_optimizer(self.net.parameters(), self.lr, self.betas, self.adam_eps, self.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.warmup)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
