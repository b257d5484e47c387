"""Samplers: free functions with one shared signature ``(diffusion, model, z, times, ...)``."""

from nidiff.sampling.ancestral import ancestral
from nidiff.sampling.grids import check_grid, uniform_grid

__all__ = ["ancestral", "check_grid", "uniform_grid"]
