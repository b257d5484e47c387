"""A table of image tiles with a title over each column and a label before each row.

Used for the forward-process strips (rows: processes, columns: times) and for denoising
trajectories (rows: ``z_t`` and ``x_hat`` of each sample, columns: sampler steps). Images are
``[-1, 1]`` tensors; values outside are clipped for display, and non-finite values (an ``x_hat``
divided by an ``alpha_t`` that underflowed) are shown as 0, mid-grey.
"""

from __future__ import annotations

import textwrap

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from nidiff.viz.output import new_figure

__all__ = ["to_display", "strip_figure"]


def to_display(image: Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] (C = 1 or 3) to an ``[H, W, 3]`` float array in [0, 1] for ``imshow``."""
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"a tile must be [C, H, W] with C = 1 or 3, got shape {list(image.shape)}")
    x = torch.nan_to_num(image.detach().to("cpu", torch.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    x = ((x.clamp(-1.0, 1.0) + 1.0) / 2.0).expand(3, -1, -1)
    return x.permute(1, 2, 0).numpy()


def strip_figure(
    tiles: Tensor,
    column_titles: Sequence[str],
    row_labels: Sequence[str],
    title: str | None = None,
    caption: str | None = None,
    tile_inches: float = 1.05,
    label_inches: float = 1.9,
) -> Figure:
    """Draw ``tiles`` ``[R, K, C, H, W]`` (in [-1, 1]) as R rows of K images.

    Args:
        column_titles: K strings written above the top row (e.g. ``"t = 0.4"``).
        row_labels: R strings written left of each row (may contain line breaks).
        title: the figure's title; caption: a line of small text under the tiles.
    """
    if tiles.dim() != 5:
        raise ValueError(f"tiles must be [rows, columns, C, H, W], got shape {list(tiles.shape)}")
    rows, cols = tiles.shape[:2]
    if len(column_titles) != cols or len(row_labels) != rows:
        raise ValueError(
            f"{rows} x {cols} tiles need {cols} column titles and {rows} row labels, "
            f"got {len(column_titles)} and {len(row_labels)}"
        )
    width = cols * tile_inches + label_inches
    # wrapped to the figure's width (about 15 characters of 8-point text, 12 of 12-point, per inch),
    # so that a narrow strip does not crop them
    title = textwrap.fill(title, max(20, int(width * 12))) if title else title
    caption = textwrap.fill(caption, max(30, int(width * 15))) if caption else caption
    lines = (title.count("\n") + 1 if title else 0, caption.count("\n") + 1 if caption else 0)
    height = rows * tile_inches + 0.45 + 0.45 * lines[0] + 0.3 * lines[1]
    fig = new_figure(width, height)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for r in range(rows):
        for k in range(cols):
            ax = axes[r, k]
            ax.imshow(to_display(tiles[r, k]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title(column_titles[k], fontsize=10)
        axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=10, labelpad=8)
    if title:
        fig.suptitle(title, fontsize=12)
    if caption:
        fig.supxlabel(caption, fontsize=8, color="0.3")
    return fig
