"""Putting a finished temporary file in place without replacing an existing one."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["link_new", "publish"]


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
