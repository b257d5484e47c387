"""Gaussian data ``u_x ~ N(m, diag(s2))`` in a basis's coefficient space, and its optimal denoiser.

For such data every coefficient is independent, ``u_t | t ~ N(alpha_t m, alpha_t^2 s2 + sigma_t^2)``,
and the optimal noise prediction is linear: ``E[u_eps | u_t] = sigma_t (u_t - alpha_t m) / (alpha_t^2 s2
+ sigma_t^2)``. Samplers and the likelihood bound can then be checked against closed forms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

import nidiff

SHAPE = (1, 4, 4)


@dataclass
class GaussianProblem:
    diffusion: nidiff.GaussianDiffusion
    m: Tensor   # [*coeff_shape] float64
    s2: Tensor  # [*coeff_shape] float64

    def model(self, z: Tensor, t: Tensor) -> Tensor:
        """The optimal network output in pixel space for the diffusion's parametrization."""
        d = self.diffusion
        times, index = torch.unique(t, return_inverse=True)  # samplers share one time per batch
        alpha, sigma = d.alpha_sigma(times, torch.float64)
        alpha, sigma = alpha[index], sigma[index]
        u = d.basis.to_coeffs(z).double()
        var = alpha**2 * self.s2 + sigma**2
        u_eps = sigma * (u - alpha * self.m) / var  # E[u_eps | u_t]
        u_x = (sigma**2 * self.m + alpha * self.s2 * u) / var  # E[u_x | u_t]
        return d.basis.from_coeffs(d.parametrization.target(u_x, u_eps, alpha, sigma).to(z.dtype))

    def sample_data(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` images ``[n, C, H, W]`` (float64) drawn from the data distribution."""
        shape = (n, *self.diffusion.basis.coeff_shape)
        u = self.m + self.s2.sqrt() * torch.randn(shape, generator=generator, dtype=torch.float64)
        return self.diffusion.basis.from_coeffs(u)

    def ode_target(self) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of ``u`` at ``t = 0`` after the exact probability-flow ODE
        from the prior ``N(0, sigma_1^2)``: the flow keeps ``(u_t - alpha_t m) / std_t`` fixed."""
        d = self.diffusion
        a0, s0 = d.alpha_sigma(torch.zeros(1), torch.float64)
        a1, s1 = d.alpha_sigma(torch.ones(1), torch.float64)
        std0, std1 = (a0**2 * self.s2 + s0**2).sqrt(), (a1**2 * self.s2 + s1**2).sqrt()
        return (a0 * self.m - std0 * a1 * self.m / std1)[0], (std0 / std1 * s1).expand_as(std0)[0]


def gaussian_problem(
    basis: str = "dct",
    schedule: str = "blurring",
    shape: tuple[int, int, int] = SHAPE,
    seed: int = 8,
    parametrization: str = "eps",
    **kw,
) -> GaussianProblem:
    """Data ``N(m, diag(s2))`` with ``m ~ 0.5 N(0, 1)``, ``s2 ~ U(0.2, 1.2)`` per coefficient.

    A basis that learns from data (``whitened``, ``pca``) is first fitted on random-walk images
    (white noise summed along both axes), whose variance falls off with frequency, so that its
    coefficients are scaled very unequally.
    """
    basis_, schedule_ = nidiff.build_basis(basis, shape=shape), nidiff.build_schedule(schedule, **kw)
    if hasattr(basis_, "fit"):
        g = torch.Generator().manual_seed(seed + 1)
        basis_.fit(torch.randn(512, *shape, generator=g, dtype=torch.float64).cumsum(-1).cumsum(-2))
    d = nidiff.GaussianDiffusion(basis_, schedule_, parametrization)
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(*d.basis.coeff_shape, generator=g, dtype=torch.float64) * 0.5
    s2 = torch.rand(*d.basis.coeff_shape, generator=g, dtype=torch.float64) + 0.2
    return GaussianProblem(d, m, s2)


# The published processes of docs/literature.md as Gaussian problems: (basis, schedule, arguments).
# SAGD's arguments make its noise scale differ eight-fold across coefficients (and, with bands,
# five-fold between two bands), so that every check sees a prior N(0, sigma_1(k)^2) per coefficient.
PUBLISHED: dict[str, tuple[str, str, dict]] = {
    "equalsnr": ("whitened", "cosine", {}),
    "sagd-power": ("fourier", "sagd", {"exponent": 0.5, "offset": 0.01}),
    "sagd-bands": ("hartley", "sagd", {"exponent": 0.0, "bands": [[0.0, 0.3, 0.3], [0.3, 1.0, 1.5]]}),
    "soft_diffusion": ("dct", "soft_diffusion", {}),
}


def published_problem(process: str, **kw) -> GaussianProblem:
    """The Gaussian problem of one of :data:`PUBLISHED` (extra keywords go to ``gaussian_problem``)."""
    basis, schedule, args = PUBLISHED[process]
    return gaussian_problem(basis, schedule, **kw, **args)

