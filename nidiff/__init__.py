"""nidiff: non-isotropic Gaussian diffusion in pluggable bases."""

from nidiff.registries import (
    build_basis,
    build_schedule,
    list_bases,
    list_schedules,
    register_basis,
    register_schedule,
)
from nidiff import bases, schedules  # noqa: E402  (registers the built-in entries)
from nidiff.bases import Basis
from nidiff.diffusion import GaussianDiffusion
from nidiff.schedules import Schedule

__version__ = "0.1.0"

__all__ = [
    "Basis",
    "GaussianDiffusion",
    "Schedule",
    "build_basis",
    "build_schedule",
    "list_bases",
    "list_schedules",
    "register_basis",
    "register_schedule",
]
