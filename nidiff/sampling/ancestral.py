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

``x_clip`` (appendix A.1 leaves it open): ``None`` (the default) uses the prediction as it is;
``(lo, hi)`` clips ``x_hat`` in pixel space to that range and recomputes ``eps_hat`` from it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from nidiff.sampling.grids import check_grid

__all__ = ["ancestral"]


@torch.no_grad()
def ancestral(
    diffusion,
    model: nn.Module | Callable[[Tensor, Tensor], Tensor],
    z: Tensor,
    times: Tensor,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    x_clip: tuple[float, float] | None = None,
) -> Tensor:
    """Run algorithm 1 from ``z`` at ``times[0]`` down to ``times[-1]``.

    Args:
        diffusion: a :class:`~nidiff.GaussianDiffusion`.
        model: ``model(z_t [B, C, H, W], t [B]) -> output [B, C, H, W]``.
        z: the state at ``times[0]``, ``[B, C, H, W]`` (usually ``diffusion.prior_sample``).
        times: strictly decreasing grid ``[N + 1]``.
        callback: called after each step with ``{"i", "t", "s", "z"}``.
        x_clip: optional pixel range for ``x_hat``.
    Returns:
        the sample at ``times[-1]``, ``[B, C, H, W]``.
    """
    times = check_grid(times).to(z.device)
    basis, p = diffusion.basis, diffusion.parametrization
    batch = z.shape[0]
    u = basis.to_coeffs(z)
    for i in range(times.numel() - 1):
        t, s = times[i].expand(batch), times[i + 1].expand(batch)
        z_t = basis.from_coeffs(u)
        out = basis.to_coeffs(model(z_t, t.to(z.dtype)))
        alpha, sigma = diffusion.alpha_sigma(t, u.dtype)
        u_eps = p.eps(u, out, alpha, sigma)
        if x_clip is not None:
            x_hat = basis.from_coeffs(p.x(u, out, alpha, sigma)).clamp(*x_clip)
            u_eps = (u - alpha * basis.to_coeffs(x_hat)) / sigma
        c_t, c_e, var = diffusion.posterior_eps_coefficients(t, s, u.dtype)
        mean = c_t * u + c_e * (u - sigma * u_eps)
        if i == times.numel() - 2 and float(times[-1]) == 0.0:
            u = mean
        else:
            noise = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
            u = mean + var.sqrt() * noise
        if callback is not None:
            callback({"i": i, "t": float(times[i]), "s": float(times[i + 1]), "z": basis.from_coeffs(u)})
    return basis.from_coeffs(u)
