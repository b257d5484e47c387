"""The change of variables between pixels and coefficients: ``x = P u``.

| paper (section 4.2)                   | code                |
| ------------------------------------- | ------------------- |
| ``P`` ``[D, D]`` (columns: basis images) | ``basis_matrix`` |
| ``log |det P|``                       | ``log_abs_det``     |
| ``-log p(x) = -log p(u) + log |det P|`` | used by density decoders |

A basis does not have to expose ``P``: it is built column by column from ``from_coeffs`` on unit
coefficient vectors, in float64. ``log |det P| = 0`` for an orthogonal basis (``P^T P = I``); a
basis may provide a cheaper ``log_abs_det()`` method of its own, which is then used.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nidiff.bases.base import Basis

__all__ = ["basis_matrix", "log_abs_det", "MAX_DENSE_DIM"]

MAX_DENSE_DIM = 8192  # a dense float64 P of this size is 512 MiB
CHUNK = 512  # unit vectors transformed per call


def basis_matrix(basis: Basis) -> Tensor:
    """``P`` ``[D, D]`` in float64 with ``x.flatten() = P @ u.flatten()``, ``D = C*H*W``."""
    d = math.prod(basis.coeff_shape)
    if d > MAX_DENSE_DIM:
        raise ValueError(
            f"{type(basis).__name__} has {d} coefficients; a dense P is limited to {MAX_DENSE_DIM}. "
            f"Give the basis a log_abs_det() method, or use an orthogonal basis"
        )
    device = next((b.device for b in basis.buffers()), torch.device("cpu"))
    columns = []
    for start in range(0, d, CHUNK):
        eye = torch.eye(d, dtype=torch.float64, device=device)[start : start + CHUNK]
        columns.append(basis.from_coeffs(eye.reshape(-1, *basis.coeff_shape)).reshape(eye.shape[0], -1))
    return torch.cat(columns).T  # [D, D]


def log_abs_det(basis: Basis) -> float:
    """``log |det P|`` of the basis: 0 for an orthogonal one."""
    if basis.orthogonal:
        return 0.0
    own = getattr(basis, "log_abs_det", None)
    if callable(own):
        return float(own())
    return float(torch.linalg.slogdet(basis_matrix(basis))[1])
