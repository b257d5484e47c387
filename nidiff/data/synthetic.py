"""A procedural RGB image set, built into the package: runs offline, needs no files.

Each image is a two-colour linear gradient background with one to three shapes on it (a disc, an
axis-aligned rectangle, or a striped disc), at random positions, sizes and colours; ``shapes``
and ``max_shapes`` make a simpler set (the quickstart's: discs and rectangles, at most two). Image
``i`` is a function of ``(seed, i)`` alone (NumPy's PCG64 seeded with ``[seed, i]``), so any
subset, count or order gives the same pixels, in every process. Shapes are placed in coordinates
relative to the image, so the set looks alike at every size. The label is the kind of the first shape
(0 disc, 1 rectangle, 2 stripes).

It is meant for the quickstart and for tests: structure at several scales (smooth gradients, sharp
edges, high-frequency stripes) that a diffusion model learns within minutes, not a benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["SyntheticImages", "synthetic_image", "synthetic_images", "SHAPES"]

SHAPES: tuple[str, ...] = ("disc", "rectangle", "stripes")


def synthetic_image(index: int, image_size: int, seed: int = 0, shapes: Sequence[str] = SHAPES,
                    max_shapes: int = 3) -> tuple[Tensor, int]:
    """Image ``index`` of the set: ``(uint8 [3, S, S], label)``, with one to ``max_shapes`` shapes
    drawn from ``shapes`` (a subset of :data:`SHAPES`; the defaults give the full set)."""
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    rng = np.random.default_rng([seed, index])
    s = image_size
    c = (np.arange(s) + 0.5) / s  # pixel centres in (0, 1)
    yy, xx = np.meshgrid(c, c, indexing="ij")  # [S, S]
    c0, c1 = rng.uniform(0.0, 1.0, size=(2, 3))
    angle = rng.uniform(0.0, 2 * np.pi)
    t = np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)  # in [-0.71, 0.71]
    t = (t + 0.75) / 1.5
    image = c0 + (c1 - c0) * t[..., None]  # [S, S, 3] in [0, 1]
    label = -1
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        kind = SHAPES.index(shapes[int(rng.integers(len(shapes)))])
        color = rng.uniform(0.0, 1.0, size=3)
        cy, cx = rng.uniform(0.2, 0.8, size=2)
        radius = rng.uniform(0.1, 0.3)
        if SHAPES[kind] == "rectangle":
            aspect = rng.uniform(0.5, 2.0)
            half_w, half_h = radius * aspect**0.5, radius / aspect**0.5
            mask = (np.abs(xx - cx) < half_w) & (np.abs(yy - cy) < half_h)
        else:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < radius**2
            if SHAPES[kind] == "stripes":
                period = rng.uniform(0.05, 0.15)
                phi = rng.uniform(0.0, np.pi)
                mask &= np.sin(2 * np.pi * (np.cos(phi) * xx + np.sin(phi) * yy) / period) > 0
        image[mask] = color
        label = kind if label < 0 else label
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))), label


def synthetic_images(num_images: int, image_size: int, seed: int = 0, shapes: Sequence[str] = SHAPES,
                     max_shapes: int = 3) -> tuple[Tensor, Tensor]:
    """The first ``num_images`` images: ``(uint8 [N, 3, S, S], labels int64 [N])``."""
    shapes = _check(num_images, image_size, seed, shapes, max_shapes)
    items = [synthetic_image(i, image_size, seed, shapes, max_shapes) for i in range(num_images)]
    labels = torch.tensor([y for _, y in items], dtype=torch.int64)
    return torch.stack([x for x, _ in items]), labels


class SyntheticImages(Dataset):
    """The set as a lazy dataset (nothing held in memory); items ``(uint8 [3, S, S], label)``."""

    def __init__(
        self,
        num_images: int = 10_000,            # N: how many images
        image_size: int = 32,                # S: images are S x S
        seed: int = 0,                       # the set is a function of the seed
        shapes: Sequence[str] = SHAPES,      # the kinds of shape drawn, a subset of SHAPES
        max_shapes: int = 3,                 # one to this many shapes per image
    ) -> None:
        self.shapes = _check(num_images, image_size, seed, shapes, max_shapes)
        self.num_images, self.image_size, self.seed, self.max_shapes = num_images, image_size, seed, max_shapes

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        return synthetic_image(index, self.image_size, self.seed, self.shapes, self.max_shapes)


def _check(num_images: int, image_size: int, seed: int, shapes: Sequence[str] = SHAPES,
           max_shapes: int = 3) -> tuple[str, ...]:
    checks = (("num_images", num_images, 1), ("image_size", image_size, 1), ("seed", seed, 0),
              ("max_shapes", max_shapes, 1))
    for name, value, low in checks:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    shapes = (shapes,) if isinstance(shapes, str) else tuple(shapes)
    if not shapes or any(shape not in SHAPES for shape in shapes) or len(set(shapes)) != len(shapes):
        raise ValueError(f"shapes must be distinct names among {', '.join(SHAPES)}, got {list(shapes)}")
    return shapes
