"""Samplers and time grids, each registered by name; :func:`run_sampler` is the one loop they share.

| name        | class           | model evaluations per step | kind                                    |
| ----------- | --------------- | -------------------------- | --------------------------------------- |
| "ancestral" | ``Ancestral``   | 1                          | algorithm 1, stochastic                 |
| "ddim"      | ``DDIM``        | 1                          | DDIM, option ``eta`` in [0, 1]          |
| "dpm2"      | ``DPMSolver2``  | 2                          | exponential integrator, 2nd order       |
| "heun"      | ``Heun``        | 2                          | Heun in ``t``, 2nd order (baseline)     |
| "dpmpp"     | ``DPMSolverPP`` | 1                          | DPM-Solver++(kM), option ``order``      |
| "unipc"     | ``UniPC``       | 1                          | UniPC predictor-corrector, ``order``    |

Time grids: ``"uniform"``, ``"logsnr"`` (``grids``) and ``"angle"`` (``angle``, equal largest steps of
every coefficient's signal-to-noise angle). The Gaussian check that measures samplers against
model evaluations is ``nidiff.sampling.gaussian_check``.

``nidiff.build_sampler(name, **options)`` gives an instance; every instance is called with the
shared signature ``sampler(diffusion, model, z, times, generator=None, callback=None, x_clip=None)``.
``ancestral``, ``ddim``, ``dpm2`` and ``heun`` are instances with the default options.
:func:`~nidiff.sampling.plan.draw` runs a whole :class:`~nidiff.sampling.plan.SamplingPlan`
(sampler, options, grid, steps, clipping) from the prior: every command and the Python API use it.
"""

from __future__ import annotations

from nidiff.sampling.ancestral import Ancestral, ancestral
from nidiff.sampling.angle import angle_grid, angles, default_variance
from nidiff.sampling.base import Sampler, SamplerRun, run_sampler
from nidiff.sampling.clipping import X_CLIPS, DynamicThreshold, StaticClip, XClip, resolve_x_clip
from nidiff.sampling.ddim import DDIM, ddim
from nidiff.sampling.dpm_solver import DPMSolver2, dpm2
from nidiff.sampling.dpm_solver_pp import DPMSolverPP
from nidiff.sampling.grids import (
    check_grid,
    logsnr_grid,
    logsnr_midpoints,
    logsnr_summary,
    time_at_logsnr,
    uniform_grid,
)
from nidiff.sampling.heun import Heun, heun
from nidiff.sampling.plan import SamplingPlan, draw, parse_options
from nidiff.sampling.predict import Prediction, predict
from nidiff.sampling.unipc import UniPC

__all__ = [
    "X_CLIPS",
    "Ancestral",
    "DDIM",
    "DPMSolver2",
    "DPMSolverPP",
    "DynamicThreshold",
    "Heun",
    "Prediction",
    "Sampler",
    "SamplerRun",
    "SamplingPlan",
    "StaticClip",
    "UniPC",
    "XClip",
    "ancestral",
    "angle_grid",
    "angles",
    "check_grid",
    "ddim",
    "default_variance",
    "dpm2",
    "draw",
    "heun",
    "logsnr_grid",
    "logsnr_midpoints",
    "logsnr_summary",
    "parse_options",
    "predict",
    "resolve_x_clip",
    "run_sampler",
    "time_at_logsnr",
    "uniform_grid",
]
