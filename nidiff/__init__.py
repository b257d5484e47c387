"""nidiff: non-isotropic Gaussian diffusion in pluggable bases.

The public names below are imported on first use (PEP 562), so that ``nidiff --help`` and a
refused configuration answer without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nidiff.lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Basis": "nidiff.bases",
    "GaussianDiffusion": "nidiff.diffusion",
    "Run": "nidiff.runs",
    "Sampler": "nidiff.sampling",
    "SamplingPlan": "nidiff.sampling",
    "Schedule": "nidiff.schedules",
    "load_run": "nidiff.runs",
    **{name: "nidiff.registries" for name in (
        "build_basis", "build_net", "build_sampler", "build_schedule", "list_bases", "list_grids", "list_nets",
        "list_samplers", "list_schedules", "register_basis", "register_grid", "register_net", "register_sampler",
        "register_schedule", "time_grid",
    )},
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from nidiff.bases import Basis
    from nidiff.diffusion import GaussianDiffusion
    from nidiff.registries import (
        build_basis,
        build_net,
        build_sampler,
        build_schedule,
        list_bases,
        list_grids,
        list_nets,
        list_samplers,
        list_schedules,
        register_basis,
        register_grid,
        register_net,
        register_sampler,
        register_schedule,
        time_grid,
    )
    from nidiff.runs import Run, load_run
    from nidiff.sampling import Sampler, SamplingPlan
    from nidiff.schedules import Schedule


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
