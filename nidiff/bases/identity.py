"""The identity basis ``P = I``: standard (isotropic) DDPM."""

from __future__ import annotations

import torch
from torch import Tensor

from nidiff.bases.base import Basis
from nidiff.registries import register_basis

__all__ = ["IdentityBasis"]


@register_basis("identity")
class IdentityBasis(Basis):
    """Pixels are the coefficients. Every eigenvalue is 0, so blur schedules leave it unblurred."""

    orthogonal = True

    def _to_coeffs(self, x: Tensor) -> Tensor:
        return x

    def _from_coeffs(self, u: Tensor) -> Tensor:
        return u

    def _eigenvalues(self) -> Tensor:
        return torch.zeros(1, 1, 1, dtype=torch.float64)
