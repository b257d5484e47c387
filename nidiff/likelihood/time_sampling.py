"""Where the Monte Carlo bound evaluates the diffusion loss: stratified, importance-sampled times.

| symbol                                             | code                    |
| -------------------------------------------------- | ----------------------- |
| summary log-SNR ``lambda_bar(t) = mean_k lambda_k`` | ``logsnr_summary``     |
| proposal density ``p(t)`` (or step probability ``q_i``) | ``sample`` -> weight ``1 / p`` |
| defensive mixture weight ``beta``                  | ``defensive``           |
| per-coefficient loss weight ``-d lambda_k / dt`` (continuous) | ``coefficient_weight`` |
| ``expm1(lambda_k(s_i) - lambda_k(t_i))`` (discrete, step ``i``) | ``coefficient_weight`` |

The diffusion loss is an integral over ``t`` (or a sum over the steps of a grid) whose integrand is
largest where the log-SNR moves fastest. Drawing ``t`` with density proportional to
``-d lambda_bar / dt`` (uniform in the summary log-SNR, as the sampling grid of
``nidiff.sampling.logsnr_grid``) flattens it: ``-lambda_k' / -lambda_bar'`` is at most the number of
coefficients because every ``lambda_k`` is non-increasing. The density is tabulated on a fine grid
(piecewise constant on its cells, so the weights are exact whatever the resolution) and mixed with
the uniform density, ``p = (1 - beta) p_logsnr + beta``, which bounds every weight by ``1 / beta``.
``importance=False`` is ``beta = 1``, plain uniform ``t``.

Stratification: the ``n`` draws for one image come in ``n / 2`` pairs, both draws of pair ``j``
uniform in the ``j``-th of ``n / 2`` equal strata of [0, 1] before the inverse-CDF map. The pairs
give an unbiased variance estimate of the stratified mean (``paired_stderr``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nidiff.sampling.grids import RESOLUTION, check_grid, logsnr_summary

__all__ = ["ContinuousTime", "DiscreteTime", "stratified_uniform", "paired_stderr"]

DEFENSIVE = 0.05  # beta: share of the uniform density in the importance proposal


class _Proposal:
    """A piecewise proposal over cells ``[edges[j], edges[j + 1]]`` with probabilities ``probs``."""

    def __init__(self, increments: Tensor, widths: Tensor, importance: bool, defensive: float) -> None:
        if not isinstance(importance, bool):
            raise TypeError(f"importance must be a bool, got {importance!r}")
        if not 0.0 < defensive <= 1.0:
            raise ValueError(f"defensive (the proposal's uniform share) must be in (0, 1], got {defensive}")
        total = float(increments.sum())
        if not total > 0.0:
            raise ValueError("the mean log-SNR of this diffusion does not change over the grid")
        beta = 1.0 if not importance else defensive
        self.probs = (1.0 - beta) * increments / total + beta * widths / widths.sum()  # [M]
        self.cdf = torch.cat([self.probs.new_zeros(1), self.probs.cumsum(0)])
        self.cdf[-1] = 1.0

    def _cell(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """The cell of each uniform ``u`` and the position ``[0, 1)`` inside it."""
        u = u.to(self.cdf.device, torch.float64)
        j = (torch.searchsorted(self.cdf, u, right=True) - 1).clamp(0, self.probs.numel() - 1)
        return j, ((u - self.cdf[j]) / self.probs[j]).clamp(0.0, 1.0)


class ContinuousTime(_Proposal):
    """``t`` in [0, 1] for the continuous-time bound (VDM's ``L_inf``)."""

    def __init__(
        self, diffusion, importance: bool = True, resolution: int = RESOLUTION, defensive: float = DEFENSIVE
    ) -> None:
        device = diffusion.lam.device
        self.edges = torch.linspace(0.0, 1.0, resolution + 1, dtype=torch.float64, device=device)
        summary = logsnr_summary(diffusion, self.edges)
        super().__init__((summary[:-1] - summary[1:]).clamp_min(0.0), self.edges.diff(), importance, defensive)

    def sample(self, u: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """Uniforms ``[M]`` -> times ``t`` ``[M]``, ``None`` and weights ``1 / p(t)`` ``[M]`` (float64)."""
        j, frac = self._cell(u)
        width = self.edges[j + 1] - self.edges[j]
        return self.edges[j] + frac * width, None, width / self.probs[j]

    @staticmethod
    def coefficient_weight(diffusion, t: Tensor, s: Tensor | None) -> Tensor:
        """``-d lambda_k / dt`` at ``t`` ``[M]``: ``[M, *lam_shape]`` (float64, >= 0)."""
        d_log_alpha, d_log_sigma = diffusion.log_alpha_sigma_dt(t)
        return (-2.0 * (d_log_alpha - d_log_sigma)).clamp_min(0.0)


class DiscreteTime(_Proposal):
    """A step ``t_i -> s_i`` of a grid, for the discrete-time bound of ancestral sampling on it."""

    def __init__(self, diffusion, times: Tensor, importance: bool = True, defensive: float = DEFENSIVE) -> None:
        times = check_grid(times).to(diffusion.lam.device)
        if float(times[0]) != 1.0 or float(times[-1]) != 0.0:
            raise ValueError("the discrete-time bound needs a grid from t = 1 down to t = 0")
        self.t, self.s = times[:-1], times[1:]
        summary = logsnr_summary(diffusion, times)
        increments = (summary[1:] - summary[:-1]).clamp_min(0.0)
        super().__init__(increments, torch.ones_like(self.t), importance, defensive)

    def sample(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Uniforms ``[M]`` -> step times ``t`` ``[M]``, ``s`` ``[M]`` and weights ``1 / q_i`` ``[M]``."""
        j, _ = self._cell(u)
        return self.t[j], self.s[j], 1.0 / self.probs[j]

    @staticmethod
    def coefficient_weight(diffusion, t: Tensor, s: Tensor | None) -> Tensor:
        """``SNR_s / SNR_t - 1 = expm1(lambda_s - lambda_t)`` per coefficient: ``[M, *lam_shape]``."""
        return torch.expm1(diffusion.logsnr(s) - diffusion.logsnr(t)).clamp_min(0.0)


def stratified_uniform(n: int, batch: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``[n, batch]`` uniforms: draws ``2j`` and ``2j + 1`` both in stratum ``j`` of ``n / 2`` (float64)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n % 2:
        raise ValueError(f"n_t must be an even integer >= 2 (draws come in stratified pairs), got {n!r}")
    k = n // 2
    where = generator.device if generator is not None else device
    noise = torch.rand((n, batch), generator=generator, dtype=torch.float64, device=where).to(device)
    stratum = torch.arange(k, dtype=torch.float64, device=noise.device).repeat_interleave(2)  # [n]
    return (stratum[:, None] + noise) / k


def paired_stderr(values: Tensor) -> Tensor:
    """Standard error ``[B]`` of the mean over the stratified pairs of ``values`` ``[n, B]``."""
    k = values.shape[0] // 2
    pairs = values[: 2 * k].reshape(k, 2, -1)
    return ((pairs[:, 0] - pairs[:, 1]) ** 2).sum(0).div(4.0 * k * k).sqrt()
