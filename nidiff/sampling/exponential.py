"""Exponential quadrature in each coefficient's log-SNR: the shared math of the multistep samplers.

| paper / derivation (per coefficient ``k``, elementwise)                 | code                 |
| ----------------------------------------------------------------------- | -------------------- |
| half log-SNR ``l_k(t) = log(alpha_k / sigma_k) = lambda_k / 2``         | ``l_j``, ``la - ls`` |
| ``x_hat(l)``, the data prediction, interpolated in ``l``               | ``values``           |
| step ``t -> s``, ``h_k = l_k(s) - l_k(t) >= 0``                          | ``h``                |
| ``y = l - l_k(t)``, nodes ``y_j`` of the interpolated predictions       | ``nodes``            |
| ``I_j(h) = int_0^h y^j e^{y - h} dy``                                    | ``exp_moments``      |
| ``int_0^h e^{y - h} p(y) dy``, ``p`` the interpolating polynomial        | ``integrate``        |
| eq. (1) below, one step                                                 | ``exponential_step`` |

The data-prediction form of the probability-flow ODE (DPM-Solver++, Lu et al. 2022, eq. 9) holds
per coefficient with its own ``l_k``: variation of constants on ``u / sigma`` gives, for a step
``t -> s``,

    u_s = (sigma_s / sigma_t) u_t + alpha_s int_0^h e^{y - h} x_hat(l_t + y) dy.     (1)

(``d(u / sigma)/dl = e^l x_hat`` and ``sigma_s e^{l_s} = alpha_s``.) The linear part is exact.
Multistep and predictor-corrector samplers replace ``x_hat`` by the polynomial ``p`` through
predictions at earlier (or, for a corrector, the new) times, and integrate ``p`` exactly:
``p(y) = sum_n f[y_0..y_n] prod_{m<n} (y - y_m)`` (Newton form), so (1) needs only the moments
``I_j``. They obey ``I_0 = -expm1(-h)``, ``I_j = h^j - j I_{j-1}``; that recursion cancels badly for
small ``h``, where the series ``I_n = e^{-h} sum_{m>=0} h^{n+m+1} / ((n+m+1) m!)`` (all terms
positive) and the same recursion run downwards are used instead.

Each coefficient has its own nodes (one shared time grid gives every coefficient its own
``l_k``), so the weights are computed elementwise. Where two nodes of a coefficient coincide (its
log-SNR is flat between two grid times, e.g. the eigenvalue-0 coefficient of heat dissipation)
the divided differences through them are undefined: that coefficient drops those terms, i.e. it
takes the step with the polynomial of the nodes before the first coincidence (order 1 at worst:
DDIM). Nothing divides by ``alpha``: predictions enter as ``alpha_s x_hat_j = exp(log alpha_s -
log alpha_j) (alpha_j x_hat_j)`` with the ratio formed in the log domain (``exponential_step``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["exp_moments", "exponential_step", "integrate", "scaled_predictions"]

SERIES_BELOW = 1.0  # h below which the moments come from their series (no cancellation)
SERIES_TERMS = 20   # h < 1: the last term is below 1e-18 of the first
FLAT = 1e-12        # nodes closer than this in l count as one (a coefficient flat between two times)


def exp_moments(h: Tensor, n: int) -> list[Tensor]:
    """``[I_0, ..., I_n]`` with ``I_j(h) = int_0^h y^j e^{y - h} dy`` elementwise (float64, ``h >= 0``).

    ``h >= 1``: the closed forms ``I_0 = -expm1(-h)``, ``I_j = h^j - j I_{j-1}``. ``h < 1``: the series
    of ``I_n``, then ``I_{j-1} = (h^j - I_j) / j`` downwards, where ``h^j`` dominates (no cancellation).
    """
    h = h.to(torch.float64)
    small = h < SERIES_BELOW
    hs = torch.where(small, h, torch.zeros_like(h))
    closed = [-torch.expm1(-h)]
    for j in range(1, n + 1):
        closed.append(h**j - j * closed[-1])
    term = hs ** (n + 1)  # h^{n+m+1} / m!
    total = term / (n + 1)
    for m in range(1, SERIES_TERMS):
        term = term * hs / m
        total = total + term / (n + m + 1)
    series = [torch.exp(-hs) * total]
    for j in range(n, 0, -1):
        series.insert(0, (hs**j - series[0]) / j)
    return [torch.where(small, a, b) for a, b in zip(series, closed)]


def integrate(
    h: Tensor, nodes: Sequence[Tensor], values: Sequence[Tensor], valid: Sequence[Tensor] | None = None
) -> Tensor:
    """``int_0^h e^{y - h} p(y) dy`` for the polynomial ``p`` with ``p(nodes[j]) = values[j]``.

    Args:
        h: the step per coefficient, float64, broadcastable to the values' shape.
        nodes: ``q`` node positions per coefficient (float64, like ``h``); ``nodes[0]`` is the
            newest prediction. Equal nodes of a coefficient truncate its polynomial (module doc).
        values: ``q`` predictions ``[B, *coeff_shape]``, already scaled (``alpha_s x_hat``).
        valid: optional ``q`` boolean masks like ``h``: where ``valid[j]`` is false, the
            coefficient's polynomial stops before node ``j`` (a prediction that could not be scaled).
    Returns:
        the integral, shaped and typed like ``values[0]``.
    """
    q = len(nodes)
    if q < 1 or len(values) != q:
        raise ValueError(f"integrate needs as many nodes as values (at least one), got {q} and {len(values)}")
    dtype = values[0].dtype
    moments = exp_moments(h, q - 1)
    total = moments[0].to(dtype) * values[0]
    table = list(values)  # divided differences of the current order, f[y_j..y_{j+n}]
    usable = torch.ones_like(h, dtype=torch.bool)  # the coefficient still takes terms of this order
    newton = [torch.ones_like(h)]  # monomial coefficients of prod_{m<n} (y - y_m)
    for n in range(1, q):
        gaps = [nodes[j] - nodes[j + n] for j in range(q - n)]
        # nodes are ordered (l is monotone in t): distinct neighbours make every gap used here nonzero
        usable = usable & (nodes[n - 1] - nodes[n] > FLAT)
        if valid is not None:
            usable = usable & valid[n]
        table = [
            (table[j] - table[j + 1]) / torch.where(gap.abs() > FLAT, gap, torch.ones_like(gap)).to(dtype)
            for j, gap in enumerate(gaps)
        ]
        shifted = [torch.zeros_like(h)] + newton  # times y
        newton = [a - nodes[n - 1] * b for a, b in zip(shifted, newton + [torch.zeros_like(h)])]
        weight = sum(c * moments[j] for j, c in enumerate(newton))
        total = total + torch.where(usable, weight, torch.zeros_like(weight)).to(dtype) * table[0]
    return total


def exponential_step(
    u: Tensor,
    start: tuple[Tensor, Tensor],
    end: tuple[Tensor, Tensor],
    points: Sequence[tuple[Tensor, Tensor, Tensor]],
) -> Tensor:
    """Eq. (1) from ``start`` to ``end`` with ``x_hat`` interpolated through ``points``.

    Args:
        u: the state at ``start`` ``[B, *coeff_shape]``.
        start, end: ``(log alpha, log sigma)`` at the two times, float64, broadcastable to ``u``.
        points: ``(l_j, log alpha_j, signal_j)`` of the predictions to interpolate, newest first,
            with ``signal_j = alpha_j x_hat_j`` (``Prediction.signal``) and ``l_j`` float64 like
            the log-alphas. The first is the prediction at ``start`` (a multistep predictor) or
            at ``end`` (a corrector).
    Returns:
        the state at ``end``, like ``u``.

    Every prediction enters as ``alpha_end x_hat_j = exp(log alpha_end - log alpha_j) signal_j``, a
    log-domain ratio. An older prediction whose ratio overflows ``u``'s dtype (one made where
    ``alpha_j`` underflowed: heat dissipation's high frequencies) is dropped for that coefficient.
    """
    (la_0, ls_0), (la_1, ls_1) = start, end
    l_0 = la_0 - ls_0
    values, valid = scaled_predictions(points, la_1, u.dtype)
    nodes = [l_j - l_0 for l_j, _, _ in points]
    h = (la_1 - ls_1) - l_0
    return (ls_1 - ls_0).exp().to(u.dtype) * u + integrate(h, nodes, values, valid)


def scaled_predictions(
    points: Sequence[tuple[Tensor, Tensor, Tensor]], log_alpha_end: Tensor, dtype: torch.dtype
) -> tuple[list[Tensor], list[Tensor]]:
    """``alpha_end x_hat_j = exp(log alpha_end - log alpha_j) signal_j`` for each point, and where
    that ratio is finite in ``dtype`` (the first point's is used as it is, as DDIM uses it)."""
    limit = 0.5 * math.log(torch.finfo(dtype).max)
    values, valid = [], []
    for j, (_, la_j, signal) in enumerate(points):
        log_ratio = log_alpha_end - la_j
        finite = log_ratio < limit
        if j == 0:
            values.append(log_ratio.exp().to(dtype) * signal)
        else:
            ratio = torch.where(finite, log_ratio, torch.zeros_like(log_ratio)).exp().to(dtype)
            values.append(torch.where(finite, ratio, torch.zeros_like(ratio)) * signal)
        valid.append(finite)
    return values, valid
