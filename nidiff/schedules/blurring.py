"""Blurring diffusion (eq. 28): cosine noise times blur damping, ``alpha_t = a_t d_t``.

| paper                     | code                         |
| ------------------------- | ---------------------------- |
| ``a_t``, ``sigma_t``      | ``CosineSchedule``           |
| ``d_t`` (eq. 27)          | ``BlurSchedule``             |
| ``sigma_B,max`` = 20      | ``sigma_blur_max``           |
| ``d_min`` = 0.001         | ``d_min``                    |

``sigma_blur_max = 0`` is standard DDPM with the cosine schedule, exactly (``d_t = 1``).
"""

from __future__ import annotations

from nidiff.registries import register_schedule
from nidiff.schedules.blur import BlurSchedule
from nidiff.schedules.cosine import CosineSchedule
from nidiff.schedules.product import ProductSchedule

__all__ = ["BlurringSchedule"]


@register_schedule("blurring")
class BlurringSchedule(ProductSchedule):
    """The paper's process; defaults are its CIFAR10 settings (section 4.1, 6)."""

    def __init__(
        self,
        sigma_blur_max: float = 20.0,  # sigma_B,max (section 6: 20 for CIFAR10)
        d_min: float = 0.001,          # d_min (section 4.1)
        blur_shape: str = "sin2",      # eq. 26
        logsnr_min: float = -10.0,     # cosine log-SNR clipping (appendix A)
        logsnr_max: float = 10.0,
    ) -> None:
        self.noise = CosineSchedule(logsnr_min=logsnr_min, logsnr_max=logsnr_max)
        self.blur = BlurSchedule(sigma_blur_max=sigma_blur_max, d_min=d_min, shape=blur_shape)
        super().__init__([self.noise, self.blur])

    def __repr__(self) -> str:
        return f"BlurringSchedule(noise={self.noise!r}, blur={self.blur!r})"
