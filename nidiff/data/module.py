"""``ImageDataModule``: the training images of every recipe, as a LightningDataModule.

The dataset is chosen by name in :data:`~nidiff.data.sources.DATASETS` (``auto``, ``cifar10``,
``folder``, ``lsun``, ``synthetic``; see there), and the module prints what it loaded. CIFAR-10 and
synthetic images are held in memory; folders, zips and LSUN are decoded by worker processes.
``on_gpu=True`` decodes everything once and holds it as uint8 on the training device, where
batches are gathered, flipped and scaled.

Batches are ``(images float32 [B, 3, S, S] in [-1, 1] (x / 127.5 - 1), labels int64 [B])``.

Order: :class:`~nidiff.data.sampler.EpochSampler`, a permutation seeded by ``(seed, epoch)``, and
the flips drawn with it. The loader is stateful for Lightning: a checkpoint stores the epoch and
the batches done in it, and a run resumed from it continues that epoch where it stopped, with the
same order and flips as an uninterrupted run. Every batch is full (``drop_last``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import Tensor
from torch.utils.data import DataLoader

from nidiff.data.cifar10 import default_root, download_cifar10, find_cifar10
from nidiff.data.encoded import ON_ERROR, EncodedImages
from nidiff.data.memory import TensorImages, keep_batch
from nidiff.data.sampler import EpochSampler, ResumableLoader
from nidiff.data.sources import DATASETS, SPLITS
from nidiff.data.synthetic import SHAPES
from nidiff.data.transforms import Mirrored

__all__ = ["ImageDataModule"]


@rank_zero_only
def _say(message: str) -> None:
    print(f"nidiff: data: {message}", flush=True)


class ImageDataModule(L.LightningDataModule):
    """Training images as float batches in [-1, 1], in a reproducible, resumable order."""

    def __init__(
        self,
        dataset: str = "auto",               # a DATASETS name: auto cifar10 folder lsun synthetic
        root: str | None = None,             # CIFAR-10 folder; $NIDIFF_DATA or ~/.cache/nidiff
        path: str | None = None,             # folder / .zip of images, or LSUN lmdb folder
        image_size: int = 32,                # S: images are S x S
        batch_size: int = 128,               # images per batch and process
        num_workers: int = 4,                # decoding processes (unused for data held in memory)
        random_flip: bool = True,            # horizontal flips (DDPM's CIFAR-10 augmentation)
        on_gpu: bool = False,                # hold the uint8 images on the training device
        split: str = "train",                # "train" or "test"
        seed: int = 0,                       # order and flips are a function of (seed, epoch)
        download: bool = False,              # cifar10: fetch the tarball if it is missing
        num_images: int = 10_000,            # synthetic: how many images
        shapes: Sequence[str] = SHAPES,      # synthetic: the kinds of shape drawn
        max_shapes: int = 3,                 # synthetic: one to this many shapes per image
        on_error: str = "skip",              # unreadable files: "skip" (report once) or "raise"
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
        for name, value, low in (("image_size", image_size, 1), ("batch_size", batch_size, 1),
                                 ("num_workers", num_workers, 0), ("seed", seed, 0),
                                 ("num_images", num_images, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.save_hyperparameters()
        self.dataset_name = dataset
        self.root = Path(root).expanduser() if root else default_root()
        self.path = Path(path).expanduser() if path else None
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.random_flip, self.on_gpu = bool(random_flip), bool(on_gpu)
        self.split, self.seed = split, seed
        self.download, self.num_images, self.on_error = bool(download), num_images, on_error
        self.shapes, self.max_shapes = tuple(shapes), max_shapes
        self.dataset: TensorImages | Mirrored | None = None  # what the loader serves
        self.source: str = ""  # what was loaded, in words

    def prepare_data(self) -> None:
        """Download CIFAR-10 once per node when ``dataset="cifar10"`` and ``download=True``."""
        if self.dataset_name == "cifar10" and self.download and find_cifar10(self.root) is None:
            download_cifar10(self.root)

    def setup(self, stage: str | None = None) -> None:
        """Build the dataset once; with ``on_gpu``, (re)place it on the trainer's device."""
        if self.dataset is None:
            images, self.source = DATASETS[self.dataset_name](
                root=self.root, path=self.path, image_size=self.image_size, split=self.split,
                seed=self.seed, num_images=self.num_images, on_error=self.on_error,
                download=self.download, shapes=self.shapes, max_shapes=self.max_shapes,
            )
            if self.on_gpu and isinstance(images, EncodedImages):
                images = images.decode_all(self.num_workers)
            if isinstance(images, tuple):
                self.dataset = TensorImages(*images, mirror=self.random_flip)
                where = "held in memory as uint8"
                if self.on_gpu and self._device().type == "cpu":
                    where += " (on_gpu=True, but training runs on the CPU: CPU memory)"
            else:
                self.dataset = Mirrored(images, mirror=self.random_flip)
                where = f"decoded by {self.num_workers} worker(s)"
            _say(f"{self.source}; {where}")
        if self.on_gpu and isinstance(self.dataset, TensorImages):
            device = self._device()
            if self.dataset.device != device:
                # built before the trainer was attached (e.g. by fit_images): to this process's GPU
                self.dataset.to(device)
                _say(f"images held on {device}")

    def _device(self) -> torch.device:
        if self.trainer is not None:
            device = self.trainer.strategy.root_device
        else:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return device

    @property
    def num_distinct_images(self) -> int:
        """``N``, the images of the set (flipped copies not counted)."""
        self.setup()
        assert self.dataset is not None
        return self.dataset.num_images

    def train_dataloader(self) -> DataLoader:
        """Batches ``(images float [B, 3, S, S] in [-1, 1], labels int64 [B])``, every one full.

        The order is :class:`EpochSampler`'s; outside Lightning call ``loader.sampler.set_epoch(e)``
        before each epoch. Data held in memory is served without worker processes.
        """
        self.setup()
        assert self.dataset is not None
        replicas, rank = 1, 0
        if self.trainer is not None:
            replicas, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = EpochSampler(self.dataset.num_images, seed=self.seed, mirror=self.random_flip,
                               num_replicas=replicas, rank=rank)
        if len(sampler) < self.batch_size:
            raise ValueError(
                f"batch_size={self.batch_size} exceeds the {len(sampler)} images per process of "
                f"{self.source}: lower data.batch_size or use more images"
            )
        in_memory = isinstance(self.dataset, TensorImages)
        on_device = in_memory and self.dataset.device.type != "cpu"
        workers = 0 if in_memory else self.num_workers
        loader = ResumableLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=workers,
            collate_fn=keep_batch if in_memory else None,
            pin_memory=torch.cuda.is_available() and not on_device,
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # worker seeds (unused by the data)
        )
        loader.progress = self._progress
        if self.trainer is not None:  # before Lightning's first iter(), which workers prefetch from
            sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        return loader

    def _progress(self) -> tuple[int, int]:
        """(epoch, batches this process has consumed in it), from the trainer's loop counters."""
        if self.trainer is None:
            return 0, 0
        loop = self.trainer.fit_loop
        batches = loop.epoch_loop.batch_progress.current.processed
        return loop.epoch_progress.current.processed, batches

    def fit_images(self, n: int) -> Tensor:
        """``n`` distinct images, not flipped: float ``[n, 3, S, S]`` on the CPU, a seeded subset.

        For bases that learn from data (PCA). ``n`` larger than the set gives the whole set.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of images to fit on must be an integer >= 1, got {n!r}")
        total = self.num_distinct_images
        rng = np.random.default_rng([self.seed, 1])
        idx = np.sort(rng.choice(total, size=min(n, total), replace=False)).tolist()
        if isinstance(self.dataset, TensorImages):
            return self.dataset.__getitems__(idx)[0].cpu()
        return torch.stack([self.dataset[i][0] for i in idx])

