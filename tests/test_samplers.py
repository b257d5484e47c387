"""Samplers against Gaussian data, whose optimal denoiser and probability-flow ODE are closed-form.

Data ``u_x ~ N(m, diag(s2))`` in the coefficient space of the identity, DCT and Haar bases, with
the paper's blurring schedule (``sigma_B,max = 20``, which at 4x4 blurs 64 times harder than at
32x32: the stiffest setting). Two kinds of check:

- exact moments: with the linear optimal denoiser every deterministic sampler is an affine map per
  coefficient, so running it on ``u_1 = 0`` and ``u_1 = sigma_1`` gives the mean and standard
  deviation of its output exactly; they must match the exact ODE flow's within the stated
  discretisation allowance (2% of the std, 0.01 of the mean) at the documented step counts;
- Monte Carlo: ``n`` samples reproduce ``m`` and ``s2`` within 5.5 standard errors derived from
  ``n``, plus the same allowance.

Documented step counts (the smallest of 5, 8, 10, 12, 15, 20, 25, 30, 35, 40, 50, 60, 70, 80, 100,
120, 150, 200, 250, 300, 400, 500, ... passing the exact-moment check for all three bases):
DDIM (eta = 0) 500 steps on the log-SNR grid, DPM-Solver-2 35 steps (70 evaluations) on the
log-SNR grid, Heun 70 steps (140 evaluations) on the log-SNR grid, DPM-Solver++(2M) 60 steps on the
log-SNR grid, UniPC (order 3) 30 steps on the angle grid; ancestral 1000 uniform steps.

The same checks run on the published processes of docs/literature.md (``tests.gaussian.PUBLISHED``),
each with its own documented step counts found the same way: EqualSNR (the fitted ``whitened``
Hartley basis, cosine), SAGD (a noise scale that differs per coefficient, so that the prior is
``N(0, sigma_1(k)^2)``) and Soft Diffusion (exact Gaussian blur with variance-exploding noise).
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import nidiff
from nidiff.registry import UnknownNameError
from nidiff.sampling import (
    DynamicThreshold,
    SamplingPlan,
    StaticClip,
    XClip,
    ancestral,
    angle_grid,
    logsnr_grid,
    logsnr_midpoints,
    logsnr_summary,
    predict,
    resolve_x_clip,
    uniform_grid,
)
from tests.gaussian import PUBLISHED, gaussian_problem, published_problem

BASES = ["identity", "dct", "haar"]
STEPS = {  # sampler: (grid, steps) documented above
    "ancestral": (lambda d, n: uniform_grid(n), 1000),
    "ddim": (logsnr_grid, 500),
    "dpm2": (logsnr_grid, 35),
    "heun": (logsnr_grid, 70),
    "dpmpp": (logsnr_grid, 60),
    "unipc": (angle_grid, 30),
}
STD_ALLOWANCE, MEAN_ALLOWANCE = 0.02, 0.01
SAMPLERS = nidiff.list_samplers()  # every test below that takes a sampler name runs over all of them


def test_every_registered_sampler_has_documented_step_counts():
    assert sorted(STEPS) == SAMPLERS


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def _diffusion(schedule: str) -> nidiff.GaussianDiffusion:
    return nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=(1, 4, 4)), nidiff.build_schedule(schedule))


def _exact_moments(problem, sampler, times, **kw):
    """Mean and std of a deterministic sampler's output, from the affine map it applies."""
    d = problem.diffusion
    _, sigma1 = d.alpha_sigma(torch.ones(1), torch.float64)
    u1 = torch.stack([torch.zeros_like(problem.m), sigma1.expand_as(problem.m[None])[0]])
    out = d.basis.to_coeffs(sampler(d, problem.model, d.basis.from_coeffs(u1), times, **kw))
    return out[0], out[1] - out[0]


def _moment_errors(problem, sampler, times, **kw):
    mean, std = _exact_moments(problem, sampler, times, **kw)
    target_mean, target_std = problem.ode_target()
    return (mean - target_mean).abs().max().item(), (std / target_std - 1).abs().max().item()


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("name", ["ddim", "dpm2", "heun", "dpmpp", "unipc"])
def test_deterministic_samplers_match_the_exact_flow(name, basis):
    problem = gaussian_problem(basis)
    grid, steps = STEPS[name]
    mean_err, std_err = _moment_errors(problem, nidiff.build_sampler(name), grid(problem.diffusion, steps))
    assert mean_err < MEAN_ALLOWANCE and std_err < STD_ALLOWANCE, (mean_err, std_err)


