"""The variational bound on ``-log p(x)`` in bits per dimension, with a log-SNR per coefficient.

| VDM (Kingma et al. 2021) / this library, per coefficient ``k``  | code                     |
| --------------------------------------------------------------- | ------------------------ |
| prior ``KL(q(u_1 | x) || N(0, sigma_1^2)) = 0.5 SNR_k(1) u_x,k^2`` | ``prior``              |
| ``L_inf = -0.5 E_t sum_k SNR_k'(t) (u_x - u_x_hat)_k^2``         | ``diffusion`` (continuous) |
|        ``= -0.5 E_t sum_k lambda_k'(t) (u_eps - u_eps_hat)_k^2`` | (as coded)               |
| ``L_T = sum_i 0.5 sum_k (SNR_k(s_i) - SNR_k(t_i)) (u_x - u_x_hat)_k^2`` | ``diffusion`` (``times``) |
| reconstruction ``E_q[-log p(x | z_0)]``                          | ``decoder``              |
| ``D = C H W``; bits per dimension ``nats / (D log 2)``            | ``bpd``                  |

Per coefficient the process is a scalar Gaussian diffusion, so VDM's bound applies coefficient by
coefficient and sums. It needs no variance-preserving schedule: the KL between ``q(u_s | u_t, x)``
and the ancestral step ``p(u_s | u_t)`` (the same posterior variance, ``x`` replaced by ``x_hat``)
is ``c_x^2 (u_x - u_x_hat)^2 / (2 sigma^2_{t->s})`` and ``c_x^2 / sigma^2_{t->s} =
alpha_s^2 sigma^2_{t|s} / (sigma_t^2 sigma_s^2) = SNR(s) - SNR(t)`` for any ``alpha``, ``sigma``
(eq. 16, 19). Its ``T -> infinity`` limit is ``L_inf``. With ``u_x - u_x_hat = -(sigma_t / alpha_t)
(u_eps - u_eps_hat)`` both are written with the noise error, weighted by ``-lambda_k'(t)`` or
``expm1(lambda_k(s) - lambda_k(t))``: nothing divides by ``alpha_t``.

The latents are coefficients; KL terms do not change under ``x = P u``, so only a density decoder
needs ``log |det P|`` (see ``nidiff.likelihood.decoders``). Clipping plays no part here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nidiff.likelihood.decoders import Decoder, resolve_decoder
from nidiff.likelihood.time_sampling import ContinuousTime, DiscreteTime, paired_stderr, stratified_uniform

__all__ = ["BitsPerDim", "bits_per_dim", "make_time_proposal"]

Model = Callable[[Tensor, Tensor], Tensor]


@dataclass
class BitsPerDim:
    """Per-image results, each ``[B]`` float64 in bits per dimension; ``bpd`` is the sum of the terms."""

    bpd: Tensor        # the Monte Carlo estimate of the bound
    stderr: Tensor     # its standard error over the draws of t and the noise
    prior: Tensor      # KL(q(u_1 | x) || p(u_1)), exact
    diffusion: Tensor  # L_inf, or L_T for a grid
    decoder: Tensor    # E_q[-log p(x | z_0)]


def make_time_proposal(
    diffusion, times: Tensor | None = None, importance: bool = True
) -> ContinuousTime | DiscreteTime:
    """The proposal for ``t``: continuous-time bound for ``times=None``, else the bound of that grid."""
    if times is None:
        return ContinuousTime(diffusion, importance)
    return DiscreteTime(diffusion, times, importance)


@torch.no_grad()
def bits_per_dim(
    diffusion,
    model: Model,
    x: Tensor,
    n_t: int = 64,
    generator: torch.Generator | None = None,
    decoder: Decoder | str = "discretized",
    times: Tensor | None = None,
    importance: bool = True,
    batch_size: int | None = None,
    proposal: ContinuousTime | DiscreteTime | None = None,
    callback: Callable[[int], None] | None = None,
) -> BitsPerDim:
    """The variational bound of each image of ``x`` ``[B, C, H, W]``, by Monte Carlo over ``t``.

    Args:
        diffusion: a :class:`~nidiff.GaussianDiffusion`.
        model: ``model(z_t [M, C, H, W], t [M]) -> [M, C, H, W]``, read through the parametrization.
        x: images, ``[-1, 1]`` for the ``"discretized"`` decoder; float64 runs the engine in float64.
        n_t: draws of ``t`` (and of the noise) per image, even: stratified pairs.
        decoder: ``"discretized"`` (8-bit data), ``"gaussian"`` (continuous density) or a Decoder.
        times: ``None`` for the continuous-time bound ``L_inf``; a grid from 1 to 0 for the bound of
            ancestral sampling on that grid.
        importance: draw ``t`` uniformly in the summary log-SNR (see ``time_sampling``).
        batch_size: rows per model call (default ``B``: one draw for every image per call).
        proposal: a prebuilt proposal (overrides ``times`` and ``importance``).
        callback: called after each model call with its number of rows (draws of ``t``), for progress.
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise TypeError(f"x must be an image batch [B, C, H, W], got {type(x).__name__}")
    decoder = resolve_decoder(decoder)
    proposal = make_time_proposal(diffusion, times, importance) if proposal is None else proposal
    basis, batch, dim = diffusion.basis, x.shape[0], x[0].numel()
    rows = batch if batch_size is None else int(batch_size)
    if rows < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    u_x = basis.to_coeffs(x).double()
    logsnr1 = diffusion.logsnr(torch.ones(1, dtype=torch.float64)).to(x.device)  # [1, *lam_shape]
    prior = 0.5 * (logsnr1.exp() * u_x**2).flatten(1).sum(1)  # [B], exact

    uniforms = stratified_uniform(n_t, batch, generator, x.device).reshape(-1)  # [n_t * B], draw-major
    t_all, s_all, w_all = proposal.sample(uniforms)
    diff = torch.empty(n_t * batch, dtype=torch.float64, device=x.device)
    dec = torch.empty_like(diff)
    for start in range(0, n_t * batch, rows):
        idx = torch.arange(start, min(start + rows, n_t * batch), device=x.device)
        xb, t = x[idx % batch], t_all[idx].to(x.device)
        s = None if s_all is None else s_all[idx].to(x.device)
        z_t, eps = diffusion.diffuse(xb, t, generator=generator)
        u_t, u_eps = basis.to_coeffs(z_t), basis.to_coeffs(eps)
        alpha, sigma = diffusion.alpha_sigma(t, u_t.dtype)
        out = basis.to_coeffs(model(z_t, t.to(z_t.dtype)).to(u_t.dtype))
        err2 = (u_eps - diffusion.parametrization.eps(u_t, out, alpha, sigma)).double() ** 2
        weight = proposal.coefficient_weight(diffusion, t, s).to(x.device)  # [M, *lam_shape]
        diff[idx] = 0.5 * w_all[idx].to(x.device) * (weight * err2).flatten(1).sum(1)
        dec[idx] = decoder.nll(diffusion, xb, generator).to(x.device)
        if callback is not None:
            callback(len(idx))

    total = prior + (diff + dec).reshape(n_t, batch)  # [n_t, B] nats
    scale = 1.0 / (dim * math.log(2.0))
    return BitsPerDim(
        bpd=total.mean(0) * scale,
        stderr=paired_stderr(total) * scale,
        prior=prior * scale,
        diffusion=diff.reshape(n_t, batch).mean(0) * scale,
        decoder=dec.reshape(n_t, batch).mean(0) * scale,
    )
