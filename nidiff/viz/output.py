"""Writing figures: PNG files written atomically, never over an existing file unless asked.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, never through
``pyplot``: no global figure state, no GUI backend, safe in worker processes and on headless
machines.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nidiff.atomic import atomic_write

__all__ = ["new_figure", "check_writable", "save_figure"]


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with constrained layout and an Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def check_writable(paths: Iterable[str | os.PathLike], overwrite: bool = False) -> list[Path]:
    """Refuse, before any work is done, to write over files that exist (unless ``overwrite``).

    Raises ``FileExistsError`` naming every such file and the flag that allows it.
    """
    paths = [Path(p) for p in paths]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"refusing to overwrite {', '.join(existing)}: pass --overwrite, or choose another --out"
        )
    for p in paths:
        if p.exists() and not p.is_file():
            raise FileExistsError(f"{p} exists and is not a file: choose another --out")
    return paths


def save_figure(fig: Figure, path: str | os.PathLike, overwrite: bool = False, dpi: int = 120) -> Path:
    """Render ``fig`` as a PNG at ``path``: a temporary file in the same folder, then a rename.

    Without ``overwrite`` the final step is a hard link, which fails if ``path`` appeared in the
    meantime, so an existing file is never replaced (``FileExistsError``). Creates the folder.
    """
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, facecolor="white"), overwrite,
                        f"refusing to overwrite {path}: pass --overwrite")

