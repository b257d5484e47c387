"""The ``precond`` parametrization against brute-force Gaussian conditioning and closed forms.

For data ``x ~ N(P m, P diag(s2) P^T)`` the optimal denoiser is linear; conditioning the joint
pixel-space Gaussian of ``(x, eps, z_t)`` with dense linear algebra gives ``E[x | z_t]`` and
``E[eps | z_t]`` without any per-coefficient algebra. With statistics equal to ``(m, s2)``, a
network that outputs ``F = 0`` must reproduce both, at every time, including where ``alpha_t`` sits
at the blur floor.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

import nidiff
from nidiff.parametrization import PARAMETRIZATIONS, Velocity, build_parametrization
from nidiff.preconditioning import VAR_FLOOR, Preconditioned
from nidiff.sampling import uniform_grid
from tests.gaussian import gaussian_problem

SHAPE = (2, 4, 4)
TIMES = (0.02, 0.3, 0.6, 0.9, 1.0)  # 0.9 and 1.0: high frequencies at the d_min floor


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def _gaussian(seed: int = 0, shape=SHAPE, sigma_blur_max: float = 20.0):
    """A blurring diffusion whose precond statistics are those of Gaussian data ``N(m, diag(s2))``."""
    basis = nidiff.build_basis("dct", shape=shape)
    g = torch.Generator().manual_seed(seed)
    m = 0.5 * torch.randn(*basis.coeff_shape, generator=g, dtype=torch.float64)
    s2 = torch.rand(*basis.coeff_shape, generator=g, dtype=torch.float64) * 2.0 + 0.01
    p = Preconditioned(basis)
    p.load_state_dict({"mean": m, "var": s2, "fitted": torch.tensor(True)})
    d = nidiff.GaussianDiffusion(basis, nidiff.build_schedule("blurring", sigma_blur_max=sigma_blur_max), p)
    return d, m, s2


def _pixel_matrix(basis) -> np.ndarray:
    """``P`` as a dense ``[D, D]`` matrix: column k is ``from_coeffs(e_k)``."""
    dim = math.prod(basis.coeff_shape)
    eye = torch.eye(dim, dtype=torch.float64).reshape(dim, *basis.coeff_shape)
    return basis.from_coeffs(eye).reshape(dim, dim).T.numpy()


@pytest.mark.parametrize("t", TIMES)
def test_zero_output_is_the_optimal_denoiser_of_gaussian_data(t):
    """F = 0 gives E[x | z_t] and E[eps | z_t], from dense conditioning in pixel space."""
    d, m, s2 = _gaussian()
    P = _pixel_matrix(d.basis)
    dim = P.shape[0]
    alpha, sigma = (v.expand(1, *d.basis.coeff_shape).reshape(-1).numpy()
                    for v in d.alpha_sigma(torch.tensor([t], dtype=torch.float64), torch.float64))
    A = P @ np.diag(alpha) @ P.T                      # z_t = A x + P diag(sigma) P^T eps
    S = P @ np.diag(sigma) @ P.T
    mean_x, cov_x = P @ m.reshape(-1).numpy(), P @ np.diag(s2.reshape(-1).numpy()) @ P.T
    cov_z = A @ cov_x @ A.T + S @ S.T                 # eps ~ N(0, I): white (P orthogonal)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, *SHAPE, generator=g, dtype=torch.float64)
    resid = z.reshape(3, dim).numpy() - (A @ mean_x)[None]
    x_ref = mean_x[None] + resid @ np.linalg.solve(cov_z, A @ cov_x).T
    eps_ref = resid @ np.linalg.solve(cov_z, S).T

    x_hat, eps_hat = d.predict(z, torch.full((3,), t, dtype=torch.float64), torch.zeros_like(z))
    np.testing.assert_allclose(x_hat.reshape(3, dim).numpy(), x_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(eps_hat.reshape(3, dim).numpy(), eps_ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("t", TIMES)
def test_target_output_recovers_x_and_eps_exactly(t):
    d, _, _ = _gaussian()
    g = torch.Generator().manual_seed(2)
    x, eps = torch.randn(4, *SHAPE, generator=g, dtype=torch.float64), torch.randn(4, *SHAPE, generator=g, dtype=torch.float64)
    tt = torch.full((4,), t, dtype=torch.float64)
    z, _ = d.diffuse(x, tt, eps=eps)
    x_hat, eps_hat = d.predict(z, tt, d.target(x, eps, tt))
    torch.testing.assert_close(x_hat, x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(eps_hat, eps, rtol=1e-9, atol=1e-9)


def test_target_has_unit_variance_for_gaussian_data():
    """Var(F*) = 1 for every coefficient and time (EDM's normalisation), Monte Carlo."""
    d, m, s2 = _gaussian()
    n = 20000
    g = torch.Generator().manual_seed(3)
    u_x = m + s2.sqrt() * torch.randn(n, *SHAPE, generator=g, dtype=torch.float64)
    x = d.basis.from_coeffs(u_x)
    for t in TIMES:
        tt = torch.full((n,), t, dtype=torch.float64)
        eps = torch.randn(n, *SHAPE, generator=g, dtype=torch.float64)
        f = d.basis.to_coeffs(d.target(x, eps, tt))
        se_var = math.sqrt(2.0 / (n - 1))
        assert bool(((f.var(0) - 1.0).abs() < 5.5 * se_var).all()), t
        assert bool((f.mean(0).abs() < 5.5 / math.sqrt(n)).all()), t


def test_loss_weights_the_error_of_x_hat_by_inverse_c_out_squared():
    """|F - F*|^2 = |x_hat - x|^2 (1 / s^2 + alpha^2 / sigma^2) per coefficient."""
    d, m, s2 = _gaussian()
    g = torch.Generator().manual_seed(4)
    x, eps, out = (torch.randn(2, *SHAPE, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([0.95, 0.4], dtype=torch.float64)
    z, _ = d.diffuse(x, t, eps=eps)
    x_hat, _ = d.predict(z, t, out)
    alpha, sigma = d.alpha_sigma(t, torch.float64)
    lhs = d.basis.to_coeffs(out - d.target(x, eps, t)) ** 2
    rhs = d.basis.to_coeffs(x_hat - x) ** 2 * (1.0 / s2 + alpha**2 / sigma**2)
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-12)


def test_unit_data_std_is_v_with_the_opposite_sign():
    basis = nidiff.build_basis("dct", shape=SHAPE)
    p, v = build_parametrization("precond", basis, data_std=1.0), Velocity()
    g = torch.Generator().manual_seed(5)
    u_t, out, u_x, u_eps = (torch.randn(3, *SHAPE, generator=g, dtype=torch.float64) for _ in range(4))
    alpha = torch.rand(3, *SHAPE, generator=g, dtype=torch.float64) * 0.999 + 1e-3
    sigma = torch.rand(3, *SHAPE, generator=g, dtype=torch.float64) + 0.01
    torch.testing.assert_close(p.target(u_x, u_eps, alpha, sigma), -v.target(u_x, u_eps, alpha, sigma))
    torch.testing.assert_close(p.x(u_t, out, alpha, sigma), v.x(u_t, -out, alpha, sigma))
    torch.testing.assert_close(p.eps(u_t, out, alpha, sigma), v.eps(u_t, -out, alpha, sigma))


def test_fit_matches_scipy_dct_moments():
    basis = nidiff.build_basis("dct", shape=(3, 8, 8))
    g = torch.Generator().manual_seed(6)
    x = torch.rand(50, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    batches = [x[:17], x[17:40], x[40:]]  # streamed in uneven batches
    p = Preconditioned(basis).fit(batches)
    u = scipy.fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(p.mean.numpy(), u.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.var.numpy(), u.var(0, ddof=1), rtol=1e-10, atol=1e-12)


def test_fit_floors_a_constant_coefficient():
    basis = nidiff.build_basis("dct", shape=(1, 4, 4))
    x = torch.randn(30, 1, 4, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x = x - x.mean((2, 3), keepdim=True) + 0.3  # the DC coefficient is the same in every image
    p = Preconditioned(basis).fit(x)
    assert p.mean[0, 0, 0].item() == pytest.approx(0.3 * 4)
    assert p.var[0, 0, 0].item() == pytest.approx(VAR_FLOOR * p.var.mean().item(), rel=1e-2)
    assert bool(torch.isfinite(p.target(basis.to_coeffs(x), torch.zeros_like(x), torch.ones(1), torch.ones(1))).all())


def test_fitted_state_travels_in_the_state_dict():
    basis = nidiff.build_basis("dct", shape=(3, 8, 8))
    x = torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(8)) * 2 - 1
    d = nidiff.GaussianDiffusion(basis, nidiff.build_schedule("blurring", sigma_blur_max=5.0), "precond")
    d.parametrization.fit(x)
    fresh = nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=(3, 8, 8)),
                                     nidiff.build_schedule("blurring", sigma_blur_max=5.0), "precond")
    fresh.load_state_dict(d.state_dict())
    t, out = torch.full((20,), 0.7), torch.randn(20, 3, 8, 8)
    for a, b in zip(fresh.predict(x, t, out), d.predict(x, t, out)):
        torch.testing.assert_close(a, b)


class TestBadInput:
    def test_unfitted_says_how_to_fit(self):
        d = nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=(1, 4, 4)), nidiff.build_schedule("blurring"),
                                     "precond")
        with pytest.raises(RuntimeError, match="fit"):
            d.loss(lambda z, t: z, torch.zeros(2, 1, 4, 4))

    def test_fixed_std_cannot_be_fitted_and_must_be_positive(self):
        basis = nidiff.build_basis("dct", shape=(1, 4, 4))
        with pytest.raises(ValueError, match="fixed data_std"):
            build_parametrization("precond", basis, data_std=0.5).fit(torch.zeros(3, 1, 4, 4))
        for bad in (0.0, -1.0, "auto", True):
            with pytest.raises(ValueError, match="data_std"):
                build_parametrization("precond", basis, data_std=bad)

    def test_wrong_image_size_and_too_few_images(self):
        p = Preconditioned(nidiff.build_basis("dct", shape=(1, 4, 4)))
        with pytest.raises(ValueError, match=r"shape \[n, 1, 4, 4\]"):
            p.fit(torch.zeros(3, 1, 8, 8))
        with pytest.raises(ValueError, match="at least 2"):
            p.fit(torch.zeros(1, 1, 4, 4))
        assert not p.is_fitted

    def test_saved_statistics_of_another_shape_are_refused_with_a_message(self):
        from nidiff.build import build_diffusion

        config = {"basis": {"name": "dct", "shape": [3, 8, 8]}, "schedule": {"name": "blurring"},
                  "diffusion": {"parametrization": "precond", "data_std": "fit"}}
        state = {"parametrization.mean": torch.zeros(3, 4, 4, dtype=torch.float64),
                 "parametrization.var": torch.ones(3, 4, 4, dtype=torch.float64),
                 "parametrization.fitted": torch.tensor(True)}
        with pytest.raises(ValueError, match="saved parametrization state does not fit"):
            build_diffusion(config, state=state)
        with pytest.raises(ValueError, match="must be fitted on training images"):
            build_diffusion(config)  # neither images nor a saved state

    def test_registered_by_name(self):
        from nidiff.names import PARAMETRIZATION_NAMES

        assert tuple(PARAMETRIZATIONS) == PARAMETRIZATION_NAMES  # the torch-free list the CLI checks against
        with pytest.raises(ValueError, match="known: eps, x, v, precond"):
            build_parametrization("score", nidiff.build_basis("dct", shape=(1, 4, 4)))


def test_samplers_read_precond_like_eps():
    """The optimal denoiser of Gaussian data, output as F, gives every sampler eps's samples."""
    reference = gaussian_problem("dct")
    basis = reference.diffusion.basis
    other = gaussian_problem("dct", parametrization=Preconditioned.build(basis, data_std=0.7))
    for name in nidiff.list_samplers():
        z = reference.diffusion.prior_sample(8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        a, b = (nidiff.build_sampler(name)(p.diffusion, p.model, z, uniform_grid(20), generator=torch.Generator().manual_seed(6))
                for p in (reference, other))
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-7, msg=name)
