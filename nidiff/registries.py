"""The public registries of bases and schedules.

``register_basis(name)`` / ``build_basis(name, **kw)`` / ``list_bases()``, and the same three for
schedules. Third-party packages add entries through the entry-point groups ``nidiff.bases`` and
``nidiff.schedules``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nidiff.registry import Registry

if TYPE_CHECKING:
    from nidiff.bases.base import Basis
    from nidiff.schedules.base import Schedule

__all__ = [
    "BASES",
    "SCHEDULES",
    "register_basis",
    "build_basis",
    "list_bases",
    "register_schedule",
    "build_schedule",
    "list_schedules",
]

BASES: Registry[Basis] = Registry("basis", group="nidiff.bases", plural="bases")
SCHEDULES: Registry[Schedule] = Registry("schedule", group="nidiff.schedules")


def register_basis(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class decorator registering a :class:`~nidiff.bases.Basis` under ``name``."""
    return BASES.register(name)


def build_basis(name: str, /, **kwargs: Any) -> Basis:
    """Build the basis registered as ``name``, e.g. ``build_basis("dct", shape=(3, 32, 32))``."""
    return BASES.build(name, **kwargs)


def list_bases() -> list[str]:
    """Names of every registered basis, sorted."""
    return BASES.names()


def register_schedule(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class decorator registering a :class:`~nidiff.schedules.Schedule` under ``name``."""
    return SCHEDULES.register(name)


def build_schedule(name: str, /, **kwargs: Any) -> Schedule:
    """Build the schedule registered as ``name``, e.g. ``build_schedule("blurring", sigma_blur_max=20)``."""
    return SCHEDULES.build(name, **kwargs)


def list_schedules() -> list[str]:
    """Names of every registered schedule, sorted."""
    return SCHEDULES.names()
