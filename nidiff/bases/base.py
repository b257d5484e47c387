"""The basis contract: an invertible linear map between images and coefficients.

| paper (section 4.2)       | code                      |
| ------------------------- | ------------------------- |
| ``u = P^-1 x``            | ``basis.to_coeffs(x)``    |
| ``x = P u``               | ``basis.from_coeffs(u)``  |
| ``P = V`` orthogonal      | ``basis.orthogonal``      |
| ``lambda`` (eq. 27)       | ``basis.eigenvalues()``   |

Transforms always run in float32 (float64 when given float64) with autocast off, so that a matmul
transform never drops to bf16 under mixed precision. Matrices and eigenvalue tables are
non-persistent buffers: they move with ``.to(device)`` but stay out of checkpoints and the EMA,
except where a basis is fitted from data (PCA), whose fitted state is persistent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

__all__ = ["Basis", "ImageShape", "check_image_shape"]

ImageShape = tuple[int, int, int]  # (C, H, W)


def check_image_shape(shape: object) -> ImageShape:
    """Validate a ``(C, H, W)`` image shape given by a user or a config."""
    try:
        c, h, w = (int(v) for v in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TypeError(f"image shape must be three integers (C, H, W), got {shape!r}") from None
    if min(c, h, w) < 1:
        raise ValueError(f"image shape must be positive (C, H, W), got {(c, h, w)}")
    return (c, h, w)


class Basis(nn.Module, ABC):
    """An invertible linear basis ``u = P^-1 x`` for images of one shape ``(C, H, W)``.

    Subclasses implement ``_to_coeffs``, ``_from_coeffs`` and ``_eigenvalues`` and set
    ``orthogonal``. The public methods check shapes, fix the dtype and disable autocast.
    """

    orthogonal: bool = True

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape: ImageShape = check_image_shape(shape)

    # ---- to implement -------------------------------------------------------------------------
    @abstractmethod
    def _to_coeffs(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, *coeff_shape]`` in ``x.dtype`` (float32 or float64)."""

    @abstractmethod
    def _from_coeffs(self, u: Tensor) -> Tensor:
        """``[B, *coeff_shape] -> [B, C, H, W]`` in ``u.dtype``."""

    @abstractmethod
    def _eigenvalues(self) -> Tensor:
        """Per-coefficient ``lambda >= 0`` in float64, broadcastable to ``coeff_shape``."""

    @property
    def coeff_shape(self) -> tuple[int, ...]:
        """Shape of one sample's coefficients; the image shape unless a basis flattens."""
        return self.shape

    # ---- public API ---------------------------------------------------------------------------
    def to_coeffs(self, x: Tensor) -> Tensor:
        """Image batch ``[B, C, H, W]`` to coefficients ``[B, *coeff_shape]`` (float32/64)."""
        self._check(x, self.shape, "image batch")
        with torch.autocast(x.device.type, enabled=False):
            return self._to_coeffs(_compute_dtype(x))

    def from_coeffs(self, u: Tensor) -> Tensor:
        """Coefficients ``[B, *coeff_shape]`` to an image batch ``[B, C, H, W]`` (float32/64)."""
        self._check(u, self.coeff_shape, "coefficient batch")
        with torch.autocast(u.device.type, enabled=False):
            return self._from_coeffs(_compute_dtype(u))

    def eigenvalues(self) -> Tensor:
        """Per-coefficient eigenvalues ``lambda`` (float64), broadcastable to ``coeff_shape``.

        Blur-like schedules damp coefficient ``k`` by ``exp(-lambda_k * tau_t)`` (eq. 27).
        """
        return self._eigenvalues()

    def extra_repr(self) -> str:
        return f"shape={self.shape}, orthogonal={self.orthogonal}"

    def _check(self, x: Tensor, shape: tuple[int, ...], what: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{what} must be floating point, got {x.dtype}")
        if tuple(x.shape[1:]) != tuple(shape) or x.dim() != len(shape) + 1:
            raise ValueError(
                f"{type(self).__name__} expects a {what} of shape [B, {', '.join(map(str, shape))}], "
                f"got {list(x.shape)}"
            )


def _compute_dtype(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()
