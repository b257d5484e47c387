"""The feature network as torchmetrics' FID and KID call it: float64 ``[N, D]``, run once per batch.

torchmetrics accumulates (and KID computes) in the dtype the network returns, and each metric calls
its own network on every ``update``. :class:`SharedFeatures` returns float64, so FID's sums and
KID's kernels are float64, and remembers the features of the last batch, so that FID and KID given
the same :class:`SharedFeatures` and the same images run the Inception network once, not twice.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nidiff.metrics.statistics import as_features

__all__ = ["CPU_IMAGES_PER_PASS", "SharedFeatures"]

# images per forward pass on the CPU, where a larger batch is no faster per image: the progress
# bar then moves every second or two rather than once a minute (200 images)
CPU_IMAGES_PER_PASS = 4


class SharedFeatures(nn.Module):
    """``extractor``'s features in float64, computed once per batch however many metrics read them.

    ``forward(images)`` returns float64 ``[N, D]``; called again with the same, unmodified tensor
    it returns the same features without running ``extractor``. ``num_features`` (``D``) is
    ``extractor.num_features`` unless given.
    """

    def __init__(self, extractor: nn.Module, num_features: int | None = None) -> None:
        super().__init__()
        num_features = getattr(extractor, "num_features", None) if num_features is None else num_features
        if not isinstance(num_features, int) or num_features < 1:
            raise TypeError(
                f"the feature size D must be known: give num_features=D or an extractor with an integer "
                f"num_features attribute, got {num_features!r}"
            )
        self.extractor = extractor
        self.num_features = num_features
        self._last: tuple[Tensor, int, Tensor] | None = None  # (images, their version, features)

    @property
    def device(self) -> torch.device:
        """Where the extractor runs (its ``device``, else that of its first parameter or buffer)."""
        device = getattr(self.extractor, "device", None)
        if device is None:
            tensors = [*self.extractor.parameters(), *self.extractor.buffers()]
            device = tensors[0].device if tensors else torch.device("cpu")
        return torch.device(device)

    @property
    def images_per_pass(self) -> int:
        """Images per forward pass: the extractor's ``batch_size`` (on the CPU at most 4)."""
        size = int(getattr(self.extractor, "batch_size", 200))
        return min(size, CPU_IMAGES_PER_PASS) if self.device.type == "cpu" else size

    def forward(self, images: Tensor) -> Tensor:
        """``images`` ``[N, ...]`` -> float64 features ``[N, D]`` (those of the last call if the same)."""
        last = self._last
        if last is not None and last[0] is images and last[1] == images._version:
            return last[2]
        features = as_features(self.extractor(images), "extracted features")
        if features.shape != (images.shape[0], self.num_features):
            raise ValueError(
                f"the extractor returned features {list(features.shape)} for {images.shape[0]} images; "
                f"expected [{images.shape[0]}, {self.num_features}]"
            )
        self._last = (images, images._version, features)
        return features

    def forget(self) -> None:
        """Drop the remembered batch (its images and features)."""
        self._last = None
