"""Download a file with a checksum, atomically: a temporary file beside the target, then a rename.

The file appears under its final name only once it is complete and its MD5 matches, so an
interrupted or corrupt download never leaves a file that a later run would trust. Any URL that
``urllib`` opens works, ``file://`` included.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from nidiff.atomic import atomic_write

__all__ = ["download_url", "md5sum"]

CHUNK = 1 << 20


def md5sum(path: str | os.PathLike) -> str:
    """The MD5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(
    url: str,                                # http(s)://, ftp:// or file:// address
    path: str | os.PathLike,                 # where the file goes (its folder is created)
    md5: str | None = None,                  # expected MD5 hex digest; None skips the check
    progress: bool = True,                   # show a tqdm progress bar
    timeout: float = 60.0,                   # seconds without data before giving up
) -> Path:
    """Fetch ``url`` to ``path``; returns ``path``.

    Raises ``ValueError`` when the MD5 of what arrived differs from ``md5`` and ``OSError``
    (``urllib.error.URLError`` included) when the transfer fails; in both cases nothing is left at
    ``path`` nor beside it.
    """
    path = Path(path).expanduser()

    def write(out) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            bar = _progress_bar(int(total) if total else None, path.name, progress)
            try:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            finally:
                bar.close()
        got = digest.hexdigest()
        if md5 is not None and got != md5.lower():
            raise ValueError(
                f"checksum mismatch for {url}: expected MD5 {md5}, got {got}; the download is "
                f"corrupt or the file changed, nothing was written to {path}"
            )

    return atomic_write(path, write)


def _progress_bar(total: int | None, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not enabled
    )
