"""Schedules against the paper's closed forms (section 4.1, eq. 17, 26-28)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

import nidiff
from nidiff.schedules import Schedule

T = torch.tensor([0.0, 1e-3, 0.25, 0.5, 0.9, 1.0], dtype=torch.float64)


def _paper_cosine(t: float, logsnr_min=-10.0, logsnr_max=10.0) -> tuple[float, float]:
    """Appendix A's get_noise_scaling_cosine, written out with the math module."""
    limit_max = math.atan(math.exp(-0.5 * logsnr_max))
    limit_min = math.atan(math.exp(-0.5 * logsnr_min)) - limit_max
    logsnr = -2 * math.log(math.tan(limit_min * t + limit_max))
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    return math.sqrt(sig(logsnr)), math.sqrt(sig(-logsnr))


def test_cosine_matches_appendix():
    sched = nidiff.build_schedule("cosine")
    a, s = sched.alpha_sigma(T[:, None], torch.zeros(1, dtype=torch.float64))
    for i, t in enumerate(T.tolist()):
        ref_a, ref_s = _paper_cosine(t)
        assert a[i, 0].item() == pytest.approx(ref_a, rel=1e-12)
        assert s[i, 0].item() == pytest.approx(ref_s, rel=1e-12)
    logsnr = sched.logsnr(torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.zeros(1))
    assert logsnr.flatten().tolist() == pytest.approx([10.0, -10.0], abs=1e-9)


def test_blurring_with_no_blur_is_cosine_exactly():
    lam = nidiff.build_basis("dct", shape=(3, 16, 16)).eigenvalues()
    blurring = nidiff.build_schedule("blurring", sigma_blur_max=0.0)
    cosine = nidiff.build_schedule("cosine")
    t = torch.rand(64, dtype=torch.float64).reshape(-1, 1, 1, 1)
    for got, ref in zip(blurring.alpha_sigma(t, lam), cosine.alpha_sigma(t, lam)):
        assert torch.equal(got.expand(64, 1, 16, 16).float(), ref.expand(64, 1, 16, 16).float())


def test_blurring_alpha_is_cosine_times_damping():
    """Eq. 26-28 written out independently: d = (1 - d_min) exp(-lam tau) + d_min."""
    h, w = 8, 12
    sched = nidiff.build_schedule("blurring", sigma_blur_max=20.0, d_min=0.001)
    for t in T.tolist():
        f_h = np.pi * np.arange(h) / h
        f_w = np.pi * np.arange(w) / w
        lam = f_h[:, None] ** 2 + f_w[None, :] ** 2
        tau = (20.0 * math.sin(t * math.pi / 2) ** 2) ** 2 / 2
        d = (1 - 0.001) * np.exp(-lam * tau) + 0.001
        a, s = _paper_cosine(t)
        alpha, sigma = sched.alpha_sigma(torch.tensor([[[[t]]]], dtype=torch.float64), torch.from_numpy(lam)[None])
        np.testing.assert_allclose(alpha[0, 0].numpy(), a * d, rtol=1e-10)
        assert sigma.flatten()[0].item() == pytest.approx(s, rel=1e-12)


@pytest.mark.parametrize("k", [(0, 0), (1, 0), (2, 3), (7, 7)])
def test_dct_eigen_image_decays_by_alpha(k):
    """A DCT cosine eigen-image diffused without noise is scaled by exactly alpha_t = a_t d_t."""
    shape = (1, 8, 8)
    onehot = np.zeros((8, 8))
    onehot[k] = 1.0
    image = torch.from_numpy(scipy.fft.idctn(onehot, norm="ortho")).float()[None, None]
    diffusion = nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=shape), nidiff.build_schedule("blurring"))
    for t in (0.1, 0.3, 0.7):
        z, _ = diffusion.diffuse(image, torch.tensor([t]), eps=torch.zeros_like(image))
        alpha, _ = diffusion.alpha_sigma(torch.tensor([t]))
        torch.testing.assert_close(z, alpha[0, 0, k[0], k[1]] * image, atol=1e-6, rtol=1e-5)


def test_ihdm_matches_eq17():
    """z_t = V diag(exp(-lam tau_t)) V^T x + sigma eps with V the DCT (scipy), log-spaced sigma_B."""
    shape = (2, 8, 8)
    sched = nidiff.build_schedule("ihdm", sigma_blur_max=20.0, sigma_blur_min=0.5, sigma=0.01)
    diffusion = nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=shape), sched)
    x = torch.randn(3, *shape, dtype=torch.float64)
    eps = torch.randn(3, *shape, dtype=torch.float64)
    t = torch.tensor([0.0, 0.3, 0.8])
    z, _ = diffusion.diffuse(x, t, eps=eps)
    f = np.pi * np.arange(8) / 8
    lam = f[:, None] ** 2 + f[None, :] ** 2
    for i, ti in enumerate(t.tolist()):
        sigma_b = math.exp((1 - ti) * math.log(0.5) + ti * math.log(20.0))
        damp = np.exp(-lam * sigma_b**2 / 2)
        u = scipy.fft.dctn(x[i].numpy(), axes=(1, 2), norm="ortho")
        ref = scipy.fft.idctn(damp * u, axes=(1, 2), norm="ortho") + 0.01 * eps[i].numpy()
        np.testing.assert_allclose(z[i].numpy(), ref, atol=1e-10)


