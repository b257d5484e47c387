"""One training step of eq. 25, fast: shared by the LightningModule and the benchmarks.

| paper / recipe                                    | code                         |
| ------------------------------------------------- | ---------------------------- |
| algorithm 2, eq. 25 (squared error of eps_hat)    | ``training_loss``            |
| Adam, learning rate 2e-4 (table 5, section 6)     | ``build_optimizer``          |
| linear warm-up (ours: DDPM's 5,000 steps)         | ``LinearWarmup``             |
| gradient clipping at norm 1 (ours: DDPM's)        | ``TrainStep.grad_clip``      |
| EMA decay 0.9999 (section 6)                      | ``TrainStep.ema``            |
| skip a non-finite step (ours, ``guard.py``)       | ``optimizer_update``         |

:class:`TrainStep` runs what Lightning runs for :class:`~nidiff.training.module.DiffusionModule`
(the same loss, then :func:`optimizer_update`: gradient clipping, the non-finite guard, Adam,
warm-up and EMA), with no trainer around it: a training loop of its own, and the step that
``benchmarks/`` time.

Speed levers (``docs/performance.md``); only ``precision="bf16"`` changes the numbers:

- One host sync per step, the non-finite guard's flag: ``t`` is drawn on the device inside the
  loss, so the engine's argument checks (``validate_args``, which read ``t`` back to the host) are
  skipped for it, and the loss comes back as a device tensor.
- Fused Adam on CUDA (one kernel for all parameters), ``foreach`` clipping, ``foreach`` EMA.
- ``precision="bf16"``: the network runs under bf16 autocast. Basis transforms stay float32 (they
  turn autocast off) and the squared error is taken in float32.
- ``channels_last``: NHWC layout of the network's 4-D weights, hence of its activations.
- ``compile``: ``torch.compile`` of the network in place (``Module.compile``, so state-dict keys
  and the EMA copy are unchanged) in one of :data:`COMPILE_MODES`; ``"reduce-overhead"`` and
  ``"max-autotune"`` replay CUDA graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from nidiff.diffusion import GaussianDiffusion
from nidiff.training.ema import EMA
from nidiff.training.guard import NonFiniteGuard, grad_norm

__all__ = [
    "COMPILE_MODES",
    "PRECISIONS",
    "LinearWarmup",
    "TrainStep",
    "autocast_dtype",
    "build_optimizer",
    "compile_network",
    "mark_step",
    "optimizer_update",
    "training_loss",
]

# precision name (ours, and Lightning's spelling) -> autocast dtype of the network (None: float32)
PRECISIONS: dict[str, torch.dtype | None] = {
    "32": None, "32-true": None, "bf16": torch.bfloat16, "bf16-mixed": torch.bfloat16,
}
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def autocast_dtype(precision: str | int) -> torch.dtype | None:
    """The autocast dtype for a precision name: ``"32"`` -> None, ``"bf16"`` -> ``torch.bfloat16``."""
    key = str(precision)
    if key not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    return PRECISIONS[key]


def training_loss(diffusion: GaussianDiffusion, model: nn.Module, x: Tensor) -> Tensor:
    """Eq. 25 averaged over the batch ``x`` ``[B, C, H, W]``: a scalar tensor on ``x``'s device.

    ``t ~ U(0, 1)`` and the noise are drawn on the device (algorithm 2). The engine's checks of
    ``t`` are switched off for this call only: these times are in range by construction, and the
    check would read them back to the host at every step.
    """
    validate = diffusion.validate_args
    diffusion.validate_args = False
    try:
        return diffusion.loss(model, x).mean()
    finally:
        diffusion.validate_args = validate


class LinearWarmup:
    """Learning-rate factor ``min(1, (step + 1) / warmup_steps)``, or 1 without warm-up (``LambdaLR``).

    A class rather than a lambda, so that it pickles and ``LambdaLR`` saves it in checkpoints.
    """

    def __init__(self, warmup_steps: int = 0) -> None:
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        return min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0


def build_optimizer(
    params: Iterable[nn.Parameter],
    lr: float = 2e-4,                        # table 5 / section 6
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> torch.optim.Adam:
    """Adam, fused (one kernel for every parameter) when all parameters are on a CUDA device."""
    params = list(params)
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.Adam(
        params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=True if fused else None
    )


def compile_network(net: nn.Module, mode: str | None) -> nn.Module:
    """``torch.compile`` ``net`` in place with ``mode`` (one of :data:`COMPILE_MODES`); None: no-op.

    In place (``Module.compile``): parameters, state-dict keys and checkpoints stay those of the
    plain network. Compilation happens at the first call, on whatever device the network is then.
    """
    if mode is None or mode is False or str(mode).lower() in ("none", "null", "false", ""):
        return net
    if mode is True:
        mode = "default"
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; known: {', '.join(COMPILE_MODES)} (or null for none)")
    net.compile(mode=mode)
    return net


def mark_step(net: nn.Module) -> None:
    """Tell CUDA-graph trees a new iteration starts (compiled networks only; cheap otherwise)."""
    if getattr(net, "_compiled_call_impl", None) is not None:
        torch.compiler.cudagraph_mark_step_begin()


def optimizer_update(
    loss: Tensor,                            # this step's loss, its gradients already in ``params``
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: EMA,
    net: nn.Module,                          # the network ``ema`` averages
    grad_clip: float | None,                 # global gradient norm; None or 0: no clipping
    guard: NonFiniteGuard | None,            # None: no check (a non-finite step is applied)
    reduce: Callable[[Tensor], Tensor] | None = None,  # sum over processes (DDP), for the guard
) -> bool:
    """Clip, check, then step Adam, the warm-up and the EMA; zero the gradients. True if applied.

    A step the guard refuses changes nothing but the guard's counters (and may raise
    :class:`~nidiff.training.guard.NonFiniteError`); the EMA only ever averages applied steps.
    """
    norm = grad_norm(params, grad_clip)
    applied = guard is None or guard.check(loss, norm, reduce)
    if applied:
        optimizer.step()
        scheduler.step()
        ema.update(net)
        if guard is not None:
            guard.watch(params)  # read at the next check: non-finite weights never go on silently
    optimizer.zero_grad(set_to_none=True)
    return applied


class TrainStep:
    """``step(x)``: one optimizer step on images ``x`` ``[B, C, H, W]`` in [-1, 1]; returns the loss.

    Builds, around ``net`` (trained in place) and ``diffusion`` (moved to the network's device), the
    EMA copy, Adam and the warm-up schedule. The returned loss is a detached device scalar. The
    step reads one flag back to the host, the non-finite guard's (``guard``); nothing else syncs.
    """

    def __init__(
        self,
        net: nn.Module,                      # the denoiser, net(z_t [B,C,H,W], t [B]) -> [B,C,H,W]
        diffusion: GaussianDiffusion,        # basis + schedule
        lr: float = 2e-4,                    # Adam (table 5)
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,               # linear warm-up steps (the recipes: 5000)
        ema_decay: float = 0.9999,           # section 6
        grad_clip: float | None = 1.0,       # global gradient norm; None or 0: no clipping
        precision: str = "32",               # "32" or "bf16" (autocast of the network)
        channels_last: bool = False,         # NHWC weights and activations
        compile: str | None = None,          # a torch.compile mode of COMPILE_MODES, or None
        guard: NonFiniteGuard | None = None, # non-finite steps; None: NonFiniteGuard() (stop after 10)
    ) -> None:
        params = [p for p in net.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the network has no trainable parameters")
        if grad_clip is not None and grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 or None, got {grad_clip}")
        self.device = params[0].device
        self.dtype = autocast_dtype(precision)
        self.net = net.train()
        self.diffusion = diffusion.to(self.device)
        if channels_last:
            net.to(memory_format=torch.channels_last)
        self.ema = EMA(net, decay=ema_decay)  # before compiling: the copy is a plain module
        compile_network(net, compile)
        self.params = params
        self.optimizer = build_optimizer(params, lr, betas, eps, weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, LinearWarmup(warmup_steps))
        self.grad_clip = float(grad_clip) if grad_clip else None
        self.guard = guard if guard is not None else NonFiniteGuard()

    def loss(self, x: Tensor) -> Tensor:
        """Eq. 25 on ``x`` under this step's precision, with gradients (no optimizer step)."""
        with torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            return training_loss(self.diffusion, self.net, x)

    def __call__(self, x: Tensor) -> Tensor:
        mark_step(self.net)
        loss = self.loss(x)
        loss.backward()
        optimizer_update(loss, self.params, self.optimizer, self.scheduler, self.ema, self.net, self.grad_clip,
                         self.guard)
        return loss.detach()
