"""DPM-Solver++(kM) (Lu et al. 2022, "DPM-Solver++", algorithm 2), multistep, per coefficient.

| paper (per coefficient ``k``, elementwise)                           | code                    |
| -------------------------------------------------------------------- | ----------------------- |
| ``lambda`` of the paper (half log-SNR), ``l_k = log(alpha_k/sigma_k)`` | ``l``                 |
| ``h_i = l_k(t_i) - l_k(t_{i-1})``, one per coefficient               | ``h``                   |
| ``x_theta(x_{t_i}, t_i)``, the data prediction                      | ``alpha_t x_hat = Prediction.signal`` |
| ``r_i = h_{i-1} / h_i`` (here per coefficient)                       | implicit in the nodes   |
| eq. (9): ``x_t = (sigma_t / sigma_s) x_s + sigma_t int e^l x_theta dl`` | ``exponential_step``  |
| ``D_1``, ``D_2``: divided differences of past predictions            | Newton form, ``nidiff.sampling.exponential`` |

Every coefficient of ``u = P^-1 x`` is a scalar diffusion with its own ``alpha_k(t)``, ``sigma_k(t)``,
so eq. (9) holds coefficient by coefficient with its own log-SNR step ``h_k``; a grid shared by
the batch (the network takes one time) gives every coefficient its own nodes and step ratios.
The step ``t_i -> t_{i+1}`` interpolates the last ``k`` predictions ``x_hat`` by a polynomial in
``l_k`` and integrates eq. (9) exactly (``coefficients="exact"``): the update is exact whenever
``x_hat`` is a polynomial of degree ``k - 1`` in ``l_k``, whatever the step ratios, which differ
per coefficient. At order 2 this is diffusers' ``solver_type="heun"``. ``coefficients="dpmsolver"``
takes Lu et al.'s coefficients instead, as their code and diffusers' ``DPMSolverMultistepScheduler``
do: at order 2 ``-expm1(-h) (1 + 1 / (2 r)) x_hat_0 - ...`` (``solver_type="midpoint"``), at order 3
the third-order update whose ``D_2`` term is half the exact quadratic integral (so it is exact
only to second order in ``l``). Both are written with divided differences in ``l_k``, so a
coefficient whose log-SNR is flat between two grid times (``h_{i-1,k} = 0``) drops the terms
through them (module ``exponential``), and nothing divides by ``alpha``.

Warm-up: the first step is first order, the second at most second order (``k`` past predictions
are needed). ``lower_order_final`` lowers the order of the last steps to ``1`` (final step) and
``2`` (the one before), as diffusers does (there only below 15 steps): the final step extrapolates
the predictions furthest, and lower orders are steadier there with few steps. One model
evaluation per step; deterministic.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from nidiff.registries import register_sampler
from nidiff.sampling.base import Sampler, SamplerRun
from nidiff.sampling.exponential import FLAT, exp_moments, exponential_step, scaled_predictions

__all__ = ["DPMSolverPP", "Multistep", "check_order", "multistep_order"]

ORDERS = (1, 2, 3)


def check_order(order: object) -> int:
    """``order`` as an int in ``ORDERS``, or ``ValueError`` / ``TypeError`` saying what is accepted."""
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"order must be an integer 1, 2 or 3, got {order!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be 1, 2 or 3 (the number of past predictions a step uses), got {order}")
    return order


def multistep_order(order: int, run: SamplerRun, i: int, lower_order_final: bool) -> int:
    """The order of step ``i``: at most ``i + 1`` (warm-up) and, with ``lower_order_final``, at most
    the number of steps left (1 for the final step, 2 for the one before)."""
    order = min(order, i + 1)
    return min(order, run.steps - i) if lower_order_final else order


class Multistep(Sampler):
    """What the multistep samplers (``dpmpp``, ``unipc``) share: the order, lower-order final steps,
    and each step's start, end and newest point ``(l_t, log alpha_t, alpha_t x_hat)``."""

    def __init__(self, order: int, lower_order_final: bool) -> None:
        self.order = check_order(order)
        if not isinstance(lower_order_final, bool):
            raise TypeError(f"lower_order_final must be true or false, got {lower_order_final!r}")
        self.lower_order_final = lower_order_final

    def newest(self, run: SamplerRun, u: Tensor, i: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor],
                                                                     tuple[Tensor, Tensor, Tensor]]:
        """``(log alpha_t, log sigma_t)``, the same at ``s``, and the point predicted at ``t``."""
        d = run.diffusion
        start, end = d.log_alpha_sigma(run.t(i)), d.log_alpha_sigma(run.s(i))
        return start, end, (start[0] - start[1], start[0], run.predict(u, run.t(i)).signal)


