"""Where the configuration lives and how the command line names it.

The config groups are the top-level folders ``bases/``, ``schedules/`` and ``recipes/`` of a
source checkout; a wheel carries them inside the package as ``nidiff/conf/<group>/``. The primary
config ``train.yaml`` lives in ``nidiff/conf/``. On the command line the groups are named in the
singular, ``basis=``, ``schedule=``, ``recipe=``: :func:`translate_overrides` is the one place
that maps them to the folders.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

__all__ = ["GROUPS", "compose", "conf_dir", "group_dirs", "options", "search_path", "translate_overrides"]

PACKAGE_DIR = Path(__file__).resolve().parent
# command-line name -> config group folder
GROUPS: dict[str, str] = {"basis": "bases", "schedule": "schedules", "recipe": "recipes"}


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
    """The names available in a group: ``options("recipe") -> ["blurring_cifar10", ...]``."""
    if group not in GROUPS:
        raise ValueError(f"unknown config group {group!r}; known groups: {', '.join(GROUPS)}")
    return sorted(p.stem for p in group_dirs()[group].glob("*.yaml"))


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


def compose(overrides: list[str] | None = None, config_name: str = "train"):
    """Compose the training config as ``nidiff train`` would, without running anything.

    ``overrides`` use the command-line names (``recipe=blurring_cifar10 basis=haar ...``).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    args = translate_overrides(list(overrides or []))
    extra = search_path()
    if extra:
        args.append(f"hydra.searchpath=[{','.join(extra)}]")
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=args)
