"""The variational bound against closed forms for Gaussian data with the optimal denoiser.

Data ``u_x ~ N(m, diag(s2))`` in coefficient space (continuous data, a density). Per coefficient,
with ``S(t) = SNR(t)``, ``a = 1 / s2`` and ``c = (u_x - m)^2 / s2^2``, the optimal denoiser's error
is ``E[(u_x - u_x_hat)^2 | x, t] = (c + S) / (a + S)^2``, so for one image ``x``:

- prior ``0.5 S(1) u_x^2``; decoder (continuous Gaussian) ``0.5 log(2 pi e) - 0.5 log S(0)``;
- continuous diffusion loss ``0.5 [log((a + S0) / (a + S1)) - (c - a)(1 / (a + S0) - 1 / (a + S1))]``;
- discrete loss on a grid ``sum_i 0.5 (S(s_i) - S(t_i)) (c + S(t_i)) / (a + S(t_i))^2``.

The exact negative log-likelihood of the model whose bound the discrete loss is (ancestral steps
with noise on the grid, the prior ``N(0, sigma_1^2)``, the Gaussian decoder) is also closed-form:
the chain is linear-Gaussian per coefficient. The tests check the Monte Carlo estimator against the
closed-form bound, the bound against that exact NLL (>=, and the gap closing as the grid is
refined), and the expected bound against the data's entropy (the expected exact NLL).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm

import nidiff
from nidiff.likelihood import (
    DiscretizedGaussianDecoder,
    bits_per_dim,
    dataset_bits_per_dim,
    discretized_log_mass,
    log_abs_det,
    log_bin_mass,
)
from nidiff.sampling import logsnr_grid
from tests.gaussian import PUBLISHED, GaussianProblem, gaussian_problem, published_problem

BASES = ["identity", "dct", "haar"]
BITS = 1.0 / math.log(2.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def _snr(problem: GaussianProblem, t: float) -> torch.Tensor:
    return problem.diffusion.logsnr(torch.tensor([t], dtype=torch.float64)).exp().expand_as(problem.m[None])[0]


def _per_dim(nats: torch.Tensor) -> torch.Tensor:
    """``[B, *coeff_shape]`` nats -> ``[B]`` bits per dimension."""
    return nats.flatten(1).sum(1) * BITS / nats[0].numel()


def closed_form(problem: GaussianProblem, x: torch.Tensor, times: torch.Tensor | None = None) -> dict:
    """Per-image bound (continuous, or of the grid ``times``) and exact NLLs, bits per dimension."""
    d, m, s2 = problem.diffusion, problem.m, problem.s2
    u = d.basis.to_coeffs(x).double()
    s0, s1 = _snr(problem, 0.0), _snr(problem, 1.0)
    a, c = 1.0 / s2, (u - m) ** 2 / s2**2
    prior, decoder = 0.5 * s1 * u**2, 0.5 * math.log(2 * math.pi * math.e) - 0.5 * s0.log()
    out = {"data_nll": _per_dim(0.5 * torch.log(2 * math.pi * s2) + 0.5 * (u - m) ** 2 / s2)}
    if times is None:
        diff = 0.5 * (torch.log((a + s0) / (a + s1)) - (c - a) * (1 / (a + s0) - 1 / (a + s1)))
        out["bound"] = _per_dim(prior + diff + decoder.expand_as(u))
        return out
    diff, mean = torch.zeros_like(u), torch.zeros_like(m)
    var = d.alpha_sigma(torch.ones(1), torch.float64)[1][0] ** 2  # the prior N(0, sigma_1^2)
    for t, s in zip(times[:-1].tolist(), times[1:].tolist()):
        st, ss = _snr(problem, t), _snr(problem, s)
        diff = diff + 0.5 * (ss - st) * (c + st) / (a + st) ** 2
        alpha_t, sigma_t = (v[0] for v in d.alpha_sigma(torch.tensor([t]), torch.float64))
        coefficients = d.reverse_coefficients(torch.tensor([t]), torch.tensor([s]), torch.float64)
        c_t, c_x, _, v = (w[0] for w in coefficients)
        gain = c_t + c_x * alpha_t / sigma_t**2 / (a + st)  # u_s = gain u_t + offset + noise
        mean, var = gain * mean + c_x * a * m / (a + st), gain**2 * var + v
    alpha0 = d.alpha_sigma(torch.zeros(1), torch.float64)[0][0]
    mean_x, var_x = mean / alpha0, var / alpha0**2 + 1.0 / s0  # u_x = u_0 / alpha_0 + decoder noise
    out["bound"] = _per_dim(prior + diff + decoder.expand_as(u))
    out["model_nll"] = _per_dim(0.5 * torch.log(2 * math.pi * var_x) + 0.5 * (u - mean_x) ** 2 / var_x)
    return out


def _eigenvalues(dim: int) -> torch.Tensor:
    return torch.linspace(0.0, 3.0, dim, dtype=torch.float64)


def _images(problem: GaussianProblem, n: int, seed: int = 0) -> torch.Tensor:
    return problem.sample_data(n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("basis", BASES)
def test_continuous_bound_matches_closed_form(basis):
    problem = gaussian_problem(basis)
    x = _images(problem, 8)
    est = bits_per_dim(
        problem.diffusion, problem.model, x, n_t=2048, decoder="gaussian",
        generator=torch.Generator().manual_seed(1), batch_size=8192,
    )
    exact = closed_form(problem, x)["bound"]
    assert bool(((est.bpd - exact).abs() < 5 * est.stderr).all()), ((est.bpd - exact) / est.stderr)
    assert bool((est.stderr < 0.15).all())
    torch.testing.assert_close(est.prior + est.diffusion + est.decoder, est.bpd)


def test_discrete_bound_upper_bounds_the_exact_nll_and_closes_the_gap():
    """Per image: bound_T(x) >= -log p_T(x) for the model of the same grid; refining the log-SNR grid
    closes the gap like 1/T, the bound decreases towards the continuous-time one, and the model's NLL
    tends to the data's. The Monte Carlo estimate of bound_T matches its closed form too."""
    problem = gaussian_problem("dct")
    x = _images(problem, 16)
    continuous = closed_form(problem, x)
    gaps, excess = [], []
    for steps in (10, 100, 1000):
        res = closed_form(problem, x, logsnr_grid(problem.diffusion, steps))
        gap = res["bound"] - res["model_nll"]
        assert bool((gap >= -1e-9).all()), gap.min()
        gaps.append(gap.mean().item())
        excess.append((res["bound"] - continuous["bound"]).min().item())
    assert gaps[1] < 0.15 * gaps[0] and gaps[2] < 0.15 * gaps[1]  # about 1/T
    assert excess == sorted(excess, reverse=True) and excess[-1] > 0
    torch.testing.assert_close(res["model_nll"], continuous["data_nll"], rtol=0, atol=0.01)

    grid = logsnr_grid(problem.diffusion, 20)
    est = bits_per_dim(
        problem.diffusion, problem.model, x, n_t=1024, decoder="gaussian", times=grid,
        generator=torch.Generator().manual_seed(2), batch_size=16384,
    )
    bound = closed_form(problem, x, grid)["bound"]
    assert bool(((est.bpd - bound).abs() < 5 * est.stderr).all()), (est.bpd - bound) / est.stderr


