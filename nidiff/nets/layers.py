"""Building blocks of the denoising UNet: time embedding, residual block, self-attention.

They follow the UNets of Google's diffusion papers ("Diffusion Models Beat GANs", VDM,
progressive distillation), which the Blurring Diffusion paper (appendix A) uses:

- GroupNorm + SiLU before every convolution ("pre-activation" residual blocks).
- Time enters every residual block after its first convolution, by default additively,
  ``h = h + Linear(SiLU(emb))`` (DDPM, VDM), or with ``scale_shift=True`` as a per-channel scale
  and shift of the second GroupNorm, ``h = GroupNorm(h) * (1 + scale) + shift`` ("adaptive group
  normalisation", as in "Diffusion Models Beat GANs"; 2C instead of C outputs per block).
- Down- and up-sampling are residual blocks themselves (BigGAN style): the resampling (2x2
  average pooling, or nearest-neighbour upsampling) is applied to both branches, after the first
  normalisation of the residual branch and before its first convolution.
- The last layer of every residual branch (second convolution, attention output projection) is
  zero-initialised, weights and biases, so each block starts as the identity.

| symbol                         | code                                     |
| ------------------------------ | ---------------------------------------- |
| continuous time ``t in [0, 1]``| ``t``, scaled by ``time_scale = 1000``   |
| sinusoidal embedding of ``t``  | ``timestep_embedding``                   |
| ``emb`` (after the MLP)        | ``emb``, ``[B, emb_channels]``           |
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AttentionBlock", "ResBlock", "TimeEmbedding", "timestep_embedding", "zero_init"]

GROUPNORM_EPS = 1e-6  # the Flax default the Google UNets run with


def zero_init(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` (weights and biases) to zero and return it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(
    t: Tensor, dim: int, time_scale: float = 1000.0, max_period: float = 10000.0
) -> Tensor:
    """Sinusoidal embedding of continuous time, computed in float32.

    ``t`` is multiplied by ``time_scale`` first, so with the default of 1000 the fastest
    frequency turns by one radian between ``t`` and ``t + 1/1000``: a 1000-step grid is resolved
    as well as the integer steps of DDPM are. Frequencies run geometrically from 1 down to
    ``1 / max_period`` (``half = dim // 2`` of them); the sines come first, then the cosines, and
    an odd ``dim`` is padded with one zero.

    Args:
        t: times, ``[B]``.
        dim: embedding size.

    Returns:
        ``[B, dim]`` float32.
    """
    half = dim // 2
    exponent = torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1)
    freqs = torch.exp(-math.log(max_period) * exponent)  # [half]
    angles = (t.to(torch.float32) * time_scale)[:, None] * freqs[None, :]  # [B, half]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # [B, 2 * half]
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimeEmbedding(nn.Module):
    """``t -> Linear(SiLU(Linear(sinusoidal(t))))``: the embedding every residual block reads.

    Args:
        channels: size of the sinusoidal embedding (the UNet's base channels).
        emb_channels: output size (the Google UNets use ``4 * channels``).
        time_scale: factor applied to ``t`` before the sinusoids (see ``timestep_embedding``).
    """

    def __init__(self, channels: int, emb_channels: int, time_scale: float = 1000.0) -> None:
        super().__init__()
        self.channels = channels
        self.time_scale = time_scale
        self.linear1 = nn.Linear(channels, emb_channels)
        self.linear2 = nn.Linear(emb_channels, emb_channels)

    def forward(self, t: Tensor) -> Tensor:
        """``t`` ``[B]`` -> ``[B, emb_channels]``."""
        emb = timestep_embedding(t, self.channels, self.time_scale)
        emb = emb.to(self.linear1.weight.dtype)  # a no-op unless the module was cast (bf16, fp16)
        return self.linear2(F.silu(self.linear1(emb)))


def _resample(x: Tensor, mode: Literal["down", "up"] | None) -> Tensor:
    if mode == "down":
        return F.avg_pool2d(x, kernel_size=2, stride=2)
    if mode == "up":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return x


class ResBlock(nn.Module):
    """Pre-activation residual block with time conditioning, optionally resampling by 2.

    ``out = skip(R(x)) + conv2(drop(SiLU(GN2(conv1(R(SiLU(GN1(x)))) + e))))`` with
    ``e = Linear(SiLU(emb))`` (or ``GN2(.) * (1 + scale) + shift`` with ``scale_shift``), ``R`` the resampling (identity, avg-pool or nearest upsample), ``skip`` a 1x1 convolution
    where the channel count changes, and ``conv2`` zero-initialised.

    Args:
        in_channels: channels of ``x``.
        out_channels: channels of the output.
        emb_channels: size of the time embedding.
        dropout: dropout probability before the last convolution.
        resample: ``"down"`` (halve H and W), ``"up"`` (double them) or ``None``.
        norm_groups: groups of both GroupNorms.
        scale_shift: condition on time by scale and shift of the second GroupNorm instead of adding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        dropout: float = 0.0,
        resample: Literal["down", "up"] | None = None,
        norm_groups: int = 32,
        scale_shift: bool = False,
    ) -> None:
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        self.resample = resample
        self.norm1 = nn.GroupNorm(norm_groups, in_channels, eps=GROUPNORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.scale_shift = scale_shift
        self.emb_proj = nn.Linear(emb_channels, (2 if scale_shift else 1) * out_channels)
        self.norm2 = nn.GroupNorm(norm_groups, out_channels, eps=GROUPNORM_EPS)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1))
        self.skip: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.skip = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """``x`` ``[B, C_in, H, W]``, ``emb`` ``[B, E]`` -> ``[B, C_out, H', W']``
        (``H' = H / 2`` for ``"down"``, ``2 H`` for ``"up"``)."""
        h = F.silu(self.norm1(x))
        h = self.conv1(_resample(h, self.resample))
        emb_out = self.emb_proj(F.silu(emb))[:, :, None, None]  # [B, C_out or 2 C_out, 1, 1]
        if self.scale_shift:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + emb_out)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(_resample(x, self.resample)) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all positions, as a residual block.

    ``out = x + proj(MHA(GN(x)))`` with ``heads = channels // head_dim``, ``proj`` zero-initialised,
    and the attention itself done by ``scaled_dot_product_attention`` (flash / memory-efficient
    kernels where available).

    Args:
        channels: channels of ``x``; must be a multiple of ``head_dim``.
        head_dim: channels per head.
        norm_groups: groups of the GroupNorm.
        resolution: the nominal feature-map size this block runs at (informational, for summaries
            and tests; the block itself works at any size).
    """

    def __init__(
        self, channels: int, head_dim: int, norm_groups: int = 32, resolution: int | None = None
    ) -> None:
        super().__init__()
        if head_dim <= 0 or channels % head_dim:
            raise ValueError(
                f"head_dim={head_dim} must be a positive divisor of the {channels} channels of the "
                f"attention block"
            )
        self.heads = channels // head_dim
        self.head_dim = head_dim
        self.resolution = resolution
        self.norm = nn.GroupNorm(norm_groups, channels, eps=GROUPNORM_EPS)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero_init(nn.Linear(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[B, C, H, W]`` -> ``[B, C, H, W]``."""
        b, c, height, width = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # [B, N, C], N = H * W
        qkv = self.qkv(tokens).reshape(b, height * width, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, N, head_dim]
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, N, head_dim]
        out = self.proj(out.transpose(1, 2).reshape(b, height * width, c))  # [B, N, C]
        return x + out.transpose(1, 2).reshape(b, c, height, width)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, head_dim={self.head_dim}, resolution={self.resolution}"
