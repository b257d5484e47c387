"""FID and KID with the standard Inception network, and reference statistics with their protocol.

Typical use (the paper's protocol: 50,000 samples against the CIFAR-10 training set)::

    extractor = InceptionFeatures().to("cuda")
    protocol = {**extractor.protocol, "dataset": "cifar10", "split": "train"}
    save_reference("cifar10-train.npz", compute_statistics(train_batches, extractor), protocol)
    samples = compute_statistics(sample_batches, extractor)  # 50,000 samples, uint8 or [-1, 1]
    fid = fid_against_reference(samples, "cifar10-train.npz", expect=protocol)
"""

from __future__ import annotations

from nidiff.metrics.fid import (
    compute_statistics,
    fid_against_reference,
    fid_from_features,
    frechet_distance,
)
from nidiff.metrics.inception import (
    InceptionFeatures,
    cache_dir,
    check_weights,
    weights_instructions,
)
from nidiff.metrics.kid import kid_from_features
from nidiff.metrics.reference import (
    ReferenceStatistics,
    check_protocol,
    load_reference,
    save_reference,
)
from nidiff.metrics.resize import tf1_bilinear_resize
from nidiff.metrics.statistics import FeatureStatistics

__all__ = [
    "FeatureStatistics",
    "InceptionFeatures",
    "ReferenceStatistics",
    "cache_dir",
    "check_protocol",
    "check_weights",
    "compute_statistics",
    "fid_against_reference",
    "fid_from_features",
    "frechet_distance",
    "kid_from_features",
    "load_reference",
    "save_reference",
    "tf1_bilinear_resize",
    "weights_instructions",
]
