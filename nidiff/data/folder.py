"""Images from a folder tree or a ``.zip`` of images, with labels from class subfolders.

Layout (a folder or the members of a zip, any depth)::

    root/airplane/0000.jpg      -> class "airplane"
    root/airplane/0001.jpg
    root/cat/0000.png           -> class "cat"
    root/loose.png              -> class "" (files at the top level)

- Files: ``.jpg .jpeg .png .webp .bmp`` (any case); hidden files and folders, and ``__MACOSX/``
  entries of zips made on macOS, are ignored. Order: sorted by relative path (``/``-separated), so
  it is the same on every machine and every run.
- Labels: the classes are the sorted names of the top-level subfolders (and ``""`` for top-level
  files, if any); a label is the index of its class. A flat folder has one class, label 0. In a zip
  whose members all sit under one folder that itself holds class folders (``train/cat/0.jpg``), that
  folder is not a class. ``cifar10-jpeg75``-style zips (``<class>/<NNNN>.jpg``) thus get the
  CIFAR-10 labels, the class names sorting in CIFAR-10 label order.
- Pixels: decoded by Pillow, converted to RGB (alpha over white), the shorter side resized to
  ``image_size`` with Pillow's antialiased ``BICUBIC`` and the centre cropped
  (:func:`~nidiff.data.transforms.resize_center_crop`). Unreadable files follow ``on_error``
  (:mod:`nidiff.data.encoded`).
- Zips are opened lazily, once per process: each DataLoader worker opens its own handle on its
  first read (a zip handle shared across ``fork`` would interleave seeks).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from nidiff.data.encoded import EncodedImages, OnError

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _is_image(relative: str) -> bool:
    parts = relative.split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return relative.lower().endswith(IMAGE_EXTENSIONS)


class ImageFolder(EncodedImages):
    """A folder tree or ``.zip`` of JPEG/PNG images; items ``(uint8 [3, S, S], label)``."""

    def __init__(
        self,
        path: str | os.PathLike,             # a folder, or a .zip file of images
        image_size: int,                     # S: output images are S x S
        on_error: OnError = "skip",          # unreadable files: "skip" (report once) or "raise"
    ) -> None:
        self.path = Path(path).expanduser()
        super().__init__(image_size, on_error, source=str(self.path))
        if not self.path.exists():
            raise FileNotFoundError(
                f"no image folder or .zip at {self.path}: give the path of a folder of images "
                f"(optionally in class subfolders) or of a .zip file of them"
            )
        self.is_zip = self.path.is_file()
        self._prefix = ""  # a zip's single wrapping folder, not a class
        if self.is_zip:
            if not zipfile.is_zipfile(self.path):
                raise ValueError(
                    f"{self.path} is a file but not a .zip archive: give a folder or a .zip"
                )
            files = self._zip_members()
        else:
            files = self._folder_files()
        if not files:
            raise FileNotFoundError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {self.path}: put the images "
                f"there, in class subfolders if they have labels"
            )
        self.files: list[str] = files  # relative paths, sorted
        names = [self._class_of(f) for f in files]
        self.classes: list[str] = sorted(set(names))
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        self.labels: list[int] = [self.class_to_idx[c] for c in names]
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None

    def _folder_files(self) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.path, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.path).as_posix()
            for f in filenames:
                rel = f if rel_dir == "." else f"{rel_dir}/{f}"
                if _is_image(rel):
                    found.append(rel)
        return sorted(found)

    def _zip_members(self) -> list[str]:
        with zipfile.ZipFile(self.path) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
        members = sorted(n for n in names if _is_image(n))
        firsts = {m.split("/", 1)[0] for m in members}
        if len(firsts) == 1 and all(m.count("/") >= 2 for m in members):
            self._prefix = next(iter(firsts)) + "/"  # one wrapping folder around the class folders
        return members

    def _class_of(self, relative: str) -> str:
        if self.is_zip:
            relative = relative[len(self._prefix):]
        head, sep, _ = relative.partition("/")
        return head if sep else ""

    def __len__(self) -> int:
        return len(self.files)

    def name(self, index: int) -> str:
        return self.files[index]

    def label(self, index: int) -> int:
        return self.labels[index]

    def read(self, index: int) -> bytes:
        if not self.is_zip:
            return (self.path / self.files[index]).read_bytes()
        return self._handle().read(self.files[index])

    def _handle(self) -> zipfile.ZipFile:
        pid = os.getpid()
        if self._zip is None or self._zip_pid != pid:
            self._zip = zipfile.ZipFile(self.path)  # this process's own handle
            self._zip_pid = pid
        return self._zip

    def close(self) -> None:
        """Close this process's zip handle (reopened on the next read)."""
        if self._zip is not None and self._zip_pid == os.getpid():
            self._zip.close()
        self._zip, self._zip_pid = None, None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_zip"], state["_zip_pid"] = None, None  # handles do not travel to other processes
        return state

    def __repr__(self) -> str:
        kind = "zip" if self.is_zip else "folder"
        return (f"ImageFolder({kind} {self.path}, {len(self)} images, {len(self.classes)} classes, "
                f"image_size={self.image_size})")
