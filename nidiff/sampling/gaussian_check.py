"""The Gaussian check of deterministic samplers: the exact output variance, per coefficient.

| check                                                      | code                         |
| ---------------------------------------------------------- | ---------------------------- |
| data ``u_x ~ N(0, diag(v))`` in the basis, 1x8x8 DCT       | ``GaussianCheck``            |
| spectrum ``v_k = 1 / (1 + 10 lambda_k)``                   | ``check_variance``           |
| optimal noise prediction ``E[u_eps | u_t]`` (linear)       | ``GaussianCheck.model``      |
| exact flow from the prior: std ``std_0 sigma_1 / std_1``    | ``GaussianCheck.target_std`` |
| ``max_k |Var_k(output) / Var_k(exact) - 1|``                | ``GaussianCheck.variance_error`` |

Data: zero-mean Gaussian, diagonal in the basis, with variance ``v_k = 1 / (1 + 10 lambda_k)``
for the coefficient of eigenvalue ``lambda_k`` (a ``1/f^2`` power spectrum in the DCT basis, whose
eigenvalues are squared frequencies; ``v = 1`` at the constant coefficient, ``1/152`` at the
highest frequency of 8x8). Default diffusion: the DCT basis at 1x8x8 with the paper's
``blurring`` schedule and ``sigma_blur_max = 20`` (the CIFAR10 value, at 8x8 sixteen times
stiffer in ``lambda`` than at 32x32); ``sigma_blur_max = 0`` is the isotropic cosine schedule.

With this data the optimal noise prediction is linear, ``E[u_eps | u_t] = sigma_t u_t / std_t^2``
with ``std_t^2 = alpha_t^2 v + sigma_t^2`` (per coefficient), so a deterministic sampler maps the
prior state to its output linearly, coefficient by coefficient: one run from ``u_1 = sigma_1`` (one
standard deviation of the prior in every coefficient) gives the standard deviation of its output
exactly, without Monte Carlo. The exact probability-flow ODE keeps ``u_t / std_t`` fixed, so from
the prior ``N(0, sigma_1^2)`` it ends with standard deviation ``std_0 sigma_1 / std_1``. The error is
the largest relative error of the output variance over coefficients,
``max_k |out_k^2 / target_k^2 - 1|`` (``inf`` where the output is not finite). The model is
evaluated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

import nidiff

__all__ = ["GaussianCheck", "check_variance", "gaussian_check"]

SHAPE = (1, 8, 8)
SIGMA_BLUR_MAX = 20.0


def check_variance(lam: Tensor) -> Tensor:
    """``v(lambda) = 1 / (1 + 10 lambda)``, the data variance per eigenvalue (float64)."""
    return 1.0 / (1.0 + 10.0 * lam)


@dataclass
class GaussianCheck:
    """Zero-mean Gaussian data ``N(0, diag(variance))`` in ``diffusion``'s basis and its optimal denoiser."""

    diffusion: nidiff.GaussianDiffusion
    variance: Tensor  # [*coeff_shape] float64

    def model(self, z: Tensor, t: Tensor) -> Tensor:
        """The optimal network output ``[B, C, H, W]`` for the diffusion's parametrization, at ``(z_t, t [B])``."""
        d = self.diffusion
        times, index = torch.unique(t.to(torch.float64), return_inverse=True)
        alpha, sigma = d.alpha_sigma(times, torch.float64)
        alpha, sigma = alpha[index], sigma[index]
        u = d.basis.to_coeffs(z.to(torch.float64))
        var = alpha**2 * self.variance + sigma**2
        u_eps = sigma * u / var               # E[u_eps | u_t]
        u_x = alpha * self.variance * u / var  # E[u_x | u_t]
        return d.basis.from_coeffs(d.parametrization.target(u_x, u_eps, alpha, sigma)).to(z.dtype)

    def target_std(self) -> Tensor:
        """Standard deviation ``[*coeff_shape]`` of the exact probability-flow ODE's output from the prior."""
        d = self.diffusion
        (a0, s0), (a1, s1) = (d.alpha_sigma(torch.tensor([t]), torch.float64) for t in (0.0, 1.0))
        std0, std1 = (a0**2 * self.variance + s0**2).sqrt(), (a1**2 * self.variance + s1**2).sqrt()
        return (std0 / std1 * s1)[0].expand_as(self.variance)

    def output_std(self, sampler: Callable[..., Tensor], times: Tensor) -> Tensor:
        """The output standard deviation ``[*coeff_shape]`` of a deterministic ``sampler`` on ``times``."""
        d = self.diffusion
        _, sigma1 = d.alpha_sigma(torch.ones(1), torch.float64)
        u1 = sigma1.expand(1, *d.basis.coeff_shape)
        out = sampler(d, self.model, d.basis.from_coeffs(u1.clone()), times)
        return d.basis.to_coeffs(out.to(torch.float64))[0]

    def variance_error(self, sampler: Callable[..., Tensor], times: Tensor) -> float:
        """``max_k |Var_k(output) / Var_k(exact flow) - 1|``; ``inf`` if the output is not finite."""
        std = self.output_std(sampler, times)
        if not bool(torch.isfinite(std).all()):
            return math.inf
        return float(((std / self.target_std()) ** 2 - 1.0).abs().max())


def gaussian_check(
    sigma_blur_max: float = SIGMA_BLUR_MAX,
    shape: tuple[int, int, int] = SHAPE,
    basis: str = "dct",
    variance: Callable[[Tensor], Tensor] = check_variance,
    parametrization: str = "eps",
) -> GaussianCheck:
    """The check's problem: ``blurring`` schedule with ``sigma_blur_max`` (0: isotropic cosine), data
    variance ``variance(lambda)`` per coefficient."""
    schedule = nidiff.build_schedule("blurring", sigma_blur_max=sigma_blur_max)
    diffusion = nidiff.GaussianDiffusion(nidiff.build_basis(basis, shape=shape), schedule, parametrization)
    lam = diffusion.lam.to(torch.float64).expand(*diffusion.basis.coeff_shape)
    return GaussianCheck(diffusion, variance(lam).clone())