@register_sampler("dpmpp")
class DPMSolverPP(Multistep):
    """DPM-Solver++(kM) per coefficient: ``N`` model evaluations, deterministic; ``order`` k in 1..3."""

    def __init__(
        self,
        order: int = 2,                                             # k: past predictions per step
        coefficients: Literal["exact", "dpmsolver"] = "exact",     # exact integral, or Lu et al.'s
        lower_order_final: bool = True,                             # orders 1 and 2 at the last steps
    ) -> None:
        super().__init__(order, lower_order_final)
        if coefficients not in ("exact", "dpmsolver"):
            raise ValueError(
                f"coefficients must be 'exact' (the exact integral of the interpolating polynomial) or "
                f"'dpmsolver' (Lu et al.'s, as diffusers), got {coefficients!r}"
            )
        self.coefficients = coefficients

    def step(self, run: SamplerRun, u: Tensor, i: int) -> Tensor:
        start, end, newest = self.newest(run, u, i)
        history = run.memory.setdefault("history", [])  # newest first: (l_j, log alpha_j, signal_j)
        history.insert(0, newest)
        del history[self.order :]
        order = multistep_order(self.order, run, i, self.lower_order_final)
        if self.coefficients == "exact" or order == 1:
            return exponential_step(u, start, end, history[:order])
        return _dpmsolver_step(u, start, end, history[:order])


def _dpmsolver_step(
    u: Tensor, start: tuple[Tensor, Tensor], end: tuple[Tensor, Tensor], points: list[tuple[Tensor, Tensor, Tensor]]
) -> Tensor:
    """Lu et al.'s multistep updates (order 2: midpoint, order 3: their third order), per coefficient.

    In divided differences ``f01 = (X_0 - X_1) / h_0``, ``f012 = (f01 - f12) / (h_0 + h_1)`` of the
    scaled predictions ``X_j = alpha_s x_hat_j`` (``h_0 = l_t - l_{t-1}``, ``h_1 = l_{t-1} - l_{t-2}``):

        order 2:  u_s = first order + I_0 h / 2 f01                   (``D_1 / (2 r)`` term)
        order 3:  u_s = first order + I_1 f01 + (h_0 I_1 + I_2 / 2) f012

    where the exact integral of the quadratic would have ``h_0 I_1 + I_2`` (``I_j``: ``exp_moments``).
    """
    (la_t, ls_t), (la_s, ls_s) = start, end
    l_t = la_t - ls_t
    h = (la_s - ls_s) - l_t
    first = exponential_step(u, start, end, points[:1])
    x, valid = scaled_predictions(points, la_s, u.dtype)
    h0 = l_t - points[1][0]
    moments = exp_moments(h, 2)
    flat0 = (h0 <= FLAT) | ~valid[1]
    f01 = (x[0] - x[1]) / torch.where(flat0, torch.ones_like(h0), h0).to(u.dtype)
    if len(points) == 2:
        weight = torch.where(flat0, torch.zeros_like(h), moments[0] * h / 2)
        return first + weight.to(u.dtype) * f01
    h1 = points[1][0] - points[2][0]
    flat1 = flat0 | (h1 <= FLAT) | ~valid[2]
    f12 = (x[1] - x[2]) / torch.where(h1 <= FLAT, torch.ones_like(h1), h1).to(u.dtype)
    f012 = (f01 - f12) / torch.where(flat1, torch.ones_like(h1), h0 + h1).to(u.dtype)
    w1 = torch.where(flat0, torch.zeros_like(h), moments[1])
    w2 = torch.where(flat1, torch.zeros_like(h), h0 * moments[1] + moments[2] / 2)
    return first + w1.to(u.dtype) * f01 + w2.to(u.dtype) * f012
