"""Inverse heat dissipation (IHDM, Rissanen et al. 2022) as a Gaussian diffusion (section 2.2, eq. 17).

| paper                                        | code                   |
| -------------------------------------------- | ---------------------- |
| ``q(z_t | x) = N(V D_t V^T x, sigma^2 I)``    | this schedule + ``dct``|
| ``D_t = exp(-Lambda tau_t)``                 | ``alpha_t = d_t``      |
| ``sigma`` (fixed, small)                     | ``sigma``              |

The blur follows IHDM's log-spaced ``sigma_B(t)``; ``d_min = 0`` is pure heat dissipation.
The default values are ours, chosen in the range IHDM uses for 32x32 images
(``sigma_B`` from 0.5 to 20, ``sigma = 0.01``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nidiff.registries import register_schedule
from nidiff.schedules.base import Schedule, check_number
from nidiff.schedules.blur import BlurSchedule

__all__ = ["IHDMSchedule"]


@register_schedule("ihdm")
class IHDMSchedule(Schedule):
    """``alpha_t = d_t`` per coefficient (eq. 17), ``sigma_t = sigma`` constant."""

    per_coefficient = True

    def __init__(
        self,
        sigma_blur_max: float = 20.0,  # sigma_B at t = 1
        sigma_blur_min: float = 0.5,   # sigma_B at t = 0
        sigma: float = 0.01,           # fixed noise level
        d_min: float = 0.0,            # 0: pure heat dissipation
        blur_shape: str = "log",       # IHDM's log-spaced blur
    ) -> None:
        self.sigma = check_number("sigma", sigma, low=0.0, low_open=True)
        self.blur = BlurSchedule(
            sigma_blur_max=sigma_blur_max, d_min=d_min, shape=blur_shape, sigma_blur_min=sigma_blur_min
        )

    def log_alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        log_d, _ = self.blur.log_alpha_sigma(t, lam)
        return log_d, torch.full_like(t, math.log(self.sigma))
