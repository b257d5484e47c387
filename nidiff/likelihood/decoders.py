"""Decoders ``p(x | z_0)``: the reconstruction term of the variational bound (VDM, Kingma et al. 2021).

| paper / VDM                                               | code                          |
| --------------------------------------------------------- | ----------------------------- |
| ``z_0 = P(alpha_0 u_x + sigma_0 u_eps)``                  | ``q(z_0 | x)``                |
| ``r_k = sigma_0,k / alpha_0,k = exp(-lambda_0,k / 2)``    | ``r``                         |
| ``E_q[-log p(x | z_0)]``, nats per image ``[B]``          | ``Decoder.nll``               |
| bin width of 8-bit data in [-1, 1]: ``2 / 255``           | ``DiscretizedGaussianDecoder``|

Both decoders use no network, as in VDM: the estimate of ``u_x`` is ``u_0 / alpha_0``, whose error
per coefficient is ``r_k u_eps``.

- ``"gaussian"`` (continuous data, a density): ``p(u_x | u_0) = N(u_0 / alpha_0, r^2)`` per
  coefficient. Under ``q`` its negative log-density is ``0.5 log(2 pi) + log r_k + 0.5 u_eps_k^2``,
  whose expectation ``0.5 log(2 pi e) - 0.5 lambda_0,k`` is used exactly (no sampling). The density
  of ``x = P u`` adds ``log |det P|``. This is the decoder for the closed-form Gaussian checks.
- ``"discretized"`` (8-bit images in [-1, 1]): per pixel, the probability that
  ``N(mu_i, s_i^2)`` falls in the pixel's bin ``[x_i - 1/255, x_i + 1/255]``, the outer bins
  extended to infinity, with ``mu = P(u_0 / alpha_0)`` and ``s_i^2 = sum_k P_ik^2 r_k^2`` (the
  pixel variance of ``mu - x``: a factorised decoder that ignores the correlations of a
  non-orthogonal basis). A probability mass, so no ``log |det P|``; one draw of ``z_0`` per call.
"""

from __future__ import annotations

import math
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor
from torch.special import log_ndtr

from nidiff.likelihood.jacobian import basis_matrix, log_abs_det

__all__ = [
    "DECODERS",
    "Decoder",
    "DiscretizedGaussianDecoder",
    "GaussianDecoder",
    "discretized_log_mass",
    "log_bin_mass",
    "resolve_decoder",
]


class Decoder(ABC):
    """``E_{z_0 ~ q(z_0 | x)}[-log p(x | z_0)]`` in nats, estimated or exact."""

    _cache: tuple[weakref.ref, object] | None = None

    @abstractmethod
    def nll(self, diffusion, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``x`` ``[B, C, H, W]`` -> ``[B]`` nats (float64)."""

    def _per_diffusion(self, diffusion, compute: Callable[[], object]) -> object:
        """``compute()`` once per diffusion (a basis matrix is costly): the last result is kept."""
        if self._cache is None or self._cache[0]() is not diffusion:
            self._cache = (weakref.ref(diffusion), compute())
        return self._cache[1]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class GaussianDecoder(Decoder):
    """Continuous density ``N(u_0 / alpha_0, sigma_0^2 / alpha_0^2)`` per coefficient, exact expectation."""

    def nll(self, diffusion, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        logsnr0 = diffusion.logsnr(torch.zeros(1, dtype=torch.float64))  # [1, *lam_shape]
        logsnr0 = logsnr0.expand(1, *diffusion.basis.coeff_shape)
        log_det = self._per_diffusion(diffusion, lambda: log_abs_det(diffusion.basis))
        per_image = (0.5 * math.log(2 * math.pi * math.e) - 0.5 * logsnr0).sum() + log_det
        return per_image.expand(x.shape[0]).to(x.device)


class DiscretizedGaussianDecoder(Decoder):
    """Per-pixel discretised Gaussian over the ``2**bits`` levels of ``[-1, 1]``."""

    def __init__(self, bits: int = 8) -> None:
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"bits must be an integer in [1, 16] (8 for 8-bit images), got {bits!r}")
        self.bits = bits

    def nll(self, diffusion, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if bool(((x < -1.0) | (x > 1.0)).any()):
            raise ValueError(
                f"the discretized decoder needs images scaled to [-1, 1] (got values from "
                f"{x.min().item():.3g} to {x.max().item():.3g}); use decoder='gaussian' for continuous data"
            )
        log_alpha, log_sigma = diffusion.log_alpha_sigma(torch.zeros(1, dtype=torch.float64))
        r = (log_sigma - log_alpha).exp()  # [1, *lam_shape], sigma_0 / alpha_0 per coefficient
        shape = (x.shape[0], *diffusion.basis.coeff_shape)
        where = generator.device if generator is not None else x.device
        u = torch.randn(shape, generator=generator, dtype=torch.float64, device=where)
        noise = diffusion.basis.from_coeffs(r * u.to(x.device))  # mu - x, [B, C, H, W]
        std = self._per_diffusion(diffusion, lambda: _pixel_std(diffusion.basis, r))
        return -discretized_log_mass(x, x + noise, std, self.bits).flatten(1).sum(1)


def _pixel_std(basis, r: Tensor) -> Tensor:
    """``s_i = sqrt(sum_k P_ik^2 r_k^2)``: ``[C, H, W]``, or a scalar where every ``r_k`` is equal
    and the basis orthogonal (its rows of ``P`` are unit vectors)."""
    if basis.orthogonal and bool((r == r.reshape(-1)[0]).all()):
        return r.reshape(-1)[0]
    r2 = (r**2).expand(1, *basis.coeff_shape).reshape(-1)
    return ((basis_matrix(basis).to(r2.device) ** 2) @ r2).sqrt().reshape(basis.shape)


def discretized_log_mass(x: Tensor, mean: Tensor, std: Tensor | float, bits: int = 8) -> Tensor:
    """``log P(x)`` per pixel of ``N(mean, std^2)`` binned to the ``2**bits`` levels of [-1, 1].

    The bin of ``x`` is ``[x - h, x + h]`` with ``h = 1 / (2^bits - 1)``; the lowest and highest bins
    reach to -inf and +inf, so the masses of all levels sum to 1. Shapes broadcast.
    """
    half = 1.0 / (2**bits - 1)  # half the bin width 2 / (2^bits - 1)
    lo = torch.where(x < -1.0 + half, -math.inf, (x - half - mean) / std)
    hi = torch.where(x > 1.0 - half, math.inf, (x + half - mean) / std)
    return log_bin_mass(lo, hi)


def log_bin_mass(lo: Tensor, hi: Tensor) -> Tensor:
    """``log(Phi(hi) - Phi(lo))`` for ``lo < hi`` (either may be infinite), stable in both tails."""
    flip = lo > 0  # use Phi(-lo) - Phi(-hi) where both are in the upper tail
    a, b = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)
    log_b = log_ndtr(b)
    return log_b + torch.log(-torch.expm1(log_ndtr(a) - log_b))


DECODERS: dict[str, type[Decoder]] = {"gaussian": GaussianDecoder, "discretized": DiscretizedGaussianDecoder}


def resolve_decoder(decoder: Decoder | str) -> Decoder:
    """A :class:`Decoder` from an instance or a name in :data:`DECODERS`."""
    if isinstance(decoder, Decoder):
        return decoder
    if isinstance(decoder, str):
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; known: {', '.join(DECODERS)}")
        return DECODERS[decoder]()
    raise TypeError(f"decoder must be a Decoder or one of {', '.join(map(repr, DECODERS))}, got {decoder!r}")
