"""DPM-Solver-2 (Lu et al. 2022): a second-order exponential integrator for a log-SNR per coefficient.

| paper / derivation (per coefficient ``k``, elementwise)          | code            |
| ---------------------------------------------------------------- | --------------- |
| half log-SNR ``l_k(t) = log(alpha_k / sigma_k) = lambda_k / 2``  | from ``log_alpha_sigma`` |
| ``h_k = l_k(s) - l_k(t) >= 0``                                   | ``h``           |
| intermediate time ``t_m``, ``h_m,k = l_k(t_m) - l_k(t)``          | ``t_mid``, ``h_mid`` |
| ``u_eps_hat`` at ``(u_t, t)`` and ``(u_m, t_m)``                 | ``e_t``, ``e_m`` |
| ``alpha_s / alpha_t``, the exact linear part                     | ``a``           |

Derivation. Per coefficient the probability-flow ODE is ``du/dt = f u + g^2 / (2 sigma) u_eps_hat``
with ``f = d log alpha / dt`` and ``g^2 = d sigma^2 / dt - 2 f sigma^2 = -2 sigma^2 dl/dt``; nothing
ties ``alpha`` to ``sigma`` (blurring diffusion is not variance preserving). Variation of
constants gives ``d(u / alpha)/dt = -exp(-l) (dl/dt) u_eps_hat``, so, with ``l`` as the variable,

    u_s = (alpha_s / alpha_t) u_t - alpha_s int_{l_t}^{l_s} exp(-l) u_eps_hat(l) dl.

Each coefficient has its own ``l_k(t)`` (monotone in ``t``), so this holds coefficient by
coefficient with its own ``h_k``; the linear part ``alpha_s / alpha_t`` is exact. Interpolating
``u_eps_hat`` linearly in ``l`` through ``e_t`` (at ``l_t``) and ``e_m`` (at ``l_t + h_m``) and
integrating exactly:

    u_m = (alpha_m / alpha_t) u_t - sigma_m expm1(h_m) e_t                (DDIM to t_m)
    u_s = (alpha_s / alpha_t) u_t - sigma_s expm1(h) e_t - sigma_s (expm1(h) - h) / h_m (e_m - e_t)

With ``(alpha_s / alpha_t) u_t - sigma_s expm1(h) e_t = (alpha_s / alpha_t)(u_t - sigma_t e_t) + sigma_s e_t``
the update uses ``alpha_t u_x_hat = u_t - sigma_t e_t`` and a log-domain ratio only. Where
``h_m,k = 0`` (a coefficient whose log-SNR is flat on ``[t_m, t]``) the correction is dropped
(first order). Lu et al.'s DPM-Solver-2 uses ``expm1(h) / (2 r)`` for ``(expm1(h) - h) / h_m``
(``r = h_m / h``), equal to leading order; ours is exact for ``u_eps_hat`` linear in ``l`` with any
``r``, which matters because one shared ``t_m`` gives each coefficient its own ``r_k``.

The intermediate time ``t_m`` is where the mean log-SNR over coefficients (the summary of
``nidiff.sampling.grids``) is halfway between its values at ``t`` and ``s``: ``r = 1/2`` exactly
for a scalar schedule, as in DPM-Solver-2. Two model evaluations per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from nidiff.sampling.clipping import XClip, resolve_x_clip
from nidiff.sampling.grids import check_grid, logsnr_midpoints
from nidiff.sampling.noise import Generators
from nidiff.sampling.predict import Model, predict

__all__ = ["dpm2"]


@torch.no_grad()
def dpm2(
    diffusion,
    model: Model,
    z: Tensor,
    times: Tensor,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    x_clip: XClip | str | tuple[float, float] | None = None,
) -> Tensor:
    """Solve the probability-flow ODE from ``times[0]`` to ``times[-1]``: ``2 N`` model evaluations.

    Args:
        diffusion: a :class:`~nidiff.GaussianDiffusion`.
        model: ``model(z_t [B, C, H, W], t [B]) -> output [B, C, H, W]``.
        z: the state at ``times[0]``, ``[B, C, H, W]`` (usually ``diffusion.prior_sample``).
        times: strictly decreasing grid ``[N + 1]`` (``logsnr_grid`` suits it best).
        generator: unused (the solver is deterministic); kept for the shared signature.
        callback: called after each step with ``{"i", "t", "s", "z"}``.
        x_clip: clipping of ``x_hat`` at both evaluations (see ``nidiff.sampling.clipping``).
    Returns:
        the ODE's state at ``times[-1]``, ``[B, C, H, W]``.
    """
    times = check_grid(times).to(z.device)
    x_clip = resolve_x_clip(x_clip)
    mids = logsnr_midpoints(diffusion, times).to(z.device)
    u = diffusion.basis.to_coeffs(z)
    for i in range(times.numel() - 1):
        t, m, s = times[i : i + 1], mids[i : i + 1], times[i + 1 : i + 2]
        (la_t, ls_t), (la_m, ls_m), (la_s, ls_s) = (diffusion.log_alpha_sigma(v) for v in (t, m, s))
        h_mid = (la_m - ls_m) - (la_t - ls_t)  # half log-SNR increments, >= 0
        h = (la_s - ls_s) - (la_t - ls_t)
        weight = torch.where(h_mid > 0, (torch.expm1(h) - h) / torch.where(h_mid > 0, h_mid, 1.0), 0.0)
        a_m, sigma_m = (la_m - la_t).exp().to(u.dtype), ls_m.exp().to(u.dtype)
        a_s, sigma_s = (la_s - la_t).exp().to(u.dtype), ls_s.exp().to(u.dtype)
        slope = (ls_s.exp() * weight).to(u.dtype)  # sigma_s (expm1(h) - h) / h_m

        first = predict(diffusion, model, u, t, x_clip)
        u_m = a_m * first.signal + sigma_m * first.eps
        e_m = predict(diffusion, model, u_m, m, x_clip).eps
        u = a_s * first.signal + sigma_s * first.eps - slope * (e_m - first.eps)
        if callback is not None:
            z_s = diffusion.basis.from_coeffs(u)
            callback({"i": i, "t": float(times[i]), "s": float(times[i + 1]), "z": z_s})
    return diffusion.basis.from_coeffs(u)
