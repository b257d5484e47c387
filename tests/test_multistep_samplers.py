"""The multistep samplers (``dpmpp``, ``unipc``), the ``angle`` grid and the Gaussian check.

- the exponential quadrature against independent integrals (scipy's ``quad``) and closed forms;
- the samplers exact where their interpolation is: a model whose data prediction is a polynomial
  of degree ``k - 1`` in each coefficient's own log-SNR, on a grid that gives every coefficient its
  own step ratios, against the exact solution of the ODE in closed form;
- their order of convergence on the Gaussian check;
- the check's bounds (issue 14): a largest relative variance error of at most 2% at 20 model
  evaluations, and at most 10% at 10 (not reached: marked as an expected failure), for blurring
  diffusion; no blow-up from 5 to 50 steps;
- the peer check: on the isotropic special case (identity basis, DDPM's linear schedule) ``dpmpp``
  equals diffusers' ``DPMSolverMultistepScheduler`` (``dpmsolver++``) to float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

import nidiff
from nidiff.sampling import angle_grid, angles
from nidiff.sampling.exponential import exp_moments, integrate
from nidiff.sampling.gaussian_check import check_variance, gaussian_check


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


@pytest.fixture(scope="module")
def blurring():
    return gaussian_check(20.0)


@pytest.fixture(scope="module")
def isotropic():
    return gaussian_check(0.0)


# ---- the quadrature ----------------------------------------------------------------------------

H = [1e-9, 1e-4, 0.3, 0.999999, 1.0, 1.7, 6.0, 25.0]


def test_exp_moments_match_quadrature():
    h = torch.tensor(H, dtype=torch.float64)
    for j, moment in enumerate(exp_moments(h, 3)):
        for x, got in zip(H, moment.tolist()):
            ref = quad(lambda y, j=j, x=x: y**j * math.exp(y - x), 0.0, x, epsabs=0.0, epsrel=1e-13)[0]
            assert got == pytest.approx(ref, rel=1e-12), (j, x)


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_integrate_is_exact_for_the_interpolating_polynomial(q):
    """Random nodes per element; the reference fits the polynomial with numpy and integrates it with quad."""
    g = torch.Generator().manual_seed(q)
    h = torch.tensor(H[2:], dtype=torch.float64)
    nodes = [torch.zeros_like(h)]
    for _ in range(q - 1):  # decreasing, as the samplers' nodes are
        nodes.append(nodes[-1] - 0.1 - torch.rand(h.shape, generator=g, dtype=torch.float64))
    values = [torch.randn(h.shape, generator=g, dtype=torch.float64) for _ in range(q)]
    got = integrate(h, nodes, values)
    for k, x in enumerate(h.tolist()):
        coef = np.polyfit([float(n[k]) for n in nodes], [float(v[k]) for v in values], q - 1)
        ref = quad(lambda y, c=coef, x=x: np.polyval(c, y) * math.exp(y - x), 0.0, x, epsabs=0.0, epsrel=1e-12)[0]
        assert float(got[k]) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_coincident_nodes_drop_the_terms_through_them():
    """A coefficient flat over the last step (equal nodes) takes the lower-order step, never NaN."""
    h = torch.tensor([0.5, 0.5], dtype=torch.float64)
    nodes = [torch.zeros(2, dtype=torch.float64), torch.tensor([-0.4, 0.0], dtype=torch.float64)]
    values = [torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([0.2, 7.0], dtype=torch.float64)]
    got = integrate(h, nodes, values)
    first = exp_moments(h, 0)[0]
    assert float(got[1]) == pytest.approx(float(first[1]))  # first order: I_0 * value
    assert float(got[0]) == pytest.approx(float(integrate(h[:1], [n[:1] for n in nodes], [v[:1] for v in values])))


# ---- exactness on polynomial predictions ---------------------------------------------------------

def _polynomial_model(diffusion, coeffs):
    """A model whose data prediction is ``P(l_k(t)) = sum_j c_j l_k^j`` per coefficient, whatever ``z``."""

    def model(z, t):
        log_alpha, log_sigma = diffusion.log_alpha_sigma(t[:1])
        l = (log_alpha - log_sigma).expand(z.shape[0], *diffusion.basis.coeff_shape)
        x = sum(c * l**j for j, c in enumerate(coeffs))
        u = diffusion.basis.to_coeffs(z)
        alpha, sigma = diffusion.alpha_sigma(t[:1], torch.float64)
        return diffusion.basis.from_coeffs((u - alpha * x) / sigma)  # the eps that gives this x_hat

    return model


def _exact_polynomial_solution(diffusion, u1, coeffs, times):
    """``u_0 = (sigma_0 / sigma_1) u_1 + sigma_0 int_{l_1}^{l_0} e^l P(l) dl`` with the antiderivative
    ``e^l sum_j c_j sum_m (-1)^m j! / (j - m)! l^{j - m}`` (independent of the sampler's quadrature)."""
    (la0, ls0), (la1, ls1) = diffusion.log_alpha_sigma(times[-1:]), diffusion.log_alpha_sigma(times[:1])
    l0, l1 = la0 - ls0, la1 - ls1

    def antiderivative(l):
        return torch.exp(l) * sum(
            c * sum((-1) ** m * math.factorial(j) / math.factorial(j - m) * l ** (j - m) for m in range(j + 1))
            for j, c in enumerate(coeffs)
        )

    return (ls0 - ls1).exp() * u1 + ls0.exp() * (antiderivative(l0) - antiderivative(l1))


EXACT = [
    ("dpmpp", {"order": 1}, 0),
    ("dpmpp", {"order": 2, "lower_order_final": False}, 1),
    ("dpmpp", {"order": 3, "lower_order_final": False}, 2),
    ("unipc", {"order": 1, "lower_order_final": False}, 0),
    ("unipc", {"order": 2, "lower_order_final": False}, 1),
    ("unipc", {"order": 3, "lower_order_final": False}, 2),
]


@pytest.mark.parametrize("name, options, degree", EXACT, ids=[f"{n}-{o.get('order')}" for n, o, _ in EXACT])
def test_exact_on_polynomial_data_predictions(name, options, degree):
    """Exact for ``x_hat`` of degree ``order - 1`` in each coefficient's log-SNR, on a blurring grid where
    every coefficient has its own (very unequal) step ratios; one degree more is not. The two warm-up
    steps (of lower order) are short, 1e-5 in t: their error is then below 1e-9 of the result, and
    their nodes are still far enough apart for the divided differences to be well conditioned."""
    d = nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=(1, 4, 4)), nidiff.build_schedule("blurring"))
    times = torch.cat([torch.tensor([1.0, 1.0 - 1e-5, 1.0 - 2e-5], dtype=torch.float64),
                       nidiff.time_grid("angle", d, 12)[1:]])
    u1 = torch.randn(3, *d.basis.coeff_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sampler = nidiff.build_sampler(name, **options)
    for coeffs, exact in (([0.3, -0.2, 0.05][: degree + 1], True), ([0.3, -0.2, 0.05, 0.05][: degree + 2], False)):
        out = d.basis.to_coeffs(sampler(d, _polynomial_model(d, coeffs), d.basis.from_coeffs(u1), times))
        ref = _exact_polynomial_solution(d, u1, coeffs, times)
        error = float((out - ref).abs().max() / ref.abs().max())
        assert (error < 1e-8) if exact else (error > 1e-2), (coeffs, error)


def test_dpmpp_order_one_is_ddim(blurring):
    d, times = blurring.diffusion, nidiff.time_grid("angle", blurring.diffusion, 10)
    z = d.prior_sample(4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = nidiff.build_sampler("ddim")(d, blurring.model, z, times)
    b = nidiff.build_sampler("dpmpp", order=1)(d, blurring.model, z, times)
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


# ---- convergence on the Gaussian check -----------------------------------------------------------

ORDERS = [("dpmpp", 2, 2), ("dpmpp", 3, 3), ("unipc", 1, 2), ("unipc", 2, 3), ("unipc", 3, 4)]


@pytest.mark.parametrize("name, order, expected", ORDERS, ids=[f"{n}-{o}" for n, o, _ in ORDERS])
def test_convergence_order(blurring, name, order, expected):
    """Doubling the steps (log-SNR grid, 100 -> 200) divides the variance error by 2^order:
    DPM-Solver++(kM) is of order k, UniPC with predictor order p of order p + 1."""
    sampler = nidiff.build_sampler(name, order=order, lower_order_final=False)
    errors = [blurring.variance_error(sampler, nidiff.time_grid("logsnr", blurring.diffusion, n)) for n in (100, 200)]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(expected, abs=0.3)


# ---- the check's bounds (issue 14) ---------------------------------------------------------------

TARGET_20 = [("unipc", {}), ("unipc", {"order": 2, "corrector": "adams"})]


@pytest.mark.parametrize("name, options", TARGET_20, ids=["unipc", "unipc-2-adams"])
def test_two_percent_at_20_evaluations(blurring, name, options):
    times = nidiff.time_grid("angle", blurring.diffusion, 20)
    assert blurring.variance_error(nidiff.build_sampler(name, **options), times) <= 0.02


@pytest.mark.xfail(strict=True, reason="not reached: 0.26 at 10 evaluations (docs/sampling.md, 'Fast sampling: the Gaussian check')")
def test_ten_percent_at_10_evaluations(blurring):
    times = nidiff.time_grid("angle", blurring.diffusion, 10)
    assert blurring.variance_error(nidiff.build_sampler("unipc", order=2, corrector="adams"), times) <= 0.10


NO_BLOW_UP = [("dpmpp", {}), ("dpmpp", {"order": 3}), ("unipc", {}), ("unipc", {"order": 2}),
              ("unipc", {"order": 2, "corrector": "adams"})]
STEP_COUNTS = [5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 50]


@pytest.mark.parametrize("grid", ["logsnr", "angle"])
@pytest.mark.parametrize("name, options", NO_BLOW_UP, ids=["dpmpp", "dpmpp-3", "unipc", "unipc-2", "unipc-2-adams"])
def test_no_blow_up_from_5_to_50_steps(blurring, name, options, grid):
    """Finite, and no coefficient's output variance ever above twice the exact one (error < 1)."""
    sampler = nidiff.build_sampler(name, **options)
    for steps in STEP_COUNTS:
        error = blurring.variance_error(sampler, nidiff.time_grid(grid, blurring.diffusion, steps))
        assert error < 1.0, (steps, error)


# ---- the angle grid ------------------------------------------------------------------------------

def test_angle_grid_equalises_the_largest_angle_step(blurring):
    """Each step's largest angle change is at most its share of ``int max_k |d phi_k / dt| dt`` (the
    integral taken here on 200,001 times), and equal to it in the steps one coefficient dominates
    throughout (in the others, the coefficient of largest rate changes within the step)."""
    d, steps = blurring.diffusion, 16
    times = angle_grid(d, steps, check_variance)
    assert times[0] == 1.0 and times[-1] == 0.0 and bool((times.diff() < 0).all())
    fine = torch.linspace(0.0, 1.0, 200_001, dtype=torch.float64)
    phi = torch.cat([angles(d, fine[i : i + 20_001], check_variance).flatten(1) for i in range(0, 200_001, 20_001)])
    share = float((phi[1:] - phi[:-1]).abs().amax(1).sum()) / steps
    at_grid = angles(d, times, check_variance).flatten(1)
    largest = (at_grid[1:] - at_grid[:-1]).abs().amax(1)  # [steps]
    assert float(largest.max()) <= share * (1 + 1e-3)
    assert int((largest >= share * (1 - 1e-3)).sum()) >= steps // 4 and float(largest.min()) > 0.5 * share


def test_angle_grid_of_one_scalar_schedule_is_uniform_in_angle(isotropic):
    """Identity basis, scalar schedule, one variance: equal steps of the one angle."""
    d = nidiff.GaussianDiffusion(nidiff.build_basis("identity", shape=(1, 2, 2)), nidiff.build_schedule("cosine"))
    times = angle_grid(d, 10, torch.tensor(0.5))
    phi = angles(d, times, torch.tensor(0.5))[:, 0, 0, 0]
    steps = phi[1:] - phi[:-1]
    torch.testing.assert_close(steps, steps.mean().expand_as(steps), rtol=2e-3, atol=0)


def test_angle_grid_bad_input(blurring):
    d = blurring.diffusion
    with pytest.raises(ValueError, match="positive integer"):
        angle_grid(d, 0)
    with pytest.raises(ValueError, match="positive and finite"):
        angle_grid(d, 5, torch.tensor(-1.0))
    with pytest.raises(ValueError, match="broadcast"):
        angle_grid(d, 5, torch.ones(3, 3))


def test_bad_options():
    with pytest.raises(ValueError, match="order must be 1, 2 or 3"):
        nidiff.build_sampler("dpmpp", order=4)
    with pytest.raises(TypeError, match="order=2.0 is not an integer"):
        nidiff.build_sampler("unipc", order=2.0)
    with pytest.raises(TypeError, match="coefficients='midpoint'"):
        nidiff.build_sampler("dpmpp", coefficients="midpoint")
    with pytest.raises(ValueError, match="corrector must be 'unipc'"):
        nidiff.sampling.UniPC(corrector="bh2")
    plan = nidiff.SamplingPlan("unipc", 10, grid="angle", options={"order": 3})
    assert plan.evaluations == 10 and plan.build().order == 3


# ---- the peer check --------------------------------------------------------------------------------

PEER = [(1, "midpoint", "exact", 10), (2, "midpoint", "dpmsolver", 10), (2, "midpoint", "dpmsolver", 20),
        (2, "heun", "exact", 10), (2, "heun", "exact", 20), (3, "midpoint", "dpmsolver", 10),
        (3, "midpoint", "dpmsolver", 20)]


@pytest.mark.parametrize("order, solver_type, coefficients, steps", PEER,
                         ids=[f"{o}-{s}-{n}" for o, s, _, n in PEER])
def test_dpmpp_equals_diffusers_on_the_isotropic_case(order, solver_type, coefficients, steps):
    """Identity basis, DDPM's linear schedule (nidiff's ``linear`` is DDPM's ``alpha_bar`` at t = i / 999),
    the same integer time steps (nidiff's grid ends at t = 0, diffusers' ``final_sigmas_type="sigma_min"``),
    the same noise-predicting model. diffusers lowers the order of the last steps only below 15 steps.
    Its ``alphas_cumprod`` is a float32 ``cumprod`` (relative error up to ~1e-5 after 1000 factors): it
    is replaced by the float64 product rounded to float32, so that the schedules agree to float32
    rounding and what is compared is the solvers. The largest difference measured is 4.6e-5 on outputs
    up to 4.2 (third order, 20 steps), made in the last and longest step, which diffusers computes in
    float32 from differences of float32 log-SNRs; swapping the two coefficient sets changes the
    output by 0.06 to 0.8."""
    diffusers = pytest.importorskip("diffusers")
    d = nidiff.GaussianDiffusion(nidiff.build_basis("identity", shape=(1, 4, 4)), nidiff.build_schedule("linear"))
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(16, 16, generator=g, dtype=torch.float64) / 8

    def model(z, t):  # eps_hat of data N(0, 1) plus a nonlinear part, float32 in and out
        _, sigma = d.alpha_sigma(t[:1].double(), torch.float64)
        flat = z.reshape(z.shape[0], -1).double()
        eps = sigma.reshape(1, 1) * flat + 0.1 * torch.tanh(flat @ weight.T + torch.cos(3 * t.double())[:, None])
        return eps.reshape(z.shape).to(z.dtype)

    timesteps = np.linspace(999, 0, steps + 1).round().astype(np.int64)[:-1]
    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", solver_order=order,
        algorithm_type="dpmsolver++", solver_type=solver_type, lower_order_final=True,
        final_sigmas_type="sigma_min", prediction_type="epsilon",
    )
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    scheduler.alphas_cumprod = torch.exp(torch.cumsum(torch.log1p(-betas), 0)).float()
    scheduler.set_timesteps(timesteps=timesteps.tolist())
    z = torch.randn(8, 1, 4, 4, generator=g)
    theirs = z.clone()
    for step in scheduler.timesteps:
        eps = model(theirs, torch.full((theirs.shape[0],), float(step) / 999.0))
        theirs = scheduler.step(eps, step, theirs).prev_sample
    times = torch.tensor([*(timesteps / 999.0), 0.0], dtype=torch.float64)
    sampler = nidiff.build_sampler("dpmpp", order=order, coefficients=coefficients, lower_order_final=steps < 15)
    ours = sampler(d, model, z.clone(), times)
    torch.testing.assert_close(ours, theirs, rtol=2e-5, atol=2e-5)
