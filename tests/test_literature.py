"""Published frequency-dependent Gaussian diffusions against their papers' forward processes.

Each paper's process is written out here on its own terms, in float64 with numpy and scipy (FFTs,
Gaussian filters), and compared with nidiff's ``alpha_sigma``, its exact pixel covariance
``P diag(sigma_t^2) P^T`` (eq. 30) and Monte Carlo moments of ``diffuse`` (tolerances from the
sample size). Papers (docs/literature.md):

- EqualSNR: Falck et al., "A Fourier Space Perspective on Diffusion Models", ICML 2025:
  ``y_t = sqrt(abar_t) y_0 + sqrt(1 - abar_t) eps``, ``eps ~ CN(0, c C)``, ``C_f = Var[y_0(f)]``.
- SAGD: Scimeca et al. 2025, "Learning What Matters: Steering Diffusion via Spectrally Anisotropic
  Forward Noise": ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) F^-1 diag(w) F xi``.
- Soft Diffusion: Daras et al. 2022: ``x_t = C_t x_0 + s_t eta`` with ``C_t`` a Gaussian blur.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
from torch.utils.data import DataLoader, TensorDataset

import nidiff
from nidiff.diffusion import check_monotone_snr

F64 = torch.float64
TIMES = [0.1, 0.5, 0.9]


def _cosine(t: float) -> tuple[float, float]:
    """The clipped cosine schedule (blurring paper, appendix A): ``sqrt(abar_t)``, ``sqrt(1 - abar_t)``."""
    limit_max = math.atan(math.exp(-5.0))
    limit_min = math.atan(math.exp(5.0)) - limit_max
    logsnr = -2 * math.log(math.tan(limit_min * t + limit_max))
    return math.sqrt(1 / (1 + math.exp(-logsnr))), math.sqrt(1 / (1 + math.exp(logsnr)))


def _dense(basis: nidiff.Basis) -> np.ndarray:
    """``P`` ``[D, D]`` (columns: basis images) by mapping every unit coefficient vector."""
    d = math.prod(basis.coeff_shape)
    eye = torch.eye(d, dtype=F64).reshape(d, *basis.coeff_shape)
    return basis.from_coeffs(eye).reshape(d, -1).T.numpy()


def _dft(h: int, w: int) -> np.ndarray:
    """The unitary 2-D DFT of one ``H x W`` channel, ``[HW, HW]``: row-major ``fft2(norm="ortho")``."""
    return np.kron(np.fft.fft(np.eye(h), norm="ortho"), np.fft.fft(np.eye(w), norm="ortho"))


def _per_channel(block: np.ndarray, c: int) -> np.ndarray:
    """A covariance acting on each of ``c`` channels alike: ``[c HW, c HW]``."""
    return np.kron(np.eye(c), block)


def _radius(h: int, w: int) -> np.ndarray:
    """``r(f) = |f|`` in cycles per pixel, ``f = fftfreq``: ``[H, W]``."""
    return np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])


def _pixel_covariance(diffusion: nidiff.GaussianDiffusion, t: float) -> np.ndarray:
    """nidiff's ``Cov[z_t | x] = P diag(sigma_t^2) P^T`` (eq. 30), from its basis and schedule."""
    p = _dense(diffusion.basis)
    _, sigma = diffusion.alpha_sigma(torch.tensor([t], dtype=F64), F64)
    s2 = sigma.expand(1, *diffusion.basis.coeff_shape).reshape(-1).numpy() ** 2
    return (p * s2) @ p.T


def _process(basis: str, schedule: str, shape: tuple[int, int, int], **kw) -> nidiff.GaussianDiffusion:
    return nidiff.GaussianDiffusion(nidiff.build_basis(basis, shape=shape), nidiff.build_schedule(schedule, **kw))


