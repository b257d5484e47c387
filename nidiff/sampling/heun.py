"""Heun's method (explicit trapezoid, as in Karras et al. 2022) on the probability-flow ODE, in ``t``.

| derivation (per coefficient, elementwise)                     | code                  |
| ------------------------------------------------------------- | --------------------- |
| ``f = d log alpha_t / dt``, ``g_s = d log sigma_t / dt``       | ``log_alpha_sigma_dt``|
| ``g^2 = d sigma^2/dt - 2 f sigma^2 = 2 sigma^2 (g_s - f)``     |                       |
| ``du/dt = f u + g^2 / (2 sigma) u_eps_hat``                    | ``drift``             |
|        ``= g_s u + (f - g_s) alpha_t u_x_hat``                 | ``drift`` (as coded)  |

The forward process ``u_t = alpha_t u_x + sigma_t u_eps`` is the SDE ``du = f u dt + g dW`` with
the ``f``, ``g`` above (its marginals match for any ``alpha``, ``sigma``: nothing here assumes a
variance-preserving schedule), and its probability-flow ODE replaces the score by
``-u_eps_hat / sigma_t``. Substituting ``sigma_t u_eps_hat = u_t - alpha_t u_x_hat`` gives the coded
form, which needs ``alpha_t u_x_hat`` only (``Prediction.signal``) and no division by ``alpha_t``.
``f`` and ``g_s`` are exact: forward-mode autodiff of the schedule in float64
(``GaussianDiffusion.log_alpha_sigma_dt``).

This is the baseline solver: it treats the linear part ``f u`` like the rest, so stiff
coefficients (strong damping, the high-SNR end of the schedule) need small steps, unlike
``dpm2``. Each step ``t -> s`` is an Euler predictor and a trapezoid corrector: two model
evaluations per step, also on the last one (``sigma_0 > 0`` for every schedule here).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from nidiff.sampling.clipping import XClip, resolve_x_clip
from nidiff.sampling.grids import check_grid
from nidiff.sampling.noise import Generators
from nidiff.sampling.predict import Model, predict

__all__ = ["heun", "drift"]


def drift(diffusion, model: Model, u: Tensor, t: Tensor, x_clip: XClip | None = None) -> Tensor:
    """``du/dt`` of the probability-flow ODE at ``(u [B, *coeff_shape], t)`` (one shared float64 time)."""
    d_log_alpha, d_log_sigma = diffusion.log_alpha_sigma_dt(t)
    pred = predict(diffusion, model, u, t, x_clip)
    return d_log_sigma.to(u.dtype) * u + (d_log_alpha - d_log_sigma).to(u.dtype) * pred.signal


@torch.no_grad()
def heun(
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
        times: strictly decreasing grid ``[N + 1]``.
        generator: unused (the solver is deterministic); kept for the shared signature.
        callback: called after each step with ``{"i", "t", "s", "z"}``.
        x_clip: clipping of ``x_hat`` at both evaluations (see ``nidiff.sampling.clipping``).
    Returns:
        the ODE's state at ``times[-1]``, ``[B, C, H, W]``.
    """
    times = check_grid(times).to(z.device)
    x_clip = resolve_x_clip(x_clip)
    u = diffusion.basis.to_coeffs(z)
    for i in range(times.numel() - 1):
        t, s = times[i : i + 1], times[i + 1 : i + 2]
        dt = float(times[i + 1] - times[i])
        d_t = drift(diffusion, model, u, t, x_clip)
        u_euler = u + dt * d_t
        u = u + (0.5 * dt) * (d_t + drift(diffusion, model, u_euler, s, x_clip))
        if callback is not None:
            z_s = diffusion.basis.from_coeffs(u)
            callback({"i": i, "t": float(times[i]), "s": float(times[i + 1]), "z": z_s})
    return diffusion.basis.from_coeffs(u)
