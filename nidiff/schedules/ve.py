"""The variance-exploding noise schedule (Song et al. 2021, "Score-Based Generative Modeling through
Stochastic Differential Equations", section 3.4 and appendix C): ``x_t = x_0 + sigma(t) z``.

| paper                                               | code                          |
| --------------------------------------------------- | ----------------------------- |
| ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``  | ``exp(log_sigma)``            |
| ``sigma_min``, ``sigma_max`` (0.01 and 50 on CIFAR10) | ``sigma_min``, ``sigma_max`` |
| ``alpha_t = 1``                                     | ``variance_preserving=False`` |

The log-SNR ``-2 log sigma(t)`` is linear in ``t``. ``variance_preserving=True`` divides
``x_t`` by ``sqrt(1 + sigma(t)^2)``: ``alpha_t = sqrt(sigmoid(lambda_t))``,
``sigma_t = sqrt(sigmoid(-lambda_t))`` with the same ``lambda_t``. Both processes have the same SNR
at every ``t``, so they define the same generative model up to that known scaling of the network's
input (Kingma et al. 2021, "Variational Diffusion Models", section 5); the scaled one keeps the
input of order one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nidiff.registries import register_schedule
from nidiff.schedules.base import Schedule, check_number
from nidiff.schedules.cosine import vp_log_alpha_sigma

__all__ = ["VESchedule"]


@register_schedule("ve")
class VESchedule(Schedule):
    """Geometric noise ``sigma(t)`` from ``sigma_min`` at t = 0 to ``sigma_max`` at t = 1."""

    def __init__(
        self,
        sigma_min: float = 0.01,              # Song et al. 2021, CIFAR10
        sigma_max: float = 50.0,              # Song et al. 2021, CIFAR10
        variance_preserving: bool = False,    # divide x_t by sqrt(1 + sigma(t)^2)
    ) -> None:
        self.sigma_min = check_number("sigma_min", sigma_min, low=0.0, low_open=True)
        self.sigma_max = check_number("sigma_max", sigma_max, low=0.0, low_open=True)
        if not self.sigma_min < self.sigma_max:
            raise ValueError(
                f"the VE schedule needs sigma_min < sigma_max (the noise must grow with t), got "
                f"{self.sigma_min} and {self.sigma_max}"
            )
        if not isinstance(variance_preserving, bool):
            raise TypeError(f"variance_preserving must be a bool, got {variance_preserving!r}")
        self.variance_preserving = variance_preserving

    def log_sigma_ve(self, t: Tensor) -> Tensor:
        """``log sigma(t) = (1 - t) log sigma_min + t log sigma_max``."""
        return (1.0 - t) * math.log(self.sigma_min) + t * math.log(self.sigma_max)

    def log_alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        log_sigma = self.log_sigma_ve(t)
        if self.variance_preserving:
            return vp_log_alpha_sigma(-2.0 * log_sigma)
        return torch.zeros_like(t), log_sigma
