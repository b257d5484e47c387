"""The ``nidiff`` command: ``nidiff <command> [options or Hydra overrides]``."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["main", "COMMANDS"]

USAGE = """usage: nidiff <command> [arguments]

commands:
{commands}

recipes:   {recipes}
bases:     {bases}
schedules: {schedules}
nets:      {nets}

`nidiff <command> --help` tells more about one command.
"""

TRAIN_HELP = """usage: nidiff train recipe=NAME [basis=NAME] [schedule=NAME] [key=value ...] [-m]

Trains a diffusion model with Lightning; configuration by Hydra overrides.

  recipe=NAME        a recipe from recipes/: {recipes}
  basis=NAME         a basis from bases/: {bases}
  schedule=NAME      a schedule from schedules/: {schedules}
  net=NAME           a network from nets/: {nets}
  key=value          any field below, e.g. schedule.sigma_blur_max=10 trainer.max_steps=1000 data.batch_size=64
  resume=RUN_DIR     continue a run from RUN_DIR/checkpoints/last.ckpt, writing into RUN_DIR
  resume=FILE.ckpt   continue from that checkpoint
  -m                 multirun: sweep comma-separated values, e.g. -m schedule.sigma_blur_max=0,10,20
  --cfg job          print the composed configuration and exit

Outputs go to outputs/<recipe>/<date_time>/ (hydra.run.dir=DIR to choose): checkpoints/,
samples/ (sample grids), logs/metrics.csv, tb/ (TensorBoard).

basis.*, schedule.* and net.* are the parameters of the chosen component (bases/*.yaml, ...).
Fields (name, default, meaning):
{fields}
"""


def _names() -> dict[str, str]:
    """The choices of each config group, from file and entry-point names (no heavy imports)."""
    from nidiff.config import options

    return {group: ", ".join(options(singular)) for group, singular in
            (("recipes", "recipe"), ("bases", "basis"), ("schedules", "schedule"), ("nets", "net"))}


def _fields() -> str:
    from nidiff.schema import describe_fields

    rows = describe_fields()
    width = max(len(name) for name, *_ in rows)
    return "\n".join(f"  {name:<{width}}  {default:<12} {text}" for name, _, default, text in rows)


def train(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(TRAIN_HELP.format(**_names(), fields=_fields()))
        return 0
    from nidiff.training.cli import hydra_train

    return hydra_train(args)


def sample(args: list[str]) -> int:
    from nidiff.evaluation.sample import main as sample_main

    return sample_main(args)


def evaluate(args: list[str]) -> int:
    from nidiff.evaluation.evaluate import main as eval_main

    return eval_main(args)


def fid_ref(args: list[str]) -> int:
    from nidiff.evaluation.fid_ref import main as fid_ref_main

    return fid_ref_main(args)


def compare(args: list[str]) -> int:
    from nidiff.compare.cli import main as compare_main

    return compare_main(args)


def viz(args: list[str]) -> int:
    from nidiff.viz.cli import main as viz_main

    return viz_main(args)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "train": (train, "train a model from a recipe (Lightning + Hydra)"),
    "sample": (sample, "sample images from a checkpoint (PNG files and .npz), resumable"),
    "eval": (evaluate, "FID/KID of samples and bits/dim of a checkpoint, written as JSON"),
    "fid-ref": (fid_ref, "compute FID reference statistics of a data set split (.npz)"),
    "compare": (compare, "train or load a model per configuration of a grid, measure all alike: tables, plots"),
    "viz": (viz, "figures (PNG): forward-process strips, log-SNR per band, samples of a checkpoint"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        width = max(map(len, COMMANDS))
        commands = "\n".join(f"  {name:<{width}}  {doc}" for name, (_, doc) in COMMANDS.items())
        print(USAGE.format(commands=commands, **_names()))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"nidiff: unknown command {name!r}.{hint} Commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from nidiff.errors import bad_input, message, run_failures

    try:
        return COMMANDS[name][0](rest) or 0
    except run_failures() as err:
        print(f"nidiff {name}: error: {message(err)}", file=sys.stderr)
        return 1
    except bad_input() as err:
        print(f"nidiff {name}: error: {message(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
