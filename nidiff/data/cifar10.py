"""CIFAR-10 from the official python-pickle release, ``cifar-10-python.tar.gz``.

The tarball holds ``cifar-10-batches-py/data_batch_1 .. data_batch_5`` (training, 10,000 images
each) and ``test_batch`` (10,000); each is a pickled dict with ``b"data"``, a uint8 array
``[10000, 3072]`` whose row is the 1024 red values of the 32x32 image in row-major order, then the
1024 green, then the 1024 blue, and ``b"labels"``, a list of ints in 0..9. Reshaping a row to
``[3, 32, 32]`` therefore gives the channel-first image directly.

Where it is looked for, under ``root`` (default: the environment variable ``NIDIFF_DATA``, else
``~/.cache/nidiff``): the extracted folder ``root/cifar-10-batches-py/`` first, then the tarball
``root/cifar-10-python.tar.gz``, read without extracting. ``root`` may also be that folder or that
tarball itself. ``download=True`` fetches the tarball from the official address and checks its
published MD5 (:func:`~nidiff.data.download.download_url`); files found locally are not
re-checked. The pickles are read with an unpickler that accepts only the NumPy array types they
contain, so a tampered file cannot run code.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from nidiff.data.download import download_url

__all__ = [
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "CIFAR10_FILENAME",
    "CIFAR10_FOLDER",
    "CIFAR10_CLASSES",
    "default_root",
    "find_cifar10",
    "download_cifar10",
    "load_cifar10",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FILENAME = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
BATCHES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


def default_root() -> Path:
    """``$NIDIFF_DATA`` if set, else ``~/.cache/nidiff``: where datasets are looked for."""
    return Path(os.environ.get("NIDIFF_DATA") or Path.home() / ".cache" / "nidiff").expanduser()


def find_cifar10(root: str | os.PathLike | None = None) -> Path | None:
    """The extracted folder or the tarball found under ``root``, or None."""
    root = Path(root).expanduser() if root is not None else default_root()
    for candidate in (root / CIFAR10_FOLDER, root / CIFAR10_FILENAME, root):
        if candidate.is_dir() and (candidate / "test_batch").is_file():
            return candidate
        if candidate.is_file() and candidate.name.endswith((".tar.gz", ".tgz", ".tar")):
            return candidate
    return None


def download_cifar10(root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download the tarball to ``root/cifar-10-python.tar.gz`` (MD5-checked, atomic); returns it."""
    root = Path(root).expanduser() if root is not None else default_root()
    return download_url(CIFAR10_URL, root / CIFAR10_FILENAME, md5=CIFAR10_MD5, progress=progress)


def load_cifar10(
    root: str | os.PathLike | None = None,  # folder holding the tarball or its extracted folder
    split: Literal["train", "test"] = "train",
    download: bool = False,                  # fetch the tarball when it is not found
) -> tuple[Tensor, Tensor]:
    """CIFAR-10 as ``(images uint8 [N, 3, 32, 32], labels int64 [N])``, N = 50,000 or 10,000."""
    if split not in BATCHES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root).expanduser() if root is not None else default_root()
    found = find_cifar10(root)
    if found is None:
        problem = "download=False"
        if download:
            try:
                found = download_cifar10(root)
            except (OSError, ValueError) as err:
                problem = f"the download failed: {err}"
        if found is None:
            raise FileNotFoundError(
                f"CIFAR-10 not found under {root} ({problem}). Put {CIFAR10_FILENAME} (from "
                f"{CIFAR10_URL}, MD5 {CIFAR10_MD5}) at {root / CIFAR10_FILENAME}, or its extracted "
                f"folder at {root / CIFAR10_FOLDER}; or set NIDIFF_DATA / data.root to the folder "
                f"that holds it, or pass download=True (on the command line: data.download=true)"
            )
    if found.is_dir():
        batches = [_read_batch((found / name).read_bytes(), name) for name in BATCHES[split]]
    else:
        batches = _read_tarball(found, BATCHES[split])
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return torch.from_numpy(images.reshape(-1, 3, 32, 32)), torch.from_numpy(labels)


def _read_tarball(path: Path, names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    wanted = {f"{CIFAR10_FOLDER}/{n}": n for n in names}
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    found[wanted[member.name]] = _read_batch(f.read(), member.name)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(
            f"{path} is not a readable CIFAR-10 tarball ({err}); delete it and fetch it again"
        ) from err
    missing = [n for n in names if n not in found]
    if missing:
        absent = ", ".join(f"{CIFAR10_FOLDER}/{n}" for n in missing)
        raise ValueError(f"{path} lacks {absent}: not the CIFAR-10 python release")
    return [found[n] for n in names]


def _read_batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as err:
        raise ValueError(
            f"{name} is not a CIFAR-10 batch (a pickled dict with b'data' and b'labels'): {err}"
        ) from err
    if images.ndim != 2 or images.shape[1] != 3072 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"{name}: expected data [N, 3072] and N labels, got {images.shape} and {labels.shape}"
        )
    return images, labels


class _ArrayUnpickler(pickle.Unpickler):
    """Loads dicts, lists, bytes, numbers and NumPy arrays; refuses every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol 2 stores an array's raw bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core"):]  # NumPy 2 renamed the package
        return getattr(importlib.import_module(module), name)
