"""Ancestral sampling (algorithm 1): sample the posterior with ``x`` replaced by the prediction.

| paper (algorithm 1, eq. 24)                              | code                   |
| -------------------------------------------------------- | ---------------------- |
| ``z_1 ~ N(0, I)``                                        | ``z`` (from ``prior_sample``) |
| ``u_t = V^T z_t``                                        | ``u``                  |
| ``mu = c_t u_t + c_e (u_t - sigma_t u_eps_hat)``         | ``mean``               |
| ``u_s = mu + sqrt(sigma^2_{t->s}) u_noise``              | ``u``                  |

Steps go ``t -> s`` over any strictly decreasing grid, not only ``s = t - 1/T``. The state stays
in coefficient space, so a step costs two transforms (the model input and its output). The last
step to ``s = 0`` returns the posterior mean without noise.

``x_clip`` (appendix A.1 leaves it open): ``None`` (the default) uses the prediction as it is; a
``(lo, hi)`` pair, ``"static"``, ``"dynamic"`` or an ``XClip`` clips ``x_hat`` in pixel space and
recomputes ``eps_hat`` from it (``nidiff.sampling.predict``), so the mean is eq. 19 with the
clipped ``x_hat``: ``c_e (u_t - sigma_t u_eps_hat) = c_x u_x_hat``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from nidiff.sampling.clipping import XClip, resolve_x_clip
from nidiff.sampling.grids import check_grid
from nidiff.sampling.noise import Generators, randn
from nidiff.sampling.predict import Model, predict

__all__ = ["ancestral"]


@torch.no_grad()
def ancestral(
    diffusion,
    model: Model,
    z: Tensor,
    times: Tensor,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    x_clip: XClip | str | tuple[float, float] | None = None,
) -> Tensor:
    """Run algorithm 1 from ``z`` at ``times[0]`` down to ``times[-1]``: ``N`` model evaluations.

    Args:
        diffusion: a :class:`~nidiff.GaussianDiffusion`.
        model: ``model(z_t [B, C, H, W], t [B]) -> output [B, C, H, W]``.
        z: the state at ``times[0]``, ``[B, C, H, W]`` (usually ``diffusion.prior_sample``).
        times: strictly decreasing grid ``[N + 1]``.
        generator: one ``torch.Generator``, or one per sample (``nidiff.sampling.noise``).
        callback: called after each step with ``{"i", "t", "s", "z"}``.
        x_clip: clipping of ``x_hat`` (see ``nidiff.sampling.clipping``).
    Returns:
        the sample at ``times[-1]``, ``[B, C, H, W]``.
    """
    times = check_grid(times).to(z.device)
    x_clip = resolve_x_clip(x_clip)
    u = diffusion.basis.to_coeffs(z)
    last, ends_at_zero = times.numel() - 2, float(times[-1]) == 0.0
    for i in range(times.numel() - 1):
        t, s = times[i : i + 1], times[i + 1 : i + 2]
        pred = predict(diffusion, model, u, t, x_clip)
        c_t, _, c_e, var = diffusion.reverse_coefficients(t, s, u.dtype)
        mean = c_t * u + c_e * pred.signal  # eq. 24
        if i == last and ends_at_zero:
            u = mean
        else:
            noise = randn(u.shape, generator, device=u.device, dtype=u.dtype)
            u = mean + var.sqrt() * noise
        if callback is not None:
            z_s = diffusion.basis.from_coeffs(u)
            callback({"i": i, "t": float(times[i]), "s": float(times[i + 1]), "z": z_s})
    return diffusion.basis.from_coeffs(u)
