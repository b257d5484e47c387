"""Real orthonormal Fourier basis: the separable 2-D discrete Hartley transform, per channel.

| paper (section 4.2, appendix A)           | code                          |
| ----------------------------------------- | ----------------------------- |
| ``V^T x`` (real Fourier transform)        | ``to_coeffs``                 |
| ``V u``                                   | ``from_coeffs``               |
| ``V`` along one axis, ``cas(2 pi k n/N)`` | ``hartley_matrix(N)``         |
| ``f_k = 2 pi min(k, N - k) / N``          | ``frequencies(N)``            |
| ``lambda_ij = f_i^2 + f_j^2``             | ``eigenvalues()``             |

The discrete Hartley transform is the real counterpart of the DFT: with
``cas(a) = cos(a) + sin(a)``, the matrix ``Hm[k, n] = cas(2 pi k n / N) / sqrt(N)`` is real,
symmetric and orthonormal (indeed an involution, ``Hm @ Hm = I``), so the coefficients of a real
image are real and the inverse is the same matrix. The transform is two matrix products with
precomputed matrices, ``u = Hm_H x Hm_W^T``, exactly like the DCT basis; each axis has its own size.

Why these are Laplacian eigenfunctions. On the periodic domain the complex exponentials
``exp(i (a k_y y + b k_x x))`` are the eigenfunctions of the Laplacian, with eigenvalue
``(2 pi k_y / H)^2 + (2 pi k_x / W)^2``. A separable basis image
``cas(2 pi k y / H) cas(2 pi l x / W)`` expands into ``cos cos + cos sin + sin cos + sin sin``,
which lies in the span of the four modes ``(+-k, +-l)``. Those four share ``|k_y|`` and ``|k_x|``
and so the same eigenvalue: their span is one eigenspace, and every vector in it, the cas * cas
image included, is an eigenfunction. On the grid, wave number ``k`` aliases ``k - N``; the
continuous (band-limited) interpretation takes the lowest one, ``min(k, N - k)``, which is what
``omega = 2 pi fftfreq(N)`` gives. The scale, radians per pixel, is the DCT basis's: its
``(pi k / N)^2`` and our ``(2 pi min(k, N - k) / N)^2`` both reach ``pi^2`` at the Nyquist
frequency.
The constant image (``k = l = 0``) has eigenvalue 0, so blur keeps the mean.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nidiff.bases.base import Basis
from nidiff.registries import register_basis

__all__ = ["FourierBasis", "hartley_matrix", "frequencies"]


def hartley_matrix(n: int) -> Tensor:
    """The orthonormal DHT matrix ``Hm[k, m] = cas(2 pi k m / n) / sqrt(n)`` (float64, ``[n, n]``).

    ``Hm @ v`` equals ``(Re - Im)(fft(v, norm="ortho"))``. The phase ``k m`` is reduced modulo
    ``n`` in integers first, so the angle stays below ``2 pi`` and accurate for large ``n``.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the Hartley matrix needs a positive integer size, got {n!r}")
    k = torch.arange(n, dtype=torch.int64)
    phase = 2 * math.pi * ((k[:, None] * k[None, :]) % n).to(torch.float64) / n  # [n, n]
    return (torch.cos(phase) + torch.sin(phase)) / math.sqrt(n)


def frequencies(n: int) -> Tensor:
    """``f_k = 2 pi min(k, n - k) / n`` for ``k = 0..n-1`` (float64), i.e. ``|2 pi fftfreq(n)|``."""
    k = torch.arange(n, dtype=torch.float64)
    return 2 * math.pi * torch.minimum(k, n - k) / n


@register_basis("fourier")
class FourierBasis(Basis):
    """Separable orthonormal 2-D Hartley transform per channel; eigenvalues ``f_i^2 + f_j^2``.

    Args:
        shape: image shape ``(C, H, W)``; any ``H, W >= 1``.

    Coefficients have the image's shape ``[B, C, H, W]``; coefficient ``(i, j)`` carries the wave
    numbers ``(i, j)`` (``(H - i, W - j)`` alias the same frequencies).
    """

    orthogonal = True

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__(shape)
        _, h, w = self.shape
        for name, n in (("hm_h", h), ("hm_w", w)):  # [H, H], [W, W]; float64 for float64 inputs
            self.register_buffer(name, hartley_matrix(n).float(), persistent=False)
            self.register_buffer(name + "_64", hartley_matrix(n), persistent=False)

    def _matrices(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        if dtype == torch.float64:
            return self.hm_h_64, self.hm_w_64
        return self.hm_h, self.hm_w

    def _to_coeffs(self, x: Tensor) -> Tensor:
        hm_h, hm_w = self._matrices(x.dtype)
        return hm_h @ x @ hm_w.T  # [B, C, H, W]

    def _from_coeffs(self, u: Tensor) -> Tensor:
        # the matrices are symmetric and orthonormal, so the inverse is the transpose
        hm_h, hm_w = self._matrices(u.dtype)
        return hm_h.T @ u @ hm_w  # [B, C, H, W]

    def _eigenvalues(self) -> Tensor:
        _, h, w = self.shape
        return (frequencies(h)[:, None] ** 2 + frequencies(w)[None, :] ** 2)[None]  # [1, H, W]
