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

import torch
from torch import Tensor

from nidiff.registries import register_sampler
from nidiff.sampling.base import Sampler, SamplerRun

__all__ = ["DDIM", "ddim", "ddim_coefficients"]


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


@register_sampler("ddim")
class DDIM(Sampler):
    """Generalised DDIM: ``N`` model evaluations; ``eta`` 0 deterministic, 1 ancestral, in [0, 1] between."""

    def __init__(self, eta: float = 0.0) -> None:
        if isinstance(eta, bool) or not isinstance(eta, (int, float)):
            raise TypeError(f"eta must be a number, got {eta!r}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: ancestral), got {eta!r}")
        self.eta = float(eta)
        self.stochastic = self.eta > 0

    def step(self, run: SamplerRun, u: Tensor, i: int) -> Tensor:
        pred = run.predict(u, run.t(i))
        a, b, c = ddim_coefficients(run.diffusion, run.t(i), run.s(i), self.eta, u.dtype)
        u = a * pred.signal + b * pred.eps
        if self.eta > 0 and not run.final(i):
            u = u + c * run.noise(u)
        return u


ddim = DDIM()
