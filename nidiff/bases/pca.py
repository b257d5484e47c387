"""PCA basis fitted from data: ``u = V^T x`` with ``V`` the eigenvectors of the pixel covariance.

| paper (section 4.2)                        | code                                          |
| ------------------------------------------ | --------------------------------------------- |
| ``V`` (columns: principal components)      | ``components`` ``[D, D]``, ``D = C*H*W``      |
| per-component data variance                | ``variances`` ``[D]`` (decreasing)            |
| ``u = V^T x`` / ``x = V u``                | ``to_coeffs`` / ``from_coeffs`` (flattened)   |
| ``P = V diag(s)``, ``s = sqrt(var + eps)`` | ``whiten=True`` (non-orthogonal, eq. 30)      |
| ``lambda`` (eq. 27)                        | ``eigenvalues()``: DCT spectrum, rank-matched |

The basis is linear (no mean subtraction); the data mean is kept in ``mean`` for reference only.
The fitted state (``mean``, ``components``, ``variances``, ``fitted``) lives in persistent buffers,
registered at build time with their final shapes, so a fitted basis travels with the model's
``state_dict`` and loads into a freshly built, unfitted one. The float32 copies used by the hot
path are non-persistent and refreshed after ``fit`` and after every ``load_state_dict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from numbers import Integral

import torch
from torch import Tensor

from nidiff.bases.base import Basis, ImageShape, check_image_shape
from nidiff.bases.dct import frequencies
from nidiff.fitting import Fitted
from nidiff.registries import register_basis

__all__ = ["PCABasis", "WHITEN_EPS", "iter_image_batches", "rank_matched_eigenvalues", "sorted_eigh"]

WHITEN_EPS = 1e-6  # variance floor of whitening, relative to the largest variance: cond(P) <= 1e3


def rank_matched_eigenvalues(variances: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """Blur eigenvalues for a data-driven basis: the DCT Laplacian spectrum, assigned by rank.

    The DCT eigenvalues ``(pi i/H)^2 + (pi j/W)^2`` of the same image shape, repeated for each of
    the ``C`` channels, are sorted ascending; the coefficient with the k-th largest variance gets
    the k-th smallest of them. Blur therefore damps low-variance components first (as it damps
    high frequencies of natural images first), and ``sigma_blur_max`` means what it means for the
    DCT basis of the same shape. Ties in ``variances`` keep their flattened order.

    Args:
        variances: per-coefficient variances, any shape with ``C*H*W`` elements.
        shape: the image shape ``(C, H, W)``.

    Returns:
        float64 eigenvalues, on the CPU, shaped like ``variances``.
    """
    c, h, w = check_image_shape(shape)
    lam = frequencies(h)[:, None] ** 2 + frequencies(w)[None, :] ** 2  # [H, W]
    lam_sorted = lam.flatten().repeat(c).sort().values  # [D], ascending
    var = variances.detach().to("cpu", torch.float64).flatten()  # [D]
    if var.numel() != lam_sorted.numel():
        raise ValueError(f"expected {lam_sorted.numel()} variances for shape {shape}, got {var.numel()}")
    out = torch.empty_like(lam_sorted)
    out[torch.argsort(var, descending=True, stable=True)] = lam_sorted
    return out.reshape(variances.shape)


def sorted_eigh(cov: Tensor) -> tuple[Tensor, Tensor]:
    """Eigendecomposition of a symmetric ``[n, n]`` covariance in float64, deterministic.

    Returns ``(variances [n], vectors [n, n])`` with variances decreasing and clamped at 0, and
    vectors as columns whose entry of largest magnitude is positive (the sign ``eigh`` leaves free).
    """
    cov = cov.to(torch.float64)
    var, vec = torch.linalg.eigh(0.5 * (cov + cov.T))
    var, vec = var.flip(0).clamp_min(0.0), vec.flip(1)
    pivot = vec.abs().argmax(dim=0)  # [n]; the first maximum on ties
    sign = torch.sign(vec.gather(0, pivot[None]))  # [1, n]
    return var, vec * sign


def iter_image_batches(data: Tensor | Iterable, shape: ImageShape, chunk: int = 1024) -> Iterator[Tensor]:
    """Image batches ``[n, C, H, W]`` from a Tensor ``[N, C, H, W]`` or an iterable of batches.

    Items of an iterable may be tensors or tuples/lists whose first element is the image batch
    (a ``DataLoader`` of ``(image, label)``); a tensor is split into chunks to bound memory.
    """
    if isinstance(data, Tensor):
        _check_batch(data, shape)
        batches: Iterable = data.split(chunk)
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        batches = data
    else:
        raise TypeError(
            f"fit expects a Tensor [N, C, H, W] or an iterable of batches, got {type(data).__name__}"
        )
    for item in batches:
        x = item[0] if isinstance(item, (tuple, list)) and len(item) > 0 else item
        _check_batch(x, shape)
        if x.shape[0] > 0:
            yield x.detach()


def _check_batch(x: object, shape: ImageShape) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(
            "each batch must be a Tensor [n, C, H, W] or a tuple/list whose first item is one, "
            f"got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(f"images must be floating point (scaled like the training data), got {x.dtype}")
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        dims = ", ".join(map(str, shape))
        raise ValueError(f"expected image batches of shape [n, {dims}], got {list(x.shape)}")


@register_basis("pca")
class PCABasis(Fitted, Basis):
    """Full PCA of flattened images; coefficients ``[D]``, ``D = C*H*W``. Call ``fit`` before use.

    Args:
        shape: image shape ``(C, H, W)``.
        whiten: if True, ``P = V diag(sqrt(var + eps))`` so the data's coefficients have unit
            variance; ``eps = WHITEN_EPS * max(var)`` keeps ``P`` invertible. Not orthogonal.
        max_bytes: refuse (``ValueError``) shapes whose ``D x D`` float64 covariance exceeds this.

    Eigenvalues for blur schedules are rank-matched to the DCT spectrum of the same shape (see
    :func:`rank_matched_eigenvalues`): the largest-variance component gets ``lambda = 0``.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        whiten: bool = False,  # P = V diag(sqrt(var + eps)), non-orthogonal
        max_bytes: int = 200 * 2**20,  # limit on the D x D float64 covariance
    ) -> None:
        super().__init__(shape)
        if not isinstance(whiten, bool):
            raise TypeError(f"whiten must be a bool, got {whiten!r}")
        if not isinstance(max_bytes, Integral) or isinstance(max_bytes, bool) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        c, h, w = self.shape
        d = c * h * w
        need = d * d * 8
        if need > max_bytes:  # checked before any allocation
            raise ValueError(
                f"PCABasis of shape {self.shape} has D = C*H*W = {d} coefficients: its D x D float64 "
                f"covariance needs {need} bytes ({need / 1e9:.2f} GB), over max_bytes = {max_bytes}. "
                "Use the separable basis 'pca_separable' (a C x C, an H x H and a W x W covariance), "
                "or raise max_bytes if the memory is really there."
            )
        self.dim = d
        self.whiten = whiten
        self.orthogonal = not whiten
        f64 = torch.float64
        self.register_buffer("mean", torch.zeros(d, dtype=f64))  # [D]
        self.register_buffer("components", torch.zeros(d, d, dtype=f64))  # [D, D], V
        self.register_buffer("variances", torch.zeros(d, dtype=f64))  # [D], decreasing
        self._init_fitted()
        self.register_buffer("components_f32", torch.zeros(d, d), persistent=False)
        self.register_buffer("scale_f64", torch.ones(d, dtype=f64), persistent=False)  # s, or 1
        self.register_buffer("scale_f32", torch.ones(d), persistent=False)

    @property
    def coeff_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def _fit(self, data: Tensor | Iterable) -> None:
        """Fit mean, covariance and its eigenvectors in one streaming float64 pass.

        Args:
            data: a Tensor ``[N, C, H, W]`` or an iterable of batches (tensors, or tuples/lists
                whose first item is the image batch, e.g. a ``DataLoader``). ``N >= 2``; with
                ``N < D`` the null space of the sample covariance gets arbitrary orthonormal vectors.
        """
        d, device = self.dim, self.components.device
        n, shift, s1, s2 = 0, None, None, None
        for x in iter_image_batches(data, self.shape):
            x = x.to(device, torch.float64).reshape(-1, d)  # [n, D]
            if shift is None:  # sums around the first batch's mean: no cancellation in float64
                shift = x.mean(0)
                s1 = torch.zeros(d, dtype=torch.float64, device=device)
                s2 = torch.zeros(d, d, dtype=torch.float64, device=device)
            xc = x - shift
            s1 += xc.sum(0)
            s2.addmm_(xc.T, xc)
            n += x.shape[0]
        if n < 2:
            raise ValueError(f"PCA needs at least 2 images to estimate a covariance, got {n}")
        m = s1 / n
        cov = s2.sub_(torch.outer(m, m), alpha=n).div_(n - 1)  # [D, D], in place: one D x D buffer
        var, vec = sorted_eigh(cov)
        if var[0] <= 0:
            raise ValueError("the data has zero variance (every image is the same): nothing to fit")
        self.mean.copy_(shift + m)
        self.components.copy_(vec)
        self.variances.copy_(var)

    def _refresh(self) -> None:
        """Recompute the derived, non-persistent tensors from the persistent fitted state."""
        super()._refresh()
        with torch.no_grad():
            self.components_f32.copy_(self.components)
            if self.whiten and self._is_fitted:
                self.scale_f64.copy_((self.variances + WHITEN_EPS * self.variances.max()).sqrt())
            else:
                self.scale_f64.fill_(1.0)
            self.scale_f32.copy_(self.scale_f64)

    def _tables(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        self._require_fitted()
        if dtype == torch.float64:
            return self.components, self.scale_f64
        return self.components_f32, self.scale_f32

    def _to_coeffs(self, x: Tensor) -> Tensor:
        v, s = self._tables(x.dtype)
        u = x.reshape(x.shape[0], self.dim) @ v  # [B, D], u = V^T x per sample
        return u / s if self.whiten else u

    def _from_coeffs(self, u: Tensor) -> Tensor:
        v, s = self._tables(u.dtype)
        if self.whiten:
            u = u * s
        return (u @ v.T).reshape(u.shape[0], *self.shape)  # [B, C, H, W]

    def _eigenvalues(self) -> Tensor:
        self._require_fitted()
        return rank_matched_eigenvalues(self.variances, self.shape)  # [D]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, whiten={self.whiten}"
