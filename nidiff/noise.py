"""Gaussian noise from one generator for the batch, or one generator per sample.

A list of generators gives sample ``i`` its own stream, so the same image comes out whatever
batch it is drawn in: ``nidiff sample`` seeds image ``i`` with ``(seed, i)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Generators", "randn", "per_sample_generators"]

Generators = torch.Generator | Sequence[torch.Generator] | None


def randn(shape: Sequence[int], generator: Generators = None, device=None, dtype=torch.float32) -> Tensor:
    """``torch.randn(shape)``; with a list of generators, row ``i`` is drawn from ``generator[i]``."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}: give one per sample")
    return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=device, dtype=dtype) for g in generator])


def per_sample_generators(seed: int, indices: Sequence[int], device=None) -> list[torch.Generator]:
    """One generator per sample index, seeded from ``(seed, index)`` through NumPy's SeedSequence."""
    import numpy as np

    gens = []
    for i in indices:
        state = int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1, dtype=np.uint64)[0])
        gens.append(torch.Generator(device=device).manual_seed(state & 0x7FFF_FFFF_FFFF_FFFF))
    return gens
