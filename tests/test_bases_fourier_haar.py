"""The Fourier (Hartley) and Haar bases against numpy.fft and PyWavelets, and their eigenvalues."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch

import nidiff
from nidiff.bases.fourier import hartley_matrix
from nidiff.bases.haar import band_slices, haar_max_levels


def _symbol(h: int, w: int) -> np.ndarray:
    """``omega_h^2 + omega_w^2`` of the periodic Laplacian, ``omega = 2 pi fftfreq(N)``."""
    om_h = 2 * np.pi * np.fft.fftfreq(h)
    om_w = 2 * np.pi * np.fft.fftfreq(w)
    return om_h[:, None] ** 2 + om_w[None, :] ** 2


def _basis_images(basis: nidiff.Basis) -> np.ndarray:
    """Every basis image of one channel, ``[H*W, H, W]`` float64 (``from_coeffs`` of one-hots)."""
    _, h, w = basis.shape
    eye = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    full = torch.zeros(h * w, basis.shape[0], h, w, dtype=torch.float64)
    full[:, :1] = eye
    return basis.from_coeffs(full)[:, 0].numpy()


# ---- Fourier (separable discrete Hartley transform) ----------------------------------------------
def _dht(x: np.ndarray, axis: int) -> np.ndarray:
    f = np.fft.fft(x, axis=axis, norm="ortho")
    return f.real - f.imag


@pytest.mark.parametrize("shape", [(3, 5, 8), (2, 16, 16), (1, 1, 7), (2, 6, 1)])
def test_fourier_matches_numpy_hartley(shape):
    basis = nidiff.build_basis("fourier", shape=shape)
    x = np.random.default_rng(0).standard_normal((4, *shape))
    expected = _dht(_dht(x, -2), -1)
    u = basis.to_coeffs(torch.from_numpy(x))
    assert u.dtype == torch.float64
    np.testing.assert_allclose(u.numpy(), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(basis.from_coeffs(u).numpy(), x, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(3, 5, 8), (2, 16, 16)])
def test_fourier_round_trip_float32(shape):
    basis = nidiff.build_basis("fourier", shape=shape)
    x = torch.randn(4, *shape)
    u = basis.to_coeffs(x)
    assert u.dtype == torch.float32
    torch.testing.assert_close(basis.from_coeffs(u), x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 16, 31, 64])
def test_hartley_matrix_orthonormal_float32(n):
    m = hartley_matrix(n).float()
    torch.testing.assert_close(m @ m.T, torch.eye(n), atol=1e-5, rtol=0)
    torch.testing.assert_close(m, m.T)


@pytest.mark.parametrize("shape", [(3, 5, 8), (2, 16, 16), (1, 7, 4)])
def test_fourier_eigenvalues_formula(shape):
    _, h, w = shape
    lam = nidiff.build_basis("fourier", shape=shape).eigenvalues()
    assert lam.dtype == torch.float64 and lam.shape == (1, h, w)
    kh, kw = np.arange(h), np.arange(w)
    kh, kw = np.minimum(kh, h - kh), np.minimum(kw, w - kw)
    expected = (2 * np.pi * kh[:, None] / h) ** 2 + (2 * np.pi * kw[None, :] / w) ** 2
    np.testing.assert_allclose(lam[0].numpy(), expected, rtol=1e-12, atol=0)
    assert lam[0, 0, 0] == 0


@pytest.mark.parametrize("shape", [(1, 6, 5), (1, 4, 8)])
def test_fourier_basis_images_are_laplacian_eigenfunctions(shape):
    """``-Laplacian v = lambda v`` for the periodic band-limited Laplacian (FFT times omega^2)."""
    basis = nidiff.build_basis("fourier", shape=shape)
    _, h, w = shape
    v = _basis_images(basis)  # [H*W, H, W], coefficient (i, j) at index i * W + j
    lap_v = np.fft.ifft2(np.fft.fft2(v) * _symbol(h, w)).real
    lam = basis.eigenvalues()[0].numpy().reshape(-1, 1, 1)
    np.testing.assert_allclose(lap_v, lam * v, rtol=0, atol=1e-10)


# ---- Haar ---------------------------------------------------------------------------------------
HAAR_CASES = [
    ((1, 8, 8), 1),
    ((1, 8, 8), 2),
    ((1, 8, 8), 3),
    ((2, 16, 32), 1),
    ((2, 16, 32), 2),
    ((2, 16, 32), 4),
    ((3, 24, 8), 1),
    ((3, 24, 8), 3),
    ((1, 12, 20), 2),
    ((2, 2, 6), 1),
]


def _pywt_packed(x: np.ndarray, levels: int) -> np.ndarray:
    coeffs = pywt.wavedec2(x, "haar", mode="periodization", level=levels, axes=(-2, -1))
    return pywt.coeffs_to_array(coeffs, axes=(-2, -1))[0]


@pytest.mark.parametrize("shape, levels", HAAR_CASES)
def test_haar_matches_pywavelets(shape, levels):
    basis = nidiff.build_basis("haar", shape=shape, levels=levels)
    x = np.random.default_rng(1).standard_normal((3, *shape))
    u = basis.to_coeffs(torch.from_numpy(x))
    assert u.dtype == torch.float64
    np.testing.assert_allclose(u.numpy(), _pywt_packed(x, levels), rtol=0, atol=1e-10)
    np.testing.assert_allclose(basis.from_coeffs(u).numpy(), x, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "shape, most", [((3, 32, 32), 5), ((2, 16, 32), 4), ((1, 24, 8), 3), ((1, 6, 4), 1)]
)
def test_haar_default_levels_is_the_most_allowed(shape, most):
    basis = nidiff.build_basis("haar", shape=shape)
    assert basis.levels == most == haar_max_levels(*shape[1:])
    x = np.random.default_rng(2).standard_normal((2, *shape))
    u = basis.to_coeffs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(u, _pywt_packed(x, most), rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape, levels", [((3, 32, 32), None), ((2, 16, 32), 2), ((3, 24, 8), 3)])
def test_haar_round_trip_float32(shape, levels):
    basis = nidiff.build_basis("haar", shape=shape, levels=levels)
    x = torch.randn(4, *shape)
    u = basis.to_coeffs(x)
    assert u.dtype == torch.float32
    torch.testing.assert_close(basis.from_coeffs(u), x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape, levels", [((1, 8, 8), None), ((1, 8, 16), 2), ((1, 12, 4), 2)])
def test_haar_orthonormal(shape, levels):
    basis = nidiff.build_basis("haar", shape=shape, levels=levels)
    v = torch.from_numpy(_basis_images(basis)).reshape(shape[1] * shape[2], -1).T  # columns
    eye = torch.eye(v.shape[1], dtype=torch.float64)
    torch.testing.assert_close(v.T @ v, eye, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "shape, levels, match",
    [
        ((3, 12, 16), 3, r"divisible by 2\^3 = 8.*levels <= 2"),
        ((3, 8, 8), 4, r"divisible by 2\^4 = 16.*levels <= 3"),
        ((3, 7, 8), None, "at least one level"),
        ((3, 8, 9), 1, r"divisible by 2\^1 = 2"),
        ((3, 8, 8), 0, "levels must be >= 1"),
    ],
)
def test_haar_rejects_bad_sizes_and_levels(shape, levels, match):
    with pytest.raises(ValueError, match=match):
        nidiff.build_basis("haar", shape=shape, levels=levels)


@pytest.mark.parametrize("levels", [1.0, "2", True])
def test_haar_levels_type(levels):
    with pytest.raises(TypeError, match="levels"):
        nidiff.build_basis("haar", shape=(1, 8, 8), levels=levels)


@pytest.mark.parametrize("shape, levels", [((1, 8, 8), None), ((1, 8, 16), 2), ((1, 12, 4), 1)])
def test_haar_eigenvalues_are_rayleigh_quotients_of_pywt_wavelets(shape, levels):
    """Independent reference: pywt's synthesis of every one-hot coefficient, then the definition."""
    _, h, w = shape
    basis = nidiff.build_basis("haar", shape=shape, levels=levels)
    lam = basis.eigenvalues()
    assert lam.dtype == torch.float64 and lam.shape == (1, h, w)
    _, slices = pywt.coeffs_to_array(
        pywt.wavedec2(np.zeros((h, w)), "haar", mode="periodization", level=basis.levels)
    )
    expected = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            one_hot = np.zeros((h, w))
            one_hot[i, j] = 1.0
            coeffs = pywt.array_to_coeffs(one_hot, slices, output_format="wavedec2")
            v = pywt.waverec2(coeffs, "haar", mode="periodization")
            expected[i, j] = np.sum(np.abs(np.fft.fft2(v, norm="ortho")) ** 2 * _symbol(h, w))
    np.testing.assert_allclose(lam[0].numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape, levels", [((3, 32, 32), 5), ((2, 16, 32), 3), ((1, 24, 8), 3)])
def test_haar_eigenvalues_by_band(shape, levels):
    _, h, w = shape
    lam = nidiff.build_basis("haar", shape=shape, levels=levels).eigenvalues()[0]
    assert bool((lam >= 0).all())
    by_band = {}
    for level, orientation, rows, cols in band_slices(h, w, levels):
        block = lam[rows, cols]
        assert bool((block == block[0, 0]).all()), (level, orientation)
        by_band[level, orientation] = block[0, 0].item()
    for orientation in ("ad", "da", "dd"):
        values = [by_band[level, orientation] for level in range(1, levels + 1)]  # finest first
        assert all(fine > coarse for fine, coarse in zip(values, values[1:])), (orientation, values)
        assert by_band[levels, orientation] > by_band[levels, "a"]


@pytest.mark.parametrize("n", [2, 8, 32])
def test_haar_approximation_eigenvalue_zero_at_max_levels(n):
    basis = nidiff.build_basis("haar", shape=(3, n, n))
    lam = basis.eigenvalues()
    assert lam[0, 0, 0].item() == 0.0
    assert int((lam == 0).sum()) == 1
    # fewer levels: the approximation is a box, not the constant, so it is blurred too
    if n > 2:
        assert nidiff.build_basis("haar", shape=(3, n, n), levels=1).eigenvalues()[0, 0, 0] > 0


def test_registered():
    names = nidiff.list_bases()
    assert "fourier" in names and "haar" in names
