"""Hydra entry point of ``nidiff train``: check everything, lock the run directory, then train.

Before Hydra writes anything (it writes ``RUN/.hydra/`` first thing), the command line is composed
here exactly as the run will compose it and every check of :mod:`nidiff.training.preflight` runs on
it (for ``-m``, on every job of the sweep). A bad input therefore costs no file and no training
import. Then the run directory is fixed (Hydra's ``${now:...}`` is resolved once, here, and passed
on as ``hydra.run.dir``), checked not to hold another run, and locked
(:mod:`nidiff.training.rundir`); only then does Hydra start :func:`nidiff.training.run.train`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["hydra_args", "hydra_train", "relaunch_argv", "split_flags"]


_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "-i"}
_INFO_FLAGS = ("--cfg", "-c", "--info", "-i", "--hydra-help", "--resolve", "--shell-completion", "-sc")


def split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """``(Hydra's flags with their values, the overrides)`` of a command line."""
    flags, overrides, i = [], [], 0
    while i < len(args):
        if args[i].startswith("-"):
            takes_value = args[i] in _FLAGS_WITH_VALUE and i + 1 < len(args) and "=" not in args[i + 1]
            flags.extend(args[i : i + 1 + takes_value])
            i += 1 + takes_value
        else:
            overrides.append(args[i])
            i += 1
    return flags, overrides


def hydra_args(overrides: list[str]) -> list[str]:
    """Translate overrides for Hydra: group names, the search path, resume into its run directory."""
    from nidiff.config import search_path, translate_overrides

    out = translate_overrides(overrides)
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "resume" and value and value.lower() not in ("null", "none", "~"):
            if not any(a.lstrip("+").startswith("hydra.run.dir=") for a in overrides):
                path = Path(value)
                run_dir = path if path.is_dir() else path.parent.parent  # RUN/checkpoints/x.ckpt
                out.append(f"hydra.run.dir={run_dir}")
            if not any(a.startswith("hydra.output_subdir=") for a in overrides):
                # the run's own .hydra/config.yaml stays as written; each resume keeps its own
                out.append("hydra.output_subdir=.hydra/resume_${now:%Y-%m-%d_%H-%M-%S}")
    extra = search_path()
    if extra:
        out.append(f"hydra.searchpath=[{','.join(extra)}]")
    return out


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


def _prepare(flags: list[str], overrides: list[str]) -> list[str]:
    """Check the run (or every job of a sweep) before any file is written; returns extra overrides
    for Hydra (the run directory, fixed here) and holds the run directory's lock."""
    from omegaconf import open_dict

    from nidiff.config import compose, expand_sweep
    from nidiff.training.preflight import preflight
    from nidiff.training.rundir import existing_run, lock_run_dir, set_aside

    if any(f in ("-m", "--multirun") for f in flags):
        for job in expand_sweep(overrides):
            preflight(compose(job, translated=True), None)
        return []
    cfg = compose(overrides, translated=True, return_hydra_config=True)
    run_dir = Path(cfg.hydra.run.dir)
    explicit = any(a.lstrip("+").startswith("hydra.run.dir=") for a in overrides)
    if cfg.resume:
        _check_resume_path(Path(str(cfg.resume)), explicit)
    with open_dict(cfg):  # the task's configuration is what Hydra gives it: without the hydra node
        del cfg["hydra"]
    resume = bool(cfg.resume)
    if not explicit and not resume:
        run_dir = _unused(run_dir)  # two runs started in the same second
    if not resume and existing_run(run_dir):
        raise FileExistsError(
            f"{run_dir} already holds a run ({existing_run(run_dir)[0].relative_to(run_dir)}, ...): pass "
            f"resume={run_dir} to continue it, or choose another hydra.run.dir; nothing was written"
        )
    preflight(cfg, run_dir)
    lock_run_dir(run_dir)
    if not resume:
        moved = set_aside(run_dir)
        if moved is not None:
            print(f"nidiff: {run_dir} held a start that wrote no checkpoint: its files were moved to {moved}")
    return [] if explicit else [f"hydra.run.dir={run_dir}"]


def _check_resume_path(path: Path, explicit_run_dir: bool) -> None:
    if not path.exists():
        raise FileNotFoundError(f"cannot resume: no run directory or checkpoint at {path}")
    if path.is_file() and path.parent.name != "checkpoints" and not explicit_run_dir:
        raise ValueError(f"resume={path}: a checkpoint file outside a run's checkpoints/ folder needs "
                         f"hydra.run.dir=DIR, the run directory to continue in")


def _unused(run_dir: Path) -> Path:
    candidate, n = run_dir, 0
    while candidate.exists():
        n += 1
        candidate = run_dir.with_name(f"{run_dir.name}_{n}")
    return candidate


def hydra_train(args: list[str]) -> int:
    """``nidiff train ARGS``: returns the exit status (bad input raises before any file is written)."""
    import hydra

    from nidiff.config import conf_dir, register_configs
    from nidiff.training.rundir import release_all

    register_configs()
    flags, overrides = split_flags(args)
    translated = hydra_args(overrides)
    informative = any(f.split("=")[0] in _INFO_FLAGS for f in flags)
    if os.environ.get("LOCAL_RANK", "0") == "0" and not informative:
        translated += _prepare(flags, translated)
    relaunch = relaunch_argv(sys.argv[0], args)
    status = {"code": 0}

    def task(cfg) -> None:
        from nidiff.training.run import train

        sys.argv = relaunch  # what Lightning's DDP launcher runs again for the other processes
        status["code"] = train(cfg)

    argv = sys.argv
    sys.argv = ["nidiff train", *flags, *translated]
    try:
        hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")(task)()
    finally:
        sys.argv = argv
        release_all()
    return status["code"]
