"""Per-coefficient log-SNR and ``alpha_t`` against t, coefficients grouped into eigenvalue bands.

| paper                                     | code                                       |
| ----------------------------------------- | ------------------------------------------ |
| ``lambda`` per coefficient (eq. 27)       | ``diffusion.lam_unique`` (distinct values) |
| ``log(alpha_t^2 / sigma_t^2)``            | ``schedule.log_alpha_sigma``               |
| ``alpha_t = a_t d_t`` (eq. 28)            | ``exp(log_alpha)``                         |

A band is a set of coefficients whose eigenvalues are close: either ``bands`` groups of about
equal size cut at quantiles of the eigenvalue over all coefficients (``mode="quantile"``; the
eigenvalue 0, the mean colour, is a band of its own), or one band per distinct eigenvalue
(``mode="distinct"``; values equal up to rounding are one: a 32 x 32 DCT has 431, a Haar basis of
``L`` levels ``2L + 1``).
Each band is drawn as the mean over its coefficients, shaded between its extremes. In the DCT,
eigenvalue means spatial frequency: the colour runs from the lowest frequencies to the highest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from torch import Tensor

from nidiff.diffusion import GaussianDiffusion
from nidiff.viz.output import new_figure
from nidiff.viz.process import FIGURE1, Process, build_process

__all__ = ["BAND_MODES", "Bands", "coefficient_bands", "band_curves", "logsnr_figure"]

BAND_MODES: tuple[str, ...] = ("quantile", "distinct")
RELATIVE_TIE = 1e-9  # eigenvalues closer than this (relative, above 1) are one value


@dataclass(frozen=True)
class Bands:
    """``band [U]``: the band of each distinct eigenvalue; ``count [U]``: its coefficients;
    ``low [K]``, ``high [K]``: the eigenvalue range of each band (float64)."""

    band: Tensor
    count: Tensor
    low: Tensor
    high: Tensor

    def __len__(self) -> int:
        return self.low.numel()

    def labels(self, which: Sequence[int] | None = None) -> list[str]:
        """``"0.0386-0.514"`` for each band in ``which`` (default: all), or one value where a band
        holds one eigenvalue; with as many digits (3 to 6) as it takes to tell them apart."""
        which = range(len(self)) if which is None else which
        pairs = [(float(self.low[i]), float(self.high[i])) for i in which]
        for digits in range(3, 7):
            labels = [f"{lo:.{digits}g}" if _same(lo, hi) else f"{lo:.{digits}g}-{hi:.{digits}g}"
                      for lo, hi in pairs]
            if len(set(labels)) == len(labels):
                break
        return labels


def coefficient_bands(diffusion: GaussianDiffusion, bands: int = 8, mode: str = "quantile") -> Bands:
    """Group the coefficients of ``diffusion`` into at most ``bands`` bands by eigenvalue."""
    if mode not in BAND_MODES:
        raise ValueError(f"unknown band mode {mode!r}; known: {', '.join(BAND_MODES)}")
    if isinstance(bands, bool) or not isinstance(bands, int) or bands < 1:
        raise ValueError(f"the number of bands must be an integer >= 1, got {bands!r}")
    lam = diffusion.lam_unique.cpu()  # [U], sorted
    count = torch.bincount(diffusion.lam_index.cpu(), minlength=lam.numel()).to(torch.float64)  # [U]
    # eigenvalues equal up to rounding (a Haar basis's horizontal and vertical bands) are one value
    new_value = lam.diff() > RELATIVE_TIE * lam[1:].abs().clamp_min(1.0)
    group = torch.cat([torch.zeros(1, dtype=torch.long), new_value.long()]).cumsum(0)  # [U]
    if mode == "distinct":
        band = group
    else:
        # eigenvalue 0 (the mean colour, never blurred) is a band of its own when others exist;
        # the rest is cut at coefficient-weighted quantiles, each distinct eigenvalue placed by
        # the quantile of its middle coefficient
        dc = (lam == 0) if bool((lam > 0).any()) and bands > 1 else torch.zeros_like(lam, dtype=torch.bool)
        rest, n = count.masked_fill(dc, 0.0), bands - int(dc.any())
        rest = torch.zeros(int(group[-1]) + 1, dtype=torch.float64).scatter_add(0, group, rest)  # per value
        middle = ((rest.cumsum(0) - rest / 2) / rest.sum())[group]
        band = (middle * n).floor().clamp_max(n - 1).long() + int(dc.any())
        band = torch.unique(band.masked_fill(dc, 0), return_inverse=True)[1]
    k = int(band.max()) + 1
    low = torch.full((k,), math.inf, dtype=torch.float64).scatter_reduce(0, band, lam, "amin")
    high = torch.full((k,), -math.inf, dtype=torch.float64).scatter_reduce(0, band, lam, "amax")
    return Bands(band, count, low, high)


def band_curves(diffusion: GaussianDiffusion, t: Tensor, bands: Bands) -> dict[str, Tensor]:
    """Per band ``[T, K]`` (float64): ``logsnr`` (mean), ``logsnr_low``, ``logsnr_high``, ``alpha``;
    and ``sigma``, ``sigma_spread`` ``[T]``: the mean of ``sigma_t`` over all coefficients, and
    its range (0 for a schedule whose noise level is the same for every coefficient)."""
    t64 = torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1)  # [T, 1]
    lam = diffusion.lam_unique.cpu()
    log_alpha, log_sigma = diffusion.schedule.log_alpha_sigma(t64, lam)
    shape = (t64.shape[0], lam.numel())
    log_alpha, log_sigma = log_alpha.expand(shape), log_sigma.expand(shape)  # [T, U]
    logsnr = 2.0 * (log_alpha - log_sigma)
    k, w = len(bands), bands.count
    index = bands.band.expand(shape)

    def mean(v: Tensor) -> Tensor:
        total = torch.zeros(shape[0], k, dtype=torch.float64).scatter_add(1, index, v * w)
        return total / torch.zeros(k, dtype=torch.float64).scatter_add(0, bands.band, w)

    def extreme(v: Tensor, how: str) -> Tensor:
        start = math.inf if how == "amin" else -math.inf
        return torch.full((shape[0], k), start, dtype=torch.float64).scatter_reduce(1, index, v, how)

    return {
        "logsnr": mean(logsnr),
        "logsnr_low": extreme(logsnr, "amin"),
        "logsnr_high": extreme(logsnr, "amax"),
        "alpha": mean(log_alpha.exp()),
        "sigma": (log_sigma.exp() * w).sum(1) / w.sum(),
        "sigma_spread": log_sigma.exp().amax(1) - log_sigma.exp().amin(1),
    }


def logsnr_figure(
    processes: Sequence[Process] = FIGURE1,
    shape: tuple[int, int, int] = (3, 32, 32),
    bands: int = 8,
    mode: str = "quantile",
    points: int = 201,
    logsnr_floor: float = -30.0,
    fit_images: Callable[[], Tensor] | None = None,
) -> Figure:
    """One column per process: log-SNR per band over t (top), ``alpha_t`` per band (bottom).

    The log-SNR axes share their range, cut at ``logsnr_floor`` below (heat dissipation falls to
    thousands below zero at high frequencies; the cut is noted in the panel).
    """
    processes = list(processes)
    if not processes:
        raise ValueError("give at least one (basis, schedule) pair to plot")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    panels = []
    for p in processes:
        diffusion = build_process(p, shape, fit_images)
        b = coefficient_bands(diffusion, bands, mode)
        panels.append((p, b, band_curves(diffusion, t, b)))
    top = max(float(c["logsnr_high"].max()) for _, _, c in panels)
    bottom = min(float(c["logsnr_low"].min()) for _, _, c in panels)
    ylim = (max(bottom - 1.0, logsnr_floor), top + 1.5)

    fig = new_figure(4.3 * len(panels) + 0.4, 6.6)
    axes = np.asarray(fig.subplots(2, len(panels), squeeze=False, sharex=True))
    x = t.numpy()
    for j, (p, b, c) in enumerate(panels):
        colors = colormaps["viridis"](np.linspace(0.0, 0.9, len(b)))
        ax, ax_alpha = axes[0, j], axes[1, j]
        for k in range(len(b)):
            if bool((c["logsnr_high"][:, k] > c["logsnr_low"][:, k]).any()):
                ax.fill_between(x, c["logsnr_low"][:, k].numpy(), c["logsnr_high"][:, k].numpy(),
                                color=colors[k], alpha=0.1, linewidth=0)
            ax.plot(x, c["logsnr"][:, k].numpy(), color=colors[k], linewidth=1.6)
            ax_alpha.plot(x, c["alpha"][:, k].numpy(), color=colors[k], linewidth=1.6)
        uniform = bool((c["sigma_spread"] <= 1e-12).all())
        ax_alpha.plot(x, c["sigma"].numpy(), color="0.35", linestyle="--", linewidth=1.2,
                      label=r"$\sigma_t$" if uniform else r"$\sigma_t$, mean over coefficients")
        ax.set_ylim(*ylim)
        lowest = float(c["logsnr_low"].min())
        if lowest < ylim[0]:
            ax.text(0.02, 0.02, f"axis cut at {ylim[0]:g}; lowest {lowest:.3g}", transform=ax.transAxes,
                    fontsize=8, color="0.3")
        ax.set_title(p.title(width=38), fontsize=11)
        ax.set_ylabel(r"log-SNR  $\log(\alpha_t^2 / \sigma_t^2)$" if j == 0 else "")
        ax_alpha.set_ylabel(r"signal scale $\alpha_t$" if j == 0 else "")
        ax_alpha.set_xlabel("diffusion time t")
        ax_alpha.set_ylim(-0.03, 1.08)
        ax_alpha.legend(loc="best", fontsize=9, frameon=False)
        for a in (ax, ax_alpha):
            a.grid(True, alpha=0.3)
            a.set_xlim(0.0, 1.0)
        _band_colorbar(fig, [ax, ax_alpha], b, colors)
    fig.suptitle(f"Per-coefficient log-SNR and $\\alpha_t$ by eigenvalue band "
                 f"({_mode_text(mode, bands)}; image shape {tuple(shape)})", fontsize=12)
    return fig


def _band_colorbar(fig: Figure, axes: list, bands: Bands, colors: np.ndarray) -> None:
    k = len(bands)
    mappable = ScalarMappable(norm=BoundaryNorm(np.arange(k + 1), k), cmap=ListedColormap(colors))
    bar = fig.colorbar(mappable, ax=axes, fraction=0.06, pad=0.02, aspect=40)
    shown = np.unique(np.linspace(0, k - 1, min(k, 10)).round().astype(int))
    bar.set_ticks(shown + 0.5)
    bar.set_ticklabels(bands.labels(shown.tolist()), fontsize=8)
    bar.set_label("eigenvalue $\\lambda$ of the band (coarse to fine)", fontsize=9)


def _mode_text(mode: str, bands: int) -> str:
    return f"up to {bands} quantile bands" if mode == "quantile" else "one line per distinct eigenvalue"


def _same(low: float, high: float) -> bool:
    return high - low <= RELATIVE_TIE * max(1.0, abs(high))