def test_expected_bound_exceeds_entropy_by_the_closed_form_gap():
    """E_x[bound] >= H(data) (Gibbs), here by < 1e-4 bits/dim; the data-set estimate agrees."""
    problem = gaussian_problem("haar")
    s0, s1, m, s2 = _snr(problem, 0.0), _snr(problem, 1.0), problem.m, problem.s2
    expected = (
        0.5 * torch.log((1 + s2 * s0) / (1 + s2 * s1))  # diffusion
        + 0.5 * s1 * (m**2 + s2)  # prior
        + 0.5 * torch.log(2 * math.pi * math.e / s0)  # decoder
    )
    entropy = 0.5 * torch.log(2 * math.pi * math.e * s2)
    expected, entropy = (_per_dim(v[None]).item() for v in (expected, entropy))
    assert 0.0 <= expected - entropy < 1e-4

    batches = [(_images(problem, 256, seed), torch.zeros(256)) for seed in range(4)]
    result = dataset_bits_per_dim(
        problem.diffusion, problem.model, batches, n_t=2, decoder="gaussian",
        generator=torch.Generator().manual_seed(3), progress=False,
    )
    assert result.n == 1024 and abs(result.bpd - expected) < 5 * result.image_std / math.sqrt(result.n)


def test_stderr_shrinks_like_one_over_sqrt_n():
    problem = gaussian_problem("dct")
    x = _images(problem, 8)
    se = [
        bits_per_dim(
            problem.diffusion, problem.model, x, n_t=n, decoder="gaussian",
            generator=torch.Generator().manual_seed(4), batch_size=8192,
        ).stderr.mean().item()
        for n in (128, 2048)
    ]
    assert se[1] / se[0] == pytest.approx(0.25, abs=0.08)


