"""DDIM (Song, Meng & Ermon 2021, eq. 12), derived per coefficient for any basis and schedule.

| paper / derivation (per coefficient, elementwise)               | code             |
| --------------------------------------------------------------- | ---------------- |
| ``u_x_hat``, ``u_eps_hat`` at ``(u_t, t)``                      | ``pred``         |
| ``delta = lambda_t - lambda_s <= 0``                            | ``delta``        |
| ``sigma^2_{t->s} = -sigma_s^2 expm1(delta)`` (eq. 19)           | posterior variance |
| ``c^2 = eta^2 sigma^2_{t->s}``                                  | ``c``            |
| ``u_s = alpha_s u_x_hat + sqrt(sigma_s^2 - c^2) u_eps_hat + c xi`` | the update    |

Every coefficient is a scalar diffusion ``u_t = alpha_t u_x + sigma_t u_eps``, so DDIM's
non-Markovian family applies to each with its own ``alpha``, ``sigma``. ``eta = 1`` is ancestral
sampling (``c^2`` is the posterior variance and ``sqrt(sigma_s^2 - c^2) u_eps_hat + alpha_s u_x_hat``
is the posterior mean, eq. 19), ``eta = 0`` the deterministic DDIM, a first-order solver of the
probability-flow ODE (DPM-Solver-1). In stable form,

    sigma_s^2 - c^2 = sigma_s^2 (1 + eta^2 expm1(delta)),
    alpha_s u_x_hat = exp(log alpha_s - log alpha_t) * (alpha_t u_x_hat),

with ``alpha_t u_x_hat = u_t - sigma_t u_eps_hat`` (``Prediction.signal``), so nothing divides by
``alpha_t``: the update stays finite where ``alpha_t`` underflows, as the engine's
``reverse_coefficients`` do. As in ancestral sampling, the last step to ``s = 0`` adds no noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from nidiff.sampling.clipping import XClip, resolve_x_clip
from nidiff.sampling.grids import check_grid
from nidiff.sampling.noise import Generators, randn
from nidiff.sampling.predict import Model, predict

__all__ = ["ddim", "ddim_coefficients"]


def ddim_coefficients(
    diffusion, t: Tensor, s: Tensor, eta: float, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """``(a, b, c)`` of ``u_s = a * signal + b * u_eps_hat + c * xi`` for the step ``t -> s``.

    ``a = alpha_s / alpha_t``, ``b = sqrt(sigma_s^2 - c^2)``, ``c = eta sigma_{t->s}``; each
    broadcastable to ``[B, *coeff_shape]``, computed in float64 and cast to ``dtype``.
    """
    la_t, ls_t = diffusion.log_alpha_sigma(t)
    la_s, ls_s = diffusion.log_alpha_sigma(s)
    delta = 2.0 * ((la_t - ls_t) - (la_s - ls_s))  # lambda_t - lambda_s <= 0
    sigma_s = ls_s.exp()
    a = (la_s - la_t).exp()
    b = sigma_s * (1.0 + eta**2 * torch.expm1(delta)).clamp_min(0.0).sqrt()
    c = eta * sigma_s * (-torch.expm1(delta)).clamp_min(0.0).sqrt()
    return a.to(dtype), b.to(dtype), c.to(dtype)


@torch.no_grad()
def ddim(
    diffusion,
    model: Model,
    z: Tensor,
    times: Tensor,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    x_clip: XClip | str | tuple[float, float] | None = None,
    eta: float = 0.0,
) -> Tensor:
    """Generalised DDIM from ``z`` at ``times[0]`` down to ``times[-1]``: ``N`` model evaluations.

    Args:
        diffusion: a :class:`~nidiff.GaussianDiffusion`.
        model: ``model(z_t [B, C, H, W], t [B]) -> output [B, C, H, W]``.
        z: the state at ``times[0]``, ``[B, C, H, W]`` (usually ``diffusion.prior_sample``).
        times: strictly decreasing grid ``[N + 1]`` (``uniform_grid`` or ``logsnr_grid``).
        generator: one ``torch.Generator``, or one per sample (``nidiff.sampling.noise``).
        callback: called after each step with ``{"i", "t", "s", "z"}``.
        x_clip: clipping of ``x_hat`` (see ``nidiff.sampling.clipping``).
        eta: 0 deterministic, 1 ancestral; anything in [0, 1] interpolates the noise.
    Returns:
        the sample at ``times[-1]``, ``[B, C, H, W]``.
    """
    if isinstance(eta, bool) or not isinstance(eta, (int, float)):
        raise TypeError(f"eta must be a number, got {eta!r}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: ancestral), got {eta!r}")
    times = check_grid(times).to(z.device)
    x_clip = resolve_x_clip(x_clip)
    u = diffusion.basis.to_coeffs(z)
    last, ends_at_zero = times.numel() - 2, float(times[-1]) == 0.0
    for i in range(times.numel() - 1):
        t, s = times[i : i + 1], times[i + 1 : i + 2]
        pred = predict(diffusion, model, u, t, x_clip)
        a, b, c = ddim_coefficients(diffusion, t, s, float(eta), u.dtype)
        u = a * pred.signal + b * pred.eps
        if eta > 0 and not (i == last and ends_at_zero):
            u = u + c * randn(u.shape, generator, device=u.device, dtype=u.dtype)
        if callback is not None:
            z_s = diffusion.basis.from_coeffs(u)
            callback({"i": i, "t": float(times[i]), "s": float(times[i + 1]), "z": z_s})
    return diffusion.basis.from_coeffs(u)
