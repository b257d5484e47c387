"""Blur schedules: damping ``d_t = (1 - d_min) exp(-lambda tau_t) + d_min`` (eq. 26-27).

| paper                                     | code                         |
| ----------------------------------------- | ---------------------------- |
| ``sigma_B(t)`` (eq. 26)                   | ``sigma_blur(t)``            |
| ``sigma_B,max``                           | ``sigma_blur_max``           |
| ``tau_t = sigma_B(t)^2 / 2``              | ``tau(t)``                   |
| ``d_t`` (eq. 27)                          | ``exp(log_alpha)``           |
| ``d_min``                                 | ``d_min``                    |

Shapes of ``sigma_B(t)``: ``sin2`` (eq. 26, the paper's default) ``sigma_B,max sin^2(pi t / 2)``;
``sin`` (table 4) ``sigma_B,max sin(pi t / 2)``; ``linear`` ``sigma_B,max t``; ``log``
(IHDM's log-spaced blur) ``exp((1 - t) log sigma_B,min + t log sigma_B,max)``.

On its own a blur schedule has ``sigma_t = 1``: it is the damping factor that
:class:`~nidiff.schedules.ProductSchedule` multiplies into a noise schedule (eq. 28).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from nidiff.registries import register_schedule
from nidiff.schedules.base import Schedule, check_number

__all__ = ["BLUR_SHAPES", "BlurSchedule", "log_damping"]


def _sin2(t: Tensor, low: float, high: float) -> Tensor:
    return high * torch.sin(t * (math.pi / 2)) ** 2


def _sin(t: Tensor, low: float, high: float) -> Tensor:
    return high * torch.sin(t * (math.pi / 2))


def _linear(t: Tensor, low: float, high: float) -> Tensor:
    return high * t


def _log(t: Tensor, low: float, high: float) -> Tensor:
    return torch.exp((1.0 - t) * math.log(low) + t * math.log(high))


# sigma_B(t; sigma_B,min, sigma_B,max); every shape is non-decreasing in t
BLUR_SHAPES: dict[str, Callable[[Tensor, float, float], Tensor]] = {
    "sin2": _sin2,
    "sin": _sin,
    "linear": _linear,
    "log": _log,
}


def log_damping(lam: Tensor, tau: Tensor, d_min: float) -> Tensor:
    """``log d = log((1 - d_min) exp(-lam tau) + d_min)`` (eq. 27), exact at ``tau = 0``.

    Written as ``log1p((1 - d_min) expm1(-lam tau))`` so that no blur gives exactly 0, and as
    ``-lam tau`` when ``d_min = 0`` so that strong damping stays finite in the log domain.
    """
    if d_min == 0.0:
        return -lam * tau
    return torch.log1p((1.0 - d_min) * torch.expm1(-lam * tau))


@register_schedule("blur")
class BlurSchedule(Schedule):
    """Damping only: ``alpha_t = d_t`` per coefficient, ``sigma_t = 1``."""

    per_coefficient = True

    def __init__(
        self,
        sigma_blur_max: float = 20.0,  # sigma_B,max (paper: 20 on CIFAR10)
        d_min: float = 0.001,          # floor of the damping (eq. 27)
        shape: str = "sin2",           # one of BLUR_SHAPES
        sigma_blur_min: float = 0.5,   # lower end for the log shape only
    ) -> None:
        self.sigma_blur_max = check_number("sigma_blur_max", sigma_blur_max, low=0.0)
        self.d_min = check_number("d_min", d_min, low=0.0, high=1.0, high_open=True)
        if shape not in BLUR_SHAPES:
            raise ValueError(f"unknown blur shape {shape!r}; known shapes: {', '.join(BLUR_SHAPES)}")
        self.shape = shape
        self.sigma_blur_min = check_number("sigma_blur_min", sigma_blur_min, low=0.0, low_open=True)
        if shape == "log" and not self.sigma_blur_min <= self.sigma_blur_max:
            raise ValueError(
                f"the log blur shape needs 0 < sigma_blur_min <= sigma_blur_max, got "
                f"{self.sigma_blur_min} and {self.sigma_blur_max}"
            )

    def sigma_blur(self, t: Tensor) -> Tensor:
        """``sigma_B(t)`` (eq. 26)."""
        return BLUR_SHAPES[self.shape](t, self.sigma_blur_min, self.sigma_blur_max)

    def tau(self, t: Tensor) -> Tensor:
        """Dissipation time ``tau_t = sigma_B(t)^2 / 2``."""
        return 0.5 * self.sigma_blur(t) ** 2

    def log_alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        log_d = log_damping(lam, self.tau(t), self.d_min)
        return log_d, torch.zeros_like(t)

    def alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        """``d_t = 1 + (1 - d_min) expm1(-lam tau_t)`` directly: one transcendental per coefficient.

        With ``d_min = 0`` it is ``exp(-lam tau_t)``: ``1 + expm1`` would cancel to 0 (or a rounding
        residue of 1e-17) where the damping is strong, instead of the tiny positive value.
        """
        if self.d_min == 0.0:
            return torch.exp(-lam * self.tau(t)), torch.ones_like(t)
        d = 1.0 + (1.0 - self.d_min) * torch.expm1(-lam * self.tau(t))
        return d, torch.ones_like(t)
