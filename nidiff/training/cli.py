"""Hydra entry point of ``nidiff train``."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nidiff.config import conf_dir, search_path, translate_overrides

__all__ = ["hydra_train", "hydra_args"]


def hydra_args(args: list[str]) -> list[str]:
    """Translate the command line for Hydra: group names, search path, resume into its run dir."""
    out = translate_overrides(args)
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "resume" and value and not any(a.startswith("hydra.run.dir=") for a in args):
            path = Path(value)
            run_dir = path if path.is_dir() else path.parent.parent  # RUN/checkpoints/x.ckpt
            out.append(f"hydra.run.dir={run_dir}")
    extra = search_path()
    if extra:
        out.append(f"hydra.searchpath=[{','.join(extra)}]")
    return out


def hydra_train(args: list[str]) -> int:
    from nidiff.training.run import train

    status = {"code": 0}

    def task(cfg: DictConfig) -> None:
        try:
            train(cfg)
        except (ValueError, TypeError, FileNotFoundError, ImportError) as err:  # bad input: no traceback
            print(f"nidiff train: error: {err}", file=sys.stderr)
            status["code"] = 1

    argv = sys.argv
    sys.argv = ["nidiff train", *hydra_args(args)]
    try:
        hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")(task)()
    finally:
        sys.argv = argv
    return status["code"]
