"""Spectral statistics of image batches: does every frequency band of the samples have the data's scale?

| statistic (issue table of ``docs/study-sigma-blur.md``)    | code                    |
| ---------------------------------------------------------- | ----------------------- |
| per-sample mean colour, std over samples                   | ``mean_colour_std``     |
| rms of the lowest ``N/8 x N/8`` orthonormal DCT coefficients (4x4 at 32x32) | ``low_rms`` |
| rms of the coefficients ``[N/2:, N/2:]`` ([16:, 16:] at 32x32) | ``high_rms``        |
| smallest and largest pixel                                 | ``min``, ``max``        |

A blow-up of the high frequencies (samples of pixel noise thousands of times the data's scale)
shows in ``high_rms`` and the pixel range long before anything else; the low band and the mean
colour show a drift of the global colour. These are necessary checks, not a quality measure: a
Gaussian with the data's per-coefficient variances matches all of them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["band_statistics"]


def band_statistics(x: Tensor) -> dict[str, float]:
    """The statistics above for images ``x`` ``[B, C, N, N]`` in [-1, 1] (unclipped samples)."""
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[-1] != x.shape[-2] or x.shape[0] < 2:
        raise ValueError(f"expected a batch of at least 2 square images [B, C, N, N], got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    n = x.shape[-1]
    x64 = x.detach().cpu().double()
    from nidiff.bases.dct import DCTBasis

    u = DCTBasis(shape=tuple(x64.shape[1:])).to_coeffs(x64)  # orthonormal DCT-II, [B, C, N, N]
    low, high = max(1, n // 8), n // 2
    return {
        "mean_colour_std": float(x64.mean((2, 3)).std()),
        "low_rms": float(u[..., :low, :low].pow(2).mean().sqrt()),
        "high_rms": float(u[..., high:, high:].pow(2).mean().sqrt()),
        "min": float(x64.min()),
        "max": float(x64.max()),
    }
