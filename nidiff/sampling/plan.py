"""A sampling plan (sampler, its options, time grid, steps, clipping) and drawing from the prior.

Every place that samples, ``nidiff sample``, ``nidiff eval``, ``nidiff compare``, the training
sample grids, ``nidiff viz samples`` and :meth:`nidiff.Run.sample`, describes how with one
:class:`SamplingPlan` and samples with :func:`draw`. The sampler's own options (``eta`` of DDIM,
say) travel as one mapping, ``options``, checked against the sampler's constructor when the plan is
made, so a new sampler's options reach every command without code in any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from nidiff.noise import Generators
from nidiff.registries import GRIDS, SAMPLERS, build_sampler, time_grid
from nidiff.sampling.base import Sampler
from nidiff.sampling.clipping import X_CLIPS

__all__ = ["SamplingPlan", "draw", "parse_options"]


@dataclass(frozen=True)
class SamplingPlan:
    """How to sample. Checked when made: unknown names and bad options raise at once."""

    sampler: str = "ancestral"                                # a registered sampler
    steps: int = 1000                                         # steps of the time grid
    grid: str = "uniform"                                     # a registered time grid
    options: Mapping[str, Any] = field(default_factory=dict)  # the sampler's options, e.g. {"eta": 0.5}
    x_clip: str | tuple[float, float] | None = None           # None, "static", "dynamic" or (lo, hi)

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if self.grid not in GRIDS:
            GRIDS.get(self.grid)  # raises, listing the known grids
        if isinstance(self.x_clip, str) and self.x_clip not in X_CLIPS:
            raise ValueError(f"unknown x_clip {self.x_clip!r}; known: {', '.join(X_CLIPS)} (or null for none)")
        object.__setattr__(self, "options", dict(self.options or {}))
        self.build()  # checks the sampler name and its options

    @classmethod
    def from_mapping(cls, node: Mapping[str, Any]) -> SamplingPlan:
        """From a config node with the fields of this class (others, such as ``n``, are ignored)."""
        known = {"sampler", "steps", "grid", "options", "x_clip"}
        return cls(**{k: node[k] for k in known if k in node})

    def build(self) -> Sampler:
        """The sampler instance with this plan's options."""
        return build_sampler(self.sampler, **self.options)

    @property
    def evaluations(self) -> int:
        """Model evaluations per image (NFE)."""
        return self.steps * SAMPLERS.get(self.sampler).evaluations_per_step

    def describe(self) -> str:
        """``"ddim (eta=0.5), 50 steps, logsnr grid, x_clip static"``."""
        options = ", ".join(f"{k}={v}" for k, v in self.options.items())
        name = f"{self.sampler} ({options})" if options else self.sampler
        return f"{name}, {self.steps} steps, {self.grid} grid, x_clip {self.x_clip or 'none'}"

    def as_dict(self) -> dict[str, Any]:
        x_clip = list(self.x_clip) if isinstance(self.x_clip, tuple) else self.x_clip
        return {"sampler": self.sampler, "steps": self.steps, "grid": self.grid, "options": dict(self.options),
                "x_clip": x_clip}


@torch.no_grad()
def draw(
    diffusion,
    model: nn.Module | Callable[[Tensor, Tensor], Tensor],
    plan: SamplingPlan,
    n: int,
    generator: Generators = None,
    device: torch.device | str | None = None,
    callback: Callable[[dict], None] | None = None,
) -> Tensor:
    """``n`` samples ``[n, C, H, W]`` (the model's space, unclipped) following ``plan`` from the prior.

    ``generator``: one ``torch.Generator`` for the batch, or one per sample (:mod:`nidiff.noise`),
    which draws the prior and every step's noise.
    """
    z = diffusion.prior_sample(n, generator=generator, device=device)
    times = time_grid(plan.grid, diffusion, plan.steps, device=z.device)
    return plan.build()(diffusion, model, z, times, generator=generator, callback=callback, x_clip=plan.x_clip)


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["eta=0.5", "order=3"]`` -> ``{"eta": 0.5, "order": 3}``; values are read as YAML scalars."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"a sampler option is KEY=VALUE (e.g. eta=0.5), got {item!r}")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, (dict, list)):
            raise ValueError(f"a sampler option's value is a number, a word, true/false or null, got {item!r}")
        out[key.strip()] = parsed
    return out
