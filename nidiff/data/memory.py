"""A small dataset held as one uint8 tensor, optionally on the GPU, served as float batches.

CIFAR-10 is 50,000 x 3 x 32 x 32 bytes = 147 MiB: it fits on any GPU as uint8. Held there, a batch
is one gather, one flip select and one ``x / 127.5 - 1``, all on the device: no worker processes,
no host-to-device copy per step.

Index convention (shared with :class:`~nidiff.data.transforms.Mirrored`): with ``mirror=True`` the
dataset has ``2N`` items, ``i < N`` being image ``i`` and ``N + i`` image ``i`` flipped left-right;
the sampler chooses which of the two an epoch sees (:class:`~nidiff.data.sampler.EpochSampler`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from nidiff.data.transforms import to_float

__all__ = ["TensorImages", "keep_batch"]


def keep_batch(batch):
    """A DataLoader ``collate_fn`` for datasets whose ``__getitems__`` already returns a batch."""
    return batch


class TensorImages(Dataset):
    """``N`` uint8 images ``[N, C, H, W]`` with labels ``[N]``; items float in [-1, 1].

    ``dataset[i]`` is one ``(image float [C, H, W], label)``. A DataLoader with ``batch_size`` and
    ``collate_fn=keep_batch`` calls :meth:`__getitems__` once per batch and gets
    ``(images float [B, C, H, W], labels int64 [B])`` on the data's device.
    """

    def __init__(
        self,
        images: Tensor,                      # uint8 [N, C, H, W] in [0, 255]
        labels: Tensor | None = None,        # int64 [N]; zeros when None
        device: torch.device | str | None = None,  # where to hold them (None: where they are)
        mirror: bool = False,                # expose 2N items, the second N mirrored
    ) -> None:
        if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            got = getattr(images, "dtype", type(images).__name__)
            shape = list(getattr(images, "shape", []))
            raise TypeError(f"images must be uint8 [N, C, H, W], got {got} of shape {shape}")
        if images.shape[0] == 0:
            raise ValueError("images is empty: a dataset needs at least one image")
        if labels is None:
            labels = torch.zeros(images.shape[0], dtype=torch.int64)
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape [{images.shape[0]}], got {list(labels.shape)}"
            )
        device = images.device if device is None else torch.device(device)
        self.images = images.to(device).contiguous()  # uint8 [N, C, H, W]
        self.labels = labels.to(device)  # int64 [N]
        self.mirror = bool(mirror)

    @property
    def num_images(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> TensorImages:
        """Move the images and labels to ``device`` (in place); returns self."""
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        return self

    def __len__(self) -> int:
        return 2 * self.num_images if self.mirror else self.num_images

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        """One batch: ``(images float [B, C, H, W] in [-1, 1], labels int64 [B])``."""
        idx = torch.as_tensor(indices, dtype=torch.int64)  # [B]
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise IndexError(f"indices must be in [0, {len(self)}), got {indices}")
        idx = idx.to(self.device, non_blocking=True)
        n = self.num_images
        x = to_float(self.images[idx % n])  # [B, C, H, W]
        if self.mirror:
            flip = (idx >= n)[:, None, None, None]  # [B, 1, 1, 1]
            x = torch.where(flip, x.flip(-1), x)
        return x, self.labels[idx % n]

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return f"TensorImages({n} x {c} x {h} x {w} uint8 on {self.device}, mirror={self.mirror})"
