"""The command line of ``nidiff compare``, checked and expanded into its jobs before any work.

The grid is enumerated by Hydra's own sweeper (``BasicSweeper.split_arguments``, what ``-m``
runs), and every job's configuration is composed here once, so that an unknown key, a bad value or
a bad compare option is reported before the first job trains. Hydra then runs the same sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from nidiff.compare.naming import job_dirname
from nidiff.compare.options import CompareOptions
from nidiff.config import compose, expand_sweep, search_path, translate_overrides

__all__ = ["Plan", "make_plan"]

# data fields that decide which images a computed FID reference holds
_REFERENCE_DATA = ("dataset", "root", "path", "image_size", "seed", "num_images", "shapes", "max_shapes")
# Hydra settings that nidiff compare owns: where and under which names the jobs go
_OWNED = ("hydra.sweep", "hydra.job.config.override_dirname", "hydra.mode")


@dataclass(frozen=True)
class Plan:
    """What ``nidiff compare ARGS`` will run."""

    overrides: list[str]        # the overrides in Hydra's names (bases=, schedules=, recipes=)
    swept: list[str]            # the keys that take several values, in Hydra's names
    jobs: list[list[str]]       # each job's overrides, in the sweeper's order
    names: list[str]            # each job's directory name inside options.dir
    configs: list[DictConfig]   # each job's composed configuration
    options: CompareOptions

    def hydra_argv(self) -> list[str]:
        """The arguments of Hydra's multirun: the overrides, and job names from the swept keys."""
        fixed = sorted({o.partition("=")[0].lstrip("+~") for job in self.jobs for o in job} - set(self.swept))
        exclude = ",".join(f"'{key}'" for key in fixed)
        # Hydra's own log lines are off: they name the config groups' folders (recipes=, bases=) where
        # users write recipe=, basis=, and the command prints the plan and each job itself
        argv = ["--multirun", *self.overrides, f"hydra.job.config.override_dirname.exclude_keys=[{exclude}]",
                "hydra/hydra_logging=disabled"]
        extra = search_path()
        if extra:
            argv.append(f"hydra.searchpath=[{','.join(extra)}]")
        return argv


def make_plan(args: list[str]) -> Plan:
    """Check ``args`` (overrides only) and expand them; ``ValueError`` before any work on bad input."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nidiff.errors import bad_input, message
    from nidiff.training.preflight import preflight

    flags = [a for a in args if a.startswith("-") and a not in ("-m", "--multirun")]
    if flags:
        raise ValueError(f"nidiff compare takes overrides (key=value) only, not {' '.join(flags)}; "
                         f"see nidiff compare --help")
    overrides = translate_overrides([a for a in args if a not in ("-m", "--multirun")])
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ValueError(f"cannot parse the overrides: {err}") from None
    swept = []
    for override in parsed:
        key = override.key_or_group
        if key == "resume":
            raise ValueError("nidiff compare resumes its jobs itself (a job directory with a partial run "
                             "continues from its newest checkpoint): remove resume=")
        if key.startswith(_OWNED):
            raise ValueError(f"{key} is set by nidiff compare: compare.dir chooses where the jobs go")
        if override.is_sweep_override():
            if key.startswith(("compare.", "hydra.")):
                raise ValueError(f"{key} cannot sweep: every configuration is evaluated with the same "
                                 f"compare options (run another nidiff compare for other ones)")
            swept.append(key)
    try:
        jobs = expand_sweep(overrides)
        configs = [compose(job, config_name="compare") for job in jobs]
    except (HydraException, OmegaConfBaseException) as err:
        raise ValueError(message(err)) from None
    names = [job_dirname(_dirname(job, swept)) for job in jobs]
    for name, cfg in zip(names, configs):
        try:  # ranges, components, memory, data: before any training
            preflight(cfg, None)
        except bad_input() as err:
            raise ValueError(f"configuration {name}: {message(err)}") from None
    options = CompareOptions.from_config(configs[0].compare)
    if options.needs_reference and not options.ref.exists():
        differ = [k for k in _REFERENCE_DATA if len({str(c.data.get(k)) for c in configs}) > 1]
        if differ:
            raise ValueError(f"the configurations train on different data (data.{', data.'.join(differ)} "
                             f"vary), so no one reference fits them all: give compare.ref=FILE.npz")
    return Plan(overrides, swept, jobs, names, configs, options)


def _dirname(job: list[str], swept: list[str]) -> str:
    """What Hydra's ``override_dirname`` will be for ``job``: its swept overrides, sorted."""
    return ",".join(sorted(o for o in job if o.partition("=")[0].lstrip("+~") in swept))
