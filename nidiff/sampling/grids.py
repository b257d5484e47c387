"""Decreasing time grids ``1 = t_0 > t_1 > ... > t_N = 0`` for samplers.

| paper / literature                                   | code                      |
| ---------------------------------------------------- | ------------------------- |
| ``s = t - 1/T`` (algorithm 1)                        | ``uniform_grid``          |
| ``lambda_k(t) = log(alpha_k^2 / sigma_k^2)``         | ``diffusion.logsnr``      |
| summary ``lambda_bar(t) = mean_k lambda_k(t)``       | ``logsnr_summary``        |
| steps uniform in log-SNR (DPM-Solver, Lu et al. 2022)| ``logsnr_grid``           |

Every coefficient has its own log-SNR, so a grid "uniform in log-SNR" needs one scalar summary.
We take the mean over all coefficients, ``lambda_bar(t) = mean_k lambda_k(t)`` (the log of the
geometric-mean SNR), because it is

- defined for every basis and schedule, and equal to ``lambda(t)`` for a scalar schedule;
- non-increasing in ``t`` for every valid schedule (a mean of non-increasing functions), and
  strictly decreasing unless every coefficient is flat at once;
- not flat where one coefficient is: the eigenvalue-0 coefficient of heat dissipation (IHDM)
  keeps ``alpha = 1`` and a constant log-SNR, so it cannot serve as the summary.

Registered grids (``nidiff.time_grid(name, diffusion, steps)``, ``--grid NAME`` on the command
line) are functions ``grid(diffusion, steps) -> times [steps + 1]``: ``"uniform"`` and ``"logsnr"``.

Times for given summary values are bracketed by ``lambda_bar`` tabulated on a fine uniform grid
of ``resolution + 1`` times (4096 cells by default), then found by bisection to about 1e-13.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nidiff.registries import register_grid

__all__ = ["uniform", "logsnr", "uniform_grid", "check_grid", "logsnr_summary", "time_at_logsnr", "logsnr_grid", "logsnr_midpoints"]

RESOLUTION = 4096  # cells of the fine table that brackets the times of given log-SNR values
BISECTIONS = 32  # halvings of a bracketing cell


def uniform_grid(steps: int, device: torch.device | str | None = None) -> Tensor:
    """``steps + 1`` times from 1 to 0, equally spaced (algorithm 1 with ``s = t - 1/T``): ``[steps + 1]``."""
    _check_steps(steps)
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


def logsnr_summary(diffusion, t: Tensor) -> Tensor:
    """``lambda_bar(t) = mean_k lambda_k(t)`` over all coefficients (float64): ``[N]`` for ``t`` ``[N]``."""
    logsnr = diffusion.logsnr(torch.as_tensor(t, dtype=torch.float64).reshape(-1))  # [N, *lam_shape]
    # a broadcast dimension repeats its values uniformly, so this is the mean over all coefficients
    return logsnr.flatten(1).mean(1)


def time_at_logsnr(diffusion, values: Tensor, resolution: int = RESOLUTION) -> Tensor:
    """The times ``t`` in [0, 1] where ``lambda_bar(t)`` equals ``values`` (float64, shape of ``values``).

    The table brackets each value in one of ``resolution`` cells; bisection then narrows it to
    ``2^-BISECTIONS`` of a cell. Values outside ``[lambda_bar(1), lambda_bar(0)]`` map to the nearer end.
    """
    _check_steps(resolution, "resolution")
    device = diffusion.lam.device
    fine = torch.linspace(0.0, 1.0, resolution + 1, dtype=torch.float64, device=device)
    rising = -logsnr_summary(diffusion, fine)  # non-decreasing in t
    if not float(rising[-1] - rising[0]) > 0.0:
        raise ValueError(
            "the mean log-SNR of this diffusion is constant in t, so no time is spaced by it; use uniform_grid"
        )
    target = -torch.as_tensor(values, dtype=torch.float64, device=device)
    flat = target.reshape(-1).clamp(float(rising[0]), float(rising[-1]))
    hi = torch.searchsorted(rising, flat).clamp(1, resolution)
    lo, hi = fine[hi - 1], fine[hi]  # rising(lo) <= target <= rising(hi)
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        right = -logsnr_summary(diffusion, mid) < flat
        lo, hi = torch.where(right, mid, lo), torch.where(right, hi, mid)
    return (0.5 * (lo + hi)).reshape(target.shape)


def logsnr_grid(diffusion, steps: int, resolution: int = RESOLUTION) -> Tensor:
    """``steps + 1`` times from 1 to 0 with ``lambda_bar`` equally spaced: ``[steps + 1]`` (float64).

    Raises ``ValueError`` where ``lambda_bar`` is too flat for ``steps`` distinct times.
    """
    _check_steps(steps)
    ends = logsnr_summary(diffusion, torch.tensor([1.0, 0.0], dtype=torch.float64))
    values = torch.linspace(float(ends[0]), float(ends[1]), steps + 1, dtype=torch.float64)
    times = time_at_logsnr(diffusion, values, resolution)
    times[0], times[-1] = 1.0, 0.0
    if not bool((times[1:] < times[:-1]).all()):
        raise ValueError(
            f"cannot place {steps} steps uniformly in log-SNR: the mean log-SNR is flat over part of [0, 1]; "
            f"use fewer steps or uniform_grid"
        )
    return times.to(diffusion.lam.device)


def logsnr_midpoints(diffusion, times: Tensor) -> Tensor:
    """For each step ``t_i -> t_{i+1}``, the time where ``lambda_bar`` is halfway: ``[N]`` for ``[N + 1]``."""
    times = check_grid(times)
    summary = logsnr_summary(diffusion, times)
    mid = time_at_logsnr(diffusion, 0.5 * (summary[:-1] + summary[1:])).to(times.device)
    return torch.minimum(torch.maximum(mid, times[1:]), times[:-1])


@register_grid("uniform")
def uniform(diffusion, steps: int) -> Tensor:
    """Registered as ``"uniform"``: :func:`uniform_grid` on the diffusion's device."""
    return uniform_grid(steps, device=diffusion.lam.device)


@register_grid("logsnr")
def logsnr(diffusion, steps: int) -> Tensor:
    """Registered as ``"logsnr"``: :func:`logsnr_grid`."""
    return logsnr_grid(diffusion, steps)


def _check_steps(steps: object, name: str = "steps") -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{name} must be a positive integer, got {steps!r}")
