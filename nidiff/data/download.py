"""Download a file with a checksum, atomically: a temporary file beside the target, then a rename.

The file appears under its final name only once it is complete and its MD5 matches, so an
interrupted or corrupt download never leaves a file that a later run would trust. Any URL that
``urllib`` opens works, ``file://`` included.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
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
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _progress_bar(total: int | None, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not enabled
    )
