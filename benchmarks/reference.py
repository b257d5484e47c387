"""The reference the issue's anchors were measured on: a diffusers ``UNet2DModel`` like the paper's.

Benchmark-only: ``diffusers`` is imported here and nowhere in the package. At ``cifar10`` size the
network is the paper's CIFAR10 layout in diffusers' blocks (3 ResBlocks per stage, channels
256/256/256, attention at 16x16 and 8x8 with head dimension 256, dropout 0.2: 49.5M parameters);
``tiny`` mirrors ``benchmarks.harness.SIZES["tiny"]``.

Its training step is plain DDPM: integer ``t`` in [0, 1000), cosine ``alpha_bar``, epsilon MSE,
fused Adam on CUDA (lr 2e-4), no gradient clipping, no EMA, no basis transform: the bare step the
anchors timed, so our full step (clipping, EMA and the DCT included) is compared against less work.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ReferenceStep", "available", "diffusers_unet"]

LAYOUTS = {
    "cifar10": dict(block_out_channels=(256, 256, 256), layers_per_block=3, attention_head_dim=256,
                    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D")),
    "tiny": dict(block_out_channels=(16, 32), layers_per_block=1, attention_head_dim=16, norm_num_groups=8,
                 down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D")),
}


def available() -> str | None:
    """diffusers' version if it imports, else None."""
    try:
        import diffusers
    except Exception:  # missing, or a dependency of it is: the benchmarks then skip its rows
        return None
    return diffusers.__version__


def diffusers_unet(size: str) -> nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, dropout=0.2, **LAYOUTS[size])


def cosine_alpha_bar(steps: int = 1000) -> Tensor:
    """DDPM's cosine ``alpha_bar`` (Nichol & Dhariwal 2021) on ``steps`` integer times, float32."""
    s = 0.008
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (f[1:] / f[0]).clamp(1e-5, 1.0).float()


class ReferenceStep:
    """``step(x)``: one epsilon-MSE Adam step of the diffusers network on ``x`` ``[B, 3, H, W]``."""

    def __init__(self, net: nn.Module, precision: str = "32", channels_last: bool = False,
                 compile: str | None = None, lr: float = 2e-4) -> None:
        self.device = next(net.parameters()).device
        self.net = net.train()
        self.dtype = torch.bfloat16 if precision.startswith("bf16") else None
        if channels_last:
            net.to(memory_format=torch.channels_last)
        if compile:
            net.compile(mode=compile)
        params = list(net.parameters())
        self.optimizer = torch.optim.Adam(params, lr=lr, fused=True if self.device.type == "cuda" else None)
        self.alpha_bar = cosine_alpha_bar().to(self.device)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def forward(self, z: Tensor, t: Tensor) -> Tensor:
        with self._autocast():
            return self.net(z, t).sample

    def __call__(self, x: Tensor) -> Tensor:
        if getattr(self.net, "_compiled_call_impl", None) is not None:
            torch.compiler.cudagraph_mark_step_begin()
        t = torch.randint(0, self.alpha_bar.numel(), (x.shape[0],), device=x.device)
        eps = torch.randn_like(x)
        a = self.alpha_bar[t].reshape(-1, 1, 1, 1)
        z = a.sqrt() * x + (1 - a).sqrt() * eps
        loss = (self.forward(z, t).float() - eps).pow(2).mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()
