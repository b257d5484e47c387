"""Where the configuration lives and how the command line names it.

The config groups are the top-level folders ``bases/``, ``schedules/``, ``nets/`` and ``recipes/``
of a source checkout; a wheel carries them inside the package as ``nidiff/conf/<group>/``. The
primary config ``train.yaml`` lives in ``nidiff/conf/``, and its schema, the typed fields, in
:mod:`nidiff.schema`. On the command line the groups are named in the singular, ``basis=``,
``schedule=``, ``net=``, ``recipe=``: :func:`translate_overrides` is the one place that maps them to
the folders.

A basis or schedule that a package registers through an entry point (``nidiff.bases``,
``nidiff.schedules``, ``nidiff.nets``) and that has no YAML file gets a config generated from its
signature (:func:`register_configs`), so ``basis=NAME`` chooses it like a built-in one. Listing the
choices reads file names and entry-point names only: it imports neither torch nor the plugins.
"""

from __future__ import annotations

import difflib
import os
import re
from importlib.metadata import entry_points
from pathlib import Path

__all__ = ["GROUPS", "compose", "conf_dir", "expand_sweep", "group_dirs", "options", "register_configs",
           "search_path", "translate_overrides"]

PACKAGE_DIR = Path(__file__).resolve().parent
# command-line name -> config group folder
GROUPS: dict[str, str] = {"basis": "bases", "schedule": "schedules", "net": "nets", "recipe": "recipes"}
# command-line name -> (the package of its nodes, the entry-point group of plugins)
_COMPONENT_GROUPS: dict[str, tuple[str, str]] = {
    "basis": ("basis", "nidiff.bases"), "schedule": ("schedule", "nidiff.schedules"), "net": ("net", "nidiff.nets"),
}


def conf_dir() -> Path:
    """The primary config directory, ``nidiff/conf`` (holds ``train.yaml``)."""
    return PACKAGE_DIR / "conf"


def _group_root() -> Path:
    """The folder holding ``bases/``, ``schedules/``, ``recipes/``: inside the package when
    installed from a wheel, else the source checkout's top level."""
    if (conf_dir() / "recipes").is_dir():
        return conf_dir()
    checkout = PACKAGE_DIR.parent
    if (checkout / "recipes").is_dir():
        return checkout
    raise FileNotFoundError(
        f"nidiff's config folders (bases/, schedules/, recipes/) were found neither in {conf_dir()} "
        f"nor in {checkout}; reinstall nidiff with `pip install .` from its source checkout"
    )


def group_dirs() -> dict[str, Path]:
    root = _group_root()
    return {name: root / folder for name, folder in GROUPS.items()}


def search_path() -> list[str]:
    """Extra Hydra search path entries (the checkout's top level when running from source)."""
    root = _group_root()
    return [] if root == conf_dir() else [f"file://{root}"]


def options(group: str) -> list[str]:
    """The names available in a group: ``options("recipe") -> ["blurring_cifar10", ...]``; for
    components, the YAML files and the plugins' entry-point names."""
    if group not in GROUPS:
        raise ValueError(f"unknown config group {group!r}; known groups: {', '.join(GROUPS)}")
    names = {p.stem for p in group_dirs()[group].glob("*.yaml")}
    if group in _COMPONENT_GROUPS:
        names |= set(_plugins(group))
    return sorted(names)


def _plugins(group: str) -> list[str]:
    """Registered components of a group that no YAML file describes: entry points, and, when
    ``$NIDIFF_PLUGINS`` names modules, whatever their import registers."""
    from nidiff.registry import PLUGINS_ENV

    have = {p.stem for p in group_dirs()[group].glob("*.yaml")}
    names = {ep.name for ep in entry_points(group=_COMPONENT_GROUPS[group][1])}
    if os.environ.get(PLUGINS_ENV):
        names |= set(_registry(group).names())
    if group == "net":
        names.discard("unet")  # described by nets/*.yaml under other names
    return sorted(names - have)


def _registry(group: str):
    from nidiff.registries import BASES, NETS, SCHEDULES

    return {"basis": BASES, "schedule": SCHEDULES, "net": NETS}[group]


def register_configs() -> None:
    """Store the schemas (``train_schema``, ``compare_schema``) and a config generated from its
    signature for each plugin component without a YAML file, in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    from nidiff.schema import register_schema

    register_schema()
    store = ConfigStore.instance()
    for group, (package, _) in _COMPONENT_GROUPS.items():
        for name in _plugins(group):
            from nidiff.params import signature_defaults

            node = {"name": name, **signature_defaults(_registry(group).get(name))}
            if group == "basis" and "shape" in node:
                node["shape"] = "${image_shape}"
            store.store(group=GROUPS[group], name=name, node=node, package=package)


def translate_overrides(args: list[str]) -> list[str]:
    """Map ``basis=dct`` to ``bases=dct`` (and ``schedule=``, ``recipe=``), sweeps included.

    Only a group choice is renamed; ``basis.levels=3`` sets a field of the chosen basis and passes
    through unchanged. Unknown choices raise with the list of known ones before Hydra starts.
    """
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        prefix = key[: len(key) - len(key.lstrip("+~"))]
        name = key[len(prefix):]
        if sep and name in GROUPS:
            if re.fullmatch(r"[\w-]+(,[\w-]+)*", value):  # plain names or a comma sweep of them
                for choice in value.split(","):
                    _check_choice(name, choice)
            arg = f"{prefix}{GROUPS[name]}={value}"
        out.append(arg)
    return out


def _check_choice(group: str, choice: str) -> None:
    known = options(group)
    if choice != "null" and choice not in known:
        close = difflib.get_close_matches(choice, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown {group} {choice!r}.{hint} Known {GROUPS[group]}: {', '.join(known)}.")


def compose(overrides: list[str] | None = None, config_name: str = "train", translated: bool = False,
            return_hydra_config: bool = False):
    """Compose the training config as ``nidiff train`` would, without running anything.

    ``overrides`` use the command-line names (``recipe=blurring_cifar10 basis=haar ...``), or, with
    ``translated``, Hydra's (what :func:`translate_overrides` made of them, search path included).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    args = list(overrides or [])
    if not translated:
        args = translate_overrides(args)
        extra = search_path()
        if extra:
            args.append(f"hydra.searchpath=[{','.join(extra)}]")
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=args, return_hydra_config=return_hydra_config)


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The jobs of a ``-m`` sweep, each a list of overrides (Hydra's names), as Hydra's basic sweeper
    will run them; overrides of ``hydra.*`` go to every job."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    task = [o for o in parsed if not o.key_or_group.startswith("hydra.")]
    shared = [o.input_line for o in parsed if o.key_or_group.startswith("hydra.")]
    (jobs,) = BasicSweeper.split_arguments(task, None)
    return [[*job, *shared] for job in jobs]
