"""Components fitted from training images before training: the shared base class.

A basis such as PCA learns from data. Such a component subclasses :class:`Fitted` (next to its
own base, e.g. ``class PCABasis(Fitted, Basis)``) and implements :meth:`Fitted._fit`. The base
class gives every fitted component the same life cycle:

- ``fit(images)`` (a Tensor ``[N, C, H, W]`` or an iterable of batches) fits once, sets the
  persistent ``fitted`` flag and calls :meth:`Fitted._refresh`;
- the fitted state lives in persistent buffers registered at build time with their final shapes,
  so it travels in the model's ``state_dict`` (checkpoints) and loads into a freshly built,
  unfitted instance, after which :meth:`Fitted._refresh` runs again;
- using an unfitted component raises (:meth:`Fitted._require_fitted`), and :func:`needs_fit` tells
  training code whether to fit before building the diffusion.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Fitted", "needs_fit"]


class Fitted(nn.Module):
    """Mixin for a module fitted from images; call :meth:`_init_fitted` in ``__init__``."""

    def _init_fitted(self) -> None:
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self._is_fitted = False  # mirrors ``fitted`` without a device sync per use

    @abstractmethod
    def _fit(self, data: Tensor | Iterable) -> None:
        """Estimate the fitted state from ``data`` into the persistent buffers."""

    @torch.no_grad()
    def fit(self, data: Tensor | Iterable) -> Fitted:
        """Fit from a Tensor ``[N, C, H, W]`` or an iterable of batches (tensors, or tuples/lists
        whose first item is the image batch, e.g. a ``DataLoader``); returns self."""
        self._fit(data)
        self.fitted.fill_(True)
        self._refresh()
        return self

    @property
    def is_fitted(self) -> bool:
        return self._is_fitted

    def _refresh(self) -> None:
        """Recompute derived, non-persistent state from the persistent one (extend, calling super)."""
        self._is_fitted = bool(self.fitted)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._refresh()

    def _require_fitted(self) -> None:
        if not self._is_fitted:
            raise RuntimeError(
                f"this {type(self).__name__} is not fitted: call .fit(images) (a Tensor [N, C, H, W] or a "
                "DataLoader) or load a fitted one's state_dict before using it"
            )

    def extra_repr(self) -> str:
        base = super().extra_repr()
        return f"{base}, fitted={self._is_fitted}" if base else f"fitted={self._is_fitted}"


def needs_fit(component: object) -> bool:
    """Whether ``component`` must be fitted on training images before it can be used."""
    return isinstance(component, Fitted) and not component.is_fitted
