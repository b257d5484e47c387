"""A fixed noise scale per frequency: the frequency-diagonal forward covariance of SAGD.

Scimeca et al. 2025, "Learning What Matters: Steering Diffusion via Spectrally Anisotropic Forward
Noise" (arXiv 2510.09660), section 3: the forward noise is ``eps_w = T_w xi`` with
``T_w = F^-1 diag(w) F`` and ``xi ~ N(0, I)``, so ``Sigma_w = F^-1 diag(|w|^2) F``.

| paper                                                   | code                                  |
| ------------------------------------------------------- | ------------------------------------- |
| ``f = (f_h, f_w)``, cycles per pixel, in ``[-1/2, 1/2)`` | ``radial_frequency(lam)``            |
| ``r(f) = sqrt(f_h^2 + f_w^2)``                          | ``= sqrt(lam) / (2 pi)``              |
| power law ``w_alpha(f) = (r(f) + eps)^alpha``           | ``exponent`` (alpha), ``offset`` (eps) |
| band-pass mask ``M_[a,b](f) = 1[a <= r(f) <= b]``        | ``bands``: ``(a, b, gamma)``          |
| two-band mixture ``gamma_l eps_[a_l,b_l] + gamma_h eps_[a_h,b_h]`` | ``bands`` with two entries |
| ``w(f)``, noise std of frequency ``f``                   | ``exp(log_sigma)``; ``alpha_t = 1``   |

Both weightings are diagonal in any basis whose coefficients are frequencies; the weight depends
on ``r`` only, which the engine reads from the basis's eigenvalue ``lambda = omega_h^2 + omega_w^2``
(radians per pixel): ``r = sqrt(lambda) / (2 pi)`` for the ``fourier``, ``hartley`` and ``dct``
bases alike (a DCT index ``i`` of an ``N``-pixel axis is ``i / (2N)`` cycles per pixel). The weight
is ``w(r) = (r + offset)^exponent * m(r)``, with ``m(r) = sum_b gamma_b 1[a_b <= r <= b_b]``, or
``m = 1`` without bands: the power law, the band-pass mixture, or their product. Every frequency
needs ``w > 0``: a zero band is a rank-deficient covariance (the paper's "selective omission"),
whose coefficients are never noised and so never reach a noise prior; it is refused.

On its own the schedule has ``alpha_t = 1`` and a ``sigma_t`` that does not change with ``t``: it
is the factor that :class:`~nidiff.schedules.SAGDSchedule` multiplies into a noise schedule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from nidiff.registries import register_schedule
from nidiff.schedules.base import Schedule, check_number

__all__ = ["EDGE_TOLERANCE", "MAX_RADIAL_FREQUENCY", "NoiseShapeSchedule", "radial_frequency"]

MAX_RADIAL_FREQUENCY = math.sqrt(0.5)  # |f| at the corner (1/2, 1/2) of the frequency square
EDGE_TOLERANCE = 1e-9  # a frequency on a band edge (r = 1/4 of an 8-pixel axis) belongs to the band


def radial_frequency(lam: Tensor) -> Tensor:
    """``r = sqrt(lambda) / (2 pi)``: cycles per pixel from a Laplacian eigenvalue (radians^2)."""
    return lam.clamp_min(0.0).sqrt() / (2.0 * math.pi)


@register_schedule("noise_shape")
class NoiseShapeSchedule(Schedule):
    """``alpha_t = 1``, ``sigma_t = w(r)`` per coefficient: a power law times a band mixture."""

    per_coefficient = True

    def __init__(
        self,
        exponent: float = 0.0,        # alpha of w = (r + eps)^alpha (0: white)
        offset: float = 1e-3,         # eps > 0, keeps r = 0 (the mean) finite
        bands: Sequence[Sequence[float]] | None = None,  # [(a, b, gamma), ...], cycles per pixel
    ) -> None:
        self.exponent = check_number("exponent", exponent)
        self.offset = check_number("offset", offset, low=0.0)
        if self.offset == 0.0 and self.exponent != 0.0:
            raise ValueError(
                f"offset must be > 0 when exponent != 0 (got exponent {self.exponent}): the mean "
                f"(r = 0) would get noise scale 0 or infinity"
            )
        self.bands = _check_bands(bands)

    def log_weight(self, lam: Tensor) -> Tensor:
        """``log w(r)`` (float64) for eigenvalues ``lam``."""
        r = radial_frequency(lam)
        if self.exponent != 0.0:
            log_w = self.exponent * torch.log(r + self.offset)
        else:
            log_w = torch.zeros_like(r)
        if self.bands is not None:
            mask = torch.zeros_like(r)
            for low, high, gamma in self.bands:  # edges inclusive, up to the rounding of sqrt(lambda)
                inside = (r >= low - EDGE_TOLERANCE) & (r <= high + EDGE_TOLERANCE)
                mask = mask + gamma * inside.to(r.dtype)
            # the bands cover [0, sqrt(1/2)] (checked when built); a frequency beyond them would get
            # log 0, which GaussianDiffusion's SNR check refuses as a non-finite log-SNR
            log_w = log_w + torch.log(mask)
        return log_w

    def log_alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        log_w = self.log_weight(lam)  # [U]
        return torch.zeros_like(t), log_w + torch.zeros_like(t)  # sigma_t = w, constant in t


def _check_bands(bands: Sequence[Sequence[float]] | None) -> tuple[tuple[float, float, float], ...] | None:
    """Validate ``[(a, b, gamma), ...]``: ``0 <= a < b``, ``gamma > 0``, covering ``[0, sqrt(1/2)]``."""
    if bands is None:
        return None
    if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence) or len(bands) == 0:
        raise ValueError(
            f"bands must be null or a non-empty list of [a, b, gamma] triples, got {bands!r}"
        )
    out = []
    for band in bands:
        if isinstance(band, (str, bytes)) or not isinstance(band, Sequence) or len(band) != 3:
            raise ValueError(
                f"each band is [a, b, gamma] (radial frequencies a < b, weight gamma), got {band!r}"
            )
        low = check_number("band start a", band[0], low=0.0)
        high = check_number("band end b", band[1], low=0.0)
        gamma = check_number("band weight gamma", band[2], low=0.0, low_open=True)
        if not low < high:
            raise ValueError(f"a band needs a < b, got {band!r}")
        out.append((low, high, gamma))
    reach = 0.0  # the bands, sorted by start, must leave no gap in [0, MAX_RADIAL_FREQUENCY]
    for low, high, _ in sorted(out):
        if low > reach:
            break
        reach = max(reach, high)
    if reach < MAX_RADIAL_FREQUENCY:
        raise ValueError(
            f"the bands {out} leave radial frequencies from {reach:.4g} without noise; they must cover "
            f"[0, {MAX_RADIAL_FREQUENCY:.4f}] (cycles per pixel). A band without noise (SAGD's selective "
            f"omission) is a rank-deficient covariance that never reaches a noise prior"
        )
    return tuple(out)
