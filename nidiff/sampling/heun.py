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

from torch import Tensor

from nidiff.registries import register_sampler
from nidiff.sampling.base import Sampler, SamplerRun
from nidiff.sampling.clipping import XClip
from nidiff.sampling.predict import Model, predict

__all__ = ["Heun", "drift", "heun"]


def drift(diffusion, model: Model, u: Tensor, t: Tensor, x_clip: XClip | None = None) -> Tensor:
    """``du/dt`` of the probability-flow ODE at ``(u [B, *coeff_shape], t)`` (one shared float64 time)."""
    d_log_alpha, d_log_sigma = diffusion.log_alpha_sigma_dt(t)
    pred = predict(diffusion, model, u, t, x_clip)
    return d_log_sigma.to(u.dtype) * u + (d_log_alpha - d_log_sigma).to(u.dtype) * pred.signal


@register_sampler("heun")
class Heun(Sampler):
    """Heun's method on the probability-flow ODE in ``t``: ``2 N`` model evaluations, deterministic."""

    evaluations_per_step = 2

    def step(self, run: SamplerRun, u: Tensor, i: int) -> Tensor:
        t, s = run.t(i), run.s(i)
        dt = float(s - t)
        d_t = drift(run.diffusion, run.model, u, t, run.x_clip)
        u_euler = u + dt * d_t
        return u + (0.5 * dt) * (d_t + drift(run.diffusion, run.model, u_euler, s, run.x_clip))


heun = Heun()
