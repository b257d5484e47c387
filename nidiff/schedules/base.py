"""The schedule contract: per-coefficient ``log alpha_t``, ``log sigma_t`` for times in [0, 1].

| paper                         | code                                   |
| ----------------------------- | -------------------------------------- |
| ``alpha_t`` (eq. 20, 28)      | ``exp(log_alpha)``                     |
| ``sigma_t`` (eq. 20, 28)      | ``exp(log_sigma)``                     |
| SNR ``alpha_t^2 / sigma_t^2`` | ``exp(logsnr)``                        |
| ``lambda`` (eq. 27)           | ``lam``: the basis's eigenvalues       |

Schedules work in the log domain and in float64: a product of schedules is a sum of logs, and
strong damping such as IHDM's ``exp(-lambda * tau_t)`` stays finite (``log alpha = -lambda tau``)
where ``alpha`` itself would underflow. The engine casts to float32 afterwards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["Schedule", "check_number"]


class Schedule(ABC):
    """Maps times ``t`` and per-coefficient eigenvalues ``lam`` to ``(log alpha_t, log sigma_t)``.

    ``per_coefficient`` says whether the schedule depends on ``lam`` at all; scalar (noise)
    schedules return tensors that broadcast over the coefficients.
    """

    per_coefficient: bool = False

    @abstractmethod
    def log_alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        """``t``: float64 times in [0, 1], shaped to broadcast against ``lam`` (the engine passes
        ``[B, 1]``); ``lam``: float64 eigenvalues (the engine passes the distinct ones, ``[U]``).

        Returns ``log alpha_t``, ``log sigma_t`` (float64), each broadcastable to
        ``broadcast(t, lam)``: a schedule that ignores ``lam`` may return the shape of ``t``.
        """

    def alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        """``alpha_t``, ``sigma_t`` (float64); see :meth:`log_alpha_sigma`. A schedule may override
        this with a cheaper direct form; it must equal ``exp`` of :meth:`log_alpha_sigma`."""
        log_alpha, log_sigma = self.log_alpha_sigma(t, lam)
        return log_alpha.exp(), log_sigma.exp()

    def logsnr(self, t: Tensor, lam: Tensor) -> Tensor:
        """``log(alpha_t^2 / sigma_t^2)`` (float64)."""
        log_alpha, log_sigma = self.log_alpha_sigma(t, lam)
        return 2.0 * (log_alpha - log_sigma)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Validate a schedule parameter and return it as a float (raises ``TypeError``/``ValueError``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not torch.isfinite(torch.tensor(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value
