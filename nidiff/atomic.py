"""Putting a finished temporary file in place without replacing an existing one."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["link_new"]


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
