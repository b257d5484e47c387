"""The sampler contract and the one loop that runs every sampler.

A sampler is a class registered by name (``@register_sampler("ddim")``) whose constructor takes
its options (``DDIM(eta=0.5)``, checked there) and whose :meth:`Sampler.step` takes one step
``t_i -> t_{i+1}`` of the state ``u`` in coefficient space. :func:`run_sampler` does the rest for
all of them: it checks the grid, maps the starting image to coefficients and back, calls
``callback`` after each step, and gives each step a :class:`SamplerRun` with what a step needs:
the model's prediction (with the ``x_clip`` of the run), the run's noise streams, the grid, and a
``memory`` dict that lives for one run (a multistep sampler keeps its past predictions there).

Every sampler instance is called with the shared signature

    sampler(diffusion, model, z, times, generator=None, callback=None, x_clip=None) -> x

where ``z`` is the state at ``times[0]`` ``[B, C, H, W]``, ``times`` a strictly decreasing grid
``[N + 1]``, ``generator`` one ``torch.Generator`` or one per sample (:mod:`nidiff.noise`),
``callback`` receives ``{"i", "t", "s", "z"}`` after each step, and ``x_clip`` clips ``x_hat``
(:mod:`nidiff.sampling.clipping`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from nidiff.noise import Generators, randn
from nidiff.sampling.clipping import XClip, resolve_x_clip
from nidiff.sampling.grids import check_grid
from nidiff.sampling.predict import Model, Prediction, predict

__all__ = ["Sampler", "SamplerRun", "run_sampler"]


@dataclass
class SamplerRun:
    """What one run of a sampler shares between its steps."""

    diffusion: Any                    # the GaussianDiffusion
    model: Model                      # model(z_t [B, C, H, W], t [B]) -> [B, C, H, W]
    times: Tensor                     # the grid [N + 1], float64, on the state's device
    generator: Generators = None      # noise streams (None for deterministic samplers)
    x_clip: XClip | None = None       # clipping of x_hat, applied at every prediction
    memory: dict[str, Any] = field(default_factory=dict)  # per-run state of a sampler

    @property
    def steps(self) -> int:
        return self.times.numel() - 1

    def t(self, i: int) -> Tensor:
        """The time step ``i`` starts from, ``[1]`` (float64)."""
        return self.times[i : i + 1]

    def s(self, i: int) -> Tensor:
        """The time step ``i`` ends at, ``[1]`` (float64)."""
        return self.times[i + 1 : i + 2]

    def final(self, i: int) -> bool:
        """Whether step ``i`` is the last and ends at ``t = 0`` (ancestral samplers add no noise there)."""
        return i == self.steps - 1 and float(self.times[-1]) == 0.0

    def predict(self, u: Tensor, t: Tensor) -> Prediction:
        """``u_eps_hat`` and ``alpha_t u_x_hat`` at ``(u, t)`` (one model evaluation)."""
        return predict(self.diffusion, self.model, u, t, self.x_clip)

    def noise(self, u: Tensor) -> Tensor:
        """Standard normal noise shaped like ``u``, from the run's generator(s)."""
        return randn(u.shape, self.generator, device=u.device, dtype=u.dtype)


class Sampler(ABC):
    """One sampler; subclasses implement :meth:`step` and take their options in ``__init__``.

    ``evaluations_per_step``: model evaluations a step costs (NFE = steps x this).
    ``stochastic``: whether the sampler draws noise at its steps (and so reads ``generator``).
    """

    evaluations_per_step: int = 1
    stochastic: bool = False

    def begin(self, run: SamplerRun) -> None:
        """Called once before the first step (e.g. to place intermediate times); nothing by default."""

    @abstractmethod
    def step(self, run: SamplerRun, u: Tensor, i: int) -> Tensor:
        """The state at ``run.s(i)`` from the state ``u`` ``[B, *coeff_shape]`` at ``run.t(i)``."""

    @torch.no_grad()
    def __call__(
        self,
        diffusion,
        model: Model,
        z: Tensor,
        times: Tensor,
        generator: Generators = None,
        callback: Callable[[dict], None] | None = None,
        x_clip: XClip | str | tuple[float, float] | None = None,
    ) -> Tensor:
        """Sample from ``z`` at ``times[0]`` down to ``times[-1]``; returns ``[B, C, H, W]``."""
        return run_sampler(self, diffusion, model, z, times, generator, callback, x_clip)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


@torch.no_grad()
def run_sampler(
    sampler: Sampler,
    diffusion,
    model: Model,
    z: Tensor,
    times: Tensor,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    x_clip: XClip | str | tuple[float, float] | None = None,
) -> Tensor:
    """The loop every sampler shares (see the module docstring)."""
    run = SamplerRun(diffusion, model, check_grid(times).to(z.device), generator, resolve_x_clip(x_clip))
    sampler.begin(run)
    u = diffusion.basis.to_coeffs(z)
    for i in range(run.steps):
        u = sampler.step(run, u, i)
        if callback is not None:
            z_s = diffusion.basis.from_coeffs(u)
            callback({"i": i, "t": float(run.times[i]), "s": float(run.times[i + 1]), "z": z_s})
    return diffusion.basis.from_coeffs(u)
