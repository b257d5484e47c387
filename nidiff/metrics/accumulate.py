"""Images into FID and KID one forward pass at a time, with a progress bar that counts images.

A batch of images is cut into pieces of :attr:`SharedFeatures.images_per_pass` images (the
extractor's batch size; on the CPU 4, a second or two each); every metric is updated with a piece
before the next (metrics that share one :class:`~nidiff.metrics.SharedFeatures` run the network
once per piece), and the bar advances by the piece's images as soon as it is done. The bar is
redrawn at most once a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from torch import Tensor, nn
from torchmetrics import Metric

from nidiff.metrics.features import SharedFeatures
from nidiff.metrics.fid import FID
from nidiff.metrics.kid import KID
from nidiff.metrics.reference import ReferenceStatistics
from nidiff.progress import image_bar

__all__ = ["accumulate", "against_reference", "reference_statistics", "update"]


def update(metrics: Sequence[Metric], images: Tensor, real: bool, bar=None) -> None:
    """Add images ``[B, 3, H, W]`` to every metric (FID, KID), advancing ``bar`` after each pass."""
    if not metrics:
        raise ValueError("no metric to update")
    shared = metrics[0].inception  # the feature module torchmetrics calls
    try:
        for piece in images.split(shared.images_per_pass):
            for metric in metrics:
                metric.update(piece, real=real)
            if bar is not None:
                bar.update(piece.shape[0])
    finally:
        shared.forget()


def accumulate(
    metrics: Sequence[Metric],  # FID / KID sharing one SharedFeatures
    batches: Iterable,          # [B, 3, H, W] tensors, or (images, labels) pairs
    real: bool,                 # the real (reference) side, or the fake (samples) side
    total: int | None = None,   # number of images, for the bar
    desc: str = "features",
    progress: bool = True,      # show the bar
) -> int:
    """Add every batch to the metrics' ``real`` or fake side; returns the number of images added."""
    count = 0
    with image_bar(total, desc, progress) as bar:
        for batch in batches:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            if not isinstance(images, Tensor):
                raise TypeError(f"batches must yield image tensors or (images, ...) pairs, got {type(images).__name__}")
            update(metrics, images, real, bar)
            count += images.shape[0]
    return count


def reference_statistics(
    batches: Iterable,            # [B, 3, H, W] tensors, or (images, labels) pairs
    features: nn.Module,          # e.g. InceptionFeatures, on its device
    total: int | None = None,     # number of images, for the bar
    keep_features: bool = False,  # also keep the features (float32 in a file), for KID
    desc: str = "reference",
    progress: bool = True,        # show the bar
) -> ReferenceStatistics:
    """``mu``, ``sigma``, ``count`` (and ``features``) of the images, accumulated as FID's (and KID's)
    real side: what :func:`~nidiff.metrics.save_reference` writes."""
    shared = features if isinstance(features, SharedFeatures) else SharedFeatures(features)
    fid = FID(shared)
    kid = KID(shared, compute_on_cpu=True) if keep_features else None
    accumulate([fid] if kid is None else [fid, kid], batches, real=True, total=total, desc=desc, progress=progress)
    stats = fid.statistics(real=True)
    return stats if kid is None else replace(stats, features=kid.features(real=True).float().numpy())


def against_reference(
    features: nn.Module,                  # e.g. InceptionFeatures, on its device
    reference: ReferenceStatistics,       # the real side (with features for KID)
    kid_subset_size: int | None = None,   # None: no KID
) -> tuple[FID, KID | None]:
    """FID (and KID, its features kept on the CPU) on one :class:`SharedFeatures`, with ``reference`` as
    the real side."""
    shared = features if isinstance(features, SharedFeatures) else SharedFeatures(features)
    fid = FID(shared)
    fid.set_reference(reference)
    if kid_subset_size is None:
        return fid, None
    kid = KID(shared, subset_size=kid_subset_size, compute_on_cpu=True)
    kid.set_reference(reference)
    return fid, kid
