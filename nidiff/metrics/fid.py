"""Fréchet Inception Distance (Heusel et al., 2017), in float64.

| symbol                                                     | code                         |
| ---------------------------------------------------------- | ---------------------------- |
| ``mu_1, Sigma_1`` (samples), ``mu_2, Sigma_2`` (reference) | ``mu1, sigma1, mu2, sigma2`` |
| ``d^2`` (below)                                            | ``frechet_distance``         |

``d^2 = |mu_1 - mu_2|^2 + tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^(1/2))``.

Matrix square root. ``tr (Sigma_1 Sigma_2)^(1/2)`` is the sum of the square roots of the
eigenvalues of ``Sigma_1 Sigma_2``, which are those of ``A = Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2)``
``= B B^T`` with ``B = Sigma_1^(1/2) Sigma_2^(1/2)``: the trace term is the nuclear norm of ``B``,
the sum of its singular values. The two symmetric square roots come from ``eigh`` (eigenvalues
that rounding pushes below zero are clipped), then one SVD. The result is real and finite even for
singular covariances (fewer samples than dimensions), where ``scipy.linalg.sqrtm(Sigma_1 @
Sigma_2)`` needs the usual ``eps * I`` offset and a retry, and it is better conditioned than the
eigenvalues of ``A`` or of ``Sigma_1 Sigma_2`` (which square the condition number: an error of
``sqrt(eps) lambda_max`` on each small eigenvalue, against ``eps lambda_max`` here). On
well-conditioned covariances it agrees with ``scipy.linalg.sqrtm`` to rounding (tested).

The paper's protocol (Hoogeboom & Salimans, 2023): 50,000 samples against the CIFAR-10 training set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from nidiff.metrics.reference import load_reference
from nidiff.metrics.statistics import FeatureStatistics

__all__ = ["compute_statistics", "fid_against_reference", "fid_from_features", "frechet_distance"]


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


def _stats(x: Tensor | np.ndarray | FeatureStatistics) -> FeatureStatistics:
    return x if isinstance(x, FeatureStatistics) else FeatureStatistics.from_features(x)


def fid_from_features(
    features1: Tensor | np.ndarray | FeatureStatistics,  # [N1, D] or accumulated statistics
    features2: Tensor | np.ndarray | FeatureStatistics,  # [N2, D] or accumulated statistics
) -> float:
    """FID between two sets of feature vectors (or their :class:`FeatureStatistics`)."""
    s1, s2 = _stats(features1), _stats(features2)
    return frechet_distance(s1.mean, s1.cov, s2.mean, s2.cov)


def fid_against_reference(
    features: Tensor | np.ndarray | FeatureStatistics,  # [N, D] or accumulated statistics
    ref_npz: str | os.PathLike,                          # written by save_reference
    expect: Mapping[str, object] | None = None,          # protocol fields the reference must have
) -> float:
    """FID of ``features`` against reference statistics; ``expect`` is checked against the file.

    Pass ``expect={**extractor.protocol, "dataset": "cifar10", "split": "train"}`` to make sure
    the reference was computed with the same network, weights and resize on the intended data.
    """
    ref = load_reference(ref_npz, expect)
    s = _stats(features)
    return frechet_distance(s.mean, s.cov, ref.mu, ref.sigma)


def compute_statistics(
    images: Iterable[Tensor | tuple | list],  # batches [B, 3, H, W]; (images, labels) pairs too
    extractor: nn.Module,                     # e.g. InceptionFeatures: images -> [B, D]
    keep_features: bool = False,              # keep the features for KID
    total: int | None = None,                 # number of batches, for the progress bar
    progress: bool = True,                    # show a tqdm progress bar
    desc: str = "features",
) -> FeatureStatistics:
    """Run ``extractor`` over batches of images and accumulate float64 feature statistics.

    A batch may be a tensor or a sequence whose first item is the images (a DataLoader's
    ``(images, labels)``). The statistics stay on the extractor's output device.
    """
    from tqdm.auto import tqdm

    stats = FeatureStatistics(keep_features)
    if total is None and hasattr(images, "__len__"):
        total = len(images)
    with torch.no_grad():
        for batch in tqdm(images, total=total, desc=desc, unit="batch", disable=not progress):
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            stats.update(extractor(batch))
    return stats
