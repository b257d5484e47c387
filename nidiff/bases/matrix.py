"""A general invertible basis given by its matrix ``P``: the non-orthogonal case of eq. 30.

| paper (section 4.2, eq. 30)                      | code                                    |
| ------------------------------------------------ | --------------------------------------- |
| ``P`` ``[D, D]``, ``D = C*H*W``                  | ``P`` (float32), ``P_64`` (float64)     |
| ``u = P^-1 x`` (flattened)                       | ``to_coeffs``, with ``P_inv``           |
| ``x = P u``                                      | ``from_coeffs``                         |
| pixel noise covariance ``P diag(sigma_t^2) P^T`` | what the engine draws for this basis    |
| ``lambda`` (eq. 27)                              | ``eigenvalues`` argument, default zeros |

``P^-1`` is computed once in float64 (``torch.linalg.inv``) after the condition number is checked,
and both matrices are kept as float32 buffers with float64 copies for float64 inputs.
``orthogonal`` is True only when ``P^T P = I`` to ``1e-6``, so the engine draws pixel noise directly
only where that is valid. Like every fixed basis, the matrices are non-persistent buffers: the
basis is rebuilt from its arguments, not from checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nidiff.bases.base import Basis
from nidiff.registries import register_basis

__all__ = ["MatrixBasis", "ORTHOGONAL_TOL"]

ORTHOGONAL_TOL = 1e-6  # max |P^T P - I| for the basis to count as orthogonal


@register_basis("matrix")
class MatrixBasis(Basis):
    """The basis ``u = P^-1 x`` of any invertible, well-conditioned ``P``; coefficients ``[D]``.

    Args:
        shape: image shape ``(C, H, W)``.
        P: the basis matrix ``[D, D]``, ``D = C*H*W``, as a Tensor or nested list; its columns are
            the basis images (flattened ``C, H, W`` in row-major order).
        eigenvalues: per-coefficient ``lambda >= 0`` ``[D]`` for blur schedules; default zeros.
        max_condition: refuse ``P`` whose 2-norm condition number exceeds this (float32 transforms
            lose about ``log10(cond)`` of their ~7 significant digits).
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        P: Tensor | Sequence,  # noqa: N803 (the paper's symbol)
        eigenvalues: Tensor | Sequence | None = None,
        max_condition: float = 1e8,
    ) -> None:
        super().__init__(shape)
        c, h, w = self.shape
        d = c * h * w
        self.dim = d
        p = _as_float64(P, "P")
        if p.shape != (d, d):
            raise ValueError(
                f"P must be [D, D] with D = C*H*W = {d} for shape {self.shape}, got {list(p.shape)}"
            )
        if not bool(torch.isfinite(p).all()):
            raise ValueError("P has non-finite entries (NaN or inf)")
        cond = float(torch.linalg.cond(p))
        if not cond < float(max_condition):  # also catches inf / nan for a singular P
            raise ValueError(
                f"P is singular or ill-conditioned: condition number {cond:.3g} exceeds "
                f"max_condition = {max_condition:.3g}; pass an invertible, well-conditioned matrix"
            )
        if eigenvalues is None:
            lam = torch.zeros(d, dtype=torch.float64)
        else:
            lam = _as_float64(eigenvalues, "eigenvalues")
        if lam.shape != (d,):
            raise ValueError(f"eigenvalues must have shape [D] = [{d}], got {list(lam.shape)}")
        if not bool(torch.isfinite(lam).all()) or bool((lam < 0).any()):
            raise ValueError("eigenvalues must be finite and >= 0 (blur damps by exp(-lambda tau_t))")
        p_inv = torch.linalg.inv(p)
        eye = torch.eye(d, dtype=torch.float64)
        self.orthogonal = bool((p.T @ p - eye).abs().max() <= ORTHOGONAL_TOL)
        for name, m in (("P", p), ("P_inv", p_inv)):  # [D, D] each
            self.register_buffer(name, m.float(), persistent=False)
            self.register_buffer(name + "_64", m, persistent=False)
        self.register_buffer("lam", lam, persistent=False)  # [D]

    @property
    def coeff_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def _matrices(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        if dtype == torch.float64:
            return self.P_64, self.P_inv_64
        return self.P, self.P_inv

    def _to_coeffs(self, x: Tensor) -> Tensor:
        _, p_inv = self._matrices(x.dtype)
        return x.reshape(x.shape[0], self.dim) @ p_inv.T  # [B, D], u = P^-1 x per sample

    def _from_coeffs(self, u: Tensor) -> Tensor:
        p, _ = self._matrices(u.dtype)
        return (u @ p.T).reshape(u.shape[0], *self.shape)  # [B, C, H, W]

    def _eigenvalues(self) -> Tensor:
        return self.lam.clone()  # [D]


def _as_float64(value: object, name: str) -> Tensor:
    """A user matrix or vector (Tensor or nested list) as a float64 CPU tensor, or a TypeError."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be real, got a tensor of dtype {value.dtype}")
        return value.detach().to("cpu", torch.float64)
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} must be a Tensor or a nested list of numbers, got {type(value).__name__}: {err}"
        ) from None
