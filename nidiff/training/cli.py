"""Hydra entry point of ``nidiff train``."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from nidiff.checkpoints import CorruptCheckpointError
from nidiff.config import conf_dir, search_path, translate_overrides
from nidiff.training.guard import NonFiniteError

__all__ = ["hydra_train", "hydra_args", "refuse_existing_run", "relaunch_argv"]


_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "-i"}


def hydra_args(args: list[str]) -> list[str]:
    """Translate the command line for Hydra: flags first, group names, search path, resume into its run dir."""
    flags, overrides, i = [], [], 0
    while i < len(args):
        if args[i].startswith("-"):
            takes_value = args[i] in _FLAGS_WITH_VALUE and i + 1 < len(args) and "=" not in args[i + 1]
            flags.extend(args[i : i + 1 + takes_value])
            i += 1 + takes_value
        else:
            overrides.append(args[i])
            i += 1
    args = overrides
    out = flags + translate_overrides(args)
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "resume" and value:
            if not any(a.startswith("hydra.run.dir=") for a in args):
                path = Path(value)
                run_dir = path if path.is_dir() else path.parent.parent  # RUN/checkpoints/x.ckpt
                out.append(f"hydra.run.dir={run_dir}")
            if not any(a.startswith("hydra.output_subdir=") for a in args):
                # the run's own .hydra/config.yaml stays as written; each resume keeps its own
                out.append("hydra.output_subdir=.hydra/resume_${now:%Y-%m-%d_%H-%M-%S}")
    extra = search_path()
    if extra:
        out.append(f"hydra.searchpath=[{','.join(extra)}]")
    return out


def refuse_existing_run(args: list[str]) -> str | None:
    """Why ``hydra.run.dir=DIR`` must not start a new run (it holds one), or None.

    Checked before Hydra starts, because Hydra writes ``DIR/.hydra/`` first thing. A process that
    Lightning's DDP launcher started (rank > 0) is exempt: rank 0 already decided.
    """
    from nidiff.training.run import existing_run

    values = dict(a.lstrip("+").partition("=")[::2] for a in args if "=" in a)  # +key= and ++key= too
    resume = values.get("resume", "").strip().lower() not in ("", "null", "none", "~")
    if "hydra.run.dir" not in values or resume or os.environ.get("LOCAL_RANK", "0") != "0":
        return None
    run_dir = Path(values["hydra.run.dir"])
    found = existing_run(run_dir)
    if not found:
        return None
    return (f"{run_dir} already holds a run ({found[0].relative_to(run_dir)}, ...): pass resume={run_dir} to "
            f"continue it, or choose another hydra.run.dir; nothing was written")


# set for each process by Lightning's launcher (lightning.fabric's _hydra_subprocess_cmd)
_SET_BY_LAUNCHER = ("hydra.run.dir=", "hydra.job.name=", "hydra.output_subdir=")


def relaunch_argv(program: str, args: list[str]) -> list[str]:
    """The command line that starts this training again, for the DDP processes of ranks > 0.

    Lightning's launcher re-runs ``sys.argv`` (``python -m nidiff.__main__ ARGS`` under
    ``python -m nidiff``, ``python PROGRAM ARGS`` otherwise) and appends the run directory, a job
    name and ``hydra.output_subdir=null``. So ``sys.argv`` must be ``nidiff train`` with the
    user's arguments (not Hydra's translation of them), without those three keys.
    """
    return [program, "train", *(a for a in args if not a.startswith(_SET_BY_LAUNCHER))]


def _hint(key: re.Match | None, cause: BaseException) -> str:
    """For a field the chosen component does not take (a recipe set it for another one): how to drop it."""
    unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(cause))
    if key is None or unexpected is None:
        return ""
    field = f"{key.group(1)}.{unexpected.group(1)}"
    return (f". The recipe or an override sets {field}, which this {key.group(1)} does not take: add "
            f"'~{field}' to drop it")


def hydra_train(args: list[str]) -> int:
    from nidiff.training.run import train

    status = {"code": 0}

    argv = sys.argv
    relaunch = relaunch_argv(argv[0], args)

    def task(cfg: DictConfig) -> None:
        sys.argv = relaunch  # what Lightning's DDP launcher runs again for the other processes
        try:
            train(cfg)
        except (ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError, CorruptCheckpointError,
                NonFiniteError) as err:
            # bad input: a clear message, no traceback
            print(f"nidiff train: error: {err}", file=sys.stderr)
            status["code"] = 1
        except InstantiationException as err:  # a component refused its arguments: say which, and why
            key = re.search(r"full_key: (\S+)", str(err))
            cause = err.__cause__ if err.__cause__ is not None else err
            print(f"nidiff train: error: {key.group(1) + ': ' if key else ''}{cause}{_hint(key, cause)}",
                  file=sys.stderr)
            status["code"] = 1

    refused = refuse_existing_run(args)
    if refused:
        print(f"nidiff train: error: {refused}", file=sys.stderr)
        return 1
    sys.argv = ["nidiff train", *hydra_args(args)]
    try:
        hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")(task)()
    finally:
        sys.argv = argv
    return status["code"]
