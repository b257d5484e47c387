"""The denoising network of Blurring Diffusion Models (appendix A): a Google-style UNet.

Layout, for ``L = len(channel_mult)`` stages of channels ``C_i = base_channels * channel_mult[i]``:

- ``conv_in``: 3x3 convolution to ``base_channels``.
- Down path, stage ``i``: ``num_res_blocks`` ResBlocks to ``C_i`` (each followed by attention
  where the stage's feature-map size is in ``attn_resolutions``), then, except after the last
  stage, a down-sampling ResBlock. Every output, and ``conv_in``'s, is kept as a skip.
- Middle: ResBlock, attention (always, as in the Google UNets), ResBlock at the lowest resolution.
- Up path, stage ``i`` from the last: ``num_res_blocks + 1`` ResBlocks to ``C_i``, each reading
  its input concatenated with one skip (attention as on the way down), then, except after the
  first stage, an up-sampling ResBlock.
- ``GroupNorm``, ``SiLU`` and a zero-initialised 3x3 ``conv_out``.

Time conditioning, normalisation and initialisation are described in ``nidiff.nets.layers``.
The network is fully convolutional apart from attention over all positions, so it runs on any
``H, W`` divisible by ``2 ** (L - 1)``; ``image_size`` only names the feature-map sizes
``attn_resolutions`` refers to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nidiff.nets.layers import GROUPNORM_EPS, AttentionBlock, ResBlock, TimeEmbedding, zero_init
from nidiff.registries import register_net

__all__ = ["UNet", "count_parameters", "summarize"]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def _int_tuple(name: str, values: object, allow_empty: bool) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        kind = type(values).__name__
        raise TypeError(f"{name} must be a sequence of ints, got {kind} ({values!r})")
    out = tuple(_positive_int(f"{name}[{i}]", v) for i, v in enumerate(values))
    if not out and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return out


@register_net("unet")
class UNet(nn.Module):
    """UNet ``eps_hat = f(x_t, t)`` with continuous time ``t in [0, 1]``.

    Args (paper values for CIFAR10 in brackets):
        in_channels:      channels of the input image [3].
        out_channels:     channels of the output [3].
        base_channels:    channels of ``conv_in`` and unit of ``channel_mult`` [256].
        channel_mult:     per-stage channel multipliers; one stage per resolution [(1, 1, 1)].
        num_res_blocks:   ResBlocks per stage on the down path; the up path has one more [3].
        attn_resolutions: feature-map sizes (sides) that get self-attention [(16, 8)].
        head_dim:         channels per attention head; heads = channels // head_dim [256].
        dropout:          dropout probability inside every ResBlock [0.2].
        image_size:       side of the training images, or ``(H, W)``; feature-map sizes are
                          ``min(H, W) // 2**i`` [32].
        emb_channels:     size of the time embedding; ``None`` = ``4 * base_channels``.
        norm_groups:      groups of every GroupNorm [32].
        time_scale:       ``t`` is multiplied by this before the sinusoidal embedding [1000].
        scale_shift:      time conditions by GroupNorm scale and shift instead of addition
                          [False: additive, as DDPM; 52.9M parameters for CIFAR10, 60.0M with True].
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 256,
        channel_mult: Sequence[int] = (1, 1, 1),
        num_res_blocks: int = 3,
        attn_resolutions: Sequence[int] = (16, 8),
        head_dim: int = 256,
        dropout: float = 0.2,
        image_size: int | Sequence[int] = 32,
        emb_channels: int | None = None,
        norm_groups: int = 32,
        time_scale: float = 1000.0,
        scale_shift: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.base_channels = _positive_int("base_channels", base_channels)
        self.channel_mult = _int_tuple("channel_mult", channel_mult, allow_empty=False)
        self.num_res_blocks = _positive_int("num_res_blocks", num_res_blocks)
        self.attn_resolutions = _int_tuple("attn_resolutions", attn_resolutions, allow_empty=True)
        self.head_dim = _positive_int("head_dim", head_dim)
        self.norm_groups = _positive_int("norm_groups", norm_groups)
        emb_channels = 4 * self.base_channels if emb_channels is None else emb_channels
        self.emb_channels = _positive_int("emb_channels", emb_channels)
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        if not isinstance(time_scale, (int, float)) or not time_scale > 0:
            raise ValueError(f"time_scale must be a positive number, got {time_scale!r}")
        self.dropout = float(dropout)
        sizes = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(sizes) != 2:
            raise ValueError(f"image_size must be an int or a pair (H, W), got {image_size!r}")
        self.image_size = tuple(_positive_int("image_size", s) for s in sizes)
        levels = len(self.channel_mult)
        self.downsample_factor = 2 ** (levels - 1)
        self.resolutions = tuple(min(self.image_size) // 2**i for i in range(levels))
        channels = [self.base_channels * m for m in self.channel_mult]
        self._check_layout(channels)

        emb, groups = self.emb_channels, self.norm_groups

        def res(c_in: int, c_out: int, resample: str | None = None) -> ResBlock:
            return ResBlock(c_in, c_out, emb, self.dropout, resample, groups, scale_shift)

        def attn(level: int) -> nn.Module:
            r = self.resolutions[level]
            if r not in self.attn_resolutions:
                return nn.Identity()
            return AttentionBlock(channels[level], self.head_dim, groups, resolution=r)

        self.time_embed = TimeEmbedding(self.base_channels, emb, time_scale)
        self.conv_in = nn.Conv2d(self.in_channels, self.base_channels, kernel_size=3, padding=1)

        # down path: every block's output becomes a skip
        self.down_blocks, self.down_attn = nn.ModuleList(), nn.ModuleList()
        skip_channels = [self.base_channels]
        c = self.base_channels
        for level in range(levels):
            for _ in range(self.num_res_blocks):
                self.down_blocks.append(res(c, channels[level]))
                self.down_attn.append(attn(level))
                c = channels[level]
                skip_channels.append(c)
            if level != levels - 1:
                self.down_blocks.append(res(c, c, "down"))
                self.down_attn.append(nn.Identity())
                skip_channels.append(c)

        self.mid_block1 = res(c, c)
        self.mid_attn = AttentionBlock(c, self.head_dim, groups, resolution=self.resolutions[-1])
        self.mid_block2 = res(c, c)

        # up path: num_res_blocks + 1 blocks per stage, each consuming one skip
        self.up_blocks, self.up_attn = nn.ModuleList(), nn.ModuleList()
        takes_skip: list[bool] = []
        for level in reversed(range(levels)):
            for _ in range(self.num_res_blocks + 1):
                self.up_blocks.append(res(c + skip_channels.pop(), channels[level]))
                self.up_attn.append(attn(level))
                takes_skip.append(True)
                c = channels[level]
            if level != 0:
                self.up_blocks.append(res(c, c, "up"))
                self.up_attn.append(nn.Identity())
                takes_skip.append(False)
        self._takes_skip = tuple(takes_skip)  # static: no data-dependent control flow in forward

        self.norm_out = nn.GroupNorm(groups, c, eps=GROUPNORM_EPS)
        self.conv_out = zero_init(nn.Conv2d(c, self.out_channels, kernel_size=3, padding=1))

    def _check_layout(self, channels: list[int]) -> None:
        levels = len(channels)
        if any(s % self.downsample_factor for s in self.image_size):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**(len(channel_mult) - 1) = "
                f"{self.downsample_factor} (the network halves the resolution {levels - 1} times); "
                f"use fewer channel_mult entries or a larger image"
            )
        unknown = [r for r in self.attn_resolutions if r not in self.resolutions]
        if unknown:
            raise ValueError(
                f"attn_resolutions {unknown} are not feature-map sizes of this network; "
                f"with image_size {self.image_size} they are {self.resolutions}"
            )
        for c in (self.base_channels, *channels):
            if c % self.norm_groups:
                raise ValueError(
                    f"every stage's channel count must be divisible by "
                    f"norm_groups={self.norm_groups}, got {c} (channels per stage: {channels})"
                )
        attended = [i for i, r in enumerate(self.resolutions) if r in self.attn_resolutions]
        for i in (*attended, levels - 1):  # the middle block always attends
            if channels[i] % self.head_dim:
                raise ValueError(
                    f"head_dim={self.head_dim} does not divide the {channels[i]} channels at "
                    f"resolution {self.resolutions[i]}; choose a head_dim that divides every "
                    f"attention stage's channels"
                )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """Predict the noise.

        Args:
            x: noisy images ``[B, in_channels, H, W]``, ``H`` and ``W`` divisible by
                ``2 ** (len(channel_mult) - 1)``.
            t: continuous times in ``[0, 1]``, ``[B]`` (or a scalar, shared by the batch).

        Returns:
            ``[B, out_channels, H, W]``.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be [B, {self.in_channels}, H, W], got shape {tuple(x.shape)}")
        if x.shape[2] % self.downsample_factor or x.shape[3] % self.downsample_factor:
            raise ValueError(
                f"height and width must be divisible by {self.downsample_factor}, "
                f"got {tuple(x.shape[2:])}"
            )
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(
                f"t must have shape [B] = [{x.shape[0]}] or be a scalar, got {tuple(t.shape)}"
            )

        emb = self.time_embed(t)  # [B, E]
        h = self.conv_in(x)
        skips = [h]
        for block, attn in zip(self.down_blocks, self.down_attn):
            h = attn(block(h, emb))
            skips.append(h)
        h = self.mid_block2(self.mid_attn(self.mid_block1(h, emb)), emb)
        for block, attn, takes_skip in zip(self.up_blocks, self.up_attn, self._takes_skip):
            if takes_skip:
                h = torch.cat([h, skips.pop()], dim=1)
            h = attn(block(h, emb))
        return self.conv_out(F.silu(self.norm_out(h)))

    def extra_repr(self) -> str:
        return (
            f"base_channels={self.base_channels}, channel_mult={self.channel_mult}, "
            f"num_res_blocks={self.num_res_blocks}, attn_resolutions={self.attn_resolutions}, "
            f"head_dim={self.head_dim}, dropout={self.dropout}, image_size={self.image_size}"
        )


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (works on the meta device)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def summarize(module: nn.Module) -> str:
    """One line such as ``"UNet: 49.5M parameters"``."""
    n = count_parameters(module)
    if n >= 1_000_000:
        size = f"{n / 1e6:.1f}M"
    elif n >= 1_000:
        size = f"{n / 1e3:.1f}K"
    else:
        size = str(n)
    return f"{type(module).__name__}: {size} parameters"
