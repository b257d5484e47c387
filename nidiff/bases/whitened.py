"""An orthogonal basis scaled per coefficient by the data's standard deviation, fitted from images.

| paper / code                                                    | code                                  |
| --------------------------------------------------------------- | ------------------------------------- |
| ``v = V^T x``, an orthogonal base basis (``hartley``, ``dct``, ...) | ``base``                          |
| ``C_k = Var[v_k]`` over the training images                     | ``variances`` ``[*coeff_shape]``      |
| ``s_k = sqrt(max(C_k, floor * max C))``                         | ``scale_f64`` / ``scale_f32``         |
| ``P = V diag(s)``: ``u = diag(1/s) V^T x``, ``x = V diag(s) u`` | ``to_coeffs`` / ``from_coeffs``       |
| pixel noise ``P u_eps``, covariance ``V diag(s^2) V^T`` (eq. 30) | what the engine draws for this basis |
| ``lambda`` (eq. 27)                                             | the base basis's eigenvalues          |

Whitening makes every coefficient of the data have unit variance. A scalar schedule on these
coefficients, ``u_t = alpha_t u_x + sigma_t u_eps``, is then in the base basis
``v_t = alpha_t v_x + sigma_t s_k u_eps``: noise whose variance in coefficient ``k`` is
``sigma_t^2 C_k``, so that every coefficient has the same SNR relative to the data's variance,
``alpha_t^2 C_k / (sigma_t^2 C_k) = alpha_t^2 / sigma_t^2``. With the ``hartley`` base and a
variance-preserving schedule this is EqualSNR (Falck et al., ICML 2025) with ``c = 1``; see
``docs/literature.md``.

``tie_pairs``: where the base basis pairs coefficients that span one complex DFT frequency
(``partner_index()``, as ``hartley`` does), the variances of a pair are averaged, so that the
noise of each frequency is a proper complex Gaussian whose variance is that frequency's
``C = Var[Re y] + Var[Im y]``, the paper's definition.

The fitted state (``mean``, ``variances``, ``fitted``) lives in persistent buffers registered at
build time with their final shapes, so a fitted basis travels with the model's ``state_dict`` and
loads into a freshly built, unfitted one; the scales are derived from it after ``fit`` and after
every ``load_state_dict``. The base basis's tables are non-persistent, as for every fixed basis.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Real

import torch
from torch import Tensor

from nidiff.bases.base import Basis
from nidiff.bases.pca import iter_image_batches
from nidiff.fitting import Fitted
from nidiff.registries import BASES, register_basis

__all__ = ["VARIANCE_FLOOR", "WhitenedBasis"]

VARIANCE_FLOOR = 1e-6  # default floor of C_k relative to the largest: cond(P) <= 1e3


@register_basis("whitened")
class WhitenedBasis(Fitted, Basis):
    """``P = V diag(s)`` with ``V`` an orthogonal registered basis and ``s_k`` the data's standard
    deviation in coefficient ``k`` (non-orthogonal, eq. 30). Call ``fit`` before use.

    Args:
        shape: image shape ``(C, H, W)``.
        base: name of the orthogonal basis ``V`` (``hartley`` for the paper's Fourier space).
        tie_pairs: average the variances of coefficient pairs that span one complex frequency,
            where the base basis defines such pairs (``partner_index``); ignored otherwise.
        floor: smallest variance kept, relative to the largest one (keeps ``P`` well conditioned).
    """

    orthogonal = False

    def __init__(
        self,
        shape: tuple[int, int, int],
        base: str = "hartley",    # V: the basis whose coefficients are whitened
        tie_pairs: bool = True,   # one variance per complex frequency (hartley pairs k, -k)
        floor: float = VARIANCE_FLOOR,
    ) -> None:
        super().__init__(shape)
        if not isinstance(base, str):
            raise TypeError(f"base must be the name of a registered basis, got {base!r}")
        if not isinstance(tie_pairs, bool):
            raise TypeError(f"tie_pairs must be a bool, got {tie_pairs!r}")
        if isinstance(floor, bool) or not isinstance(floor, Real) or not 0.0 < float(floor) < 1.0:
            raise ValueError(
                f"floor is a variance ratio in (0, 1) (default {VARIANCE_FLOOR}), got {floor!r}"
            )
        inner = BASES.build(base, shape=self.shape)
        if hasattr(inner, "fit") or not inner.orthogonal:
            raise ValueError(
                f"the base of a whitened basis must be a fixed orthogonal basis (identity, dct, "
                f"fourier, hartley, haar), got {base!r}; for PCA use basis pca with whiten=true"
            )
        self.base = inner  # a submodule: its tables move with .to() and stay non-persistent
        self.base_name = base
        self.tie_pairs = tie_pairs
        self.floor = float(floor)
        coeff = tuple(inner.coeff_shape)
        f64 = torch.float64
        self.register_buffer("mean", torch.zeros(coeff, dtype=f64))  # E[v], for reference only
        self.register_buffer("variances", torch.ones(coeff, dtype=f64))  # C_k (tied if tie_pairs)
        self._init_fitted()
        self.register_buffer("scale_f64", torch.ones(coeff, dtype=f64), persistent=False)  # s
        self.register_buffer("scale_f32", torch.ones(coeff), persistent=False)

    @property
    def coeff_shape(self) -> tuple[int, ...]:
        return tuple(self.base.coeff_shape)

    def _fit(self, data: Tensor | Iterable) -> None:
        """Per-coefficient mean and variance of the base coefficients, one streaming float64 pass
        over a Tensor ``[N, C, H, W]`` or an iterable of batches; ``N >= 2``."""
        device = self.variances.device
        n, shift, s1, s2 = 0, None, None, None
        for x in iter_image_batches(data, self.shape):
            v = self.base.to_coeffs(x.to(device, torch.float64))  # [n, *coeff_shape]
            if shift is None:  # sums around the first batch's mean: no cancellation in float64
                shift = v.mean(0)
                s1, s2 = torch.zeros_like(shift), torch.zeros_like(shift)
            d = v - shift
            s1 += d.sum(0)
            s2 += (d * d).sum(0)
            n += v.shape[0]
        if n < 2:
            raise ValueError(
                f"a whitened basis needs at least 2 images to estimate variances, got {n}"
            )
        m = s1 / n
        var = ((s2 - n * m * m) / (n - 1)).clamp_min(0.0)  # [*coeff_shape], unbiased
        if self.tie_pairs and hasattr(self.base, "partner_index"):
            flat = var.reshape(-1)
            var = (0.5 * (flat + flat[self.base.partner_index().to(device)])).reshape(var.shape)
        if not bool(var.max() > 0):
            raise ValueError("the data has zero variance (every image is the same): nothing to fit")
        self.mean.copy_(shift + m)
        self.variances.copy_(var)

    def _refresh(self) -> None:
        """Recompute the derived, non-persistent scales from the persistent fitted state."""
        super()._refresh()
        with torch.no_grad():
            if self._is_fitted:
                var = self.variances
                self.scale_f64.copy_(var.clamp_min(self.floor * float(var.max())).sqrt())
            else:
                self.scale_f64.fill_(1.0)
            self.scale_f32.copy_(self.scale_f64)

    def _scale(self, dtype: torch.dtype) -> Tensor:
        self._require_fitted()
        return self.scale_f64 if dtype == torch.float64 else self.scale_f32

    def _to_coeffs(self, x: Tensor) -> Tensor:
        return self.base.to_coeffs(x) / self._scale(x.dtype)

    def _from_coeffs(self, u: Tensor) -> Tensor:
        return self.base.from_coeffs(u * self._scale(u.dtype))

    def _eigenvalues(self) -> Tensor:
        return self.base.eigenvalues()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, base={self.base_name!r}, tie_pairs={self.tie_pairs}"