@pytest.mark.parametrize("name, order", [("ddim", 1), ("dpm2", 2), ("heun", 2)])
def test_convergence_order(name, order):
    """Doubling the steps divides the std error by 2 (first order) or 4 (second order)."""
    problem = gaussian_problem("dct")
    sampler = nidiff.build_sampler(name)
    errors = [_moment_errors(problem, sampler, logsnr_grid(problem.diffusion, n))[1] for n in (100, 200)]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(order, abs=0.3)


MONTE_CARLO = [pytest.param(name, {}, basis, id=f"{name}-{basis}") for name in STEPS for basis in BASES]
MONTE_CARLO.append(pytest.param("ddim", {"eta": 0.5}, "dct", id="ddim-eta0.5-dct"))


def _check_samples(problem, name, times, **kw):
    """Per-coefficient mean and variance of n samples within 5.5 standard errors plus the allowance."""
    d = problem.diffusion
    n = 2000
    z = d.prior_sample(n, generator=torch.Generator().manual_seed(9))
    x = nidiff.build_sampler(name, **kw)(d, problem.model, z, times, generator=torch.Generator().manual_seed(10))
    u = d.basis.to_coeffs(x).double()
    m, s2 = problem.m, problem.s2
    se_mean, se_var = (s2 / n).sqrt(), s2 * math.sqrt(2 / (n - 1))
    assert bool(((u.mean(0) - m).abs() < 5.5 * se_mean + MEAN_ALLOWANCE).all())
    assert bool(((u.var(0) - s2).abs() < 5.5 * se_var + 2 * STD_ALLOWANCE * s2).all())  # 2% std ~ 4% var


@pytest.mark.parametrize("name, kw, basis", MONTE_CARLO)
def test_samples_reproduce_gaussian_data(name, kw, basis):
    problem = gaussian_problem(basis)
    grid, steps = STEPS[name]
    _check_samples(problem, name, grid(problem.diffusion, steps), **kw)


# documented log-SNR grid steps of ddim, dpm2 and heun for each process of tests.gaussian.PUBLISHED
PUBLISHED_STEPS = {
    "equalsnr": {"ddim": 150, "dpm2": 12, "heun": 15},
    "sagd-power": {"ddim": 150, "dpm2": 12, "heun": 20},
    "sagd-bands": {"ddim": 150, "dpm2": 12, "heun": 20},
    "soft_diffusion": {"ddim": 700, "dpm2": 60, "heun": 60},
}


@pytest.mark.parametrize("process", PUBLISHED)
@pytest.mark.parametrize("name", ["ddim", "dpm2", "heun"])
def test_deterministic_samplers_match_the_exact_flow_of_published_processes(name, process):
    problem = published_problem(process)
    steps = PUBLISHED_STEPS[process][name]
    mean_err, std_err = _moment_errors(problem, nidiff.build_sampler(name), logsnr_grid(problem.diffusion, steps))
    assert mean_err < MEAN_ALLOWANCE and std_err < STD_ALLOWANCE, (mean_err, std_err)


@pytest.mark.parametrize("process", PUBLISHED)
@pytest.mark.parametrize("name", list(STEPS))
def test_published_processes_reproduce_gaussian_data(name, process):
    problem = published_problem(process)
    steps = PUBLISHED_STEPS[process].get(name)
    times = uniform_grid(STEPS[name][1]) if steps is None else logsnr_grid(problem.diffusion, steps)
    _check_samples(problem, name, times)


def test_per_coefficient_noise_scale_is_really_exercised():
    """SAGD in PUBLISHED has a prior N(0, sigma_1(k)^2) whose scale differs per coefficient."""
    d = published_problem("sagd-power").diffusion
    _, sigma1 = d.alpha_sigma(torch.ones(1), torch.float64)
    assert float(sigma1.max() / sigma1.min()) > 8.0
    n = 4000
    z = d.prior_sample(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ratio = d.basis.to_coeffs(z).std(0) / sigma1[0]  # a sample std has relative error sqrt(1 / (2n))
    torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=0, atol=5.5 * math.sqrt(0.5 / (n - 1)))


