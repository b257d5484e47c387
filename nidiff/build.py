"""One way to build the parts of a model from names: bases, schedules, networks, the diffusion.

A component is described by a mapping ``{"name": <registered name>, <parameter>: <value>, ...}``,
whether it comes from Python, the command line (``basis=haar basis.levels=2``), a recipe or a saved
run. :func:`build_component` looks the name up in its registry (an allowlist: only registered
components can be built) and checks every parameter against the component's signature
(:mod:`nidiff.params`) before calling it. Training, :func:`nidiff.load_run` (sample, eval, viz,
compare, resume) and ``nidiff viz`` all build through here; nothing is ever built from a class path
written in a file.

A saved run is data. :func:`check_config` refuses any Hydra instantiation key (``_target_``,
``_args_``, ``_partial_``, ...) anywhere in a configuration read from a run, except the class
paths that runs written by nidiff 0.1 carry for their components, which :func:`migrate_config`
maps back to registry names (``nidiff.bases.DCTBasis`` -> ``dct``); an unknown class path is an
error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from nidiff.diffusion import GaussianDiffusion
from nidiff.fitting import Fitted, needs_fit
from nidiff.params import ParameterError, check_params
from nidiff.parametrization import build_parametrization
from nidiff.registries import BASES, NETS, SCHEDULES
from nidiff.registry import Registry

__all__ = [
    "UnsafeConfigError",
    "build_component",
    "check_component",
    "build_diffusion",
    "build_network",
    "check_config",
    "migrate_config",
]

# config key -> (registry, what the user calls it)
COMPONENTS: dict[str, Registry] = {"basis": BASES, "schedule": SCHEDULES, "net": NETS}
# keys with which Hydra's ``instantiate`` would import and call code
_HYDRA_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")
_LEGACY_DATA_TARGET = "nidiff.data.ImageDataModule"


class UnsafeConfigError(ValueError):
    """A configuration read from a run names code (a Hydra ``_target_`` or similar) nidiff does not know."""


def check_component(registry: Registry, node: Mapping[str, Any], key: str | None = None) -> tuple[Any, dict]:
    """``(factory, params)`` of ``{"name": NAME, **params}``: the name registered, the parameters
    checked against its signature; nothing is built. ``key`` (``"basis"``) names it in errors."""
    where = key or registry.kind
    if not isinstance(node, Mapping):
        raise ParameterError(f"{where} must be a mapping {{name: ..., parameters}}, got {node!r}")
    params = dict(node)
    name = params.pop("name", None)
    if not isinstance(name, str):
        raise ParameterError(f"{where} needs a 'name', one of: {', '.join(registry.names())}")
    factory = registry.get(name)
    try:
        return factory, check_params(factory, params, f"{registry.kind} {name!r}")
    except ParameterError as err:
        if key is None or "takes no parameter" not in str(err):
            raise
        extra = str(err).split("takes no parameter ", 1)[1].split("'")[1]
        raise ParameterError(f"{err}. If a recipe set {key}.{extra} for another {registry.kind}, "
                             f"add '~{key}.{extra}' to drop it") from None


def build_component(registry: Registry, node: Mapping[str, Any], key: str | None = None) -> Any:
    """Build ``{"name": NAME, **params}`` from ``registry`` (see :func:`check_component`)."""
    factory, params = check_component(registry, node, key)
    try:
        return factory(**params)
    except (ValueError, TypeError) as err:  # a value the component refuses: say which component
        kind = TypeError if isinstance(err, TypeError) else ValueError
        raise kind(f"{key or registry.kind} {node['name']!r}: {err}") from err


def build_diffusion(
    config: Mapping[str, Any],
    fit_images: Callable[[], Tensor] | None = None,
    state: Mapping[str, Tensor] | None = None,
) -> GaussianDiffusion:
    """The diffusion of a configuration (``basis``, ``schedule``, ``diffusion.parametrization``).

    A fitted component (a basis learned from data, ``precond``'s data statistics) is fitted on
    ``fit_images()`` (training; ``precond`` also on their mirror images when ``data.random_flip``
    is on, as training sees them) or loaded from ``state``, the ``diffusion.*`` entries of a
    checkpoint's ``state_dict`` (a saved run); one of them is needed.
    """
    basis = build_component(BASES, config["basis"], "basis")
    _fit_or_load(basis, "basis", state, fit_images)
    schedule = build_component(SCHEDULES, config["schedule"], "schedule")
    options = config.get("diffusion") or {}
    parametrization = build_parametrization(options.get("parametrization", "eps"), basis,
                                            data_std=options.get("data_std"))
    if isinstance(parametrization, Fitted):
        flip = bool((config.get("data") or {}).get("random_flip", False))

        def mirrored() -> Tensor:
            images = fit_images()
            return torch.cat([images, images.flip(-1)]) if flip else images

        _fit_or_load(parametrization, "parametrization", state, None if fit_images is None else mirrored)
    return GaussianDiffusion(basis, schedule, parametrization=parametrization)


def _fit_or_load(component: nn.Module, prefix: str, state: Mapping[str, Tensor] | None,
                 fit_images: Callable[[], Tensor] | None) -> None:
    if not isinstance(component, Fitted):
        return
    own = {k[len(prefix) + 1:]: v for k, v in (state or {}).items() if k.startswith(prefix + ".")}
    if own:
        try:
            component.load_state_dict(own)
        except RuntimeError as err:  # shapes or keys that this configuration's component does not have
            raise ValueError(f"the saved {prefix} state does not fit the run's configuration: "
                             f"{' '.join(str(err).split())}") from err
    elif fit_images is not None and needs_fit(component):
        component.fit(fit_images())
    if needs_fit(component):
        raise ValueError(f"the {type(component).__name__} must be fitted on training images, and no fitted "
                         f"state was given (is the checkpoint from a run with this {prefix}?)")


def build_network(config: Mapping[str, Any]) -> nn.Module:
    """The denoising network of a configuration (``net``)."""
    return build_component(NETS, config["net"], "net")


def check_config(tree: Any, path: str = "") -> None:
    """Raise :class:`UnsafeConfigError` if any mapping in ``tree`` holds a Hydra instantiation key."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            where = f"{path}.{key}" if path else str(key)
            if key in _HYDRA_KEYS:
                raise UnsafeConfigError(
                    f"the configuration names code at {where}: {value!r}. nidiff builds components from "
                    "registered names only and never imports what a saved run names; this run was not "
                    "written by nidiff or was altered"
                )
            check_config(value, where)
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            check_config(value, f"{path}[{i}]")


def migrate_config(tree: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration read from a run, in the current form, and checked (:func:`check_config`).

    Runs written by nidiff 0.1 name their components by class path (``_target_``, with
    ``_convert_``); each such path must be exactly that of a registered component, and becomes
    its name. Anything else that names code is refused.
    """
    if not isinstance(tree, Mapping):
        raise UnsafeConfigError(f"a run's configuration must be a mapping, got {type(tree).__name__}")
    out = dict(tree)
    for key, registry in COMPONENTS.items():
        node = out.get(key)
        if isinstance(node, Mapping) and "_target_" in node:
            out[key] = _legacy_component(node, registry, key)
    data = out.get("data")
    if isinstance(data, Mapping) and data.get("_target_") == _LEGACY_DATA_TARGET:
        out["data"] = {k: v for k, v in data.items() if k not in ("_target_", "_convert_")}
    check_config(out)
    return out


def _legacy_component(node: Mapping[str, Any], registry: Registry, key: str) -> dict[str, Any]:
    target = node["_target_"]
    names = {}
    for name in registry.names():
        factory = registry.get(name)
        module = getattr(factory, "__module__", "")
        qualname = getattr(factory, "__qualname__", "")
        names[f"{module}.{qualname}"] = name
        package = module.rsplit(".", 1)[0]
        if package.startswith("nidiff."):
            names[f"{package}.{qualname}"] = name  # the public alias, nidiff.bases.DCTBasis
    if not isinstance(target, str) or target not in names:
        raise UnsafeConfigError(
            f"the configuration's {key} names {target!r}, which is not a registered {registry.kind} "
            f"(known: {', '.join(registry.names())}); nidiff never imports what a saved run names"
        )
    rest = {k: v for k, v in node.items() if k not in ("_target_", "_convert_")}
    return {"name": names[target], **rest}
