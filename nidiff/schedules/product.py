"""Products of schedules: ``alpha_t = prod alpha_i``, ``sigma_t = prod sigma_i`` (eq. 28).

In the log domain a product is a sum, so ``ProductSchedule(cosine, blur)`` is blurring diffusion.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from nidiff.registries import SCHEDULES, register_schedule
from nidiff.schedules.base import Schedule

__all__ = ["ProductSchedule"]


@register_schedule("product")
class ProductSchedule(Schedule):
    """Multiply the ``alpha_t`` and the ``sigma_t`` of several schedules.

    Each factor is a :class:`Schedule`, a registered name, or a mapping ``{"name": ..., **kwargs}``.
    """

    def __init__(self, factors: list[Schedule | str | Mapping]) -> None:
        if isinstance(factors, (str, Schedule, Mapping)) or not len(factors):
            raise ValueError("ProductSchedule needs a non-empty list of factor schedules")
        self.factors = [_as_schedule(f) for f in factors]
        self.per_coefficient = any(f.per_coefficient for f in self.factors)

    def log_alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        log_alpha, log_sigma = self.factors[0].log_alpha_sigma(t, lam)
        for factor in self.factors[1:]:
            la, ls = factor.log_alpha_sigma(t, lam)
            log_alpha, log_sigma = log_alpha + la, log_sigma + ls
        return log_alpha, log_sigma

    def alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        alpha, sigma = self.factors[0].alpha_sigma(t, lam)
        for factor in self.factors[1:]:
            a, s = factor.alpha_sigma(t, lam)
            alpha, sigma = alpha * a, sigma * s
        return alpha, sigma


def _as_schedule(factor: Schedule | str | Mapping) -> Schedule:
    if isinstance(factor, Schedule):
        return factor
    if isinstance(factor, str):
        return SCHEDULES.build(factor)
    if isinstance(factor, Mapping) and "name" in factor:
        kwargs = {k: v for k, v in factor.items() if k != "name"}
        return SCHEDULES.build(factor["name"], **kwargs)
    raise TypeError(
        f"a product factor must be a Schedule, a schedule name or a mapping with a 'name', "
        f"got {factor!r}"
    )
