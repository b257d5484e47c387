"""Samplers: free functions with one shared signature
``sampler(diffusion, model, z, times, generator=None, callback=None, x_clip=None) -> x``.

| name        | function     | model evaluations per step | kind                                  |
| ----------- | ------------ | -------------------------- | ------------------------------------- |
| "ancestral" | ``ancestral``| 1                          | algorithm 1, stochastic               |
| "ddim"      | ``ddim``     | 1                          | DDIM, ``eta`` in [0, 1]               |
| "dpm2"      | ``dpm2``     | 2                          | exponential integrator, 2nd order     |
| "heun"      | ``heun``     | 2                          | Heun in ``t``, 2nd order (baseline)   |
"""

from __future__ import annotations

from collections.abc import Callable

from nidiff.sampling.ancestral import ancestral
from nidiff.sampling.clipping import X_CLIPS, DynamicThreshold, StaticClip, XClip, resolve_x_clip
from nidiff.sampling.ddim import ddim
from nidiff.sampling.dpm_solver import dpm2
from nidiff.sampling.grids import (
    check_grid,
    logsnr_grid,
    logsnr_midpoints,
    logsnr_summary,
    time_at_logsnr,
    uniform_grid,
)
from nidiff.sampling.heun import heun
from nidiff.sampling.predict import Prediction, predict

__all__ = [
    "SAMPLERS",
    "X_CLIPS",
    "DynamicThreshold",
    "Prediction",
    "StaticClip",
    "XClip",
    "ancestral",
    "check_grid",
    "ddim",
    "dpm2",
    "get_sampler",
    "heun",
    "logsnr_grid",
    "logsnr_midpoints",
    "logsnr_summary",
    "predict",
    "resolve_x_clip",
    "time_at_logsnr",
    "uniform_grid",
]

SAMPLERS: dict[str, Callable] = {"ancestral": ancestral, "ddim": ddim, "dpm2": dpm2, "heun": heun}


def get_sampler(name: str) -> Callable:
    """The sampler registered as ``name`` in :data:`SAMPLERS`."""
    if not isinstance(name, str):
        raise TypeError(f"a sampler name must be a string, got {name!r}")
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
