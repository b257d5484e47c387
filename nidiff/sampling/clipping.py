"""Clipping of the predicted image ``x_hat`` during sampling (appendix A.1 leaves it open).

| literature                                                   | code                 |
| ------------------------------------------------------------ | -------------------- |
| static clipping of ``x_hat`` to ``[lo, hi]`` (DDPM, [-1, 1])  | ``StaticClip``       |
| dynamic thresholding (Imagen, Saharia et al. 2022, sec. 2.3) | ``DynamicThreshold`` |
| ``p``: percentile of ``|x_hat|``                              | ``percentile``       |
| ``s = max(quantile_p(|x_hat|), 1)``, ``x_hat <- clip(x_hat, -s, s) / s`` | ``DynamicThreshold.__call__`` |

Both act on ``x_hat`` in pixel space, ``[B, C, H, W]``, one sample at a time. Samplers take
``x_clip`` as ``None`` (no clipping), a ``(lo, hi)`` pair, a name from :data:`X_CLIPS`
(``"static"`` is ``[-1, 1]``, ``"dynamic"`` is ``p = 0.995``) or an :class:`XClip` instance; the
noise prediction is then recomputed from the clipped ``x_hat`` (see ``nidiff.sampling.predict``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["XClip", "StaticClip", "DynamicThreshold", "X_CLIPS", "resolve_x_clip"]


class XClip(ABC):
    """Maps a predicted image batch ``x_hat`` ``[B, C, H, W]`` to a clipped one of the same shape."""

    @abstractmethod
    def __call__(self, x_hat: Tensor) -> Tensor: ...

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class StaticClip(XClip):
    """Clip every pixel of ``x_hat`` to ``[lo, hi]``."""

    def __init__(self, lo: float = -1.0, hi: float = 1.0) -> None:
        lo, hi = _number("lo", lo), _number("hi", hi)
        if not lo < hi:
            raise ValueError(f"a clip range needs lo < hi, got ({lo}, {hi})")
        self.lo, self.hi = lo, hi

    def __call__(self, x_hat: Tensor) -> Tensor:
        return x_hat.clamp(self.lo, self.hi)


class DynamicThreshold(XClip):
    """Imagen's dynamic thresholding: ``s = max(quantile_p(|x_hat|), 1)`` per sample, then
    ``clip(x_hat, -s, s) / s``, so the result always lies in [-1, 1]."""

    def __init__(self, percentile: float = 0.995) -> None:
        p = _number("percentile", percentile)
        if not 0.0 < p <= 1.0:
            raise ValueError(f"percentile is a fraction in (0, 1] (Imagen uses 0.995), got {p}")
        self.percentile = p

    def __call__(self, x_hat: Tensor) -> Tensor:
        flat = x_hat.abs().flatten(1)
        s = torch.quantile(flat, self.percentile, dim=1)  # linear interpolation, as numpy.percentile
        s = s.to(x_hat.dtype).clamp_min(1.0).reshape(-1, *([1] * (x_hat.dim() - 1)))  # [B, 1, 1, 1]
        return torch.maximum(torch.minimum(x_hat, s), -s) / s


# names for x_clip; each builds its default instance
X_CLIPS: dict[str, type[XClip]] = {"static": StaticClip, "dynamic": DynamicThreshold}


def resolve_x_clip(x_clip: XClip | str | tuple[float, float] | None) -> XClip | None:
    """Turn a sampler's ``x_clip`` argument into an :class:`XClip` (or ``None`` for no clipping)."""
    if x_clip is None or isinstance(x_clip, XClip):
        return x_clip
    if isinstance(x_clip, str):
        if x_clip not in X_CLIPS:
            raise ValueError(f"unknown x_clip {x_clip!r}; known: {', '.join(X_CLIPS)} (or a (lo, hi) pair)")
        return X_CLIPS[x_clip]()
    if isinstance(x_clip, (tuple, list)) and len(x_clip) == 2:
        return StaticClip(*x_clip)
    raise TypeError(
        f"x_clip must be None, a (lo, hi) pair, one of {', '.join(map(repr, X_CLIPS))} or an XClip, "
        f"got {x_clip!r}"
    )


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)
