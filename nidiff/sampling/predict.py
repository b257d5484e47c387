"""The network's prediction in coefficient space, with optional clipping: shared by every sampler.

| paper (eq. 21-22)                                    | code                  |
| ---------------------------------------------------- | --------------------- |
| ``u_eps_hat``                                        | ``Prediction.eps``    |
| ``alpha_t u_x_hat = u_t - sigma_t u_eps_hat``        | ``Prediction.signal`` |
| ``u_x_hat`` clipped in pixel space, ``u_eps_hat`` recomputed | ``x_clip``    |

Samplers need ``u_eps_hat`` and ``alpha_t u_x_hat`` (never ``u_x_hat`` itself): every update is
``(alpha_s / alpha_t) * signal + (...) * eps`` with the ratio formed in the log domain, so it stays
finite where ``alpha_t`` underflows (heat dissipation at high frequencies). Without clipping the
parametrization forms the signal (``Parametrization.signal``) without dividing: ``u_t - sigma_t
u_eps_hat`` from a noise prediction, ``alpha_t u_x_hat`` from an ``x`` or ``v`` one (the difference
would cancel to rounding error where ``alpha_t << sigma_t``). With clipping, ``x_hat`` is formed in pixel
space (this divides by ``alpha_t``), clipped, and ``u_eps_hat = (u_t - alpha_t u_x_hat) / sigma_t``
is recomputed from it, so that the pair stays consistent with ``u_t``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from nidiff.sampling.clipping import XClip

__all__ = ["Prediction", "predict"]

Model = nn.Module | Callable[[Tensor, Tensor], Tensor]


class Prediction(NamedTuple):
    """``eps``: ``u_eps_hat``; ``signal``: ``alpha_t u_x_hat``; both ``[B, *coeff_shape]``."""

    eps: Tensor
    signal: Tensor


def predict(diffusion, model: Model, u: Tensor, t: Tensor, x_clip: XClip | None = None) -> Prediction:
    """Run ``model`` on the state ``u`` ``[B, *coeff_shape]`` at one shared time ``t`` (a float64 scalar).

    The model sees pixels, ``model(P u [B, C, H, W], t [B]) -> [B, C, H, W]``, and its output is
    read through ``diffusion.parametrization``.
    """
    basis, p = diffusion.basis, diffusion.parametrization
    t1 = torch.as_tensor(t, dtype=torch.float64, device=u.device).reshape(1)
    z = basis.from_coeffs(u)
    out = basis.to_coeffs(model(z, t1.to(z.dtype).expand(u.shape[0])).to(u.dtype))
    alpha, sigma = diffusion.alpha_sigma(t1, u.dtype)  # [1, *lam_shape]
    if x_clip is None:  # the signal from the parametrization: no cancellation where alpha_t << sigma_t
        return Prediction(p.eps(u, out, alpha, sigma), p.signal(u, out, alpha, sigma))
    x_hat = x_clip(basis.from_coeffs(p.x(u, out, alpha, sigma)))
    signal = alpha * basis.to_coeffs(x_hat)
    return Prediction((u - signal) / sigma, signal)