def _noise_power(diffusion, x: torch.Tensor, t: float, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Monte Carlo of ``diffuse``: the mean of ``z_t`` and ``E |fft2(z_t - E z_t)(f)|^2`` per channel."""
    g = torch.Generator().manual_seed(seed)
    z, _ = diffusion.diffuse(x.expand(n, *x.shape[1:]), torch.tensor(t, dtype=F64), generator=g)
    z = z.numpy()
    mean = z.mean(0)
    return mean, (np.abs(np.fft.fft2(z - mean, norm="ortho")) ** 2).mean(0)


# ---- the 2-D Hartley basis --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 5, 8), (1, 6, 6), (3, 1, 7)])
def test_hartley_is_the_2d_dht_of_numpy(shape):
    basis = nidiff.build_basis("hartley", shape=shape)
    x = np.random.default_rng(0).standard_normal((3, *shape))
    y = np.fft.fft2(x, norm="ortho")
    u = basis.to_coeffs(torch.from_numpy(x))
    np.testing.assert_allclose(u.numpy(), y.real - y.imag, rtol=0, atol=1e-12)
    np.testing.assert_allclose(basis.from_coeffs(u).numpy(), x, rtol=0, atol=1e-12)
    # the mirror -k holds Re y + Im y: coefficients k and -k span the plane of y_k
    mirror = u.reshape(3, -1)[:, basis.partner_index()].reshape(u.shape).numpy()
    np.testing.assert_allclose(mirror, y.real + y.imag, rtol=0, atol=1e-12)
    c, h, w = shape
    lam = (2 * np.pi) ** 2 * _radius(h, w) ** 2
    np.testing.assert_allclose(basis.eigenvalues()[0].numpy(), lam, rtol=1e-12, atol=1e-12)


# ---- EqualSNR (Falck et al. 2025) -------------------------------------------------------------------
EQ_SHAPE = (2, 6, 8)


@pytest.fixture(scope="module")
def equalsnr_data() -> torch.Tensor:
    """Images whose spectrum falls off as ``(r + 0.05)^-1.5`` and whose two real coefficients of one
    frequency have different variances (so that ``Var[Re y] != Var[Im y]`` and they correlate)."""
    rng = np.random.default_rng(1)
    c, h, w = EQ_SHAPE
    std = (_radius(h, w) + 0.05) ** -1.5 * rng.uniform(0.4, 1.6, size=(c, h, w))
    coeffs = std * rng.standard_normal((4000, c, h, w)) + rng.standard_normal((c, h, w))
    y = np.fft.fft2(coeffs, norm="ortho")
    return torch.from_numpy(y.real - y.imag)  # the 2-D DHT of the coefficients: real images


def _paper_c(x: torch.Tensor) -> np.ndarray:
    """``C_f = Var[Re y_0(f)] + Var[Im y_0(f)]`` per channel and frequency (the paper's section 3)."""
    y = np.fft.fft2(x.numpy(), norm="ortho")
    return y.real.var(0, ddof=1) + y.imag.var(0, ddof=1)


@pytest.fixture(scope="module")
def equalsnr(equalsnr_data) -> nidiff.GaussianDiffusion:
    basis = nidiff.build_basis("whitened", shape=EQ_SHAPE, base="hartley").fit(equalsnr_data)
    return nidiff.GaussianDiffusion(basis, nidiff.build_schedule("cosine"))


@pytest.mark.parametrize("t", TIMES)
def test_equalsnr_noise_is_complex_gaussian_with_the_data_spectrum(equalsnr, equalsnr_data, t):
    """Cov[z_t | x] = (1 - abar_t) F^-1 diag(C) F per channel: the paper's CN(0, c C) with c = 1."""
    c, h, w = EQ_SHAPE
    a, s = _cosine(t)
    f = _dft(h, w)
    spectrum = _paper_c(equalsnr_data).reshape(c, h * w)
    paper = np.zeros((c * h * w, c * h * w))
    for k in range(c):
        block = (f.conj().T * spectrum[k]) @ f  # F^H diag(C) F
        assert np.abs(block.imag).max() < 1e-10 * np.abs(block).max()
        paper[k * h * w:(k + 1) * h * w, k * h * w:(k + 1) * h * w] = s**2 * block.real
    cov = _pixel_covariance(equalsnr, t)
    np.testing.assert_allclose(cov, paper, rtol=0, atol=1e-9 * np.abs(paper).max())
    alpha, sigma = equalsnr.alpha_sigma(torch.tensor([t], dtype=F64), F64)
    assert float(alpha.flatten()[0]) == pytest.approx(a, rel=1e-12)
    assert float(sigma.flatten()[0]) == pytest.approx(s, rel=1e-12)


@pytest.mark.parametrize("t", TIMES)
def test_equalsnr_every_frequency_has_the_same_snr_relative_to_the_data(equalsnr, equalsnr_data, t):
    """``SNR(f) = abar_t C_f / E|noise(f)|^2`` is ``abar_t / (1 - abar_t)`` for every channel and
    frequency, from nidiff's exact noise covariance; DDPM's (white noise) is not."""
    c, h, w = EQ_SHAPE
    a, s = _cosine(t)
    f = _per_channel(_dft(h, w), c)
    cov = _pixel_covariance(equalsnr, t)
    noise = np.real(np.einsum("ij,jk,ik->i", f, cov, f.conj()))  # diag(F Cov F^H)
    snr = a**2 * _paper_c(equalsnr_data).reshape(-1) / noise
    np.testing.assert_allclose(snr, np.full_like(snr, a**2 / s**2), rtol=1e-9)
    ddpm = a**2 * _paper_c(equalsnr_data) / s**2
    assert ddpm.max() / ddpm.min() > 100  # the data's spectrum spans decades: DDPM's SNRs do too


def test_equalsnr_diffuse_moments(equalsnr, equalsnr_data):
    """Monte Carlo of ``diffuse``: E z_t = sqrt(abar_t) x and E|fft2(noise)|^2 = (1 - abar_t) C_f."""
    t, n = 0.6, 8000
    a, s = _cosine(t)
    x = equalsnr_data[:1]
    mean, power = _noise_power(equalsnr, x, t, n, seed=2)
    spectrum = _paper_c(equalsnr_data)
    se = s * np.sqrt(np.diag(_pixel_covariance(equalsnr, t)) / s**2 / n).reshape(x.shape[1:])
    assert np.all(np.abs(mean - a * x[0].numpy()) < 5.5 * se)
    # |noise(f)|^2 averages C/2 chi^2_2 (chi^2_1 on self-mirrored frequencies): relative error sqrt(2/n)
    np.testing.assert_allclose(power / (s**2 * spectrum), 1.0, rtol=0, atol=5.5 * math.sqrt(2 / n))


def test_equalsnr_untied_variances_are_not_the_papers_noise(equalsnr_data):
    """Without pairing ``k`` and ``-k`` the noise of a frequency is not a proper complex Gaussian."""
    c, h, w = EQ_SHAPE
    basis = nidiff.build_basis("whitened", shape=EQ_SHAPE, tie_pairs=False).fit(equalsnr_data)
    d = nidiff.GaussianDiffusion(basis, nidiff.build_schedule("cosine"))
    f = _per_channel(_dft(h, w), c)
    pseudo = f @ _pixel_covariance(d, 0.5) @ f.T  # E[y y^T]: 0 off the mirror pairs for CN noise
    mirror = _per_channel(np.kron(np.eye(h)[(-np.arange(h)) % h], np.eye(w)[(-np.arange(w)) % w]), c)
    assert np.abs(pseudo * (1 - mirror)).max() > 1e-3 * np.abs(pseudo).max()


# ---- the whitened basis: fit, state, errors --------------------------------------------------------
def test_whitened_fit_recovers_per_coefficient_variances(equalsnr, equalsnr_data):
    basis = equalsnr.basis
    y = np.fft.fft2(equalsnr_data.numpy(), norm="ortho")
    dht = y.real - y.imag
    var = dht.var(0, ddof=1)
    flat = var.reshape(-1)
    tied = 0.5 * (flat + flat[basis.base.partner_index().numpy()])
    np.testing.assert_allclose(basis.variances.reshape(-1).numpy(), tied, rtol=1e-10)
    np.testing.assert_allclose(basis.mean.numpy(), dht.mean(0), rtol=0, atol=1e-10)
    u = basis.to_coeffs(equalsnr_data)
    np.testing.assert_allclose(u.numpy(), dht / np.sqrt(tied.reshape(var.shape)), rtol=1e-10)
    assert not basis.orthogonal


def test_whitened_fit_streams(equalsnr_data):
    x = equalsnr_data.float()
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=333)
    streamed = nidiff.build_basis("whitened", shape=EQ_SHAPE).fit(loader)
    direct = nidiff.build_basis("whitened", shape=EQ_SHAPE).fit(x)
    for name in ("mean", "variances"):
        torch.testing.assert_close(getattr(streamed, name), getattr(direct, name), rtol=1e-9, atol=1e-12)


def test_whitened_state_travels_with_the_model(equalsnr, tmp_path):
    """Persistent buffers with final shapes: a fresh, unfitted diffusion loads a fitted one's state."""
    assert set(equalsnr.state_dict()) == {"basis.mean", "basis.variances", "basis.fitted"}
    torch.save(equalsnr.state_dict(), tmp_path / "state.pt")
    fresh = _process("whitened", "cosine", EQ_SHAPE)
    fresh.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    x = torch.randn(3, *EQ_SHAPE)
    assert torch.equal(fresh.basis.to_coeffs(x), equalsnr.basis.to_coeffs(x))
    eps = torch.randn(3, *EQ_SHAPE)
    assert torch.equal(fresh.diffuse(x, 0.4, eps=eps)[0], equalsnr.diffuse(x, 0.4, eps=eps)[0])


def test_whitened_floor_bounds_the_condition_number():
    x = torch.randn(64, 1, 4, 4, dtype=F64)
    x[..., 0, 0] *= 1e6  # one coefficient direction dwarfs the others
    basis = nidiff.build_basis("whitened", shape=(1, 4, 4), base="identity", floor=1e-4).fit(x)
    s = basis.scale_f64
    assert float(s.max() / s.min()) == pytest.approx(100.0, rel=1e-9)  # sqrt(1 / floor)


def test_whitened_errors():
    with pytest.raises(RuntimeError, match=r"not fitted: call \.fit\(images\)"):
        nidiff.build_basis("whitened", shape=EQ_SHAPE).to_coeffs(torch.randn(2, *EQ_SHAPE))
    with pytest.raises(ValueError, match="fixed orthogonal basis"):
        nidiff.build_basis("whitened", shape=EQ_SHAPE, base="pca")
    with pytest.raises(ValueError, match="Known"):
        nidiff.build_basis("whitened", shape=EQ_SHAPE, base="hartly")
    with pytest.raises(ValueError, match="floor"):
        nidiff.build_basis("whitened", shape=EQ_SHAPE, floor=0.0)
    basis = nidiff.build_basis("whitened", shape=EQ_SHAPE)
    with pytest.raises(ValueError, match="at least 2"):
        basis.fit(torch.randn(1, *EQ_SHAPE))
    with pytest.raises(ValueError, match="zero variance"):
        basis.fit(torch.ones(4, *EQ_SHAPE))
    with pytest.raises(TypeError, match="floating point"):
        basis.fit(torch.zeros(4, *EQ_SHAPE, dtype=torch.uint8))


# ---- SAGD (Scimeca et al. 2025) ---------------------------------------------------------------------
SAGD_SHAPE = (2, 6, 8)
SAGD_CASES = {  # schedule arguments -> the paper's w(f) written out
    "plw": ({"exponent": 0.7, "offset": 0.02}, lambda r: (r + 0.02) ** 0.7),
    "plw-negative": ({"exponent": -0.5, "offset": 0.05}, lambda r: (r + 0.05) ** -0.5),
    "bpm": ({"exponent": 0.0, "bands": [[0.0, 0.25, 0.2], [0.25, 1.0, 0.9]]},
            lambda r: 0.2 * (r <= 0.25) + 0.9 * (r >= 0.25)),
}


@pytest.mark.parametrize("case", SAGD_CASES)
@pytest.mark.parametrize("basis", ["fourier", "hartley"])
@pytest.mark.parametrize("t", TIMES)
def test_sagd_covariance_is_the_papers(case, basis, t):
    """Cov[z_t | x] = (1 - abar_t) Sigma_w with Sigma_w = F^-1 diag(w^2) F, E z_t = sqrt(abar_t) x."""
    kwargs, weight = SAGD_CASES[case]
    c, h, w = SAGD_SHAPE
    d = _process(basis, "sagd", SAGD_SHAPE, **kwargs)
    a, s = _cosine(t)
    f = _dft(h, w)
    w2 = weight(_radius(h, w)).reshape(-1) ** 2
    block = (f.conj().T * w2) @ f
    paper = s**2 * _per_channel(block.real, c)
    np.testing.assert_allclose(_pixel_covariance(d, t), paper, rtol=0, atol=1e-10 * np.abs(paper).max())
    x = torch.randn(2, *SAGD_SHAPE, dtype=F64)
    z, _ = d.diffuse(x, torch.tensor(t, dtype=F64), eps=torch.zeros_like(x))
    torch.testing.assert_close(z, a * x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", SAGD_CASES)
def test_sagd_alpha_sigma_per_coefficient(case):
    """In the separable Fourier basis coefficient (i, j) is frequency (fftfreq_i, fftfreq_j) up to sign:
    ``alpha = sqrt(abar_t)``, ``sigma = sqrt(1 - abar_t) w(r)``, read from the index, not lambda."""
    kwargs, weight = SAGD_CASES[case]
    d = _process("fourier", "sagd", SAGD_SHAPE, **kwargs)
    for t in TIMES:
        a, s = _cosine(t)
        alpha, sigma = d.alpha_sigma(torch.tensor([t], dtype=F64), F64)
        np.testing.assert_allclose(alpha.expand(1, *SAGD_SHAPE).numpy(), a, rtol=1e-12)
        expected = s * weight(_radius(*SAGD_SHAPE[1:]))
        got = sigma.expand(1, *SAGD_SHAPE)[0].numpy()
        np.testing.assert_allclose(got, np.broadcast_to(expected, SAGD_SHAPE), rtol=1e-12)


def test_sagd_diffuse_moments():
    """Monte Carlo: the noise of ``diffuse`` has power (1 - abar_t) w(f)^2 at every frequency."""
    kwargs, weight = SAGD_CASES["plw"]
    d = _process("fourier", "sagd", SAGD_SHAPE, **kwargs)
    t, n = 0.4, 8000
    a, s = _cosine(t)
    x = torch.randn(1, *SAGD_SHAPE, dtype=F64)
    mean, power = _noise_power(d, x, t, n, seed=3)
    se = np.sqrt(np.diag(_pixel_covariance(d, t)) / n).reshape(SAGD_SHAPE)
    assert np.all(np.abs(mean - a * x[0].numpy()) < 5.5 * se)
    expected = s**2 * weight(_radius(*SAGD_SHAPE[1:])) ** 2
    np.testing.assert_allclose(power / expected, 1.0, rtol=0, atol=5.5 * math.sqrt(2 / n))


@pytest.mark.parametrize("parametrization", ["eps", "x", "v"])
def test_sagd_forward_process_and_loss_with_a_noise_scale_per_coefficient(parametrization):
    """``diffuse`` with the white noise ``xi`` is the paper's ``sqrt(abar) x + sqrt(1 - abar) T_w xi``;
    ``loss`` is the pixel-space squared error against ``xi`` (eps: the engine's noise is the
    unit-variance coefficient noise, before the shaping ``T_w``), ``x_0`` (x), or
    ``v = (a u_xi - s w u_x) / sqrt(a^2 + s^2 w^2)`` per frequency (v)."""
    kwargs, weight = SAGD_CASES["plw"]
    d = nidiff.GaussianDiffusion(nidiff.build_basis("fourier", shape=SAGD_SHAPE),
                                 nidiff.build_schedule("sagd", **kwargs), parametrization)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, *SAGD_SHAPE, generator=g, dtype=F64)
    xi = torch.randn(3, *SAGD_SHAPE, generator=g, dtype=F64)
    w = weight(_radius(*SAGD_SHAPE[1:]))
    eps_w = np.real(np.fft.ifft2(w * np.fft.fft2(xi.numpy(), norm="ortho"), norm="ortho"))  # T_w xi
    t = torch.tensor([0.2, 0.5, 0.8], dtype=F64)
    z, _ = d.diffuse(x, t, eps=xi)
    output = torch.randn(3, *SAGD_SHAPE, generator=g, dtype=F64)
    got = d.loss(lambda z_t, tt: output, x, t, eps=xi)
    for i, ti in enumerate(t.tolist()):
        a, s = _cosine(ti)
        np.testing.assert_allclose(z[i].numpy(), a * x[i].numpy() + s * eps_w[i], rtol=0, atol=1e-12)
        if parametrization == "eps":
            target = xi[i].numpy()
        elif parametrization == "x":
            target = x[i].numpy()
        else:
            y_x, y_xi = np.fft.fft2(x[i].numpy(), norm="ortho"), np.fft.fft2(xi[i].numpy(), norm="ortho")
            v = (a * y_xi - s * w * y_x) / np.sqrt(a**2 + (s * w) ** 2)
            target = np.real(np.fft.ifft2(v, norm="ortho"))
        expected = float(((output[i].numpy() - target) ** 2).mean())
        assert float(got[i]) == pytest.approx(expected, rel=1e-6)  # the loss takes the output in float32


def test_sagd_without_weighting_is_cosine_ddpm():
    lam = nidiff.build_basis("fourier", shape=(1, 8, 8)).eigenvalues()
    t = torch.rand(16, dtype=F64).reshape(-1, 1, 1, 1)
    for got, ref in zip(nidiff.build_schedule("sagd", exponent=0.0).alpha_sigma(t, lam),
                        nidiff.build_schedule("cosine").alpha_sigma(t, lam)):
        torch.testing.assert_close(got.expand(16, 1, 8, 8), ref.expand(16, 1, 8, 8), rtol=1e-15, atol=0)


def test_sagd_rejects_a_band_without_noise():
    """Selective omission (a zero band) is a rank-deficient covariance: refused with the gap."""
    with pytest.raises(ValueError, match="from 0.3 without noise"):
        nidiff.build_schedule("sagd", bands=[[0.0, 0.3, 1.0], [0.4, 1.0, 1.0]])
    with pytest.raises(ValueError, match="gamma"):
        nidiff.build_schedule("sagd", bands=[[0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="a < b"):
        nidiff.build_schedule("sagd", bands=[[0.5, 0.5, 1.0]])
    with pytest.raises(ValueError, match="offset must be > 0"):
        nidiff.build_schedule("sagd", exponent=1.0, offset=0.0)


def test_snr_check_reads_the_noise_of_every_coefficient():
    """A noise scale that shrinks over time for high frequencies only raises their SNR: refused."""

    class Shrinking(nidiff.Schedule):
        per_coefficient = True

        def log_alpha_sigma(self, t, lam):
            return torch.zeros_like(t) + 0 * lam, t * (1.0 - lam)  # sigma falls with t where lam > 1

    with pytest.raises(ValueError, match="increases between"):
        check_monotone_snr(Shrinking(), nidiff.build_basis("fourier", shape=(1, 4, 4)).eigenvalues())


# ---- Soft Diffusion (Daras et al. 2022) -------------------------------------------------------------
SOFT_SHAPE = (2, 8, 12)
SOFT = {"sigma_blur_max": 4.0, "sigma_min": 0.02, "sigma_max": 30.0}


def _soft_paper(t: float) -> tuple[float, float]:
    """``sigma_B(t) = sigma_B,max sin^2(pi t / 2)`` and ``s_t = sigma_min (sigma_max / sigma_min)^t``."""
    sigma_b = SOFT["sigma_blur_max"] * math.sin(math.pi * t / 2) ** 2
    return sigma_b, SOFT["sigma_min"] * (SOFT["sigma_max"] / SOFT["sigma_min"]) ** t


@pytest.mark.parametrize("t", [0.5, 0.75, 1.0])
def test_soft_diffusion_signal_is_a_gaussian_blur(t):
    """``C_t x`` is scipy's Gaussian filter with reflecting boundaries (sigma_B >= 2 pixels here, where
    the sampled kernel equals the continuous one to 1e-9); ``alpha_t = exp(-lambda sigma_B^2 / 2)``."""
    d = _process("dct", "soft_diffusion", SOFT_SHAPE, **SOFT)
    sigma_b, s = _soft_paper(t)
    x = torch.from_numpy(np.random.default_rng(4).standard_normal((3, *SOFT_SHAPE)))
    z, _ = d.diffuse(x, torch.tensor(t, dtype=F64), eps=torch.zeros_like(x))
    blurred = scipy.ndimage.gaussian_filter(x.numpy(), (0, 0, sigma_b, sigma_b), mode="reflect", truncate=30.0)
    np.testing.assert_allclose(z.numpy(), blurred, rtol=0, atol=1e-9)
    _, h, w = SOFT_SHAPE
    lam = (np.pi * np.arange(h) / h)[:, None] ** 2 + (np.pi * np.arange(w) / w)[None, :] ** 2
    alpha, sigma = d.alpha_sigma(torch.tensor([t], dtype=F64), F64)
    # the engine groups eigenvalues equal to 12 decimals: exp(-lam tau) is exact to 1e-12 * tau
    np.testing.assert_allclose(alpha[0, 0].numpy(), np.exp(-lam * sigma_b**2 / 2), rtol=1e-10, atol=1e-300)
    assert float(sigma.flatten()[0]) == pytest.approx(s, rel=1e-12)


def test_soft_diffusion_noise_is_white_with_scale_s_t():
    d = _process("dct", "soft_diffusion", SOFT_SHAPE, **SOFT)
    t, n = 0.3, 8000
    sigma_b, s = _soft_paper(t)
    x = torch.from_numpy(np.random.default_rng(5).standard_normal((1, *SOFT_SHAPE)))
    white = s**2 * np.eye(math.prod(SOFT_SHAPE))
    np.testing.assert_allclose(_pixel_covariance(d, t), white, rtol=0, atol=1e-12)
    mean, power = _noise_power(d, x, t, n, seed=6)
    blurred = scipy.ndimage.gaussian_filter(x[0].numpy(), (0, sigma_b, sigma_b), mode="reflect", truncate=30.0)
    assert sigma_b < 1.5  # the sampled kernel differs from the continuous one here: compare loosely
    assert np.all(np.abs(mean - blurred) < 5.5 * s / math.sqrt(n) + 0.05)
    np.testing.assert_allclose(power / s**2, 1.0, rtol=0, atol=5.5 * math.sqrt(2 / n))


def test_soft_diffusion_variance_preserving_form_rescales_z_t():
    """Same noise, same SNR: the scaled process is z_t / sqrt(1 + s_t^2), exactly."""
    basis = nidiff.build_basis("dct", shape=SOFT_SHAPE)
    plain = nidiff.GaussianDiffusion(basis, nidiff.build_schedule("soft_diffusion", **SOFT))
    scaled = nidiff.GaussianDiffusion(
        basis, nidiff.build_schedule("soft_diffusion", **SOFT, variance_preserving=True)
    )
    x, eps = torch.randn(4, *SOFT_SHAPE, dtype=F64), torch.randn(4, *SOFT_SHAPE, dtype=F64)
    for t in TIMES:
        _, s = _soft_paper(t)
        t = torch.tensor(t, dtype=F64)
        z_plain, z_scaled = plain.diffuse(x, t, eps=eps)[0], scaled.diffuse(x, t, eps=eps)[0]
        torch.testing.assert_close(z_scaled, z_plain / math.sqrt(1 + s**2))
        lo, hi = scaled.logsnr(t.reshape(1)), plain.logsnr(t.reshape(1))
        torch.testing.assert_close(lo, hi, rtol=1e-12, atol=1e-9)
