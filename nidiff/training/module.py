"""The LightningModule: eq. 25 through the engine, Adam with warm-up, EMA of the weights.

| paper / recipe                              | code                               |
| ------------------------------------------- | ---------------------------------- |
| algorithm 2, eq. 25 (epsilon loss)          | ``training_step``                  |
| Adam, learning rate (table 5 / section 6)   | ``configure_optimizers``           |
| EMA decay 0.9999                            | ``self.ema`` (sampling, evaluation)|

Warm-up: the paper gives none; we use DDPM's linear warm-up of 5,000 steps (Ho et al. 2020, their
released CIFAR10 configuration), which a recipe can set to 0. Gradient clipping: DDPM's norm 1.0
(``optim.grad_clip``).

The optimisation is manual (``automatic_optimization = False``) so that one function,
:func:`~nidiff.training.step.optimizer_update`, does clipping, the non-finite guard
(:mod:`nidiff.training.guard`), Adam, the warm-up and the EMA in that order, inside the step: a
checkpoint written after step ``k`` holds the weights *and* the EMA of step ``k``, and a step with
a NaN changes neither. The loss, the optimizer, the warm-up, the EMA and the speed options
(``channels_last``, ``compile``) are those of :mod:`nidiff.training.step`, which the benchmarks
time. Under DDP every process draws its own ``t`` and noise for its own shard of the batch,
gradients are averaged by DDP, the guard's decision is summed over processes, and the logged loss
is the mean over processes (``sync_dist``). ``global_step`` counts applied steps.
"""

from __future__ import annotations

import time

import lightning as L
import torch
from torch import Tensor, nn

from nidiff.diffusion import GaussianDiffusion
from nidiff.training.ema import EMA
from nidiff.training.guard import NonFiniteGuard, check_weights
from nidiff.training.logs import logged_step
from nidiff.training.step import (
    LinearWarmup,
    build_optimizer,
    compile_network,
    mark_step,
    optimizer_update,
    training_loss,
)

__all__ = ["DiffusionModule"]


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
        grad_clip: float | None = 1.0,       # global gradient norm (DDPM's); None or 0: no clipping
        ema_decay: float = 0.9999,           # section 6
        channels_last: bool = False,         # NHWC weights and activations (docs/performance.md)
        compile: str | None = None,          # torch.compile mode of the network, or None
        guard: NonFiniteGuard | None = None, # non-finite steps; None: NonFiniteGuard() (stop after 10)
        config: dict | None = None,          # the run's resolved configuration, saved in checkpoints
    ) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if grad_clip is not None and grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 or None, got {grad_clip}")
        self.automatic_optimization = False
        self.grad_clip = float(grad_clip) if grad_clip else None
        self.guard = guard if guard is not None else NonFiniteGuard()
        self.config = config
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
        self._logged: dict | None = None  # this step's logged values
        # the diffusion's buffers (basis matrices, eigenvalue tables) are constants, equal on every
        # process: DDP need not broadcast them before every forward
        self._ddp_params_and_buffers_to_ignore = [f"diffusion.{name}" for name, _ in diffusion.named_buffers()]

    def forward(self, z_t: Tensor, t: Tensor) -> Tensor:
        return self.net(z_t, t)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        mark_step(self.net)
        loss = training_loss(self.diffusion, self.net, x)
        self.manual_backward(loss)
        optimizer_update(loss, self._params, self.optimizers(), self.lr_schedulers(), self.ema, self.net,
                         self.grad_clip, self.guard, reduce=self._sum_over_processes)
        logged = {"train/loss": self.trainer.strategy.reduce(loss.detach(), reduce_op="mean"),
                  "train/nonfinite_steps": float(self.guard.skipped)}
        self.log("train/nonfinite_steps", logged["train/nonfinite_steps"], on_step=True, on_epoch=False,
                 batch_size=x.shape[0])
        self.log("train/loss", logged["train/loss"], prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=x.shape[0])
        self._logged = logged
        now = time.perf_counter()
        if self._last_time is not None:
            rate = x.shape[0] * self.trainer.world_size / max(now - self._last_time, 1e-9)
            self.log("train/images_per_s", rate, prog_bar=True, on_step=True, on_epoch=False, batch_size=x.shape[0])
        self._last_time = now
        return loss.detach()

    @property
    def _params(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def _sum_over_processes(self, value: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(value, reduce_op="sum")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # one host sync per checkpoint: weights that are not finite never reach the disk
        check_weights({"network": self.net, "EMA": self.ema.module}, self.trainer.global_step)
        checkpoint["nonfinite"] = self.guard.state_dict()
        # this step's row of logs/metrics.csv is written after its checkpoint: carry it, so that a
        # run killed in between gets it back on resume (nidiff.training.logs)
        step = logged_step(checkpoint)
        if self._logged is not None and step is not None and (step + 1) % self.trainer.log_every_n_steps == 0:
            checkpoint["pending_log"] = {k: torch.as_tensor(v).float() for k, v in self._logged.items()}
        if self.config is not None:
            checkpoint["config"] = self.config

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "nonfinite" in checkpoint:
            self.guard.load_state_dict(checkpoint["nonfinite"])

    def configure_optimizers(self):
        opt = build_optimizer(self._params, self.lr, self.betas, self.adam_eps, self.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.warmup)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
