"""Separable (Kronecker) PCA basis, for images too large for a full ``D x D`` covariance.

| paper (section 4.2) / Kronecker PCA            | code                                       |
| ---------------------------------------------- | ------------------------------------------ |
| ``V = V_C ⊗ V_H ⊗ V_W`` (orthonormal)          | ``components_c``, ``_h``, ``_w``           |
| ``u = V^T x``                                  | ``to_coeffs``: three small matrix products |
| ``x = V u``                                    | ``from_coeffs``                            |
| ``Sigma ~ Sigma_C ⊗ Sigma_H ⊗ Sigma_W``        | ``fit``: three marginal covariances        |
| ``lambda`` (eq. 27)                            | ``eigenvalues()``: DCT spectrum by rank    |

``fit`` centres the images by their mean image and estimates, in one streaming float64 pass, a
``C x C`` covariance over the colour vectors of all pixels, an ``H x H`` covariance over all columns
and a ``W x W`` covariance over all rows. Under the Kronecker model each marginal is proportional to
its factor, scaled by the mean per-pixel variance ``v`` times the size of its axis (e.g.
``trace(Sigma_C_hat) = C v``); ``variances`` divides the outer product of the three by ``v^2``, which
gives the model's per-coefficient variances with their sum equal to the data's total variance.
Coefficient ``(a, i, j)`` pairs the a-th colour, i-th column and j-th row component, each axis
sorted by decreasing variance. Buffers cost ``8 (C^2 + H^2 + W^2 + CHW)`` bytes plus float32 copies
(about 0.8 MB for ``3 x 128 x 128``), all persistent except the copies, like :mod:`nidiff.bases.pca`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from nidiff.bases.base import Basis
from nidiff.bases.pca import iter_image_batches, rank_matched_eigenvalues, sorted_eigh
from nidiff.fitting import Fitted
from nidiff.registries import register_basis

__all__ = ["SeparablePCABasis"]

_AXES = ("c", "h", "w")


@register_basis("pca_separable")
class SeparablePCABasis(Fitted, Basis):
    """Kronecker PCA ``V_C ⊗ V_H ⊗ V_W``, orthonormal; coefficients ``[C, H, W]``. Call ``fit`` first.

    Eigenvalues for blur schedules rank the coefficients by the product of their three variances
    and give them the DCT spectrum of the same shape in that order (see
    :func:`nidiff.bases.pca.rank_matched_eigenvalues`).
    """

    orthogonal = True

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__(shape)
        f64 = torch.float64
        self.register_buffer("mean", torch.zeros(*self.shape, dtype=f64))  # [C, H, W]
        for axis, n in zip(_AXES, self.shape):
            self.register_buffer(f"components_{axis}", torch.zeros(n, n, dtype=f64))  # [n, n], columns
            self.register_buffer(f"variances_{axis}", torch.zeros(n, dtype=f64))  # [n], decreasing
            self.register_buffer(f"components_{axis}_f32", torch.zeros(n, n), persistent=False)
        self._init_fitted()

    def _fit(self, data: Tensor | Iterable) -> None:
        """Fit the mean image and the three marginal covariances in one float64 pass.

        Args:
            data: a Tensor ``[N, C, H, W]`` or an iterable of batches (tensors, or tuples/lists
                whose first item is the image batch, e.g. a ``DataLoader``), ``N >= 2``.
        """
        c, h, w = self.shape
        device, f64 = self.mean.device, torch.float64
        n, shift = 0, None
        s1 = torch.zeros(c, h, w, dtype=f64, device=device)
        s = {axis: torch.zeros(k, k, dtype=f64, device=device) for axis, k in zip(_AXES, self.shape)}
        for x in iter_image_batches(data, self.shape):
            x = x.to(device, f64)  # [n, C, H, W]
            if shift is None:  # sums around the first batch's mean image: no cancellation
                shift = x.mean(0)
            xc = x - shift
            s1 += xc.sum(0)
            s["c"] += torch.einsum("nchw,ndhw->cd", xc, xc)
            s["h"] += torch.einsum("nchw,ncgw->hg", xc, xc)
            s["w"] += torch.einsum("nchw,nchv->wv", xc, xc)
            n += x.shape[0]
        if n < 2:
            raise ValueError(f"separable PCA needs at least 2 images to estimate a covariance, got {n}")
        m = s1 / n  # [C, H, W], mean minus shift
        centred = {
            "c": (s["c"] - n * torch.einsum("chw,dhw->cd", m, m)) / ((n - 1) * h * w),
            "h": (s["h"] - n * torch.einsum("chw,cgw->hg", m, m)) / ((n - 1) * c * w),
            "w": (s["w"] - n * torch.einsum("chw,chv->wv", m, m)) / ((n - 1) * c * h),
        }
        eig = {axis: sorted_eigh(cov) for axis, cov in centred.items()}
        if eig["c"][0].sum() <= 0:
            raise ValueError("the data has zero variance (every image is the same): nothing to fit")
        self.mean.copy_(shift + m)
        for axis, (var, vec) in eig.items():
            getattr(self, f"components_{axis}").copy_(vec)
            getattr(self, f"variances_{axis}").copy_(var)

    @property
    def variances(self) -> Tensor:
        """Per-coefficient variances under the Kronecker model, float64 ``[C, H, W]``."""
        self._require_fitted()
        v = self.variances_c.sum() / self.shape[0]  # mean per-pixel variance
        return self.variances_c[:, None, None] * self.variances_h[None, :, None] * self.variances_w / v**2

    def _refresh(self) -> None:
        """Recompute the float32 copies and the fitted flag from the persistent state."""
        super()._refresh()
        with torch.no_grad():
            for axis in _AXES:
                getattr(self, f"components_{axis}_f32").copy_(getattr(self, f"components_{axis}"))

    def _matrices(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        self._require_fitted()
        suffix = "" if dtype == torch.float64 else "_f32"
        v_c, v_h, v_w = (getattr(self, f"components_{axis}{suffix}") for axis in _AXES)
        return v_c, v_h, v_w

    def _to_coeffs(self, x: Tensor) -> Tensor:
        v_c, v_h, v_w = self._matrices(x.dtype)
        u = torch.einsum("ca,bchw->bahw", v_c, x)  # V_C^T along channels
        return v_h.T @ u @ v_w  # [B, C, H, W]

    def _from_coeffs(self, u: Tensor) -> Tensor:
        v_c, v_h, v_w = self._matrices(u.dtype)
        x = v_h @ u @ v_w.T
        return torch.einsum("ca,bahw->bchw", v_c, x)  # [B, C, H, W]

    def _eigenvalues(self) -> Tensor:
        return rank_matched_eigenvalues(self.variances, self.shape)  # [C, H, W]

