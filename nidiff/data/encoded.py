"""Datasets of encoded image files (JPEG, PNG, WebP, ...) decoded with Pillow, with an error policy.

A subclass says how many images there are, how to read one image's bytes, its name (for messages)
and its label; this base decodes, converts to RGB, resizes and centre-crops
(:func:`~nidiff.data.transforms.resize_center_crop`) and applies ``on_error`` to files that cannot
be read or decoded:

- ``"raise"``: a ``ValueError`` that names the file.
- ``"skip"``: the image is replaced by the next readable one in index order (a map-style dataset
  cannot shrink while it is iterated). The first such file in a process is reported by one warning;
  every one is counted in ``skipped``. :meth:`EncodedImages.decode_all` (used to hold a dataset in
  memory) drops unreadable files instead, and reports their number once.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nidiff.data.transforms import pil_to_tensor, resize_center_crop

__all__ = ["EncodedImages", "OnError", "ON_ERROR"]

OnError = Literal["skip", "raise"]
ON_ERROR: tuple[str, ...] = ("skip", "raise")


def _decode_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    # Pillow reports broken files as OSError (UnidentifiedImageError, truncated data), SyntaxError
    # (malformed chunks), ValueError or EOFError; a damaged zip member raises BadZipFile (CRC).
    return (
        OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError, zipfile.BadZipFile
    )


class EncodedImages(Dataset):
    """Base class: items are ``(image uint8 [3, S, S], label int)``, ``S = image_size``."""

    def __init__(self, image_size: int, on_error: OnError = "raise", source: str = "") -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.image_size = image_size
        self.on_error = on_error
        self.source = source  # where the images come from, for messages
        self.skipped: list[str] = []  # unreadable images met in this process ("skip" policy)
        self._bad: set[int] = set()  # their indices, not decoded again

    # -- what a subclass provides ----------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> bytes:
        """The encoded bytes of image ``index``."""
        raise NotImplementedError

    def name(self, index: int) -> str:
        """A human-readable name of image ``index`` (file or key), for messages."""
        raise NotImplementedError

    def label(self, index: int) -> int:
        return 0

    # -- decoding ----------------------------------------------------------------------------------
    def load(self, index: int) -> Tensor:
        """Image ``index`` as uint8 ``[3, S, S]``; an unreadable file raises ``ValueError``."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(self.read(index))) as image:
                image.load()
                return pil_to_tensor(resize_center_crop(image, self.image_size))
        except _decode_errors() as err:
            raise ValueError(
                f"cannot read image {self.name(index)!r} in {self.source}: {err}. Remove or "
                f"replace the file, or pass on_error=skip (data.on_error=skip) to skip unreadable images"
            ) from err

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        n = len(self)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        for k in range(n):
            i = (index + k) % n
            if i in self._bad:
                continue
            try:
                return self.load(i), self.label(i)
            except ValueError as err:
                if self.on_error == "raise":
                    raise
                self._bad.add(i)
                self._note_skipped(self.name(i), err)
        raise ValueError(f"no image in {self.source} could be read ({n} files tried)")

    def _note_skipped(self, name: str, err: Exception) -> None:
        self.skipped.append(name)
        if len(self.skipped) == 1:
            reason = str(err).split(". Remove or replace")[0]
            warnings.warn(
                f"skipped an unreadable image: {reason} (on_error=skip: it is replaced by the next "
                f"readable one; reported once per process, further ones are counted in `.skipped`)",
                RuntimeWarning,
                stacklevel=3,
            )

    def decode_all(self, num_workers: int = 0, batch_size: int = 256) -> tuple[Tensor, Tensor]:
        """Decode every image into one tensor: ``(images uint8 [N, 3, S, S], labels int64 [N])``.

        With ``on_error="skip"`` unreadable files are left out (``N`` is then smaller than
        ``len(self)``), their names go to ``skipped`` and their number is reported once.
        """
        loader = DataLoader(
            _Attempts(self),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=list,
        )
        images, labels, bad = [], [], []
        for batch in loader:
            for image, label, problem in batch:
                if problem is not None:
                    name, message = problem
                    if self.on_error == "raise":
                        raise ValueError(message)
                    bad.append((name, message))
                    continue
                images.append(image)
                labels.append(label)
        if bad:
            self.skipped.extend(name for name, _ in bad if name not in self.skipped)
            warnings.warn(
                f"{self.source}: skipped {len(bad)} unreadable image(s) of {len(self)} "
                f"(on_error='skip'); the first: {bad[0][1]}",
                RuntimeWarning,
                stacklevel=2,
            )
        if not images:
            raise ValueError(f"no image in {self.source} could be read ({len(self)} files tried)")
        return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


class _Attempts(Dataset):
    """Items ``(image | None, label, (name, message) | None)``: decoding without substitution."""

    def __init__(self, images: EncodedImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor | None, int, tuple[str, str] | None]:
        try:
            return self.images.load(index), self.images.label(index), None
        except ValueError as err:
            return None, -1, (self.images.name(index), str(err))
