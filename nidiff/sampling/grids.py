"""Decreasing time grids ``1 = t_0 > t_1 > ... > t_N = 0`` for samplers."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["uniform_grid", "check_grid"]


def uniform_grid(steps: int, device: torch.device | str | None = None) -> Tensor:
    """``steps + 1`` times from 1 to 0, equally spaced (algorithm 1 with ``s = t - 1/T``): ``[steps + 1]``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=device)


def check_grid(times: Tensor) -> Tensor:
    """Validate a 1-D strictly decreasing grid inside [0, 1] and return it as float64."""
    times = torch.as_tensor(times, dtype=torch.float64)
    if times.dim() != 1 or times.numel() < 2:
        raise ValueError(f"a time grid must be a 1-D tensor of at least 2 times, got shape {list(times.shape)}")
    if bool(((times < 0) | (times > 1)).any()):
        raise ValueError("a time grid must lie in [0, 1]")
    if not bool((times[1:] < times[:-1]).all()):
        raise ValueError("a time grid must be strictly decreasing (from t = 1 towards t = 0)")
    return times
