"""Training images: CIFAR-10, image folders and zips, LSUN lmdb, synthetic images, the DataModule.

Every dataset yields uint8 images ``[3, S, S]``; the training pipeline turns them into float
batches in [-1, 1] (``x / 127.5 - 1``) with random horizontal flips, in an order seeded by
``(seed, epoch)``. :class:`ImageDataModule` puts it together for Lightning.
"""

from nidiff.data.batches import image_batches
from nidiff.data.cifar10 import (
    CIFAR10_CLASSES,
    CIFAR10_MD5,
    CIFAR10_URL,
    default_root,
    download_cifar10,
    find_cifar10,
    load_cifar10,
)
from nidiff.data.download import download_url, md5sum
from nidiff.data.encoded import EncodedImages
from nidiff.data.folder import ImageFolder
from nidiff.data.lsun import LSUNImages
from nidiff.data.memory import TensorImages, keep_batch
from nidiff.data.module import ImageDataModule
from nidiff.data.sampler import EpochSampler, ResumableLoader
from nidiff.data.sources import DATASETS
from nidiff.data.synthetic import SyntheticImages, synthetic_image, synthetic_images
from nidiff.data.transforms import (
    Mirrored,
    hflip,
    pil_to_tensor,
    random_hflip,
    resize_center_crop,
    to_float,
    to_rgb,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "DATASETS",
    "EncodedImages",
    "EpochSampler",
    "ImageDataModule",
    "ImageFolder",
    "LSUNImages",
    "Mirrored",
    "ResumableLoader",
    "SyntheticImages",
    "TensorImages",
    "default_root",
    "download_cifar10",
    "download_url",
    "image_batches",
    "find_cifar10",
    "hflip",
    "keep_batch",
    "load_cifar10",
    "md5sum",
    "pil_to_tensor",
    "random_hflip",
    "resize_center_crop",
    "synthetic_image",
    "synthetic_images",
    "to_float",
    "to_rgb",
]
