"""Image grids and PNG files from tensors in [-1, 1]."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nidiff.atomic import atomic_write

__all__ = ["to_uint8", "make_grid", "save_png"]


def to_uint8(x: Tensor) -> Tensor:
    """``[..., C, H, W]`` in [-1, 1] to uint8 in [0, 255] (the inverse of ``x / 127.5 - 1``)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


MIN_GRID_WIDTH = 512  # pixels: a grid narrower than this is upscaled by default


def make_grid(images: Tensor, nrow: int | None = None, pad: int = 2, scale: int = 1) -> Tensor:
    """Tile ``[N, C, H, W]`` images into one ``[C, rows * (H' + pad) + pad, ...]`` image (uint8).

    ``scale``: each tile is upscaled that many times (nearest neighbour, so pixels stay visible);
    0 chooses the smallest factor that makes the grid at least ``MIN_GRID_WIDTH`` pixels wide.
    """
    if images.dim() != 4:
        raise ValueError(f"make_grid expects [N, C, H, W] images, got shape {list(images.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
        raise ValueError(f"scale must be an integer >= 0 (0: automatic), got {scale!r}")
    images = to_uint8(images) if images.dtype != torch.uint8 else images
    ncol = nrow or max(1, math.ceil(math.sqrt(images.shape[0])))
    if scale == 0:
        scale = 1
        while ncol * (images.shape[-1] * scale + pad) + pad < MIN_GRID_WIDTH:
            scale += 1
    if scale > 1:
        images = images.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    n, c, h, w = images.shape
    rows = math.ceil(n / ncol)
    grid = torch.full((c, rows * (h + pad) + pad, ncol * (w + pad) + pad), 255, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i].cpu()
    return grid


def save_png(image: Tensor, path: str | os.PathLike) -> Path:
    """Write a ``[C, H, W]`` uint8 image (C = 1 or 3) as PNG, atomically (temp file, then rename)."""
    from PIL import Image

    array = image.cpu().numpy()
    array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
    picture = Image.fromarray(np.ascontiguousarray(array))
    return atomic_write(path, lambda f: picture.save(f, format="PNG"), fsync=False)
