"""What the network predicts: epsilon, x or v, and the conversions between them (eq. 22, 24).

| paper                                       | code                  |
| ------------------------------------------- | --------------------- |
| ``u_t = alpha_t u_x + sigma_t u_eps`` (eq. 21) | coefficient space  |
| ``u_x_hat = (u_t - sigma_t u_eps_hat) / alpha_t`` (eq. 22) | ``Epsilon.x`` |
| ``v`` (Salimans & Ho 2022), per coefficient | ``Velocity``          |
| EDM's preconditioning, per coefficient      | ``Preconditioned`` (``nidiff.preconditioning``) |

All conversions act per coefficient in coefficient space (``u = P^-1 x``); the network's output
lives in pixel space and is mapped with ``basis.to_coeffs`` first. For ``v`` with a schedule that is
not variance preserving, let ``r = sqrt(alpha^2 + sigma^2)``, ``a = alpha / r``, ``s = sigma / r``:
``v = a u_eps - s u_x``, so ``u_x = a u_t / r - s v`` and ``u_eps = s u_t / r + a v``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor

from nidiff.bases.base import Basis

__all__ = ["Parametrization", "Epsilon", "Data", "Velocity", "PARAMETRIZATIONS", "build_parametrization"]


class Parametrization(ABC):
    """Maps a network output ``out`` (coefficient space) to ``u_eps_hat`` and ``u_x_hat``."""

    name: str

    @classmethod
    def build(cls, basis: Basis, data_std: float | str | None = None) -> Parametrization:
        """An instance for ``basis``; ``data_std`` is read by ``precond`` only."""
        return cls()

    @abstractmethod
    def eps(self, u_t: Tensor, out: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """``u_eps_hat`` from the output."""

    @abstractmethod
    def x(self, u_t: Tensor, out: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """``u_x_hat`` from the output."""

    @abstractmethod
    def target(self, u_x: Tensor, u_eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """What the network should output, in coefficient space."""

    def signal(self, u_t: Tensor, out: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """``alpha_t u_x_hat``, the part of ``u_t`` the samplers step with (``nidiff.sampling``).

        From a noise prediction it is ``u_t - sigma_t u_eps_hat``, which divides by nothing. The
        other parametrizations give ``u_x_hat`` directly and form ``alpha_t u_x_hat``: going through
        ``u_eps_hat`` would cancel ``u_t`` against ``sigma_t u_eps_hat`` to rounding error where
        ``alpha_t << sigma_t``, and a sampler multiplies the signal by ``alpha_s / alpha_t``.
        """
        return u_t - sigma * self.eps(u_t, out, alpha, sigma)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Epsilon(Parametrization):
    """The paper's choice (eq. 22-25): the network predicts the noise."""

    name = "eps"

    def eps(self, u_t, out, alpha, sigma):
        return out

    def x(self, u_t, out, alpha, sigma):
        return (u_t - sigma * out) / alpha

    def target(self, u_x, u_eps, alpha, sigma):
        return u_eps


class Data(Parametrization):
    """The network predicts the clean image ``x``."""

    name = "x"

    def eps(self, u_t, out, alpha, sigma):
        return (u_t - alpha * out) / sigma

    def x(self, u_t, out, alpha, sigma):
        return out

    def target(self, u_x, u_eps, alpha, sigma):
        return u_x

    def signal(self, u_t, out, alpha, sigma):
        return alpha * out


class Velocity(Parametrization):
    """The network predicts ``v = a u_eps - s u_x`` (normalised per coefficient, see above)."""

    name = "v"

    def eps(self, u_t, out, alpha, sigma):
        r = (alpha**2 + sigma**2).sqrt()
        return (sigma * u_t / r + alpha * out) / r

    def x(self, u_t, out, alpha, sigma):
        r = (alpha**2 + sigma**2).sqrt()
        return (alpha * u_t / r - sigma * out) / r

    def target(self, u_x, u_eps, alpha, sigma):
        r = (alpha**2 + sigma**2).sqrt()
        return (alpha * u_eps - sigma * u_x) / r

    def signal(self, u_t, out, alpha, sigma):
        return alpha * self.x(u_t, out, alpha, sigma)


from nidiff.preconditioning import Preconditioned  # noqa: E402  (it subclasses Parametrization)

PARAMETRIZATIONS: dict[str, type[Parametrization]] = {p.name: p for p in (Epsilon, Data, Velocity, Preconditioned)}


def build_parametrization(name: str, basis: Basis, data_std: float | str | None = None) -> Parametrization:
    """The parametrization registered as ``name``, for ``basis`` (``data_std``: see ``Preconditioned``)."""
    if name not in PARAMETRIZATIONS:
        raise ValueError(f"unknown parametrization {name!r}; known: {', '.join(PARAMETRIZATIONS)}")
    return PARAMETRIZATIONS[name].build(basis, data_std=data_std)
