"""Kernel Inception Distance (Bińkowski et al., 2018): torchmetrics' KID, float64, seeded subsets.

| symbol                                                   | code (torchmetrics)          |
| -------------------------------------------------------- | ---------------------------- |
| ``k(x, y) = (gamma x.y + coef)^degree``, ``gamma = 1/D`` | ``poly_kernel``              |
| ``MMD^2_u`` (below)                                      | ``maximum_mean_discrepancy`` |
| ``m`` (subset size), number of subsets                   | ``subset_size``, ``subsets`` |

``MMD^2_u = sum_{i!=j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m-1)) - 2 sum_{i,j} k(x_i, y_j) / m^2``.

KID is the mean of ``MMD^2_u`` over ``subsets`` random subsets of ``subset_size`` vectors drawn
without replacement from each set (defaults 100 x 1000, as in torch-fidelity); the spread is the
population standard deviation over subsets (``ddof=0``). torchmetrics keeps the features of both
sides (and gathers them across processes) and computes KID; :class:`KID` adds float64 features
(through :class:`~nidiff.metrics.SharedFeatures`), a reference file's features as the real side,
and reproducible subsets: torchmetrics draws them from the global generator (per subset, a
permutation of the real set, then of the fake set), which :meth:`KID.compute` seeds with ``seed``
inside ``torch.random.fork_rng``, leaving the caller's random state as it was.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities.data import dim_zero_cat

from nidiff.metrics.features import SharedFeatures
from nidiff.metrics.reference import ReferenceStatistics, holds_reference
from nidiff.metrics.statistics import as_features

__all__ = ["KID"]


class KID(KernelInceptionDistance):
    """torchmetrics' KID on ``features`` (e.g. :class:`~nidiff.metrics.InceptionFeatures`), in float64.

    ``update(images, real)`` as for :class:`~nidiff.metrics.FID`; ``compute()`` returns
    ``(mean, std)`` over the subsets, drawn from a generator seeded with ``seed``. ``reset()``
    keeps the real side unless ``reset_real_features=True``. Other keyword arguments
    (``degree``, ``gamma``, ``coef``, ``compute_on_cpu``, ...) go to torchmetrics.
    """

    def __init__(
        self,
        features: nn.Module,                # images -> [N, D]; wrapped in SharedFeatures unless one
        subsets: int = 100,                 # number of random subsets
        subset_size: int = 1000,            # vectors per subset, from each side
        seed: int = 0,                      # seeds the subset draws
        reset_real_features: bool = False,  # reset() also clears the real side
        **kwargs: Any,
    ) -> None:
        shared = features if isinstance(features, SharedFeatures) else SharedFeatures(features)
        with warnings.catch_warnings():  # keeping every feature is what KID is
            warnings.filterwarnings("ignore", message=".*will save all extracted features", category=UserWarning)
            super().__init__(feature=shared, subsets=subsets, subset_size=subset_size,
                             reset_real_features=reset_real_features, **kwargs)
        self.seed = seed
        self.to(shared.device)  # the state where the features are

    def set_reference(self, reference: ReferenceStatistics) -> None:
        """Make the reference's ``features`` ``[N, D]`` the real side (on the first process only)."""
        if reference.features is None:
            raise ValueError("the reference holds no features, which KID needs: write it with features "
                             "(nidiff fid-ref --with-features)")
        features = as_features(reference.features, "reference features")
        if not holds_reference(self.process_group):
            features = features[:0]  # an empty entry: every process gathers the same number
        where = "cpu" if self.compute_on_cpu else self.device
        self.real_features = [features.to(where)]

    def features(self, real: bool = True) -> Tensor:
        """The float64 features ``[N, D]`` of one side (all processes')."""
        with self.sync_context():
            kept = self.real_features if real else self.fake_features
            return dim_zero_cat(kept) if kept else torch.empty(0, self.inception.num_features, dtype=torch.float64)

    def compute(self) -> tuple[Tensor, Tensor]:
        """KID ``(mean, std)`` over ``subsets`` seeded subsets (float64 scalar tensors)."""
        sizes = [sum(len(f) for f in side) for side in (self.real_features, self.fake_features)]
        if min(sizes) < self.subset_size:
            raise ValueError(
                f"subset_size={self.subset_size} exceeds the smaller side ({sizes[0]} real and {sizes[1]} "
                f"fake feature vectors); pass a smaller subset_size or more images"
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return super().compute()
