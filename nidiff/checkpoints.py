"""Checkpoint files: atomic writes, safe loads, and finding the newest good one.

A checkpoint is written to a temporary file in the same folder, flushed and ``fsync``-ed, then
renamed over the target (``os.replace`` is atomic on POSIX and Windows), and the folder is
``fsync``-ed: a process killed at any moment leaves either the old file or the new one, never a
truncated one. Loading uses ``torch.load(weights_only=True)``: a checkpoint is data, never code.

Fault injection: ``NIDIFF_FAULT_CHECKPOINT_DELAY=SECONDS`` makes :class:`AtomicCheckpointIO` wait
that long between writing a checkpoint's temporary file and renaming it, so that tests (and users
checking their own setup) can kill a run in the middle of a checkpoint write.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

__all__ = [
    "AtomicCheckpointIO", "CorruptCheckpointError", "atomic_save", "safe_load", "newest_loadable", "remove_stale_temps",
    "scan",
]


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (truncated, corrupt, or not a checkpoint)."""


def atomic_save(obj: Any, path: str | os.PathLike, save: Callable[[Any, Any], None] = torch.save) -> Path:
    """``save(obj, file)`` to ``path`` atomically: temp file, flush, fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """``torch.load(path, weights_only=True)``, with an error that names the file when it is bad."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, pickle errors, EOFError, zipfile errors...
        hint = ""
        previous = newest_loadable(path.parent, exclude=path)
        if previous is not None:
            hint = f"; the newest loadable checkpoint beside it is {previous}"
        raise CorruptCheckpointError(
            f"checkpoint {path} cannot be loaded ({type(err).__name__}: {str(err).splitlines()[0][:200]}): it is "
            f"truncated, corrupt, or not a nidiff checkpoint{hint}"
        ) from err


def _step(path: Path) -> int:
    match = re.search(r"step_(\d+)", path.name)
    return int(match.group(1)) if match else -1


def candidates(folder: str | os.PathLike) -> list[Path]:
    """Checkpoints in ``folder``, newest first: ``last.ckpt``, then ``step_*.ckpt`` by step."""
    folder = Path(folder)
    steps = sorted(folder.glob("step_*.ckpt"), key=_step, reverse=True)
    last = [folder / "last.ckpt"] if (folder / "last.ckpt").is_file() else []
    return last + steps


def scan(folder: str | os.PathLike, exclude: Path | None = None) -> tuple[Path | None, list[Path]]:
    """One pass over ``folder``'s checkpoints: ``(the newest that loads, by global step, or None;
    those that do not load)``."""
    best: tuple[int, Path] | None = None
    bad: list[Path] = []
    for path in candidates(folder):
        if exclude is not None and path.resolve() == Path(exclude).resolve():
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            bad.append(path)
            continue
        step = int(state.get("global_step", _step(path)))
        if best is None or step > best[0]:
            best = (step, path)
    return (None if best is None else best[1]), bad


def newest_loadable(folder: str | os.PathLike, exclude: Path | None = None) -> Path | None:
    """The newest checkpoint in ``folder`` that loads, by global step; ``None`` when none does."""
    return scan(folder, exclude)[0]


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of writes that a killed process left in ``folder``; returns them.

    Only for a folder no live process writes to (a run being resumed).
    """
    stale = sorted(Path(folder).glob(".*.tmp-*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes atomically and loads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        delay = float(os.environ.get("NIDIFF_FAULT_CHECKPOINT_DELAY") or 0)

        def save(obj: Any, f) -> None:
            torch.save(obj, f)
            if delay > 0:  # fault injection: a wide window in which the write is under way
                f.flush()
                time.sleep(delay)

        atomic_save(checkpoint, path, save=save)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return safe_load(path, map_location=map_location or "cpu")