def test_non_orthogonal_basis_adds_log_det():
    """x = P u with a non-orthogonal P: the density bound gains log |det P|, the data NLL too."""
    shape, dim = (1, 2, 2), 4
    g = torch.Generator().manual_seed(5)
    p = torch.eye(dim, dtype=torch.float64) + 0.4 * torch.randn(dim, dim, generator=g, dtype=torch.float64)
    basis = nidiff.build_basis("matrix", shape=shape, P=p, eigenvalues=_eigenvalues(dim))
    d = nidiff.GaussianDiffusion(basis, nidiff.build_schedule("blurring", sigma_blur_max=2.0))
    m = torch.randn(dim, generator=g, dtype=torch.float64) * 0.5
    problem = GaussianProblem(d, m, torch.rand(dim, generator=g, dtype=torch.float64) + 0.2)
    log_det = float(np.linalg.slogdet(p.numpy())[1])
    assert not basis.orthogonal and log_abs_det(basis) == pytest.approx(log_det, abs=1e-9)

    x = _images(problem, 8)
    pixel = torch.distributions.MultivariateNormal(p @ problem.m, p @ torch.diag(problem.s2) @ p.T)
    exact = closed_form(problem, x)
    shift = log_det * BITS / dim
    torch.testing.assert_close(-pixel.log_prob(x.reshape(8, dim)) * BITS / dim, exact["data_nll"] + shift)
    est = bits_per_dim(
        d, problem.model, x, n_t=2048, decoder="gaussian",
        generator=torch.Generator().manual_seed(6), batch_size=8192,
    )
    assert bool(((est.bpd - (exact["bound"] + shift)).abs() < 5 * est.stderr).all())


@pytest.mark.parametrize("process", PUBLISHED)
def test_bound_of_published_processes_matches_closed_form(process):
    """EqualSNR (a fitted non-orthogonal basis), SAGD (a prior N(0, sigma_1(k)^2)) and Soft Diffusion
    (variance exploding, exact blur): the continuous and a discrete bound against their closed forms,
    the density bound shifted by log |det P| where the basis is not orthogonal."""
    problem = published_problem(process)
    d = problem.diffusion
    x = _images(problem, 8)
    shift = log_abs_det(d.basis) * BITS / x[0].numel()
    assert (shift != 0.0) == (not d.basis.orthogonal)
    for times in (None, logsnr_grid(d, 20)):
        est = bits_per_dim(
            d, problem.model, x, n_t=2048, decoder="gaussian", times=times,
            generator=torch.Generator().manual_seed(7), batch_size=8192,
        )
        exact = closed_form(problem, x, times)["bound"] + shift
        assert bool(((est.bpd - exact).abs() < 5 * est.stderr).all()), (est.bpd - exact) / est.stderr
        assert bool((est.stderr < 0.15 + 0.03 * exact.abs()).all())  # the comparison has teeth


