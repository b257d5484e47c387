"""Orthonormal multi-level 2-D Haar wavelet basis (periodization), per channel, in pure torch.

| paper (section 4.2) / wavelets              | code                                   |
| ------------------------------------------- | -------------------------------------- |
| ``V^T x`` (wavelet analysis, ``L`` levels)  | ``to_coeffs`` / ``haar_analysis``      |
| ``V u`` (wavelet synthesis)                 | ``from_coeffs`` / ``haar_synthesis``   |
| ``L``                                       | ``levels``                             |
| ``cA_L``; ``cH_l, cV_l, cD_l``              | bands ``"a"``; ``"da", "ad", "dd"``    |
| ``lambda`` per band (eq. 27)                | ``eigenvalues()``                      |

Layout. Coefficients are packed into ``[C, H, W]`` exactly like
``pywt.coeffs_to_array(pywt.wavedec2(x, "haar", mode="periodization", level=L, axes=(-2, -1)))``:
the approximation ``cA_L`` fills the top-left ``H/2^L x W/2^L`` block; level ``l`` (1 = finest)
owns the three blocks of size ``h x w = H/2^l x W/2^l`` beside the level-``l`` approximation:
``cV_l`` (pywt ``"ad"``: lowpass down the rows, highpass across the columns) top-right at
``[:h, w:2w]``, ``cH_l`` (``"da"``) bottom-left at ``[h:2h, :w]``, ``cD_l`` (``"dd"``) bottom-right
at ``[h:2h, w:2w]``. With ``a, b / c, d`` the pixels of a 2 x 2 block, one level is
``cA = (a+b+c+d)/2``, ``cH = (a+b-c-d)/2``, ``cV = (a-b+c-d)/2``, ``cD = (a-b-c+d)/2``: an
orthonormal 4 x 4 Hadamard map, its own inverse. Haar filters have length 2, so periodization never
wraps; it only requires even sizes at every level: ``H`` and ``W`` divisible by ``2^L``.

Eigenvalues. A wavelet is not a Laplacian eigenfunction, so ``lambda`` is defined as the Rayleigh
quotient of a band's basis function ``v`` (unit norm) under the periodic Laplacian's symbol, in
radians per pixel like the DCT's ``(pi k / N)^2``::

    lambda = sum_k |FFT_ortho(v)_k|^2 * (omega_h^2 + omega_w^2),   omega = 2 pi fftfreq(N)

i.e. the mean squared frequency of ``v``. The basis functions of one band are shifts of each other
by ``2^l`` pixels and the quotient is shift-invariant, so one value per ``(level, orientation)``
band suffices; it is computed at build time in float64 from ``from_coeffs`` of a one-hot. Finer
levels get larger values, so "blur" damps the finest details first; for a square power-of-two image
at the maximum level the approximation's basis function is the constant, with ``lambda = 0``.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch
from torch import Tensor

from nidiff.bases.base import Basis
from nidiff.registries import register_basis

__all__ = ["HaarBasis", "band_slices", "haar_analysis", "haar_max_levels", "haar_synthesis"]

Band = tuple[int, str, slice, slice]  # (level, orientation, rows, cols)


def haar_max_levels(h: int, w: int) -> int:
    """The most levels ``L`` with ``H`` and ``W`` both divisible by ``2^L``."""
    if h < 1 or w < 1:
        raise ValueError(f"image sizes must be positive, got H={h}, W={w}")
    levels = 0
    while h % 2 == 0 and w % 2 == 0:
        h, w, levels = h // 2, w // 2, levels + 1
    return levels


def band_slices(h: int, w: int, levels: int) -> list[Band]:
    """Where each band lives in the packed ``[H, W]`` layout: ``(level, orientation, rows, cols)``.

    The approximation comes first as ``(levels, "a", ...)``, then the details of levels
    ``levels..1`` with orientations ``"ad"`` (cV, top-right), ``"da"`` (cH, bottom-left) and
    ``"dd"`` (cD, bottom-right), the keys pywt uses.
    """
    bands: list[Band] = [(levels, "a", slice(0, h >> levels), slice(0, w >> levels))]
    for level in range(levels, 0, -1):
        bh, bw = h >> level, w >> level
        bands.append((level, "ad", slice(0, bh), slice(bw, 2 * bw)))
        bands.append((level, "da", slice(bh, 2 * bh), slice(0, bw)))
        bands.append((level, "dd", slice(bh, 2 * bh), slice(bw, 2 * bw)))
    return bands


def haar_analysis(x: Tensor, levels: int) -> Tensor:
    """Packed ``levels``-level Haar coefficients of ``x`` (``[..., H, W] -> [..., H, W]``).

    ``H`` and ``W`` must be divisible by ``2^levels`` (checked by :class:`HaarBasis`).
    """
    details: list[tuple[Tensor, Tensor, Tensor]] = []  # finest first; each [..., h, w]
    approx = x
    for _ in range(levels):
        *lead, h, w = approx.shape
        blocks = approx.reshape(*lead, h // 2, 2, w // 2, 2)
        top, bottom = blocks.unbind(-3)  # rows 2i and 2i+1: [..., h/2, w/2, 2]
        s0, s1 = (top + bottom).unbind(-1)  # columns 2j and 2j+1 of the row sums
        d0, d1 = (top - bottom).unbind(-1)  # ... of the row differences
        approx = 0.5 * (s0 + s1)
        details.append((0.5 * (d0 + d1), 0.5 * (s0 - s1), 0.5 * (d0 - d1)))  # cH, cV, cD
    out = approx
    for c_h, c_v, c_d in reversed(details):
        out = torch.cat([torch.cat([out, c_v], dim=-1), torch.cat([c_h, c_d], dim=-1)], dim=-2)
    return out


def haar_synthesis(u: Tensor, levels: int) -> Tensor:
    """Inverse of :func:`haar_analysis`: packed coefficients to images, ``[..., H, W]`` both."""
    h, w = u.shape[-2:]
    approx = u[..., : h >> levels, : w >> levels]
    for level in range(levels, 0, -1):
        bh, bw = h >> level, w >> level
        c_v = u[..., :bh, bw : 2 * bw]
        c_h = u[..., bh : 2 * bh, :bw]
        c_d = u[..., bh : 2 * bh, bw : 2 * bw]
        s0, s1 = approx + c_v, approx - c_v  # row sums at columns 2j, 2j+1
        d0, d1 = c_h + c_d, c_h - c_d  # row differences
        top = 0.5 * torch.stack([s0 + d0, s1 + d1], dim=-1)  # [..., bh, bw, 2]
        bottom = 0.5 * torch.stack([s0 - d0, s1 - d1], dim=-1)
        approx = torch.stack([top, bottom], dim=-3).reshape(*u.shape[:-2], 2 * bh, 2 * bw)
    return approx


@register_basis("haar")
class HaarBasis(Basis):
    """Orthonormal ``levels``-level 2-D Haar wavelets per channel, packed like pywt.

    Args:
        shape: image shape ``(C, H, W)``; ``H`` and ``W`` divisible by ``2^levels``.
        levels: number of decomposition levels ``L >= 1``; ``None`` takes the most the shape
            allows (while both ``H`` and ``W`` stay even).

    Coefficients have the image's shape ``[B, C, H, W]`` (layout in the module docstring);
    ``eigenvalues()`` is ``[1, H, W]`` float64, constant within each band.
    """

    orthogonal = True

    def __init__(self, shape: tuple[int, int, int], levels: int | None = None) -> None:
        super().__init__(shape)
        _, h, w = self.shape
        most = haar_max_levels(h, w)
        if levels is None:
            if most == 0:
                raise ValueError(
                    f"the Haar basis needs H and W divisible by 2 for at least one level, got "
                    f"H={h}, W={w}; use even sizes (for L levels, multiples of 2^L)"
                )
            levels = most
        if not isinstance(levels, Integral) or isinstance(levels, bool):
            raise TypeError(f"levels must be a positive integer or None, got {levels!r}")
        if levels < 1:
            raise ValueError(
                f"levels must be >= 1 (or None for the most the shape allows), got {levels}"
            )
        if levels > most:
            hint = f"use levels <= {most} for this shape, or " if most else "use "
            raise ValueError(
                f"a {levels}-level Haar basis needs H and W divisible by 2^{levels} = {2**levels}, "
                f"got H={h}, W={w}; {hint}sizes that are multiples of {2**levels}"
            )
        self.levels = int(levels)
        self.register_buffer("lam", self._band_eigenvalues(), persistent=False)  # [1, H, W] float64

    def _to_coeffs(self, x: Tensor) -> Tensor:
        return haar_analysis(x, self.levels)  # [B, C, H, W]

    def _from_coeffs(self, u: Tensor) -> Tensor:
        return haar_synthesis(u, self.levels)  # [B, C, H, W]

    def _eigenvalues(self) -> Tensor:
        return self.lam.to(torch.float64)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, levels={self.levels}"

    def _band_eigenvalues(self) -> Tensor:
        """Rayleigh quotient of one basis function per band under ``omega_h^2 + omega_w^2``."""
        _, h, w = self.shape
        bands = band_slices(h, w, self.levels)
        one_hot = torch.zeros(len(bands), h, w, dtype=torch.float64)  # [n_bands, H, W]
        for i, (_, _, rows, cols) in enumerate(bands):
            one_hot[i, rows.start, cols.start] = 1.0
        v = haar_synthesis(one_hot, self.levels)  # unit-norm basis functions
        omega_h = 2 * math.pi * torch.fft.fftfreq(h, dtype=torch.float64)
        omega_w = 2 * math.pi * torch.fft.fftfreq(w, dtype=torch.float64)
        symbol = omega_h[:, None] ** 2 + omega_w[None, :] ** 2  # [H, W]
        power = torch.fft.fft2(v, norm="ortho").abs() ** 2
        quotient = (power * symbol).sum(dim=(-2, -1))  # [n_bands]
        lam = torch.empty(1, h, w, dtype=torch.float64)
        for q, (_, orientation, rows, cols) in zip(quotient.tolist(), bands):
            # a 1 x 1 approximation's basis function is the constant, in the symbol's kernel:
            # 0 exactly, whatever the FFT's round-off
            constant = orientation == "a" and rows.stop == 1 and cols.stop == 1
            lam[:, rows, cols] = 0.0 if constant else q
        return lam
