"""Orthonormal 2-D DCT-II per channel, the basis of heat dissipation and blurring diffusion.

| paper (appendix A)                        | code                         |
| ----------------------------------------- | ---------------------------- |
| ``V^T x`` (DCT)                           | ``to_coeffs``                |
| ``V u`` (IDCT)                            | ``from_coeffs``              |
| ``f_k = pi * k / N``                      | ``frequencies(N)``           |
| ``lambda_ij = f_i^2 + f_j^2``             | ``eigenvalues()``            |

The transform is two matrix products with precomputed orthonormal DCT-II matrices,
``u = D_H x D_W^T``: on ``[128, 3, 32, 32]`` that is several times faster than an FFT-based DCT,
and exact to float32 rounding. Each axis has its own size, so non-square images work.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nidiff.bases.base import Basis
from nidiff.registries import register_basis

__all__ = ["DCTBasis", "dct_matrix", "frequencies"]


def dct_matrix(n: int) -> Tensor:
    """The orthonormal DCT-II matrix ``D`` (float64, ``[n, n]``): ``D @ v`` is ``dct(v, norm="ortho")``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def frequencies(n: int) -> Tensor:
    """``f_k = pi * k / n`` for ``k = 0..n-1`` (float64): the DCT's frequencies along one axis."""
    return math.pi * torch.arange(n, dtype=torch.float64) / n


@register_basis("dct")
class DCTBasis(Basis):
    """Orthonormal 2-D DCT-II applied to each channel; eigenvalues ``(pi i/H)^2 + (pi j/W)^2``."""

    orthogonal = True

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__(shape)
        _, h, w = self.shape
        for name, n in (("d_h", h), ("d_w", w)):  # [H, H], [W, W]; float64 for float64 inputs
            self.register_buffer(name, dct_matrix(n).float(), persistent=False)
            self.register_buffer(name + "_64", dct_matrix(n), persistent=False)

    def _matrices(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        if dtype == torch.float64:
            return self.d_h_64, self.d_w_64
        return self.d_h, self.d_w

    def _to_coeffs(self, x: Tensor) -> Tensor:
        d_h, d_w = self._matrices(x.dtype)
        return d_h @ x @ d_w.T  # [B, C, H, W]

    def _from_coeffs(self, u: Tensor) -> Tensor:
        d_h, d_w = self._matrices(u.dtype)
        return d_h.T @ u @ d_w

    def _eigenvalues(self) -> Tensor:
        _, h, w = self.shape
        return (frequencies(h)[:, None] ** 2 + frequencies(w)[None, :] ** 2)[None]  # [1, H, W]
