"""The engine against brute-force Gaussian algebra, Monte Carlo and the paper's appendix code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nidiff
from nidiff.sampling import ancestral, uniform_grid

SHAPE = (2, 4, 4)


def _diffusion(basis="dct", schedule="blurring", shape=SHAPE, **kw):
    return nidiff.GaussianDiffusion(nidiff.build_basis(basis, shape=shape), nidiff.build_schedule(schedule, **kw))


def _float64_coeffs(d, t):
    a, s = d.alpha_sigma(torch.tensor([t]), torch.float64)
    return a.expand(1, *d.basis.coeff_shape)[0].numpy(), s.expand(1, *d.basis.coeff_shape)[0].numpy()


@pytest.mark.parametrize("schedule", ["blurring", "cosine", "ihdm", "sagd", "soft_diffusion"])
@pytest.mark.parametrize("t, s", [(0.6, 0.5), (0.9, 0.1), (0.3, 0.299), (1.0, 0.0)])
def test_posterior_is_brute_force_gaussian_conditioning(schedule, t, s):
    """Condition the joint N((u_s, u_t) | u_x) built from the marginals and the Markov structure."""
    d = _diffusion(schedule=schedule)
    a_s, sg_s = _float64_coeffs(d, s)
    a_t, sg_t = _float64_coeffs(d, t)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, *SHAPE, generator=g, dtype=torch.float64)
    z_t = torch.randn(1, *SHAPE, generator=g, dtype=torch.float64)
    mean, var = d.posterior(z_t, x, torch.tensor([t]), torch.tensor([s]))
    u_x = d.basis.to_coeffs(x)[0].numpy().ravel()
    u_t = d.basis.to_coeffs(z_t)[0].numpy().ravel()
    a_s, sg_s, a_t, sg_t = (v.ravel() for v in (a_s, sg_s, a_t, sg_t))
    for k in range(u_x.size):
        cov = np.array([[sg_s[k] ** 2, a_t[k] / a_s[k] * sg_s[k] ** 2], [a_t[k] / a_s[k] * sg_s[k] ** 2, sg_t[k] ** 2]])
        mu = np.array([a_s[k], a_t[k]]) * u_x[k]
        cond_mean = mu[0] + cov[0, 1] / cov[1, 1] * (u_t[k] - mu[1])
        cond_var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
        assert mean.reshape(-1)[k].item() == pytest.approx(cond_mean, rel=1e-7, abs=1e-9)
        assert var.expand(1, *d.basis.coeff_shape).reshape(-1)[k].item() == pytest.approx(cond_var, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("schedule", ["blurring", "linear", "ihdm", "sagd", "soft_diffusion"])
def test_transitions_compose_to_marginals(schedule):
    d = _diffusion(schedule=schedule)
    t, s = torch.tensor([0.8, 0.5, 0.3]), torch.tensor([0.4, 0.5, 0.0])
    a_ts, s2_ts = d.transition(t, s, torch.float64)
    a_s, sg_s = d.alpha_sigma(s, torch.float64)
    a_t, sg_t = d.alpha_sigma(t, torch.float64)
    torch.testing.assert_close(*torch.broadcast_tensors(a_ts * a_s, a_t), rtol=1e-10, atol=1e-300)
    torch.testing.assert_close(*torch.broadcast_tensors(a_ts**2 * sg_s**2 + s2_ts, sg_t**2 + 0 * a_t), rtol=1e-10, atol=0)
    assert torch.equal(s2_ts[1], torch.zeros_like(s2_ts[1]))  # s == t: no transition noise


@pytest.mark.parametrize("basis", ["identity", "dct", "haar"])
def test_diffuse_moments_monte_carlo(basis):
    """Per-coefficient mean and variance of u_t over n draws, within 5.5 standard errors."""
    n = 20000
    d = _diffusion(basis=basis)
    x = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(2)).expand(n, *SHAPE)
    t = 0.4
    z, _ = d.diffuse(x, torch.tensor(t), generator=torch.Generator().manual_seed(3))
    u = d.basis.to_coeffs(z).double()
    alpha, sigma = d.alpha_sigma(torch.tensor([t]), torch.float64)
    expected_mean = (alpha * d.basis.to_coeffs(x[:1]).double())[0]
    expected_var = (sigma**2).expand(1, *d.basis.coeff_shape)[0]
    se_mean = expected_var.sqrt() / math.sqrt(n)
    se_var = expected_var * math.sqrt(2.0 / (n - 1))
    assert bool(((u.mean(0) - expected_mean).abs() < 5.5 * se_mean).all())
    assert bool(((u.var(0) - expected_var).abs() < 5.5 * se_var).all())


def test_eq24_equals_eq19_with_predicted_x():
    d = _diffusion()
    g = torch.Generator().manual_seed(4)
    z_t = torch.randn(3, *SHAPE, generator=g, dtype=torch.float64)
    eps_hat = torch.randn(3, *SHAPE, generator=g, dtype=torch.float64)
    t, s = torch.tensor([0.7, 0.5, 0.2]), torch.tensor([0.69, 0.3, 0.0])
    x_hat, _ = d.predict(z_t, t, eps_hat)  # eq. 22
    mean19, var19 = d.posterior(z_t, x_hat, t, s)
    c_t, c_e, var24 = d.posterior_eps_coefficients(t, s, torch.float64)
    _, sigma = d.alpha_sigma(t, torch.float64)
    u_t = d.basis.to_coeffs(z_t)
    mean24 = c_t * u_t + c_e * (u_t - sigma * d.basis.to_coeffs(eps_hat))
    torch.testing.assert_close(mean24, mean19, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(var24, var19)


def test_matches_paper_appendix_denoise_with_errata():
    """The appendix's clipped formulas (delta = 1e-8), corrected as DESIGN.md says, agree with ours."""
    d = _diffusion(shape=(3, 8, 8))
    T, delta = 1000, 1e-8
    g = torch.Generator().manual_seed(5)
    z_t = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    eps_hat = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    dct, idct = d.basis.to_coeffs, d.basis.from_coeffs
    for t in (1.0, 0.5, 0.05, 2.0 / T):
        s = t - 1.0 / T
        alpha_s, sigma_s = d.alpha_sigma(torch.tensor([s]), torch.float64)
        alpha_t, sigma_t = d.alpha_sigma(torch.tensor([t]), torch.float64)
        alpha_ts = alpha_t / alpha_s
        alpha_st = 1 / alpha_ts
        sigma2_ts = sigma_t**2 - alpha_ts**2 * sigma_s**2  # erratum: this form
        sigma2_denoise = 1 / torch.clip(
            1 / torch.clip(sigma_s**2, min=delta) + 1 / torch.clip(sigma_t**2 / alpha_ts**2 - sigma_s**2, min=delta),
            min=delta,
        )
        coeff_term1 = alpha_ts * sigma2_denoise / torch.clip(sigma2_ts, min=delta)
        coeff_term2 = alpha_st * sigma2_denoise / torch.clip(sigma_s**2, min=delta)  # erratum: diagonal_ts
        u_t = dct(z_t)
        term1 = idct(coeff_term1 * u_t)
        term2 = idct(coeff_term2 * (u_t - sigma_t * dct(eps_hat)))  # erratum: parentheses
        mu_paper = term1 + term2
        c_t, c_e, var = d.posterior_eps_coefficients(torch.tensor([t]), torch.tensor([s]), torch.float64)
        mu = idct(c_t * u_t + c_e * (u_t - sigma_t * dct(eps_hat)))
        torch.testing.assert_close(mu, mu_paper, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(var.expand_as(sigma2_denoise + alpha_t), sigma2_denoise.expand_as(var + alpha_t), rtol=1e-5, atol=1e-12)


def test_blurring_without_blur_is_standard_ddpm():
    x = torch.randn(4, *SHAPE)
    eps = torch.randn(4, *SHAPE)
    t = torch.rand(4)
    z_ddpm, _ = _diffusion(basis="identity", schedule="cosine").diffuse(x, t, eps=eps)
    z_blur, _ = _diffusion(basis="dct", schedule="blurring", sigma_blur_max=0.0).diffuse(x, t, eps=eps)
    torch.testing.assert_close(z_blur, z_ddpm, atol=1e-6, rtol=1e-6)


def test_non_orthogonal_pixel_covariance_matches_eq30():
    """Cov(z_t | x) = P diag(sigma_t^2) P^T for a non-orthogonal basis (eq. 30), Monte Carlo."""
    shape = (1, 2, 3)
    dim = 6
    g = torch.Generator().manual_seed(6)
    p = torch.eye(dim, dtype=torch.float64) + 0.5 * torch.randn(dim, dim, generator=g, dtype=torch.float64)
    lam = torch.linspace(0.0, 4.0, dim, dtype=torch.float64)
    basis = nidiff.build_basis("matrix", shape=shape, P=p, eigenvalues=lam)
    assert not basis.orthogonal
    d = nidiff.GaussianDiffusion(basis, nidiff.build_schedule("blurring", sigma_blur_max=2.0))
    n, t = 200_000, 0.5
    x = torch.randn(1, *shape, dtype=torch.float64).expand(n, *shape)
    z, eps = d.diffuse(x, torch.tensor(t), generator=torch.Generator().manual_seed(7))
    _, sigma = d.alpha_sigma(torch.tensor([t]), torch.float64)
    cov_ref = p @ torch.diag(sigma.expand(1, dim)[0] ** 2) @ p.T
    zc = (z - z.mean(0)).reshape(n, dim)
    cov = zc.T @ zc / (n - 1)
    # standard error of a covariance entry: sqrt((S_ii S_jj + S_ij^2) / n)
    se = ((torch.diag(cov_ref)[:, None] * torch.diag(cov_ref)[None, :] + cov_ref**2) / n).sqrt()
    assert bool(((cov - cov_ref).abs() < 5.5 * se).all())
    assert not torch.allclose(cov_ref, torch.diag(torch.diag(cov_ref)), atol=1e-3)  # truly correlated


@pytest.mark.parametrize("basis", ["identity", "dct", "haar"])
def test_ancestral_reproduces_gaussian_data(basis):
    """With the optimal denoiser of N(m, s^2) data, 1000 ancestral steps reproduce m and s^2."""
    shape = (1, 4, 4)
    d = _diffusion(basis=basis, shape=shape)
    g = torch.Generator().manual_seed(8)
    m = torch.randn(*d.basis.coeff_shape, generator=g) * 0.5
    s2 = torch.rand(*d.basis.coeff_shape, generator=g) + 0.2

    def optimal_eps(z, t):  # E[u_eps | u_t] for Gaussian data, per coefficient
        a, s = d.alpha_sigma(t)
        u = d.basis.to_coeffs(z)
        return d.basis.from_coeffs(s * (u - a * m) / (a**2 * s2 + s**2))

    n = 4000
    z = d.prior_sample(n, generator=torch.Generator().manual_seed(9))
    x = ancestral(d, optimal_eps, z, uniform_grid(1000), generator=torch.Generator().manual_seed(10))
    u = d.basis.to_coeffs(x).double()
    se_mean = (s2 / n).sqrt()
    se_var = s2 * math.sqrt(2 / (n - 1))
    assert bool(((u.mean(0) - m).abs() < 5.5 * se_mean + 0.01).all())
    assert bool(((u.var(0) - s2).abs() < 5.5 * se_var + 0.02).all())


class TestBadInput:
    def test_time_out_of_range(self):
        d = _diffusion()
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            d.diffuse(torch.randn(2, *SHAPE), torch.tensor([0.5, 1.5]))
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            d.alpha_sigma(torch.tensor([-0.1]))
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            d.alpha_sigma(torch.tensor([float("nan")]))

    def test_wrong_batch_of_times(self):
        with pytest.raises(ValueError, match="one time per sample"):
            _diffusion().diffuse(torch.randn(2, *SHAPE), torch.rand(3))

    def test_wrong_image_shape_and_dtype(self):
        d = _diffusion()
        with pytest.raises(ValueError, match=r"shape \[B, 2, 4, 4\]"):
            d.diffuse(torch.randn(2, 3, 4, 4), torch.rand(2))
        with pytest.raises(TypeError, match="floating-point"):
            d.diffuse(torch.zeros(2, *SHAPE, dtype=torch.uint8), torch.rand(2))
        with pytest.raises(TypeError):
            d.diffuse([[1.0]], torch.rand(1))

    def test_transition_backwards_in_time(self):
        with pytest.raises(ValueError, match="s <= t"):
            _diffusion().transition(torch.tensor([0.2]), torch.tensor([0.5]))

    def test_unknown_parametrization(self):
        with pytest.raises(ValueError, match="known: eps, x, v"):
            nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=SHAPE), nidiff.build_schedule("cosine"), "score")

    def test_wrong_component_types(self):
        with pytest.raises(TypeError, match="Basis"):
            nidiff.GaussianDiffusion("dct", nidiff.build_schedule("cosine"))
        with pytest.raises(TypeError, match="Schedule"):
            nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=SHAPE), "cosine")

    def test_bad_grid(self):
        d = _diffusion()
        with pytest.raises(ValueError, match="strictly decreasing"):
            ancestral(d, lambda z, t: z, d.prior_sample(1), torch.tensor([0.0, 0.5, 1.0]))
        with pytest.raises(ValueError, match="positive integer"):
            uniform_grid(0)
