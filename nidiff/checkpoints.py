"""Checkpoint files: atomic writes, safe loads, and finding the newest good one.

A checkpoint is written to a temporary file in the same folder, flushed and ``fsync``-ed, then
renamed over the target (``os.replace`` is atomic on POSIX and Windows), and the folder is
``fsync``-ed: a process killed at any moment leaves either the old file or the new one, never a
truncated one. Loading uses ``torch.load(weights_only=True)``: a checkpoint is data, never code.

Integrity: every checkpoint carries ``nidiff_sha256``, a SHA-256 digest of its whole content (every
tensor's dtype, shape and bytes, every key and plain value, in a fixed order; :func:`state_digest`),
computed when it is written and checked at every load, so a flipped bit in a weight tensor is found
rather than trained on. A checkpoint without the field (written by nidiff 0.1) loads as before.

Fault injection: ``NIDIFF_FAULT_CHECKPOINT_DELAY=SECONDS`` makes :class:`AtomicCheckpointIO` wait
that long between writing a checkpoint's temporary file and renaming it, so that tests (and users
checking their own setup) can kill a run in the middle of a checkpoint write.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from nidiff.atomic import atomic_write, remove_stale_temps
from nidiff.errors import CorruptCheckpointError, DiskFullError

__all__ = [
    "DIGEST_KEY", "AtomicCheckpointIO", "CorruptCheckpointError", "DiskFullError", "atomic_save", "newest_loadable",
    "remove_stale_temps", "safe_load", "scan", "state_digest",
]

DIGEST_KEY = "nidiff_sha256"



def atomic_save(obj: Any, path: str | os.PathLike, save: Callable[[Any, Any], None] = torch.save) -> Path:
    """``save(obj, file)`` to ``path`` atomically (:func:`nidiff.atomic.atomic_write`)."""
    return atomic_write(path, lambda f: save(obj, f))


def state_digest(state: Mapping) -> str:
    """SHA-256 of a checkpoint's content, ``DIGEST_KEY`` left out: hex string."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != DIGEST_KEY})
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}:".encode())
        if t.numel():
            h.update(memoryview(t.view(torch.uint8).numpy()))
    elif isinstance(obj, Mapping):
        h.update(b"{")
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode() + b":")
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _feed(h, item)
        h.update(b"]")
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def _load_checked(path: Path, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """Load with ``weights_only=True`` and check the digest; raises what went wrong."""
    state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    if not isinstance(state, dict):
        raise ValueError(f"a checkpoint holds a dict, this holds a {type(state).__name__}")
    expected = state.pop(DIGEST_KEY, None)
    if expected is not None and state_digest(state) != expected:
        raise ValueError("its content does not match its SHA-256 digest (damaged after it was written)")
    return state


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """``torch.load(path, weights_only=True)`` with the digest checked, and an error that names the
    file (and the newest loadable checkpoint beside it) when it is bad."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return _load_checked(path, map_location)
    except Exception as err:  # torch raises RuntimeError, pickle errors, EOFError, zipfile errors...
        hint = ""
        previous = newest_loadable(path.parent, exclude=path)
        if previous is not None:
            hint = f"; the newest loadable checkpoint beside it is {previous}"
        raise CorruptCheckpointError(
            f"checkpoint {path} cannot be loaded ({type(err).__name__}: {(str(err).splitlines() or ['empty'])[0][:200]}): it is "
            f"truncated, damaged, or not a nidiff checkpoint{hint}"
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


def _claimed_step(path: Path) -> float:
    """The global step a checkpoint says it holds (read lazily, not checked); a file that does not
    even say counts as the newest, so that it is checked, and reported, first."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state.get("global_step", _step(path)))
    except Exception:
        return math.inf


def scan(folder: str | os.PathLike, exclude: Path | None = None) -> tuple[Path | None, list[Path]]:
    """``(the newest checkpoint in folder that loads and matches its digest, by global step, or None;
    the newer ones that do not)``. Checkpoints are checked newest first, and the scan stops at the
    first good one, so a resume reads about one checkpoint in full."""
    found = [p for p in candidates(folder) if exclude is None or p.resolve() != Path(exclude).resolve()]
    found.sort(key=lambda p: (_claimed_step(p), p.name == "last.ckpt"), reverse=True)
    bad: list[Path] = []
    for path in found:
        try:
            _load_checked(path, mmap=True)
        except Exception:
            bad.append(path)
            continue
        return path, bad
    return None, bad


def newest_loadable(folder: str | os.PathLike, exclude: Path | None = None) -> Path | None:
    """The newest checkpoint in ``folder`` that loads, by global step; ``None`` when none does."""
    return scan(folder, exclude)[0]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes atomically and loads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        delay = float(os.environ.get("NIDIFF_FAULT_CHECKPOINT_DELAY") or 0)

        def save(obj: Any, f) -> None:
            torch.save(obj, f)
            if delay > 0:  # fault injection: a wide window in which the write is under way
                f.flush()
                time.sleep(delay)

        checkpoint[DIGEST_KEY] = state_digest(checkpoint)
        try:
            atomic_save(checkpoint, path, save=save)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            good = newest_loadable(Path(path).parent)
            raise DiskFullError(
                errno.ENOSPC, f"the disk is full: {path} was not written (its temporary file was removed); "
                f"the newest checkpoint, {good or 'none'}, is intact. Free space, then resume"
            ) from None
        finally:
            checkpoint.pop(DIGEST_KEY, None)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return safe_load(path, map_location=map_location or "cpu")
