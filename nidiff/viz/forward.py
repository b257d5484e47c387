"""Forward-process strips: ``z_t ~ q(z_t | x)`` of one image over t, one row per process.

| paper                                            | code                               |
| ------------------------------------------------ | ---------------------------------- |
| ``z_t = P(alpha_t u_x) + sigma_t eps`` (eq. 21)  | ``GaussianDiffusion.diffuse``      |
| figure 1: standard diffusion, heat dissipation,  | ``FIGURE1`` (``nidiff.viz.process``) |
| blurring diffusion                               |                                    |

Every row starts from the same image and the same noise draw ``u_eps`` (one generator seeded
with ``seed`` per row, the same ``eps`` in every column), so rows differ by the process alone and
columns by ``t`` alone. For an orthogonal basis ``eps`` is then the same pixel noise in every row.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from nidiff.viz.process import FIGURE1, Process, build_process
from nidiff.viz.strip import strip_figure

__all__ = ["DEFAULT_TIMES", "load_image", "load_fit_images", "forward_tiles", "forward_strip"]

DEFAULT_TIMES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def load_image(images: str | os.PathLike | None, index: int = 0, image_size: int = 32) -> tuple[Tensor, str]:
    """Image ``index`` as float ``[3, S, S]`` in [-1, 1], and a line saying where it came from.

    ``images`` is a folder or ``.zip`` of images (:class:`~nidiff.data.ImageFolder`); ``None``
    takes the built-in synthetic set (:func:`~nidiff.data.synthetic_images`).
    """
    _check_index(index)
    if images is None:
        from nidiff.data import synthetic_image

        pixels, _ = synthetic_image(index, image_size)
        source = f"built-in synthetic image #{index} (nidiff.data.synthetic_images)"
        return pixels.float() / 127.5 - 1.0, source
    from nidiff.data import ImageFolder

    data = ImageFolder(images, image_size, on_error="raise")
    if index >= len(data):
        raise ValueError(f"--index {index} is out of range: {Path(images).name} holds {len(data)} images")
    pixels, _ = data[index]
    return pixels.float() / 127.5 - 1.0, f"{Path(images).name}: {data.name(index)}"


def load_fit_images(images: str | os.PathLike | None, n: int, image_size: int = 32) -> Tensor:
    """``n`` images spread evenly over the set, float ``[n, 3, S, S]`` in [-1, 1], to fit a PCA basis on."""
    if images is None:
        from nidiff.data import synthetic_images

        return synthetic_images(n, image_size)[0].float() / 127.5 - 1.0
    from nidiff.data import ImageFolder

    data = ImageFolder(images, image_size, on_error="raise")
    idx = np.unique(np.linspace(0, len(data) - 1, min(n, len(data))).round().astype(int))
    return torch.stack([data[int(i)][0] for i in idx]).float() / 127.5 - 1.0


def forward_tiles(
    image: Tensor,
    processes: Sequence[Process] = FIGURE1,
    times: Sequence[float] = DEFAULT_TIMES,
    seed: int = 0,
    fit_images: Callable[[], Tensor] | None = None,
) -> Tensor:
    """``z_t`` of ``image`` ``[C, H, W]`` for every process and time: ``[P, T, C, H, W]`` for
    ``P`` processes and ``T`` times."""
    if image.dim() != 3:
        raise ValueError(f"image must be [C, H, W], got shape {list(image.shape)}")
    t = _check_times(times)
    shape = tuple(image.shape)
    x = image.float().unsqueeze(0).expand(len(t), *shape)  # [K, C, H, W]
    rows = []
    for process in processes:
        diffusion = build_process(process, shape, fit_images)
        g = torch.Generator().manual_seed(seed)
        eps = diffusion.sample_noise(x[:1], generator=g)  # [1, C, H, W], one draw per row
        z_t, _ = diffusion.diffuse(x, t, eps=eps.expand_as(x))
        rows.append(z_t)
    return torch.stack(rows)


def forward_strip(
    image: Tensor,
    processes: Sequence[Process] = FIGURE1,
    times: Sequence[float] = DEFAULT_TIMES,
    seed: int = 0,
    source: str | None = None,
    fit_images: Callable[[], Tensor] | None = None,
) -> Figure:
    """The strip figure: rows labelled with each process, columns with ``t``; see :func:`forward_tiles`."""
    processes = list(processes)
    if not processes:
        raise ValueError("give at least one process to draw")
    tiles = forward_tiles(image, processes, times, seed, fit_images)
    labels = [p.title() for p in processes]
    caption = f"image: {source}; " if source else ""
    caption += f"the same noise draw (seed {seed}) in every tile; values shown clipped to [-1, 1]"
    return strip_figure(
        tiles,
        [f"t = {float(v):.2g}" for v in times],
        labels,
        title="Forward process $z_t \\sim q(z_t \\mid x)$ over diffusion time t",
        caption=caption,
    )


def _check_times(times: Sequence[float]) -> Tensor:
    try:
        t = torch.as_tensor([float(v) for v in times], dtype=torch.float64)
    except (TypeError, ValueError):
        raise ValueError(f"times must be numbers in [0, 1], got {times!r}") from None
    if t.numel() == 0 or bool(((t < 0) | (t > 1) | t.isnan()).any()):
        raise ValueError(f"times must be a non-empty list of numbers in [0, 1], got {t.tolist()}")
    return t


def _check_index(index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"the image index must be an integer >= 0, got {index!r}")
