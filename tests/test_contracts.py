"""Contract tests generated from the registries: every basis and every schedule is covered."""

from __future__ import annotations

import pytest
import torch

import nidiff
from nidiff.registries import SCHEDULES
from tests.conftest import make_basis

SHAPES = [(3, 8, 8), (2, 4, 8)]
TIMES = [0.0, 1e-6, 0.5, 1.0 - 1e-6, 1.0]


def _dense(basis: nidiff.Basis) -> torch.Tensor:
    """The matrix ``P^-1`` (rows: coefficients) by transforming every unit image, float64."""
    c, h, w = basis.shape
    eye = torch.eye(c * h * w, dtype=torch.float64).reshape(-1, c, h, w)
    return basis.to_coeffs(eye).reshape(c * h * w, -1).T


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", nidiff.list_bases())
class TestBasisContract:
    def test_round_trip(self, name, shape):
        basis = make_basis(name, shape)
        x = torch.randn(4, *shape)
        u = basis.to_coeffs(x)
        assert u.shape == (4, *basis.coeff_shape) and u.dtype == torch.float32
        torch.testing.assert_close(basis.from_coeffs(u), x, atol=1e-5, rtol=1e-5)

    def test_orthonormal_where_claimed(self, name, shape):
        basis = make_basis(name, shape)
        m = _dense(basis).float()
        eye = torch.eye(m.shape[0])
        if basis.orthogonal:
            torch.testing.assert_close(m.T @ m, eye, atol=1e-5, rtol=0)
        else:
            assert not torch.allclose(m.T @ m, eye, atol=1e-3)

    def test_eigenvalues(self, name, shape):
        basis = make_basis(name, shape)
        lam = basis.eigenvalues()
        assert lam.dtype == torch.float64
        assert torch.broadcast_shapes(lam.shape, basis.coeff_shape) == basis.coeff_shape
        assert bool(torch.isfinite(lam).all()) and bool((lam >= 0).all())

    def test_float32_under_autocast(self, name, shape):
        basis = make_basis(name, shape)
        x = torch.randn(2, *shape)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            u = basis.to_coeffs(x)
        assert u.dtype == torch.float32
        torch.testing.assert_close(u, basis.to_coeffs(x))

    def test_wrong_shape_and_dtype(self, name, shape):
        basis = make_basis(name, shape)
        with pytest.raises(ValueError, match="shape"):
            basis.to_coeffs(torch.randn(2, shape[0], shape[1] + 1, shape[2]))
        with pytest.raises(TypeError, match="floating point"):
            basis.to_coeffs(torch.zeros(2, *shape, dtype=torch.int64))


@pytest.mark.parametrize("name", ["identity", "dct", "fourier", "haar"])
def test_constant_image_has_eigenvalue_zero(name):
    """Where the constant image is a basis vector, its eigenvalue is 0 (blur keeps the mean)."""
    basis = make_basis(name, (3, 8, 8))
    u = basis.to_coeffs(torch.ones(1, 3, 8, 8))
    lam = basis.eigenvalues().expand(basis.coeff_shape)
    support = u[0].abs() > 1e-6
    assert bool(support.any()) and bool((lam[support] == 0).all())


def _schedule(name: str) -> nidiff.Schedule:
    if name == "product":
        return nidiff.build_schedule("product", factors=["cosine", {"name": "blur", "sigma_blur_max": 5.0}])
    return nidiff.build_schedule(name)


@pytest.mark.parametrize("basis_name", ["identity", "dct", "haar"])
@pytest.mark.parametrize("name", SCHEDULES.names())
def test_schedule_contract(name, basis_name):
    diffusion = nidiff.GaussianDiffusion(make_basis(basis_name, (3, 8, 8)), _schedule(name))
    t = torch.tensor(TIMES)
    alpha, sigma = diffusion.alpha_sigma(t)
    assert alpha.dtype == torch.float32
    for v in (alpha, sigma, diffusion.logsnr(t)):
        assert not bool(v.isnan().any()) and not bool(v.isinf().any()), name
    assert bool((sigma > 0).all()) and bool((alpha >= 0).all()) and bool((alpha <= 1).all())
    logsnr = diffusion.logsnr(torch.linspace(0, 1, 101))
    assert bool((logsnr[1:] <= logsnr[:-1] + 1e-9).all())
    z, _ = diffusion.diffuse(torch.randn(5, 3, 8, 8), t)
    assert bool(torch.isfinite(z).all())


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_direct_alpha_sigma_equals_log_domain(name):
    """A schedule's direct ``alpha_sigma`` equals ``exp`` of its ``log_alpha_sigma``."""
    schedule = _schedule(name)
    t = torch.tensor(TIMES, dtype=torch.float64).reshape(-1, 1)
    lam = torch.linspace(0, 2 * 3.1416**2, 50, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(t, lam)
    log_alpha, log_sigma = schedule.log_alpha_sigma(t, lam)
    torch.testing.assert_close(alpha.expand(len(TIMES), 50), log_alpha.exp().expand(len(TIMES), 50), rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(sigma.expand(len(TIMES), 50), log_sigma.exp().expand(len(TIMES), 50), rtol=1e-12, atol=0)
