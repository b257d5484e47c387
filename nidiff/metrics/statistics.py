"""Mean and covariance of feature vectors, accumulated in float64 batch by batch.

| symbol                                | code      |
| ------------------------------------- | --------- |
| ``n``                                 | ``count`` |
| ``mu = (1/n) sum_i f_i``              | ``mean``  |
| ``M2 = sum_i (f_i - mu)(f_i - mu)^T`` | ``_m2``   |
| ``Sigma = M2 / (n - 1)``              | ``cov``   |

The covariance is the unbiased one, as in ``numpy.cov``, pytorch-fid, TTUR and torchmetrics.

Batches are merged with the pairwise update of Chan, Golub & LeVeque (1979),
``mu = mu_a + delta n_b / n``, ``M2 = M2_a + M2_b + delta delta^T n_a n_b / n`` with
``delta = mu_b - mu_a``, which never forms ``sum f f^T - n mu mu^T`` and so loses no digits to
cancellation. The sums live on the device of the first batch, in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["FeatureStatistics", "as_features"]


def as_features(features: Tensor | np.ndarray, name: str = "features") -> Tensor:
    """A float64 ``[N, D]`` tensor from a tensor or array; raises on other shapes, NaN or inf."""
    x = torch.as_tensor(features)
    if x.dim() != 2:
        raise ValueError(f"{name}: expected feature vectors [N, D], got shape {list(x.shape)}")
    x = x.detach().to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contain NaN or infinity")
    return x


class FeatureStatistics:
    """Streaming float64 mean ``[D]`` and covariance ``[D, D]`` of feature vectors.

    ``keep_features=True`` also keeps every batch (float32, on the CPU) for KID, at ``4 N D`` bytes.
    """

    def __init__(self, keep_features: bool = False) -> None:
        self.keep_features = keep_features
        self.count = 0
        self._mean: Tensor | None = None   # [D] float64
        self._m2: Tensor | None = None     # [D, D] float64
        self._kept: list[Tensor] = []

    @classmethod
    def from_features(
        cls, features: Tensor | np.ndarray, keep_features: bool = False
    ) -> FeatureStatistics:
        """Statistics of one ``[N, D]`` matrix."""
        return cls(keep_features).update(features)

    def update(self, features: Tensor | np.ndarray) -> FeatureStatistics:
        """Add a batch ``[B, D]``; returns ``self``."""
        x = as_features(features)
        if self._mean is not None:
            if x.shape[1] != self._mean.shape[0]:
                raise ValueError(
                    f"feature size changed: {self._mean.shape[0]} before, {x.shape[1]} now"
                )
            x = x.to(self._mean.device)
        n_b = x.shape[0]
        if n_b == 0:
            return self
        if self.keep_features:
            self._kept.append(x.float().cpu())
        mean_b = x.mean(0)  # [D]
        centered = x - mean_b
        m2_b = centered.T @ centered  # [D, D]
        if self._mean is None:
            self._mean, self._m2, self.count = mean_b, m2_b, n_b
            return self
        n_a, n = self.count, self.count + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + torch.outer(delta, delta) * (n_a * n_b / n)
        self.count = n
        return self

    def _check(self, least: int) -> None:
        if self.count < least:
            raise ValueError(f"need at least {least} feature vectors, have {self.count}")

    @property
    def mean(self) -> np.ndarray:
        """``mu``, float64 ``[D]``."""
        self._check(1)
        return self._mean.cpu().numpy()

    @property
    def cov(self) -> np.ndarray:
        """``Sigma = M2 / (n - 1)``, float64 ``[D, D]``."""
        self._check(2)
        m2 = self._m2.cpu().numpy()
        return (m2 + m2.T) / (2.0 * (self.count - 1))  # symmetric up to rounding; make it exact

    @property
    def features(self) -> Tensor:
        """Every feature vector seen, float32 ``[N, D]`` on the CPU (``keep_features=True`` only)."""
        if not self.keep_features:
            raise ValueError("features were not kept; create FeatureStatistics(keep_features=True)")
        self._check(1)
        return torch.cat(self._kept)
