"""Regression: after a short training, no frequency band of the samples blows up.

A tiny denoiser (a two-layer MLP on 3x8x8 synthetic images) trains for 250 steps through the
engine's own loss and optimizer step, then draws 64 samples with 50 ancestral steps. Blurring runs
at the paper's relative strength (``sigma_B,max = 20`` at 32x32 is 5 at 8x8), which holds the high
frequencies at the ``d_min`` floor for most of ``[0, 1]``. Every band of the samples' DCT
coefficients (``max(i, j)`` in [0, 1), [1, 2), [2, 4), [4, 8)) must have its rms within a factor of 2
of the training images'.

This is what the quickstart needs, at a size that runs in seconds. Measured (band rms over the
data's, low to high): ``precond`` 0.97 0.96 0.98 0.87 at ``sigma_B,max = 5`` and 0.97 1.03 1.10 0.92
without blur. The paper's ``eps`` parametrization, same network and budget: 2e4 1e5 6e5 8e6 (and 58
160 250 530 without blur), which ``test_eps_blows_up_on_the_floor`` pins:
``x_hat = (u_t - sigma_t u_eps_hat) / alpha_t`` divides a small network's error by ``alpha_t``
(about 1e-3 on the floor), and the reverse steps carry it into the sample as each band leaves the
floor. ``precond`` bounds the error of ``x_hat`` by each coefficient's data scale
(``nidiff.preconditioning``). Also measured, not asserted: ``v`` 0.88 1.08 1.91 4.14 (the highest
band four times too strong), ``x`` 1.30 1.12 0.46 0.27 (too smooth).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import nidiff
from nidiff.data.synthetic import synthetic_images
from nidiff.parametrization import build_parametrization
from nidiff.sampling import ancestral, uniform_grid
from nidiff.training.step import TrainStep

SIZE = 8
SIGMA_BLUR_MAX = 20.0 * SIZE / 32  # the paper's CIFAR10 blur at this resolution (lambda scales as 1/N^2)
EDGES = (0, 1, 2, 4, SIZE)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


@pytest.fixture(scope="module")
def images() -> Tensor:
    return synthetic_images(1000, SIZE)[0].float() / 127.5 - 1  # [2000, 3, 8, 8] in [-1, 1]


class TinyDenoiser(nn.Module):
    """``net(z [B, 3, 8, 8], t [B])``: a two-layer MLP with a Fourier embedding of ``t``."""

    def __init__(self, dim: int = 3 * SIZE * SIZE, hidden: int = 128) -> None:
        super().__init__()
        self.register_buffer("freq", torch.randn(16, generator=torch.Generator().manual_seed(0)) * 4)
        self.inp, self.mid, self.out = nn.Linear(dim + 32, hidden), nn.Linear(hidden + 32, hidden), nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: Tensor, t: Tensor) -> Tensor:
        emb = torch.cat([torch.sin(t[:, None] * self.freq), torch.cos(t[:, None] * self.freq)], 1)  # [B, 32]
        h = nn.functional.silu(self.inp(torch.cat([z.flatten(1), emb], 1)))
        h = nn.functional.silu(self.mid(torch.cat([h, emb], 1)))
        return self.out(h).reshape(z.shape)


def _bands(u: Tensor) -> Tensor:
    """rms of DCT coefficients ``[B, 3, 8, 8]`` per band of ``max(i, j)``: ``[4]``."""
    k = torch.arange(SIZE)
    band = torch.maximum(k[:, None], k[None, :])
    return torch.stack([u[..., (band >= lo) & (band < hi)].pow(2).mean().sqrt() for lo, hi in zip(EDGES, EDGES[1:])])


def _band_ratios(images: Tensor, parametrization: str, sigma_blur_max: float, steps: int = 250) -> Tensor:
    """Train, sample, and return each band's rms in the samples over its rms in the data: ``[4]``."""
    torch.manual_seed(0)
    basis = nidiff.build_basis("dct", shape=(3, SIZE, SIZE))
    p = build_parametrization(parametrization, basis)
    if hasattr(p, "fit"):
        p.fit(torch.cat([images, images.flip(-1)]))
    d = nidiff.GaussianDiffusion(basis, nidiff.build_schedule("blurring", sigma_blur_max=sigma_blur_max), p)
    net = TinyDenoiser()
    step = TrainStep(net, d, lr=2e-3, warmup_steps=20, ema_decay=0.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        step(images[torch.randint(0, len(images), (64,), generator=g)])
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        x = ancestral(d, net.eval(), d.prior_sample(64, generator=gen), uniform_grid(50), generator=gen)
    return _bands(basis.to_coeffs(x.double())) / _bands(basis.to_coeffs(images.double()))


@pytest.mark.parametrize("sigma_blur_max", [SIGMA_BLUR_MAX, 0.0])
def test_no_band_blows_up(images, sigma_blur_max):
    ratio = _band_ratios(images, "precond", sigma_blur_max)
    assert bool(((ratio > 0.5) & (ratio < 2.0)).all()), f"band rms / data's, low to high: {ratio.tolist()}"


def test_eps_blows_up_on_the_floor(images):
    """The paper's parametrization, same network and budget: the highest band explodes."""
    ratio = _band_ratios(images, "eps", SIGMA_BLUR_MAX)
    assert ratio[-1] > 10.0, f"band rms / data's, low to high: {ratio.tolist()}"
