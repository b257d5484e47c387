"""uint8 image batches from any registered data set, for statistics and evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nidiff.data.cifar10 import default_root
from nidiff.data.sources import DATASETS
from nidiff.data.synthetic import SHAPES

__all__ = ["image_batches"]


def image_batches(
    dataset: str = "auto",
    root: str | Path | None = None,
    path: str | Path | None = None,
    image_size: int = 32,
    split: str = "train",
    batch_size: int = 200,
    limit: int | None = None,
    num_workers: int = 0,
    seed: int = 0,
    num_images: int = 10_000,
    on_error: str = "skip",
    download: bool = False,
    shapes: Sequence[str] = SHAPES,
    max_shapes: int = 3,
) -> tuple[Iterator[Tensor], int, str]:
    """``(batches, count, description)``: uint8 ``[B, 3, S, S]`` batches in the data set's order,
    the first ``limit`` images (all when ``None``), no augmentation."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    if batch_size < 1 or (limit is not None and limit < 1):
        raise ValueError("batch_size and limit must be positive")
    source, what = DATASETS[dataset](
        root=Path(root).expanduser() if root else default_root(),
        path=Path(path).expanduser() if path else None,
        image_size=image_size, split=split, seed=seed, num_images=num_images, on_error=on_error,
        download=download, shapes=shapes, max_shapes=max_shapes,
    )
    if isinstance(source, Dataset):
        total = len(source) if limit is None else min(limit, len(source))
        subset = torch.utils.data.Subset(source, range(total))
        loader = DataLoader(subset, batch_size=batch_size, num_workers=num_workers)
        return (images for images, _ in loader), total, what
    images = source[0]
    total = images.shape[0] if limit is None else min(limit, images.shape[0])
    return (images[i : min(i + batch_size, total)] for i in range(0, total, batch_size)), total, what
