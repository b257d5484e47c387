"""The names of the built-in choices, known without importing torch.

Command-line help and configuration checks list these, so that ``nidiff sample --help`` or a
misspelt option answers before the heavy imports. Each tuple mirrors a registry or table that is
defined next to its code (named in the comment); ``tests/test_names.py`` checks that they agree.
Plugins add names through entry points, which :func:`registered` reads without importing them.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

__all__ = ["BUILTIN", "DATASET_NAMES", "PARAMETRIZATION_NAMES", "X_CLIP_NAMES", "registered"]

# kind -> (built-in names, entry-point group, registry in nidiff.registries)
BUILTIN: dict[str, tuple[tuple[str, ...], str, str]] = {
    "basis": (("dct", "fourier", "haar", "hartley", "identity", "matrix", "pca", "pca_separable", "whitened"),
              "nidiff.bases", "BASES"),
    "schedule": (("blur", "blurring", "cosine", "ihdm", "linear", "noise_shape", "product", "sagd", "soft_diffusion",
                  "ve"), "nidiff.schedules", "SCHEDULES"),
    "sampler": (("ancestral", "ddim", "dpm2", "dpmpp", "heun", "unipc"), "nidiff.samplers", "SAMPLERS"),
    "grid": (("angle", "logsnr", "uniform"), "nidiff.grids", "GRIDS"),
}
X_CLIP_NAMES: tuple[str, ...] = ("static", "dynamic")                       # sampling.clipping.X_CLIPS
PARAMETRIZATION_NAMES: tuple[str, ...] = ("eps", "x", "v", "precond")       # parametrization.PARAMETRIZATIONS
DATASET_NAMES: tuple[str, ...] = ("auto", "cifar10", "folder", "lsun", "synthetic")  # data.sources.DATASETS


def registered(kind: str) -> list[str]:
    """Every name of a kind (``"basis"``, ``"schedule"``, ``"sampler"``, ``"grid"``): the built-in
    ones and those of installed plugins, sorted, as ``nidiff.list_samplers()`` and its kin give them."""
    builtin, group, registry = BUILTIN[kind]
    names = set(builtin) | {ep.name for ep in entry_points(group=group)}
    from nidiff.registry import PLUGINS_ENV

    if os.environ.get(PLUGINS_ENV):  # modules registering at import: only the registry knows their names
        from nidiff import registries

        names |= set(getattr(registries, registry).names())
    return sorted(names)
