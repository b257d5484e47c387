"""The dataset registry of :class:`~nidiff.data.module.ImageDataModule`: name -> builder.

``DATASETS`` is a plain dict; add an entry to add a dataset. A builder takes keyword arguments
(``root``, ``path``, ``image_size``, ``split``, ``seed``, ``num_images``, ``on_error``,
``download``; it ignores those it does not need) and returns the images, in memory
(``(uint8 [N, 3, S, S], labels int64 [N])``) or as a Dataset of ``(uint8 [3, S, S], label)`` items,
with a sentence saying what they are.

| name          | what                                               | held          |
| ------------- | -------------------------------------------------- | ------------- |
| ``cifar10``   | the official python tarball under ``root``         | memory        |
| ``folder``    | a folder or .zip of images at ``path``             | disk, workers |
| ``lsun``      | an LSUN lmdb export at ``path``                    | disk, workers |
| ``synthetic`` | procedural shapes (:mod:`nidiff.data.synthetic`)   | memory        |
| ``auto``      | one of the above, see below                        |               |

``auto`` takes ``path`` when one is given (as ``folder``, or ``lsun`` for a folder holding
``data.mdb``), else CIFAR-10 if it is found under ``root``, else ``synthetic``, and says which it
picked: an explicit path wins over a CIFAR-10 copy that happens to be in the cache.

A ``path`` folder holding ``<split>.zip`` or a ``<split>/`` folder (like
``cifar10-jpeg75/train.zip``) is read as that one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from nidiff.data.cifar10 import find_cifar10, load_cifar10
from nidiff.data.folder import ImageFolder
from nidiff.data.lsun import LSUNImages
from nidiff.data.synthetic import SHAPES, synthetic_images

__all__ = ["DATASETS", "ImageSource", "SPLITS", "probe"]

SPLITS: tuple[str, ...] = ("train", "test")
# (images in memory or as a Dataset, what they are in words)
ImageSource = tuple[tuple[Tensor, Tensor] | Dataset, str]


def _cifar10(*, root: Path, image_size: int, split: str, download: bool = False, **_: Any
             ) -> ImageSource:
    if image_size != 32:
        raise ValueError(f"CIFAR-10 images are 32x32; set image_size=32 (got {image_size})")
    images = load_cifar10(root, split, download=download)  # type: ignore[arg-type]
    return images, f"CIFAR-10 {split} set from {find_cifar10(root)}"


def _folder(*, path: Path | None, image_size: int, split: str, on_error: str, **_: Any
            ) -> ImageSource:
    if path is None:
        raise ValueError("dataset='folder' needs data.path: a folder or .zip of images")
    path = _split_path(path, split)
    images = ImageFolder(path, image_size, on_error=on_error)  # type: ignore[arg-type]
    return images, f"{len(images)} images in {len(images.classes)} classes from {path}"


def _lsun(*, path: Path | None, image_size: int, on_error: str, **_: Any) -> ImageSource:
    if path is None:
        raise ValueError(
            "dataset='lsun' needs data.path: the folder of an LSUN lmdb export (holding data.mdb)"
        )
    images = LSUNImages(path, image_size, on_error=on_error)  # type: ignore[arg-type]
    return images, f"LSUN: {len(images)} images from {path}"


def _synthetic(*, image_size: int, num_images: int, seed: int, path: Path | None = None,
               shapes: Sequence[str] = SHAPES, max_shapes: int = 3, **_: Any) -> ImageSource:
    _no_path_for_synthetic(path)
    kinds = "" if (tuple(shapes), max_shapes) == (SHAPES, 3) else f", {' and '.join(shapes)}, at most {max_shapes}"
    return (synthetic_images(num_images, image_size, seed, shapes, max_shapes),
            f"{num_images} synthetic {image_size}x{image_size} images (seed {seed}{kinds})")


def _auto(*, root: Path, path: Path | None, **kw: Any) -> ImageSource:
    if path is not None:
        if (path / "data.mdb").is_file():
            return _tag("lsun", _lsun(path=path, **kw))
        return _tag("folder", _folder(path=path, **kw))
    if find_cifar10(root) is not None:
        return _tag("cifar10", _cifar10(root=root, **kw))
    images, what = _synthetic(path=None, **kw)
    why = f"no data.path given and no CIFAR-10 under {root}"
    return images, f"dataset=auto picked synthetic: {why}; {what}"


def _no_path_for_synthetic(path: Path | None) -> None:
    if path is not None:
        raise ValueError(f"data.path={path} is given, but data.dataset=synthetic draws its images and reads no "
                         f"files: add data.dataset=folder (or auto) to train on {path}")


def _tag(name: str, source: ImageSource) -> ImageSource:
    return source[0], f"dataset=auto picked {name}: {source[1]}"


def _split_path(path: Path, split: str) -> Path:
    if path.is_dir():
        for candidate in (path / f"{split}.zip", path / split):
            if candidate.exists():
                return candidate
    return path


def probe(dataset: str, *, root: Path, path: Path | None, image_size: int, split: str, download: bool = False,
          on_error: str = "skip", **_: Any) -> str:
    """Check, cheaply, that ``dataset`` can be read, before any work: the files are there, and the first
    readable image decodes (a folder, zip or lmdb); returns what will be read, in words. Raises
    ``FileNotFoundError``/``ValueError`` (``ImportError`` for a missing lmdb) with what to do."""
    from nidiff.data.cifar10 import CIFAR10_FILENAME

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    if dataset == "auto":
        if path is not None:
            dataset = "lsun" if (path / "data.mdb").is_file() else "folder"
        else:
            dataset = "cifar10" if find_cifar10(root) is not None else "synthetic"
    if dataset == "synthetic":
        _no_path_for_synthetic(path)
        return "synthetic images"
    if dataset == "cifar10":
        if image_size != 32:
            raise ValueError(f"CIFAR-10 images are 32x32; set image_size=32 (got {image_size})")
        found = find_cifar10(root)
        if found is None and not download:
            raise FileNotFoundError(
                f"CIFAR-10 not found under {root}: put {CIFAR10_FILENAME} (or its extracted folder) there, set "
                f"NIDIFF_DATA or data.root to the folder that holds it, or pass data.download=true"
            )
        return f"CIFAR-10 {split} set from {found or 'the official download'}"
    if path is None:
        raise ValueError(f"dataset={dataset!r} needs data.path")
    images = LSUNImages(path, image_size, on_error="raise") if dataset == "lsun" else \
        ImageFolder(_split_path(path, split), image_size, on_error="raise")
    errors = []
    for index in range(min(len(images), 16)):  # the first readable image of the first few
        try:
            images.load(index)
            return f"{len(images)} images from {images.source}"
        except ValueError as err:
            errors.append(str(err))
            if on_error == "raise":
                break
    raise ValueError(f"no readable image among the first {len(errors)} of {images.source}: {errors[0]}")


DATASETS: dict[str, Callable[..., ImageSource]] = {
    "auto": _auto,
    "cifar10": _cifar10,
    "folder": _folder,
    "lsun": _lsun,
    "synthetic": _synthetic,
}
