"""Kernel Inception Distance (Bińkowski et al., 2018): unbiased MMD^2, cubic polynomial kernel.

| symbol                                                   | code                         |
| -------------------------------------------------------- | ---------------------------- |
| ``k(x, y) = (gamma x.y + coef)^degree``, ``gamma = 1/D`` | ``polynomial_kernel``        |
| ``MMD^2_u`` (below)                                      | ``mmd2_unbiased``            |
| ``m`` (subset size), number of subsets                   | ``subset_size``, ``subsets`` |

``MMD^2_u = sum_{i!=j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m-1)) - 2 sum_{i,j} k(x_i, y_j) / m^2``.

KID is the mean of ``MMD^2_u`` over ``subsets`` random subsets of ``subset_size`` vectors drawn
without replacement from each set (defaults 100 x 1000, as in torch-fidelity and torchmetrics);
the spread is the population standard deviation over subsets (``ddof=0``, as there). Subsets
come from a ``torch.Generator`` seeded with ``seed``: per subset, a permutation of the first set,
then of the second, the order torchmetrics draws them in, so with the global seed set to the same
value torchmetrics picks the same subsets. Everything is float64, on the features' device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from nidiff.metrics.statistics import as_features

__all__ = ["kid_from_features", "mmd2_unbiased", "polynomial_kernel"]


def polynomial_kernel(
    x: Tensor, y: Tensor, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> Tensor:
    """``k(x_i, y_j)`` for ``x [M, D]``, ``y [N, D]``: ``[M, N]``; ``gamma=None`` is ``1 / D``."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef) ** degree


def mmd2_unbiased(k_xx: Tensor, k_xy: Tensor, k_yy: Tensor) -> Tensor:
    """Unbiased ``MMD^2`` (a scalar) from the ``[m, m]`` kernel matrices."""
    m = k_xx.shape[0]
    off_diagonal = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    within = off_diagonal / (m * (m - 1))
    return within - 2.0 * k_xy.sum() / m**2


def kid_from_features(
    features1: Tensor | np.ndarray,  # [N1, D], e.g. the reference (real) features
    features2: Tensor | np.ndarray,  # [N2, D], e.g. the samples' features
    subsets: int = 100,              # number of random subsets
    subset_size: int = 1000,         # vectors per subset, from each set
    degree: int = 3,                 # kernel degree
    gamma: float | None = None,      # kernel scale; None: 1 / D
    coef: float = 1.0,               # kernel offset
    seed: int = 0,                   # seeds the subset draws
) -> tuple[float, float]:
    """KID ``(mean, std)`` over subsets between two sets of feature vectors."""
    x = as_features(features1, "features1")
    y = as_features(features2, "features2").to(x.device)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} and {y.shape[1]}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    if subset_size > min(len(x), len(y)):
        raise ValueError(
            f"subset_size={subset_size} exceeds the smaller set ({len(x)} and {len(y)} vectors); "
            f"pass a smaller subset_size or more features"
        )
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        xs = x[torch.randperm(len(x), generator=generator)[:subset_size].to(x.device)]  # [m, D]
        ys = y[torch.randperm(len(y), generator=generator)[:subset_size].to(y.device)]  # [m, D]
        k_xx = polynomial_kernel(xs, xs, degree, gamma, coef)
        k_yy = polynomial_kernel(ys, ys, degree, gamma, coef)
        k_xy = polynomial_kernel(xs, ys, degree, gamma, coef)
        values.append(mmd2_unbiased(k_xx, k_xy, k_yy))
    kid = torch.stack(values)
    return float(kid.mean()), float(kid.std(correction=0))
