"""Writing files so that a reader, a crash or a full disk never sees half of one.

:func:`atomic_write` is the one way nidiff writes a file: the content goes to a temporary file in
the target's folder, which is flushed and ``fsync``-ed and then given the target's name, by
``os.replace`` (atomic on POSIX and Windows) or, where the target must not be replaced, by a hard
link that fails if the name exists (:func:`link_new`). Whatever goes wrong on the way (a killed
process aside, which leaves at most a ``.NAME.tmp-*`` file that :func:`remove_stale_temps` removes
when nothing writes the folder any more), the temporary file is removed and the target is as it was: absent, or the old file whole.
Checkpoints, sample PNGs, ``.npz`` archives, JSON results, reference statistics, figures and logs
are all written through it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_MARK", "atomic_write", "atomic_write_text", "link_new", "publish", "remove_stale_temps"]

TEMP_MARK = ".tmp-"  # temporary files are named .NAME.tmp-XXXXXXXX beside NAME


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[BinaryIO], object],     # writes the content to the open binary file
    overwrite: bool = True,                  # replace an existing file; False: FileExistsError
    exists_message: str | None = None,       # the FileExistsError's message
    fsync: bool = True,                      # make the content durable before the rename
) -> Path:
    """Write ``path`` atomically with ``write(file)``; returns ``path``."""
    path = Path(path)
    message = exists_message or f"{path} exists; pass --overwrite to replace it"
    if not overwrite and path.exists():
        raise FileExistsError(message)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _mode_for(path))  # mkstemp's 0600 would make every output private
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        publish(tmp, path, overwrite, message)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = True,
                      exists_message: str | None = None) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode()), overwrite, exists_message)


def link_new(tmp: Path, path: Path, message: str) -> None:
    """Give ``tmp`` the name ``path`` unless that exists (``FileExistsError(message)``), atomically
    where hard links work; elsewhere check, then rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(message) from None
    except OSError:  # no hard links on this file system
        if path.exists():
            raise FileExistsError(message) from None
        os.replace(tmp, path)


def publish(tmp: Path, path: Path, overwrite: bool, message: str) -> None:
    """Give the finished ``tmp`` the name ``path``: replacing it if ``overwrite``, else as :func:`link_new`."""
    if overwrite:
        os.replace(tmp, path)
    else:
        link_new(tmp, path, message)


def _mode_for(path: Path) -> int:
    """The permissions a new file gets from the umask, or those of the file it replaces."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder``; returns them.

    Only for a folder no live process writes to (a locked run being resumed, say).
    """
    stale = sorted(Path(folder).glob(f".*{TEMP_MARK}*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where a directory can be opened and synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
