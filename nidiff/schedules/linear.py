"""DDPM's linear beta schedule (Ho et al., 2020), in continuous time.

| DDPM                                    | code                                   |
| --------------------------------------- | -------------------------------------- |
| ``beta_i`` linear from beta_start to beta_end, i = 1..T | ``beta_start, beta_end, steps`` |
| ``alpha_bar_i = prod (1 - beta_j)``     | ``exp(2 * log_alpha)``                 |

Continuous form: step ``i = 1 + t (T - 1)``; ``log alpha_bar`` is DDPM's exact
``sum_{j <= i} log(1 - beta_j)`` at integer steps, interpolated linearly in between (so it stays
monotone). t = 0 is DDPM's first step (finite SNR) and t = 1 its last; variance preserving.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nidiff.registries import register_schedule
from nidiff.schedules.base import Schedule, check_number

__all__ = ["LinearSchedule"]


@register_schedule("linear")
class LinearSchedule(Schedule):
    """DDPM's linear beta schedule; defaults ``beta_start=1e-4, beta_end=0.02, steps=1000``."""

    def __init__(self, beta_start: float = 1e-4, beta_end: float = 0.02, steps: int = 1000) -> None:
        self.beta_start = check_number("beta_start", beta_start, low=0.0, high=1.0, low_open=True)
        self.beta_end = check_number("beta_end", beta_end, low=0.0, high=1.0, low_open=True)
        if self.beta_end < self.beta_start:
            raise ValueError(
                f"linear schedule needs beta_end >= beta_start (the SNR must not increase), "
                f"got {self.beta_start} and {self.beta_end}"
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
        self.steps = steps

    def log_alpha_sigma(self, t: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        betas = torch.linspace(self.beta_start, self.beta_end, self.steps, dtype=torch.float64, device=t.device)
        table = torch.cumsum(torch.log1p(-betas), 0)  # log alpha_bar_i, i = 1..T
        pos = t * (self.steps - 1)  # 0-based position in the table
        lo = pos.floor().clamp(0, self.steps - 2)
        frac = pos - lo
        lo = lo.long()
        log_alpha_bar = torch.lerp(table[lo], table[lo + 1], frac)
        # sigma^2 = 1 - alpha_bar, in a form that stays accurate as alpha_bar -> 1
        return 0.5 * log_alpha_bar, 0.5 * torch.log(-torch.expm1(log_alpha_bar))
