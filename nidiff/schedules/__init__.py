"""Schedules: per-coefficient ``alpha_t``, ``sigma_t``; one class per module, registered by name."""

from nidiff.schedules.base import Schedule, check_number
from nidiff.schedules.blur import BLUR_SHAPES, BlurSchedule
from nidiff.schedules.blurring import BlurringSchedule
from nidiff.schedules.cosine import CosineSchedule
from nidiff.schedules.ihdm import IHDMSchedule
from nidiff.schedules.linear import LinearSchedule
from nidiff.schedules.noise_shape import NoiseShapeSchedule
from nidiff.schedules.product import ProductSchedule
from nidiff.schedules.sagd import SAGDSchedule
from nidiff.schedules.soft_diffusion import SoftDiffusionSchedule
from nidiff.schedules.ve import VESchedule

__all__ = [
    "BLUR_SHAPES",
    "BlurSchedule",
    "BlurringSchedule",
    "CosineSchedule",
    "IHDMSchedule",
    "LinearSchedule",
    "NoiseShapeSchedule",
    "ProductSchedule",
    "SAGDSchedule",
    "Schedule",
    "SoftDiffusionSchedule",
    "VESchedule",
    "check_number",
]
