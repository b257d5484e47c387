"""Per-coefficient preconditioning (EDM, Karras et al. 2022, table 1), for any basis and schedule.

| EDM (VE form, one ``sigma``)                 | here, per coefficient ``k`` (VP form)              | code        |
| -------------------------------------------- | -------------------------------------------------- | ----------- |
| ``sigma_data``                               | ``s_k``: std of ``u_x,k`` over the data            | ``var``     |
| (data mean 0)                                | ``m_k``: mean of ``u_x,k``                         | ``mean``    |
| ``x + sigma n``                              | ``u_t / alpha_t = u_x + (sigma_t / alpha_t) u_eps`` |            |
| ``sigma^2 + sigma_data^2``                   | ``D = alpha_t^2 s^2 + sigma_t^2`` (times ``alpha_t^-2``) | ``D``  |
| ``c_skip``                                   | ``alpha_t^2 s^2 / D``                              |             |
| ``c_out``                                    | ``sigma_t s / sqrt(D)``                            |             |
| ``D_theta = c_skip x + c_out F``             | ``u_x_hat = m + alpha_t s^2 w / D + c_out F``, ``w = u_t - alpha_t m`` | ``x`` |
| ``lambda(sigma) = 1 / c_out^2``              | the loss is the plain squared error of ``F``       | ``target``  |

Why. With the ``eps`` parametrization ``u_x_hat = (u_t - sigma_t u_eps_hat) / alpha_t``: where a
coefficient's ``alpha_t`` sits at the blur floor (``d_min a_t``, about 1e-3) the network's error in
``u_eps_hat`` reaches ``u_x_hat`` multiplied by ``sigma_t / alpha_t`` (about 1000), and the reverse
steps (eq. 19) carry that into the sample as the coefficient leaves the floor. Here the network
learns only what the Gaussian model of each coefficient cannot: ``u_x_hat`` is the exact posterior
mean of a Gaussian coefficient ``N(m, s^2)`` (a Wiener filter) plus ``c_out F``, with
``c_out <= s``. An error ``delta`` in ``F`` moves ``u_x_hat`` by at most ``s delta``, the data's own
scale, at every ``t`` and every coefficient; nothing divides by ``alpha_t``. For Gaussian data the
optimal ``F`` is 0, and the target ``F`` has unit variance for every coefficient and time.

In terms of the noise, stably (no division by ``alpha_t`` or ``sigma_t``):

    F*  = (sigma_t (u_x - m) / s - alpha_t s u_eps) / sqrt(D)
    u_eps_hat = sigma_t w / D - alpha_t s F / sqrt(D)

The loss (eq. 25 with this target) weights the squared error of ``u_x_hat`` by
``1 / c_out^2 = 1 / s^2 + alpha_t^2 / sigma_t^2`` per coefficient. With ``s = 1``, ``m = 0`` this is
the ``v`` parametrization up to its sign; EDM's ``c_in`` (input scaling) and ``c_noise`` are not
used: the network sees ``z_t`` and ``t`` as with every other parametrization.

The statistics ``m``, ``s^2`` are either one number for every coefficient (``data_std``, mean 0:
EDM's setting, ``sigma_data = 0.5``) or estimated per coefficient from training images
(:meth:`Preconditioned.fit` with training images, one streaming float64 pass). They are persistent buffers, so a fitted
state travels with the model's ``state_dict`` (as a PCA basis's does) and loads into a fresh one.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from nidiff.bases.base import Basis
from nidiff.bases.pca import iter_image_batches
from nidiff.fitting import Fitted
from nidiff.parametrization import Parametrization

__all__ = ["Preconditioned", "VAR_FLOOR"]

# fitted variances are floored at this fraction of their mean, so that a coefficient the data never
# varies (a constant border, JPEG's quantised-away frequencies) keeps F's target finite
VAR_FLOOR = 1e-4


class Preconditioned(Fitted, Parametrization):
    """The network predicts ``F``, the unit-variance residual of each coefficient's Gaussian denoiser.

    Args:
        basis: the diffusion's basis; the statistics have its coefficient shape, and :meth:`fit`
            reads images through its ``to_coeffs``.
        data_std: one data standard deviation for every coefficient (and mean 0), or ``None``: the
            per-coefficient mean and variance are to be estimated with :meth:`fit` (or loaded).
    """

    name = "precond"

    def __init__(self, basis: Basis, data_std: float | None = None) -> None:
        nn.Module.__init__(self)
        self._init_fitted()
        shape = tuple(int(n) for n in basis.coeff_shape)
        self._to_coeffs = basis.to_coeffs  # a bound method, not a submodule: the basis is the diffusion's
        self._image_shape = tuple(basis.shape)
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))  # m, [*coeff_shape]
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))     # s^2, [*coeff_shape]
        self.data_std = None if data_std is None else _positive("data_std", data_std)
        if self.data_std is not None:
            self.var.fill_(self.data_std**2)
            self.fitted.fill_(True)
            self._refresh()

    @classmethod
    def build(cls, basis: Basis, data_std: float | str | None = None) -> Preconditioned:
        """For ``basis``: ``data_std`` a number, or ``"fit"`` / ``None`` (statistics fitted later)."""
        return cls(basis, data_std=None if data_std in (None, "fit") else data_std)

    def _fit(self, data: Tensor | Iterable) -> None:
        """``m`` and ``s^2`` of every coefficient of ``basis.to_coeffs(x)``, from images in [-1, 1]."""
        if self.data_std is not None:
            raise ValueError(f"this Preconditioned has a fixed data_std={self.data_std}; build it with "
                             f"data_std=None (config: diffusion.data_std=fit) to fit it on images")
        n, shift, s1, s2 = 0, None, None, None
        for x in iter_image_batches(data, self._image_shape):
            u = self._to_coeffs(x.to(self.mean.device, torch.float64))  # [n, *coeff_shape]
            if shift is None:  # sums around the first batch's mean: no cancellation in float64
                shift = u.mean(0)
                s1, s2 = torch.zeros_like(shift), torch.zeros_like(shift)
            uc = u - shift
            s1 += uc.sum(0)
            s2 += uc.pow(2).sum(0)
            n += u.shape[0]
        if n < 2:
            raise ValueError(f"fitting data statistics needs at least 2 images, got {n}")
        m = s1 / n
        var = (s2 - n * m**2) / (n - 1)
        if not float(var.mean()) > 0.0:
            raise ValueError("the images have zero variance (every image is the same): nothing to fit")
        self.mean.copy_(shift + m)
        self.var.copy_(var.clamp_min(VAR_FLOOR * float(var.mean())))

    # ---- the parametrization ----------------------------------------------------------------
    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        self._require_fitted()
        return self.mean.to(like.dtype), self.var.to(like.dtype)

    def _terms(self, u_t: Tensor, alpha: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        m, var = self._stats(u_t)
        d = alpha**2 * var + sigma**2  # D
        return m, var, d, u_t - alpha * m

    def x(self, u_t: Tensor, out: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        m, var, d, w = self._terms(u_t, alpha, sigma)
        return m + alpha * var * w / d + sigma * var.sqrt() * out / d.sqrt()

    def eps(self, u_t: Tensor, out: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        m, var, d, w = self._terms(u_t, alpha, sigma)
        return sigma * w / d - alpha * var.sqrt() * out / d.sqrt()

    def target(self, u_x: Tensor, u_eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        m, var = self._stats(u_x)
        s = var.sqrt()
        return (sigma * (u_x - m) / s - alpha * s * u_eps) / (alpha**2 * var + sigma**2).sqrt()

    def signal(self, u_t: Tensor, out: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return alpha * self.x(u_t, out, alpha, sigma)

    def extra_repr(self) -> str:
        source = f"data_std={self.data_std}" if self.data_std is not None else "per-coefficient statistics"
        return f"shape={list(self.mean.shape)}, {source}, fitted={self.is_fitted}"

    def __repr__(self) -> str:
        return nn.Module.__repr__(self)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0 (or 'fit'), got {value!r}")
    return float(value)
