"""Soft Diffusion's blur-and-noise corruption, ``x_t = C_t x_0 + s_t eta`` (Daras et al. 2022).

Daras, Delbracio, Talebi, Dimakis & Milanfar, "Soft Diffusion: Score Matching for General
Corruptions" (arXiv 2209.05442, TMLR 2023), section 3: a linear corruption ``C_t`` followed by
white Gaussian noise of scale ``s_t``, with ``C_t`` a Gaussian blur for their image results. A
Gaussian blur of standard deviation ``sigma_B`` with symmetric (reflecting) boundaries is diagonal
in the DCT basis with the heat kernel's transfer function ``exp(-lambda sigma_B^2 / 2)`` (appendix
A of the blurring paper, IHDM), so per DCT coefficient ``u_t = d_t(k) u_x + s_t u_eps``.

| paper                        | code                                                     |
| ---------------------------- | -------------------------------------------------------- |
| ``C_t`` (Gaussian blur)      | ``BlurSchedule`` with ``d_min = 0``: ``exp(-lambda tau_t)``, ``tau_t = sigma_B(t)^2 / 2`` |
| ``s_t`` (noise scale)        | ``VESchedule``: ``sigma_min (sigma_max / sigma_min)^t``  |
| ``alpha_t`` per coefficient  | ``exp(-lambda tau_t)`` (times ``1 / sqrt(1 + s_t^2)`` if ``variance_preserving``) |
| ``sigma_t``                  | ``s_t`` (scalar; likewise scaled)                        |

The shapes of ``sigma_B(t)`` and ``s_t`` and their end values are parameters; the defaults are
ours (the blurring paper's CIFAR10 blur, ``sin2`` with ``sigma_B,max = 20``, and the VE noise of
Song et al. 2021 on CIFAR10), see ``docs/literature.md``. Blur and noise both grow with ``t``, so
every coefficient's SNR ``d_t^2 / s_t^2`` falls monotonically. The constant image (``lambda = 0``)
is never blurred; it is destroyed by the noise alone, so ``s_1`` must be large against the data
for the prior ``N(0, s_1^2)`` to hold.
"""

from __future__ import annotations

from nidiff.registries import register_schedule
from nidiff.schedules.blur import BlurSchedule
from nidiff.schedules.product import ProductSchedule
from nidiff.schedules.ve import VESchedule

__all__ = ["SoftDiffusionSchedule"]


@register_schedule("soft_diffusion")
class SoftDiffusionSchedule(ProductSchedule):
    """Exact Gaussian blur (no floor) times VE noise; ``variance_preserving`` rescales ``x_t``."""

    def __init__(
        self,
        sigma_blur_max: float = 3.0,        # sigma_B at t = 1, pixels (ours)
        blur_shape: str = "sin2",           # sigma_B(t), one of BLUR_SHAPES (ours)
        sigma_blur_min: float = 0.5,        # lower end for the log shape only
        sigma_min: float = 0.01,            # s_t at t = 0 (ours: VE, Song et al. 2021)
        sigma_max: float = 50.0,            # s_t at t = 1 (ours: VE, Song et al. 2021)
        variance_preserving: bool = False,  # x_t / sqrt(1 + s_t^2): same SNR, inputs of order one
    ) -> None:
        self.noise = VESchedule(
            sigma_min=sigma_min, sigma_max=sigma_max, variance_preserving=variance_preserving
        )
        self.blur = BlurSchedule(
            sigma_blur_max=sigma_blur_max, d_min=0.0, shape=blur_shape, sigma_blur_min=sigma_blur_min
        )
        super().__init__([self.noise, self.blur])

    def __repr__(self) -> str:
        return f"SoftDiffusionSchedule(noise={self.noise!r}, blur={self.blur!r})"
