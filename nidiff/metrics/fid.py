"""Fréchet Inception Distance (Heusel et al., 2017): torchmetrics accumulates, the distance in float64.

| symbol                                                     | code                         |
| ---------------------------------------------------------- | ---------------------------- |
| ``mu_1, Sigma_1`` (samples), ``mu_2, Sigma_2`` (reference) | ``mu1, sigma1, mu2, sigma2`` |
| ``d^2`` (below)                                            | ``frechet_distance``         |

``d^2 = |mu_1 - mu_2|^2 + tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^(1/2))``.

:class:`FID` is torchmetrics' ``FrechetInceptionDistance`` around nidiff's checked network
(:class:`~nidiff.metrics.SharedFeatures`): torchmetrics keeps the float64 sums of the features,
synchronises them across processes and resets them; a reference file enters its real-side sums
(:mod:`nidiff.metrics.statistics`). Only the distance itself is ours, :func:`frechet_distance` on
the mean and covariance of each side: torchmetrics takes ``sum sqrt(eigvals(Sigma_1 Sigma_2))`` of the
non-symmetric product, which squares the condition number. On well-conditioned covariances the two
agree to ``1e-12`` and better; on singular ones (fewer samples than the 2048 dimensions, as in a
study with 100 samples against 500 reference images) torchmetrics is off by ``3e-8`` to ``3e-7``
relative to an exact low-rank closed form, against ``2e-9`` to ``2e-8`` here, and a set against
itself comes out negative (``-1e-6`` of the trace, against ``1e-14`` here). Small, but the price is
one function on a few ``[D, D]`` matrices (about twice torchmetrics' time on the CPU).

Matrix square root. ``tr (Sigma_1 Sigma_2)^(1/2)`` is the sum of the square roots of the
eigenvalues of ``Sigma_1 Sigma_2``, which are those of ``A = Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2)``
``= B B^T`` with ``B = Sigma_1^(1/2) Sigma_2^(1/2)``: the trace term is the nuclear norm of ``B``,
the sum of its singular values. The two symmetric square roots come from ``eigh`` (eigenvalues
that rounding pushes below zero are clipped), then one SVD. The result is real and finite even for
singular covariances, where ``scipy.linalg.sqrtm(Sigma_1 @ Sigma_2)`` needs the usual ``eps * I``
offset and a retry, and it is better conditioned than the eigenvalues of ``A`` or of
``Sigma_1 Sigma_2`` (an error of ``sqrt(eps) lambda_max`` on each small eigenvalue, against
``eps lambda_max`` here). On well-conditioned covariances it agrees with ``scipy.linalg.sqrtm`` and
with torchmetrics to rounding (tested).

The paper's protocol (Hoogeboom & Salimans, 2023): 50,000 samples against the CIFAR-10 training set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from nidiff.metrics.features import SharedFeatures
from nidiff.metrics.reference import ReferenceStatistics, holds_reference
from nidiff.metrics.statistics import moments_from_sums, sums_from_moments

__all__ = ["FID", "frechet_distance"]


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix, by eigendecomposition."""
    eigenvalues, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """``d^2`` between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``; means ``[D]``, covs ``[D, D]``.

    Computed in float64; raises ``ValueError`` on mismatched shapes or non-finite input.
    """
    mu1, mu2 = (np.asarray(m, dtype=np.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (np.asarray(s, dtype=np.float64) for s in (sigma1, sigma2))
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"expected means [D] and covariances [D, D] of one D, got {mu1.shape}, {sigma1.shape}, "
            f"{mu2.shape}, {sigma2.shape}"
        )
    for name, value in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or infinity")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    tr_sqrt = np.linalg.svd(_psd_sqrt(sigma1) @ _psd_sqrt(sigma2), compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt)


class FID(FrechetInceptionDistance):
    """torchmetrics' FID on ``features`` (e.g. :class:`~nidiff.metrics.InceptionFeatures`), in float64.

    ``update(images, real)`` takes what ``features`` takes (uint8 ``[N, 3, H, W]`` for Inception);
    ``compute()`` returns the float64 :func:`frechet_distance` of the fake (samples) against the
    real (reference) side. ``reset()`` keeps the real side unless ``reset_real_features=True``.
    The state starts on the device of ``features``. Give FID and :class:`~nidiff.metrics.KID` one :class:`~nidiff.metrics.SharedFeatures` to run the
    network once per batch for both. Other keyword arguments go to torchmetrics' ``Metric``.
    """

    def __init__(
        self,
        features: nn.Module,                # images -> [N, D]; wrapped in SharedFeatures unless one
        reset_real_features: bool = False,  # reset() also clears the real side
        **kwargs: Any,
    ) -> None:
        shared = features if isinstance(features, SharedFeatures) else SharedFeatures(features)
        super().__init__(feature=shared, reset_real_features=reset_real_features, **kwargs)
        self.to(shared.device)  # the state where the features are

    def set_reference(self, reference: ReferenceStatistics, count: int | None = None) -> None:
        """Make ``reference`` (``mu``, ``sigma`` of ``count`` images) the real side.

        ``count`` defaults to ``reference.count``, the file's ``num_images``; it weighs the reference
        against real images added later, not the distance. In a distributed run only the first
        process holds it, as the synchronised sums then hold it once.
        """
        n = reference.count if count is None else count
        if n is None or n < 2:
            raise ValueError(
                f"the reference's image count must be known and >= 2, got {n!r}: a file without "
                f"num_images (pytorch-fid, TTUR) needs count=<images it was computed from>"
            )
        d = self.real_features_sum.shape[0]
        if reference.mu.shape != (d,) or reference.sigma.shape != (d, d):
            raise ValueError(
                f"reference statistics of shape {reference.mu.shape}, {reference.sigma.shape} for "
                f"features of size {d}"
            )
        s, big_s = sums_from_moments(reference.mu, reference.sigma, n)
        if not holds_reference(self.process_group):
            s, big_s, n = torch.zeros_like(s), torch.zeros_like(big_s), 0
        self.real_features_sum = s.to(self.device)
        self.real_features_cov_sum = big_s.to(self.device)
        self.real_features_num_samples = torch.tensor(n, dtype=torch.long, device=self.device)

    def statistics(self, real: bool = True) -> ReferenceStatistics:
        """Mean, covariance and count of one side (all processes'), as a reference file holds them."""
        with self.sync_context():
            return self._statistics(real)

    def compute(self) -> Tensor:
        """The float64 FID of the fake side against the real side (a scalar tensor)."""
        real, fake = self._statistics(True), self._statistics(False)
        return torch.tensor(frechet_distance(fake.mu, fake.sigma, real.mu, real.sigma), dtype=torch.float64)

    def _statistics(self, real: bool) -> ReferenceStatistics:
        side = "real" if real else "fake"
        n = int(getattr(self, f"{side}_features_num_samples"))
        if n < 2:
            raise ValueError(f"FID needs at least 2 {side} images, has {n}")
        mu, sigma = moments_from_sums(getattr(self, f"{side}_features_sum"),
                                      getattr(self, f"{side}_features_cov_sum"), n)
        return ReferenceStatistics(mu=mu, sigma=sigma, count=n)
