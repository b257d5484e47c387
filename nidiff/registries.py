"""The public registries: bases, schedules, networks, samplers and time grids.

``register_basis(name)`` / ``build_basis(name, **kw)`` / ``list_bases()``, and the same three for
schedules, networks and samplers; grids have ``register_grid`` / ``time_grid`` / ``list_grids``.
Third-party packages add entries through the entry-point groups ``nidiff.bases``,
``nidiff.schedules``, ``nidiff.nets``, ``nidiff.samplers`` and ``nidiff.grids``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nidiff.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nidiff.bases.base import Basis
    from nidiff.sampling.base import Sampler
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
    "NETS",
    "register_net",
    "build_net",
    "list_nets",
    "SAMPLERS",
    "register_sampler",
    "build_sampler",
    "list_samplers",
    "GRIDS",
    "register_grid",
    "time_grid",
    "list_grids",
]

BASES: Registry[Basis] = Registry("basis", group="nidiff.bases", plural="bases", builtins="nidiff.bases")
SCHEDULES: Registry[Schedule] = Registry("schedule", group="nidiff.schedules", builtins="nidiff.schedules")
NETS: Registry[nn.Module] = Registry("network", group="nidiff.nets", builtins="nidiff.nets")
SAMPLERS: Registry[Sampler] = Registry("sampler", group="nidiff.samplers", builtins="nidiff.sampling")
GRIDS: Registry[torch.Tensor] = Registry("grid", group="nidiff.grids", builtins="nidiff.sampling")


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


def register_net(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class decorator registering a denoising network ``net(z_t [B, C, H, W], t [B]) -> [B, C, H, W]``."""
    return NETS.register(name)


def build_net(name: str, /, **kwargs: Any) -> nn.Module:
    """Build the network registered as ``name``, e.g. ``build_net("unet", base_channels=64)``."""
    return NETS.build(name, **kwargs)


def list_nets() -> list[str]:
    """Names of every registered network, sorted."""
    return NETS.names()


def register_sampler(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class decorator registering a :class:`~nidiff.sampling.Sampler` under ``name``."""
    return SAMPLERS.register(name)


def build_sampler(name: str, /, **options: Any) -> Sampler:
    """The sampler registered as ``name`` with its options, e.g. ``build_sampler("ddim", eta=0.5)``."""
    return SAMPLERS.build(name, **options)


def list_samplers() -> list[str]:
    """Names of every registered sampler, sorted."""
    return SAMPLERS.names()


def register_grid(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a time grid ``grid(diffusion, steps) -> times [steps + 1]`` (float64,
    strictly decreasing from 1 to 0) under ``name``."""
    return GRIDS.register(name)


def time_grid(name: str, diffusion: Any, steps: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The grid registered as ``name`` with ``steps`` steps for ``diffusion``: ``[steps + 1]`` float64."""
    from nidiff.sampling.grids import check_grid

    times = GRIDS.get(name)(diffusion, steps)
    return check_grid(times).to(device if device is not None else times.device)


def list_grids() -> list[str]:
    """Names of every registered time grid, sorted."""
    return GRIDS.names()