@pytest.mark.parametrize("shape_name", ["sin2", "sin", "linear", "log"])
def test_blur_shapes(shape_name):
    sched = nidiff.build_schedule("blur", sigma_blur_max=10.0, shape=shape_name, sigma_blur_min=0.5)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    expected = {
        "sin2": 10 * torch.sin(t * math.pi / 2) ** 2,
        "sin": 10 * torch.sin(t * math.pi / 2),
        "linear": 10 * t,
        "log": torch.exp((1 - t) * math.log(0.5) + t * math.log(10.0)),
    }[shape_name]
    torch.testing.assert_close(sched.sigma_blur(t), expected)


def test_linear_schedule_matches_ddpm():
    """At t = (i - 1) / (T - 1), alpha_bar is DDPM's prod(1 - beta)."""
    sched = nidiff.build_schedule("linear")
    betas = np.linspace(1e-4, 0.02, 1000)
    alpha_bar = np.cumprod(1 - betas)
    i = np.array([1, 10, 100, 500, 1000])
    t = torch.tensor((i - 1) / 999.0, dtype=torch.float64)[:, None]
    a, s = sched.alpha_sigma(t, torch.zeros(1))
    np.testing.assert_allclose(a[:, 0].numpy() ** 2, alpha_bar[i - 1], rtol=1e-10)
    np.testing.assert_allclose((a**2 + s**2).numpy(), 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("cosine", {"logsnr_min": 5.0, "logsnr_max": -5.0}, "logsnr_min < logsnr_max"),
        ("cosine", {"logsnr_min": float("nan")}, "finite"),
        ("blurring", {"sigma_blur_max": -1.0}, "sigma_blur_max must be >= 0"),
        ("blurring", {"d_min": 1.0}, "d_min must be < 1"),
        ("blurring", {"blur_shape": "cubic"}, "known shapes: sin2"),
        ("blur", {"shape": "log", "sigma_blur_min": 30.0, "sigma_blur_max": 20.0}, "sigma_blur_min <= sigma_blur_max"),
        ("ihdm", {"sigma": 0.0}, "sigma must be > 0"),
        ("linear", {"beta_start": 0.02, "beta_end": 0.01}, "beta_end >= beta_start"),
        ("linear", {"steps": 0}, "steps"),
        ("cosine", {"logsnr_min": "a"}, "is not a number"),
    ],
)
def test_invalid_parameters(name, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        nidiff.build_schedule(name, **kwargs)


class _Sharpening(Schedule):
    """Invalid: high frequencies get *less* damped over time, so their SNR increases."""

    per_coefficient = True

    def log_alpha_sigma(self, t, lam):
        return -lam * (1 - t), torch.zeros_like(t) + math.log(0.1)


def test_increasing_snr_is_rejected():
    with pytest.raises(ValueError, match="increases between t="):
        nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=(1, 4, 4)), _Sharpening())
    # the constant image has lam = 0 and a flat SNR: the same schedule is valid in the identity basis
    nidiff.GaussianDiffusion(nidiff.build_basis("identity", shape=(1, 4, 4)), _Sharpening())


def test_product_of_named_factors():
    prod = nidiff.build_schedule("product", factors=["cosine", {"name": "blur", "sigma_blur_max": 20.0}])
    ref = nidiff.build_schedule("blurring")
    lam = torch.rand(5, dtype=torch.float64) * 10
    t = T[:, None]
    for a, b in zip(prod.log_alpha_sigma(t, lam), ref.log_alpha_sigma(t, lam)):
        torch.testing.assert_close(a.expand(len(T), 5), b.expand(len(T), 5))
    with pytest.raises(ValueError):
        nidiff.build_schedule("product", factors=[])
    with pytest.raises(TypeError):
        nidiff.build_schedule("product", factors=[3])


def test_blur_without_floor_keeps_tiny_damping_positive():
    """d_min = 0 (pure heat dissipation): the direct alpha_sigma is exp(-lam tau), not a rounding
    residue of 1 + expm1(-lam tau), where the damping is strong."""
    sched = nidiff.build_schedule("blur", sigma_blur_max=5.0, d_min=0.0)
    t = torch.tensor([[0.3], [0.7], [1.0]], dtype=torch.float64)
    lam = torch.linspace(0.0, 2 * math.pi**2, 40, dtype=torch.float64)
    alpha, _ = sched.alpha_sigma(t, lam)
    tau = (5.0 * torch.sin(t * math.pi / 2) ** 2) ** 2 / 2
    torch.testing.assert_close(alpha, torch.exp(-lam * tau), rtol=1e-13, atol=0)
    assert bool((alpha > 0).all())
