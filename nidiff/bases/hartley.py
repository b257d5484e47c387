"""The 2-D discrete Hartley transform: a real orthonormal basis aligned with the 2-D DFT's frequencies.

| literature / code                                          | code                       |
| ---------------------------------------------------------- | -------------------------- |
| ``y = F x``, the orthonormal 2-D DFT per channel           | ``torch.fft.fft2(ortho)``  |
| ``u = Re(y) - Im(y)`` (2-D DHT, ``cas(2 pi (k.n) / N)``)   | ``to_coeffs``              |
| ``x = Re(F u) - Im(F u)`` (the DHT is its own inverse)     | ``from_coeffs``            |
| frequency ``k = (k_h, k_w)`` and its mirror ``-k``         | ``partner_index()``        |
| ``lambda_k = omega_h^2 + omega_w^2``                       | ``eigenvalues()``          |

Basis image ``k`` is ``cas(2 pi (k_h m / H + k_w n / W)) / sqrt(HW)`` with ``cas = cos + sin``.
Coefficients ``k`` and ``-k`` (indices taken modulo ``H`` and ``W``) together span exactly the
plane of the complex DFT coefficient ``y_k``: ``u_k = Re y_k - Im y_k`` and
``u_-k = Re y_k + Im y_k``. A diagonal covariance that is equal on ``k`` and ``-k`` is therefore a
proper complex Gaussian per DFT frequency, which the separable ``fourier`` basis (``cas`` along
each axis) does not give: its coefficient ``(k_h, k_w)`` mixes the frequencies ``(k_h, k_w)`` and
``(k_h, -k_w)``. The eigenvalues are those of ``fourier`` (the periodic Laplacian's symbol, in
radians per pixel), so blur schedules mean the same in both.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nidiff.bases.base import Basis
from nidiff.bases.fourier import frequencies
from nidiff.registries import register_basis

__all__ = ["HartleyBasis"]


@register_basis("hartley")
class HartleyBasis(Basis):
    """Orthonormal 2-D discrete Hartley transform per channel (by FFT); coefficients ``[B, C, H, W]``."""

    orthogonal = True

    def _to_coeffs(self, x: Tensor) -> Tensor:
        y = torch.fft.fft2(x, norm="ortho")  # complex64 / complex128 for float32 / float64
        return y.real - y.imag

    def _from_coeffs(self, u: Tensor) -> Tensor:
        return self._to_coeffs(u)  # involutive: cas is symmetric and the transform orthonormal

    def _eigenvalues(self) -> Tensor:
        _, h, w = self.shape
        return (frequencies(h)[:, None] ** 2 + frequencies(w)[None, :] ** 2)[None]  # [1, H, W]

    def partner_index(self) -> Tensor:
        """For each coefficient (flattened ``C, H, W``), the flat index of its mirror ``-k`` in
        the same channel: ``[C*H*W]`` int64. Self-mirrored frequencies (``k = -k``: the mean and
        the Nyquist rows and columns of even sizes) point to themselves."""
        c, h, w = self.shape
        kh = (-torch.arange(h)) % h  # [H]
        kw = (-torch.arange(w)) % w  # [W]
        index = torch.arange(c)[:, None, None] * (h * w) + kh[None, :, None] * w + kw[None, None, :]
        return index.reshape(-1)