class TestDiscretizedDecoder:
    def test_log_bin_mass_matches_scipy_in_both_tails(self):
        lo = torch.tensor([-math.inf, -3.0, -0.5, 2.0, 8.0, -9.0, 30.0], dtype=torch.float64)
        hi = torch.tensor([-40.0, -2.9, 0.5, math.inf, 8.5, -8.5, 30.001], dtype=torch.float64)
        lo_np, hi_np = lo.numpy(), hi.numpy()
        np.seterr(divide="ignore")  # each form is -inf where the other one is needed
        upper = np.log(norm.sf(lo_np) - norm.sf(hi_np))  # accurate where the bin is above 0
        lower = np.log(norm.cdf(hi_np) - norm.cdf(lo_np))  # accurate where it is below 0
        expected = np.where(hi_np <= 0, lower, upper)
        expected[0] = norm.logcdf(-40.0)  # below float64's smallest number, so in logs
        np.testing.assert_allclose(log_bin_mass(lo, hi).numpy(), expected, rtol=1e-9)

    def test_masses_of_all_levels_sum_to_one(self):
        levels = torch.linspace(-1.0, 1.0, 256, dtype=torch.float64)[:, None]  # [256, 1]
        mean = torch.tensor([-1.3, -1.0, -0.2, 0.0, 0.4, 0.999, 2.0], dtype=torch.float64)
        std = torch.tensor([1e-3, 0.01, 0.0067, 0.5, 3.0, 1e-4, 0.1], dtype=torch.float64)
        total = discretized_log_mass(levels, mean, std).exp().sum(0)
        torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)

    def test_pixel_std_of_a_non_orthogonal_basis(self):
        g = torch.Generator().manual_seed(7)
        p = torch.eye(4, dtype=torch.float64) + 0.4 * torch.randn(4, 4, generator=g, dtype=torch.float64)
        basis = nidiff.build_basis("matrix", shape=(1, 2, 2), P=p, eigenvalues=_eigenvalues(4))
        d = nidiff.GaussianDiffusion(basis, nidiff.build_schedule("ihdm"))
        x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
        nll = DiscretizedGaussianDecoder().nll(d, x, torch.Generator().manual_seed(8))
        la, ls = d.log_alpha_sigma(torch.zeros(1))
        r2 = (2 * (ls - la)).exp().expand(1, 4)[0]
        std = (p**2 @ r2).sqrt().reshape(1, 1, 2, 2)  # sqrt(diag(P diag(r^2) P^T))
        g = torch.Generator().manual_seed(8)  # the decoder's draw, repeated
        u = torch.randn(1, 4, generator=g, dtype=torch.float64)
        noise = basis.from_coeffs((ls - la).exp() * u)
        torch.testing.assert_close(nll, -discretized_log_mass(x, x + noise, std).flatten(1).sum(1))

    def test_eight_bit_bound_exceeds_discrete_entropy(self):
        """Quantised Gaussian pixels (identity basis): E[bound] >= H(discrete data), computed exactly."""
        problem = gaussian_problem("identity", sigma_blur_max=0.0)
        n = 512
        y = _images(problem, n, seed=9)
        x = ((y.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
        edges = torch.linspace(-1.0, 1.0, 256, dtype=torch.float64)[:, None, None, None]
        mean, std = problem.m, problem.s2.sqrt()
        mass = discretized_log_mass(edges, mean, std).exp()  # [256, 1, 4, 4]
        entropy = _per_dim(-(mass * mass.clamp_min(1e-300).log()).sum(0)[None]).item()
        g = torch.Generator().manual_seed(10)
        est = bits_per_dim(problem.diffusion, problem.model, x.float(), n_t=8, generator=g)
        assert est.bpd.mean().item() > entropy - 5 * est.bpd.std().item() / math.sqrt(n)
        torch.testing.assert_close(est.prior + est.diffusion + est.decoder, est.bpd)


def test_docs_example_runs():
    page = (Path(__file__).resolve().parents[1] / "docs" / "likelihood.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    namespace: dict = {}
    exec(compile(block, "docs/likelihood.md", "exec"), namespace)
    assert namespace["result"].bpd.shape == (4,) and namespace["total"].n == 8


class TestBadInput:
    def test_errors_name_what_was_expected(self):
        problem = gaussian_problem("identity")
        d, x = problem.diffusion, _images(problem, 2).clamp(-1, 1)
        with pytest.raises(ValueError, match="even integer"):
            bits_per_dim(d, problem.model, x, n_t=3)
        with pytest.raises(ValueError, match="known: gaussian, discretized"):
            bits_per_dim(d, problem.model, x, decoder="logistic")
        with pytest.raises(ValueError, match=r"\[-1, 1\]"):
            bits_per_dim(d, problem.model, 2 * x + 3)
        with pytest.raises(ValueError, match="from t = 1 down to t = 0"):
            bits_per_dim(d, problem.model, x, times=torch.tensor([1.0, 0.5]))
        with pytest.raises(ValueError, match="no images"):
            dataset_bits_per_dim(d, problem.model, [], progress=False)

    def test_progress_prints_the_standard_error(self, capsys):
        problem = gaussian_problem("identity")
        x = _images(problem, 4).clamp(-1, 1)
        g = torch.Generator().manual_seed(11)
        result = dataset_bits_per_dim(problem.diffusion, problem.model, [x, x], n_t=4, generator=g)
        printed = capsys.readouterr().out
        assert "bits/dim" in printed and f"+- {result.stderr:.4f}" in printed and result.n == 8
