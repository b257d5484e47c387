"""Property-based tests of the engine over bases, schedules, shapes, extreme times and dtypes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nidiff
from tests.conftest import make_basis

BASES = ["identity", "dct", "fourier", "haar", "pca", "pca_separable", "matrix"]
SCHEDULES = {
    "cosine": {},
    "linear": {},
    "blurring": {"sigma_blur_max": 20.0},
    "blurring_sin": {"sigma_blur_max": 5.0, "blur_shape": "sin"},
    "ihdm": {},
}
EDGE_TIMES = [0.0, 1e-7, 1e-6, 1e-3, 0.5, 1 - 1e-3, 1 - 1e-6, 1 - 1e-7, 1.0]
times = st.one_of(st.sampled_from(EDGE_TIMES), st.floats(0.0, 1.0, allow_nan=False))
shapes = st.tuples(st.integers(1, 3), st.sampled_from([2, 4, 8]), st.sampled_from([2, 4, 8]))
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_cache: dict = {}


def diffusion(basis: str, schedule: str, shape: tuple[int, int, int]) -> nidiff.GaussianDiffusion:
    key = (basis, schedule, shape)
    if key not in _cache:
        name = "blurring" if schedule.startswith("blurring") else schedule
        _cache[key] = nidiff.GaussianDiffusion(make_basis(basis, shape), nidiff.build_schedule(name, **SCHEDULES[schedule]))
    return _cache[key]


@PROPS
@given(basis=st.sampled_from(BASES), schedule=st.sampled_from(list(SCHEDULES)), shape=shapes, t=times, s_frac=times)
def test_posterior_is_finite_and_variances_nonnegative(basis, schedule, shape, t, s_frac):
    d = diffusion(basis, schedule, shape)
    s = t * s_frac
    c_t, c_x, c_e, var = d.reverse_coefficients(torch.tensor([t]), torch.tensor([s]))
    for v in (c_t, c_x, var):
        assert bool(torch.isfinite(v).all())
    assert bool((var >= 0).all())
    if s < t and d.logsnr(torch.tensor([t])).max() < d.logsnr(torch.tensor([s])).min():
        assert bool((var > 0).all())  # a strict decrease of every SNR gives a proper posterior
    alpha_ts, sigma2_ts = d.transition(torch.tensor([t]), torch.tensor([s]))
    assert bool(torch.isfinite(alpha_ts).all()) and bool((sigma2_ts >= 0).all())


@PROPS
@given(basis=st.sampled_from(BASES), schedule=st.sampled_from(list(SCHEDULES)), shape=shapes, t=times,
       dtype=st.sampled_from([torch.float32, torch.bfloat16]))
def test_diffuse_is_finite_in_float32_and_bf16(basis, schedule, shape, t, dtype):
    d = diffusion(basis, schedule, shape)
    x = (torch.rand(3, *shape) * 2 - 1).to(dtype)
    z, eps = d.diffuse(x, torch.full((3,), t))
    assert z.dtype == torch.float32 and eps.dtype == torch.float32
    assert bool(torch.isfinite(z).all())
    loss = d.loss(lambda z_t, tt: torch.zeros_like(z_t), x, t=torch.full((3,), t))
    assert loss.shape == (3,) and bool(torch.isfinite(loss).all())


@PROPS
@given(basis=st.sampled_from(BASES), shape=shapes, dtype=st.sampled_from([torch.float32, torch.bfloat16]))
def test_round_trip_within_float32_tolerance(basis, shape, dtype):
    b = make_basis(basis, shape)
    x = (torch.randn(2, *shape) * 3).to(dtype)
    back = b.from_coeffs(b.to_coeffs(x))
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, x.float(), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_alpha_sigma_at_the_ends(schedule):
    d = diffusion("dct", schedule, (3, 8, 8))
    alpha, sigma = d.alpha_sigma(torch.tensor(EDGE_TIMES))
    assert bool(torch.isfinite(alpha).all()) and bool(torch.isfinite(sigma).all())
    assert bool((sigma > 0).all()) and bool((alpha >= 0).all())
