"""FID and KID on torchmetrics with the standard Inception network, and reference statistics files.

Typical use (the paper's protocol: 50,000 samples against the CIFAR-10 training set)::

    extractor = InceptionFeatures().to("cuda")
    protocol = {**extractor.protocol, "dataset": "cifar10", "split": "train"}
    save_reference("cifar10-train.npz", reference_statistics(train_batches, extractor), protocol)
    fid, _ = against_reference(extractor, load_reference("cifar10-train.npz", expect=protocol))
    accumulate([fid], sample_batches, real=False)  # 50,000 samples, uint8 or [-1, 1]
    value = float(fid.compute())
"""

from __future__ import annotations

from nidiff.metrics.accumulate import (
    accumulate,
    against_reference,
    reference_statistics,
    update,
)
from nidiff.metrics.features import SharedFeatures
from nidiff.metrics.fid import FID, frechet_distance
from nidiff.metrics.inception import (
    InceptionFeatures,
    cache_dir,
    check_weights,
    weights_instructions,
)
from nidiff.metrics.kid import KID
from nidiff.metrics.reference import (
    ReferenceStatistics,
    check_protocol,
    load_reference,
    save_reference,
)
from nidiff.metrics.resize import tf1_bilinear_resize
from nidiff.metrics.spectrum import band_statistics

__all__ = [
    "FID",
    "KID",
    "InceptionFeatures",
    "ReferenceStatistics",
    "SharedFeatures",
    "accumulate",
    "band_statistics",
    "against_reference",
    "cache_dir",
    "check_protocol",
    "check_weights",
    "frechet_distance",
    "load_reference",
    "reference_statistics",
    "save_reference",
    "tf1_bilinear_resize",
    "update",
    "weights_instructions",
]