@pytest.mark.parametrize("parametrization", ["x", "v"])
def test_samplers_read_every_parametrization(parametrization):
    """The same optimal denoiser, output as x or v, gives the same samples as with eps."""
    reference = gaussian_problem("dct")
    other = gaussian_problem("dct", parametrization=parametrization)
    for name in SAMPLERS:
        grid = uniform_grid(20)
        z = reference.diffusion.prior_sample(8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        a, b = (
            nidiff.build_sampler(name)(p.diffusion, p.model, z, grid, generator=torch.Generator().manual_seed(6))
            for p in (reference, other)
        )
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-7, msg=name)


def test_ddim_with_eta_one_is_ancestral_sampling():
    """Same noise, same grid: DDIM with eta = 1 takes the ancestral step exactly (so also in law)."""
    problem = gaussian_problem("dct")
    d = problem.diffusion
    z = d.prior_sample(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    times = uniform_grid(50)
    a = ancestral(d, problem.model, z, times, generator=torch.Generator().manual_seed(2))
    b = nidiff.build_sampler("ddim", eta=1.0)(d, problem.model, z, times, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)


STOCHASTIC = [(name, {}) for name in SAMPLERS if nidiff.build_sampler(name).stochastic] + [("ddim", {"eta": 0.7})]


@pytest.mark.parametrize("name, kw", STOCHASTIC, ids=[f"{n}{'-' if kw else ''}{kw}" for n, kw in STOCHASTIC])
def test_one_generator_per_sample_makes_samples_independent_of_the_batch(name, kw):
    problem = gaussian_problem("haar")
    d = problem.diffusion
    z = d.prior_sample(4, generator=torch.Generator().manual_seed(0))

    def generators(indices):
        return [torch.Generator().manual_seed(100 + i) for i in indices]

    sampler = nidiff.build_sampler(name, **kw)
    whole = sampler(d, problem.model, z, uniform_grid(10), generator=generators(range(4)))
    halves = [sampler(d, problem.model, z[i : i + 2], uniform_grid(10), generator=generators(range(i, i + 2)))
              for i in (0, 2)]
    torch.testing.assert_close(torch.cat(halves), whole)


def test_steps_stay_finite_where_alpha_underflows():
    """IHDM: alpha_t of high frequencies is 0 in float32 (log alpha ~ -200), yet no step divides by it."""
    problem = gaussian_problem("dct", "ihdm", sigma_blur_max=6.0)
    d = problem.diffusion
    alpha1, _ = d.alpha_sigma(torch.ones(1))
    assert float(alpha1.min()) == 0.0
    z = d.prior_sample(16, generator=torch.Generator().manual_seed(3))
    for name in SAMPLERS:
        x = nidiff.build_sampler(name)(d, problem.model, z, uniform_grid(50), generator=torch.Generator().manual_seed(4))
        assert bool(torch.isfinite(x).all()), name


@pytest.mark.parametrize("parametrization", ["x", "v"])
def test_x_and_v_predictions_step_without_cancellation(parametrization):
    """Soft Diffusion's exact blur drives alpha_t of high frequencies to ~1e-38 while sigma_t is O(1):
    a step multiplies the signal alpha_t u_x_hat by alpha_s / alpha_t ~ 1e28, so forming the signal
    as u_t - sigma_t u_eps_hat (rounding error ~1e-7 |u_t|) would blow up. From an x or v prediction
    the float32 steps must agree with float64 ones."""
    basis = nidiff.build_basis("dct", shape=(3, 32, 32))
    d = nidiff.GaussianDiffusion(basis, nidiff.build_schedule("soft_diffusion", variance_preserving=True),
                                 parametrization)
    target = torch.linspace(-0.5, 0.5, 3 * 32 * 32, dtype=torch.float64).reshape(1, 3, 32, 32)

    def model(z, t):  # x_hat = target, expressed in the diffusion's parametrization
        u_t = basis.to_coeffs(z.double())
        alpha, sigma = d.alpha_sigma(t.double(), torch.float64)
        u_x = basis.to_coeffs(target).expand_as(u_t)
        u_eps = (u_t - alpha * u_x) / sigma
        return basis.from_coeffs(d.parametrization.target(u_x, u_eps, alpha, sigma)).to(z.dtype)

    z = d.prior_sample(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = ancestral(d, model, z, uniform_grid(2), generator=torch.Generator().manual_seed(1))
    fast = ancestral(d, model, z.float(), uniform_grid(2), generator=torch.Generator().manual_seed(1))
    assert bool(torch.isfinite(fast).all())
    torch.testing.assert_close(fast.double(), exact, rtol=0, atol=1e-3)


def test_shared_signature_and_callback():
    problem = gaussian_problem("haar")
    d = problem.diffusion
    first = ["diffusion", "model", "z", "times", "generator", "callback", "x_clip"]
    for name in SAMPLERS:
        sampler = nidiff.build_sampler(name)
        assert list(inspect.signature(sampler).parameters)[:7] == first, name
        seen = []
        sampler(d, problem.model, d.prior_sample(2), uniform_grid(4), callback=seen.append)
        assert [s["i"] for s in seen] == [0, 1, 2, 3] and seen[-1]["s"] == 0.0
        assert seen[0]["z"].shape == (2, *d.basis.shape)


class TestClipping:
    def test_static_clip_bounds_and_consistent_eps(self):
        problem = gaussian_problem("dct")
        d = problem.diffusion
        u = d.basis.to_coeffs(3.0 * torch.randn(8, *d.basis.shape, dtype=torch.float64))
        t = torch.tensor(0.3, dtype=torch.float64)
        pred = predict(d, problem.model, u, t, resolve_x_clip((-0.5, 0.25)))
        alpha, sigma = d.alpha_sigma(t.reshape(1), torch.float64)
        x_hat = d.basis.from_coeffs(pred.signal / alpha)
        assert float(x_hat.min()) >= -0.5 - 1e-9 and float(x_hat.max()) <= 0.25 + 1e-9
        torch.testing.assert_close(pred.signal + sigma * pred.eps, u)  # eps recomputed from the clipped x

    def test_dynamic_threshold_is_imagen_formula(self):
        scale = torch.tensor([0.3, 1.0, 2.0, 4.0, 8.0], dtype=torch.float64).reshape(5, 1, 1, 1)
        x = torch.randn(5, 3, 4, 4, dtype=torch.float64) * scale
        out = DynamicThreshold(0.9)(x)
        for xi, oi in zip(x.numpy(), out.numpy()):
            s = max(np.percentile(np.abs(xi), 90.0), 1.0)
            np.testing.assert_allclose(oi, np.clip(xi, -s, s) / s, rtol=1e-12)
        assert float(out.abs().max()) <= 1.0
        torch.testing.assert_close(out[0], x[0])  # |x| < 1 already: unchanged

    def test_names_pairs_and_errors(self):
        assert isinstance(resolve_x_clip("static"), StaticClip)
        assert isinstance(resolve_x_clip("dynamic"), DynamicThreshold)
        assert resolve_x_clip(None) is None
        assert (resolve_x_clip((-2, 2)).lo, resolve_x_clip((-2, 2)).hi) == (-2.0, 2.0)
        with pytest.raises(ValueError, match="known: static, dynamic"):
            resolve_x_clip("imagen")
        with pytest.raises(TypeError, match="x_clip must be"):
            resolve_x_clip(1.0)
        with pytest.raises(ValueError, match="lo < hi"):
            StaticClip(1.0, -1.0)
        with pytest.raises(ValueError, match="percentile"):
            DynamicThreshold(99.5)

    @pytest.mark.parametrize("name", SAMPLERS)
    def test_every_sampler_clips_every_prediction(self, name):
        class Spy(XClip):
            calls = 0

            def __call__(self, x_hat):
                Spy.calls += 1
                return x_hat.clamp(-1.0, 1.0)

        problem = gaussian_problem("identity")
        d = problem.diffusion
        sampler = nidiff.build_sampler(name)
        calls = []
        model = lambda z, t: calls.append(1) or problem.model(z, t)  # noqa: E731
        x = sampler(d, model, d.prior_sample(4), uniform_grid(3), x_clip=Spy())
        assert Spy.calls == len(calls) == SamplingPlan(name, 3).evaluations and bool(torch.isfinite(x).all())
        x = sampler(d, problem.model, d.prior_sample(4), uniform_grid(3), x_clip="dynamic")
        assert bool(torch.isfinite(x).all())


class TestGrids:
    def test_cosine_logsnr_grid_is_the_closed_form_inverse(self):
        schedule = nidiff.build_schedule("cosine")
        d = nidiff.GaussianDiffusion(nidiff.build_basis("identity", shape=(1, 2, 2)), schedule)
        times = logsnr_grid(d, 10)
        logsnr = torch.linspace(-10.0, 10.0, 11, dtype=torch.float64)
        expected = (torch.atan(torch.exp(-0.5 * logsnr)) - schedule._limit_max) / schedule._limit_min
        torch.testing.assert_close(times, expected, rtol=0, atol=1e-12)

    @pytest.mark.parametrize("schedule", ["blurring", "ihdm", "linear"])
    def test_logsnr_grid_is_uniform_in_the_mean_logsnr(self, schedule):
        d = _diffusion(schedule)
        times = logsnr_grid(d, 20)
        assert times[0] == 1.0 and times[-1] == 0.0 and bool((times.diff() < 0).all())
        gaps = logsnr_summary(d, times).diff()
        torch.testing.assert_close(gaps, gaps.mean().expand_as(gaps), rtol=1e-9, atol=0)
        mids = logsnr_summary(d, logsnr_midpoints(d, times))
        ends = logsnr_summary(d, times)
        torch.testing.assert_close(mids, 0.5 * (ends[1:] + ends[:-1]), rtol=1e-9, atol=0)

    @pytest.mark.parametrize("schedule", nidiff.list_schedules())
    def test_derivatives_match_finite_differences(self, schedule):
        """``log_alpha_sigma_dt`` (autograd) against central differences, for every registered schedule."""
        kwargs = {"product": {"factors": ["cosine", "blur"]}}.get(schedule, {})
        d = nidiff.GaussianDiffusion(
            nidiff.build_basis("dct", shape=(1, 4, 4)), nidiff.build_schedule(schedule, **kwargs)
        )
        t, h = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64), 1e-6
        d_log_alpha, d_log_sigma = d.log_alpha_sigma_dt(t)
        (la_hi, ls_hi), (la_lo, ls_lo) = d.log_alpha_sigma(t + h), d.log_alpha_sigma(t - h)
        for exact, hi, lo in ((d_log_alpha, la_hi, la_lo), (d_log_sigma, ls_hi, ls_lo)):
            torch.testing.assert_close(exact, ((hi - lo) / (2 * h)).expand_as(exact), rtol=1e-6, atol=1e-6)


def test_docs_example_runs():
    page = (Path(__file__).resolve().parents[1] / "docs" / "sampling.md").read_text()
    block = re.findall(r"```python\n(.*?)```", page, flags=re.S)[0]  # the first; the last is a plugin file
    namespace: dict = {}
    exec(compile(block, "docs/sampling.md", "exec"), namespace)
    assert namespace["x"].shape == (4, 3, 8, 8) and bool(torch.isfinite(namespace["x"]).all())


class TestBadInput:
    def test_unknown_sampler_lists_the_known_ones(self):
        assert isinstance(nidiff.build_sampler("dpm2"), nidiff.sampling.DPMSolver2)
        with pytest.raises(UnknownNameError, match="Known samplers: " + ", ".join(SAMPLERS)):
            nidiff.build_sampler("euler")
        with pytest.raises(UnknownNameError, match="Known grids: " + ", ".join(nidiff.list_grids())):
            SamplingPlan("ddim", 10, grid="cosine")

    def test_bad_options(self):
        with pytest.raises(ValueError, match="eta"):
            nidiff.build_sampler("ddim", eta=1.5)
        with pytest.raises(TypeError, match="sampler 'ddim' takes no parameter 'order'; it takes: eta"):
            SamplingPlan("ddim", 10, options={"order": 2})
        with pytest.raises(TypeError, match="sampler 'heun' takes no parameter 'eta'"):
            SamplingPlan("heun", 10, options={"eta": 0.5})

    def test_bad_eta_and_steps(self):
        problem = gaussian_problem("identity")
        d = problem.diffusion
        with pytest.raises(ValueError, match="positive integer"):
            logsnr_grid(d, 0)
