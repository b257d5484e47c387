"""LSUN scenes (e.g. ``church_outdoor``) in the official lmdb export.

The LSUN repository distributes each category as a zip of an lmdb database
(``church_outdoor_train_lmdb/`` holding ``data.mdb`` and ``lock.mdb``). Its keys are the image ids
(ASCII bytes) and its values the encoded images (WebP), exactly what the repository's
``data.py export`` writes out as ``<key>.webp`` files; any format Pillow decodes is accepted.
Images are taken in key order (lmdb's sorted order), resized and centre-cropped to ``image_size``
(e.g. 64 or 128) as :func:`~nidiff.data.transforms.resize_center_crop` says; all have label 0.

``lmdb`` is an optional dependency (``pip install lmdb``, or ``pip install "nidiff[lsun]"``),
imported only when an LSUN dataset is built. The environment is opened read-only, without locking,
once per process and path, and shared by the datasets of that path: each DataLoader worker opens
its own (an lmdb environment must not cross a ``fork``).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

from nidiff.data.encoded import EncodedImages, OnError

__all__ = ["LSUNImages", "import_lmdb"]

# (lmdb path, process id) -> the environment open in that process; an environment inherited
# through fork is never used, the child opens its own
_ENVIRONMENTS: dict[tuple[str, int], Any] = {}


def import_lmdb() -> ModuleType:
    """``import lmdb``, or an ``ImportError`` that says how to install it."""
    try:
        import lmdb
    except ImportError as err:
        raise ImportError(
            "reading LSUN needs the lmdb package: pip install lmdb  (or pip install 'nidiff[lsun]')"
        ) from err
    return lmdb


class LSUNImages(EncodedImages):
    """An LSUN category's lmdb export; items ``(uint8 [3, S, S], 0)``."""

    def __init__(
        self,
        path: str | os.PathLike,             # the lmdb folder (holding data.mdb), or data.mdb
        image_size: int = 128,               # S: output images are S x S (e.g. 64 or 128)
        on_error: OnError = "skip",          # undecodable entries: "skip" (report once) or "raise"
        max_images: int | None = None,       # keep only the first max_images keys
    ) -> None:
        self.path = Path(path).expanduser()
        super().__init__(image_size, on_error, source=str(self.path))
        self._lmdb = import_lmdb()
        self._subdir = self.path.is_dir()
        self._resolved = str(self.path.resolve())
        if not (self.path / "data.mdb" if self._subdir else self.path).is_file():
            raise FileNotFoundError(
                f"no LSUN lmdb database at {self.path}: download a category with the LSUN "
                f"repository's download.py (e.g. church_outdoor_train_lmdb.zip), unzip it, and "
                f"give the folder that holds data.mdb"
            )
        if max_images is not None and max_images < 1:
            raise ValueError(f"max_images must be >= 1 or None, got {max_images}")
        with self._handle().begin(write=False) as txn:
            keys = []
            for key in txn.cursor().iternext(keys=True, values=False):
                keys.append(bytes(key))
                if max_images is not None and len(keys) >= max_images:
                    break
        if not keys:
            raise FileNotFoundError(f"the lmdb database at {self.path} holds no images")
        self.keys: list[bytes] = keys

    def _handle(self):
        # lmdb allows one open environment per file and process: datasets of the same path share it
        key = (self._resolved, os.getpid())
        if key not in _ENVIRONMENTS:
            _ENVIRONMENTS[key] = self._lmdb.open(
                str(self.path),
                subdir=self._subdir,
                readonly=True,
                lock=False,
                readahead=False,
                meminit=False,
            )
        return _ENVIRONMENTS[key]

    def __len__(self) -> int:
        return len(self.keys)

    def name(self, index: int) -> str:
        return self.keys[index].decode("ascii", errors="replace")

    def read(self, index: int) -> bytes:
        with self._handle().begin(write=False) as txn:
            value = txn.get(self.keys[index])
        if value is None:
            raise ValueError(f"key {self.name(index)!r} vanished from {self.path}")
        return bytes(value)

    def close(self) -> None:
        """Close this process's environment for this path (reopened on the next read)."""
        env = _ENVIRONMENTS.pop((self._resolved, os.getpid()), None)
        if env is not None:
            env.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_lmdb"] = None  # modules do not pickle; re-imported on arrival
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lmdb = import_lmdb()

    def __repr__(self) -> str:
        return f"LSUNImages({self.path}, {len(self)} images, image_size={self.image_size})"
