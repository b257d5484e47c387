"""Mean and covariance of feature vectors as the float64 sums torchmetrics' FID accumulates.

| symbol                                      | code (torchmetrics state)       |
| ------------------------------------------- | ------------------------------- |
| ``n``                                       | ``real_features_num_samples``   |
| ``s = sum_i f_i``                           | ``real_features_sum``           |
| ``S = sum_i f_i f_i^T``                     | ``real_features_cov_sum``       |
| ``mu = s / n``                              | ``mu``                          |
| ``Sigma = (S - n mu mu^T) / (n - 1)``       | ``sigma``                       |

(``fake_features_*`` likewise for the samples.) The covariance is the unbiased one, as in
``numpy.cov``, pytorch-fid, TTUR and torchmetrics. A reference file's ``(mu, sigma, n)`` becomes the
sums ``s = n mu``, ``S = (n - 1) Sigma + n mu mu^T``, from which the formulas above give ``mu`` and
``Sigma`` back to rounding. Forming ``S - n mu mu^T`` loses about ``log10(|mu_j|^2 / Sigma_jj)``
digits per entry to cancellation: well under one digit for Inception pool_3 features in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["as_features", "moments_from_sums", "sums_from_moments"]


def as_features(features: Tensor | np.ndarray, name: str = "features") -> Tensor:
    """A float64 ``[N, D]`` tensor from a tensor or array; raises on other shapes, NaN or inf."""
    x = torch.as_tensor(features)
    if x.dim() != 2:
        raise ValueError(f"{name}: expected feature vectors [N, D], got shape {list(x.shape)}")
    x = x.detach().to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contain NaN or infinity")
    return x


def sums_from_moments(mu: np.ndarray, sigma: np.ndarray, n: int) -> tuple[Tensor, Tensor]:
    """``(s [D], S [D, D])``, float64: the sums of ``n`` vectors with mean ``mu`` and covariance ``sigma``."""
    mu_t = torch.as_tensor(np.asarray(mu, dtype=np.float64))
    sigma_t = torch.as_tensor(np.asarray(sigma, dtype=np.float64))
    return n * mu_t, (n - 1) * sigma_t + n * torch.outer(mu_t, mu_t)


def moments_from_sums(s: Tensor, big_s: Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mu [D], Sigma [D, D])``, float64 on the CPU, from the sums of ``n >= 2`` vectors."""
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, have {n}")
    s, big_s = s.detach().double().cpu(), big_s.detach().double().cpu()
    mu = s / n
    sigma = (big_s - n * torch.outer(mu, mu)) / (n - 1)
    sigma = (sigma + sigma.T) / 2  # symmetric up to rounding; make it exact
    return mu.numpy(), sigma.numpy()
