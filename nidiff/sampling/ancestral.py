"""Ancestral sampling (algorithm 1): sample the posterior with ``x`` replaced by the prediction.

| paper (algorithm 1, eq. 24)                              | code                   |
| -------------------------------------------------------- | ---------------------- |
| ``z_1 ~ N(0, I)``                                        | ``z`` (from ``prior_sample``) |
| ``u_t = V^T z_t``                                        | ``u``                  |
| ``mu = c_t u_t + c_e (u_t - sigma_t u_eps_hat)``         | ``mean``               |
| ``u_s = mu + sqrt(sigma^2_{t->s}) u_noise``              | ``u``                  |

Steps go ``t -> s`` over any strictly decreasing grid, not only ``s = t - 1/T``. The state stays
in coefficient space, so a step costs two transforms (the model input and its output). The last
step to ``s = 0`` returns the posterior mean without noise.

``x_clip`` (appendix A.1 leaves it open): ``None`` (the default) uses the prediction as it is; a
``(lo, hi)`` pair, ``"static"``, ``"dynamic"`` or an ``XClip`` clips ``x_hat`` in pixel space and
recomputes ``eps_hat`` from it (``nidiff.sampling.predict``), so the mean is eq. 19 with the
clipped ``x_hat``: ``c_e (u_t - sigma_t u_eps_hat) = c_x u_x_hat``.
"""

from __future__ import annotations

from torch import Tensor

from nidiff.registries import register_sampler
from nidiff.sampling.base import Sampler, SamplerRun

__all__ = ["Ancestral", "ancestral"]


@register_sampler("ancestral")
class Ancestral(Sampler):
    """Algorithm 1: ``N`` model evaluations, stochastic."""

    stochastic = True

    def step(self, run: SamplerRun, u: Tensor, i: int) -> Tensor:
        pred = run.predict(u, run.t(i))
        c_t, _, c_e, var = run.diffusion.reverse_coefficients(run.t(i), run.s(i), u.dtype)
        mean = c_t * u + c_e * pred.signal  # eq. 24
        if run.final(i):
            return mean
        return mean + var.sqrt() * run.noise(u)


ancestral = Ancestral()
