"""The standard image transforms: decoding to RGB, resize + centre crop, [0, 255] -> [-1, 1], flips.

| data pipeline                                 | code                                          |
| --------------------------------------------- | --------------------------------------------- |
| uint8 ``x`` in [0, 255] -> ``x / 127.5 - 1``  | ``to_float`` (inverse: ``images.to_uint8``)   |
| horizontal flip (DDPM's augmentation)         | ``hflip``, ``random_hflip``, ``Mirrored``     |
| any image -> RGB ``[3, S, S]`` uint8          | ``to_rgb``, ``resize_center_crop``,           |
|                                               | ``pil_to_tensor``                             |

Random flips in a training stream are not drawn inside the dataset: ``Mirrored`` exposes every image
twice (index ``i`` the image, index ``N + i`` its mirror) and the sampler
(:class:`~nidiff.data.sampler.EpochSampler`) picks one of the two per image and epoch. The flip is
then a function of ``(seed, epoch)`` alone, the same in every worker process, after a resume and
under DDP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "to_float",
    "hflip",
    "random_hflip",
    "to_rgb",
    "resize_center_crop",
    "pil_to_tensor",
    "Mirrored",
]


def to_float(x: Tensor) -> Tensor:
    """uint8 ``[..., C, H, W]`` in [0, 255] to float32 in [-1, 1], exactly ``x / 127.5 - 1``.

    0 maps to -1, 255 to +1, and ``nidiff.images.to_uint8`` inverts it exactly on the 256 levels.
    """
    if x.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images in [0, 255], got dtype {x.dtype}")
    return x.float() / 127.5 - 1.0


def hflip(x: Tensor) -> Tensor:
    """Mirror left-right: reverse the last (width) axis of ``[..., H, W]``."""
    return x.flip(-1)


def random_hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image of a batch ``[B, C, H, W]`` independently with probability ``p``.

    The coins are drawn on ``generator``'s device (the CPU when none is given) and the selection
    runs on ``x``'s device, so a batch held on the GPU is flipped there.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability must be in [0, 1], got {p}")
    if x.dim() != 4:
        raise ValueError(f"random_hflip expects a batch [B, C, H, W], got shape {list(x.shape)}")
    device = generator.device if generator is not None else torch.device("cpu")
    flip = torch.rand(x.shape[0], generator=generator, device=device) < p  # [B]
    return torch.where(flip.to(x.device)[:, None, None, None], hflip(x), x)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB.

    Grayscale and palette images are expanded; an alpha channel (RGBA, LA, palette transparency) is
    composited over white, so transparent regions do not turn into whatever colour they happen to
    store (usually black).
    """
    from PIL import Image

    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """RGB (:func:`to_rgb`), shorter side resized to ``size``, the centre ``size x size`` cropped.

    Converting first matters: Pillow resizes palette images by nearest neighbour only.
    The filter is Pillow's ``BICUBIC``, which widens its kernel by the scale factor when shrinking,
    i.e. it is antialiased (unlike ``torch.nn.functional.interpolate`` without ``antialias``). An
    image already ``size x size`` is returned untouched, so 32x32 CIFAR-10 files keep their pixels.
    """
    from PIL import Image

    image = to_rgb(image)
    w, h = image.size
    if (w, h) == (size, size):
        return image
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), resample=Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def pil_to_tensor(image: Image.Image) -> Tensor:
    """An RGB Pillow image to a uint8 tensor ``[3, H, W]`` (channel-first)."""
    array = np.asarray(to_rgb(image), dtype=np.uint8)  # [H, W, 3]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class Mirrored(Dataset):
    """Float training items from a dataset of ``(uint8 [C, H, W], label)`` items.

    With ``mirror=True`` it has ``2N`` items: item ``i < N`` is image ``i``, item ``N + i`` is image
    ``i`` flipped left-right; with ``mirror=False`` it has the ``N`` unflipped items. Items are
    ``(to_float(image) [C, H, W] in [-1, 1], label)``.
    """

    def __init__(self, dataset: Dataset, mirror: bool = True) -> None:
        self.dataset = dataset
        self.mirror = bool(mirror)
        self.num_images = len(dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return 2 * self.num_images if self.mirror else self.num_images

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        image, label = self.dataset[index % self.num_images]
        x = to_float(image)
        return (hflip(x) if index >= self.num_images else x), label
