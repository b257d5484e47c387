"""A time grid that bounds every coefficient's step in signal-to-noise angle: the ``"angle"`` grid.

| derivation (per coefficient ``k``)                                   | code              |
| -------------------------------------------------------------------- | ----------------- |
| data variance of coefficient ``k``, ``v_k``                          | ``variance``      |
| angle ``phi_k(t) = atan(alpha_k(t) sqrt(v_k) / sigma_k(t))`` in [0, pi/2] | ``angles``   |
| ``= atan(exp((lambda_k(t) + log v_k) / 2))``                         |                   |
| monitor ``M(t) = max_k |d phi_k / dt|``                              | per cell of a table |
| grid: equal steps of ``int_t^1 M``                                   | ``angle_grid``    |

Why the angle. For data ``N(m_k, v_k)`` in coefficient ``k``, the probability-flow ODE keeps
``(u - alpha m_k) / std_t`` fixed, ``std_t^2 = alpha^2 v_k + sigma^2``, and along it the data
prediction is ``x_hat - m_k = sqrt(v_k) z sin(phi_k)``, ``z`` the fixed standardised state: the angle
``phi_k`` is the variable in which each coefficient's flow is uniform (a DDIM step from ``phi`` to
``phi'`` shrinks the standard deviation by ``cos(phi' - phi)``, Song et al.'s DDIM seen per
coefficient). A coefficient changes only while ``phi_k`` moves, i.e. while its log-SNR is within a few
units of ``-log v_k``: before, it is noise, after, it is data. Its total travel is ``pi/2`` whatever
its schedule. A grid uniform in the log-SNR of one coefficient wastes steps on the others; a grid
that puts equal *largest* angle steps ``max_k |Delta phi_k|`` in every step gives every coefficient
at most the same step in the variable it moves in, wherever its schedule moves it.

For a scalar schedule and one variance this is a grid uniform in ``phi``; for blurring diffusion it
follows the coefficients as they leave the ``d_min`` floor one after another. It depends on the
data's variances, which no schedule knows: ``variance`` takes them (per coefficient, or as a
function of the basis eigenvalue); the registered grid assumes ``v(lambda) = 1 / (1 + 10 lambda)``
(``default_variance``), a ``1/f^2`` spectrum in the DCT basis with unit variance at the lowest
frequency, which is also the spectrum of the Gaussian check (``nidiff.sampling.gaussian_check``).
For other data pass its per-coefficient variances (a few hundred images give them).

``M`` is evaluated on a table of ``resolution`` cells uniform in ``t`` (the largest angle change
per cell over the coefficients), accumulated, and inverted piecewise linearly; the first and last
grid times are exactly 1 and 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from nidiff.registries import register_grid

__all__ = ["angle", "angle_grid", "angles", "default_variance"]

RESOLUTION = 8192  # cells of the table of M (largest angle change in a cell: 0.003 for blurring, 0.01 linear)
BLOCK = 256        # table times per pass (bounds the memory for large images)


def default_variance(lam: Tensor) -> Tensor:
    """``v(lambda) = 1 / (1 + 10 lambda)``: the registered grid's data variance per eigenvalue."""
    return 1.0 / (1.0 + 10.0 * lam)


def angles(diffusion, t: Tensor, variance: Tensor | Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """``phi_k(t) = atan(exp((lambda_k(t) + log v_k) / 2))`` (float64): ``[N, *coeff_shape]`` for ``t`` ``[N]``."""
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    log_v = _log_variance(diffusion, variance)
    return torch.atan(torch.exp(0.5 * (diffusion.logsnr(t) + log_v)))


def angle_grid(
    diffusion,
    steps: int,
    variance: Tensor | Callable[[Tensor], Tensor] | None = None,
    resolution: int = RESOLUTION,
) -> Tensor:
    """``steps + 1`` times from 1 to 0 with equal largest angle steps ``max_k |Delta phi_k|``: ``[steps + 1]``.

    Args:
        diffusion: the ``GaussianDiffusion``.
        steps: the number of steps.
        variance: the data's variance per coefficient, a tensor broadcastable to the coefficient
            shape, or a function of the eigenvalues (``diffusion.lam``, float64); default
            ``default_variance``.
        resolution: cells of the table of the monitor.
    Raises:
        ValueError: bad ``steps``, variances that are not positive and finite, or a diffusion whose
            angles do not move (a constant schedule).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < steps:
        raise ValueError(f"resolution must be an integer of at least steps ({steps}), got {resolution!r}")
    device = diffusion.lam.device
    fine = torch.linspace(0.0, 1.0, resolution + 1, dtype=torch.float64, device=device)
    log_v = _log_variance(diffusion, variance)  # [*coeff_shape]
    cell = torch.empty(resolution, dtype=torch.float64, device=device)  # max_k |Delta phi_k| per cell
    previous = None
    for first in range(0, resolution + 1, BLOCK):  # blocks of times bound the memory for large images
        phi = torch.atan(torch.exp(0.5 * (diffusion.logsnr(fine[first : first + BLOCK]) + log_v))).flatten(1)
        start = first
        if previous is not None:  # the cell between this block and the last
            phi, start = torch.cat([previous, phi]), first - 1
        cell[start : start + phi.shape[0] - 1] = (phi[:-1] - phi[1:]).abs().amax(1)
        previous = phi[-1:]
    total = torch.cat([cell.new_zeros(1), cell.cumsum(0)])  # int_0^t M, non-decreasing
    if not float(total[-1]) > 0.0:
        raise ValueError("no coefficient's angle moves between t = 0 and 1 for this diffusion; use the uniform grid")
    target = torch.linspace(float(total[-1]), 0.0, steps + 1, dtype=torch.float64, device=device)
    hi = torch.searchsorted(total, target).clamp(1, resolution)
    lo_total, hi_total = total[hi - 1], total[hi]
    frac = ((target - lo_total) / (hi_total - lo_total).clamp_min(torch.finfo(torch.float64).tiny)).clamp(0.0, 1.0)
    times = fine[hi - 1] + frac * (fine[hi] - fine[hi - 1])
    times[0], times[-1] = 1.0, 0.0
    if not bool((times[1:] < times[:-1]).all()):
        raise ValueError(f"cannot place {steps} distinct times at resolution {resolution}; raise the resolution")
    return times


@register_grid("angle")
def angle(diffusion, steps: int) -> Tensor:
    """Registered as ``"angle"``: :func:`angle_grid` with ``default_variance``."""
    return angle_grid(diffusion, steps)


def _log_variance(diffusion, variance: Tensor | Callable[[Tensor], Tensor] | None) -> Tensor:
    """``log v_k`` (float64), broadcast to the coefficient shape ``[*coeff_shape]``."""
    shape = diffusion.basis.coeff_shape
    if variance is None:
        variance = default_variance
    if callable(variance):
        v = variance(diffusion.lam.to(torch.float64))
    else:
        v = torch.as_tensor(variance, dtype=torch.float64, device=diffusion.lam.device)
    try:
        v = torch.broadcast_to(torch.as_tensor(v, dtype=torch.float64), shape)
    except RuntimeError:
        raise ValueError(
            f"variance must broadcast to the coefficient shape {list(shape)}, got shape {list(torch.as_tensor(v).shape)}"
        ) from None
    if not bool(torch.isfinite(v).all() & (v > 0).all()):
        raise ValueError("variance must be positive and finite for every coefficient")
    return v.log()
