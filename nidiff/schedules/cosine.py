"""The variance-preserving cosine noise schedule with a clipped log-SNR (section 4.1, appendix A).

| paper                                             | code                    |
| ------------------------------------------------- | ----------------------- |
| ``limit_max = atan(exp(-0.5 * logsnr_max))``      | ``self._limit_max``     |
| ``limit_min = atan(exp(-0.5 * logsnr_min)) - limit_max`` | ``self._limit_min`` |
| ``logsnr(t) = -2 log tan(limit_min t + limit_max)`` | ``logsnr_t``          |
| ``a_t = sqrt(sigmoid(logsnr))``                   | ``exp(log_alpha)``      |
| ``sigma_t = sqrt(sigmoid(-logsnr))``              | ``exp(log_sigma)``      |

The paper clips the log-SNR to [-10, 10]; both bounds are parameters.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn.functional import logsigmoid

from nidiff.registries import register_schedule
from nidiff.schedules.base import Schedule, check_number

__all__ = ["CosineSchedule", "vp_log_alpha_sigma"]


def vp_log_alpha_sigma(logsnr: Tensor) -> tuple[Tensor, Tensor]:
    """Variance preserving: ``log a = 0.5 log sigmoid(logsnr)``, ``log sigma = 0.5 log sigmoid(-logsnr)``."""
    return 0.5 * logsigmoid(logsnr), 0.5 * logsigmoid(-logsnr)


@register_schedule("cosine")
class CosineSchedule(Schedule):
    """Cosine schedule, log-SNR from ``logsnr_max`` at t = 0 down to ``logsnr_min`` at t = 1."""

    def __init__(self, logsnr_min: float = -10.0, logsnr_max: float = 10.0) -> None:
        self.logsnr_min = check_number("logsnr_min", logsnr_min)
        self.logsnr_max = check_number("logsnr_max", logsnr_max)
        if not self.logsnr_min < self.logsnr_max:
            raise ValueError(
                f"cosine schedule needs logsnr_min < logsnr_max, got {self.logsnr_min} and "
                f"{self.logsnr_max}; the log-SNR must decrease from t = 0 to t = 1"
            )
        self._limit_max = math.atan(math.exp(-0.5 * self.logsnr_max))
        self._limit_min = math.atan(math.exp(-0.5 * self.logsnr_min)) - self._limit_max

    def logsnr_t(self, t: Tensor) -> Tensor:
        return -2.0 * torch.log(torch.tan(self._limit_min * t + self._limit_max))

    def log_alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        return vp_log_alpha_sigma(self.logsnr_t(t))
