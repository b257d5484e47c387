"""What each ``nidiff`` command takes, found from the command itself, and a check of a command line.

Every command of :data:`nidiff.cli.COMMANDS` is one of two kinds:

| kind      | how it is recognised                          | its options                          |
| --------- | --------------------------------------------- | ------------------------------------ |
| Hydra     | a primary config ``nidiff/conf/<command>.yaml`` | the keys of that config and its groups |
| argparse  | it builds an ``argparse.ArgumentParser``      | that parser's arguments              |

The parser of an argparse command is the one the command builds itself: its function is called with
``--help`` while :meth:`argparse.ArgumentParser.parse_known_args` is intercepted, so nothing runs and
the parser found is exactly the one a user's command line meets. A new command in ``COMMANDS`` is
therefore documented and checked without being listed anywhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CommandLine",
    "HYDRA_FLAGS",
    "IMPLICIT_SWEEP",
    "check_command_line",
    "command_help",
    "find_parser",
    "hydra_config",
    "shell_commands",
]

# flags of a Hydra command that take a value (``--cfg job``) and that take none (``-m``)
HYDRA_FLAGS: dict[str, bool] = {"--cfg": True, "-c": True, "--package": True, "-p": True, "--info": True,
                                "-i": True, "-m": False, "--multirun": False, "--help": False, "-h": False}
# Hydra commands whose comma lists sweep without -m (nidiff compare runs a grid by design)
IMPLICIT_SWEEP = ("compare",)
_SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "zsh"}
_SEPARATORS = {"&&", "||", ";", "|"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class _ParserFound(BaseException):
    """Raised from the intercepted ``parse_known_args``; derives from ``BaseException`` so that a
    command's own ``except Exception`` / ``except SystemExit`` does not swallow it."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def _commands() -> dict[str, tuple[Callable[[list[str]], int], str]]:
    from nidiff.cli import COMMANDS

    return COMMANDS


def hydra_config(command: str) -> Path | None:
    """The primary config of a Hydra command (``nidiff/conf/train.yaml`` for ``train``), else None."""
    from nidiff.config import conf_dir

    path = conf_dir() / f"{command}.yaml"
    return path if path.is_file() else None


def find_parser(command: str) -> argparse.ArgumentParser | None:
    """The argument parser that ``nidiff <command>`` builds, or None if it builds none."""
    commands = _commands()
    if command not in commands:
        raise ValueError(f"unknown nidiff command {command!r}; commands: {', '.join(commands)}")
    originals = {name: getattr(argparse.ArgumentParser, name) for name in ("parse_args", "parse_known_args")}

    def intercept(self, *args, **kwargs):
        raise _ParserFound(self)

    for name in originals:
        setattr(argparse.ArgumentParser, name, intercept)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            commands[command][0](["--help"])
    except _ParserFound as found:
        return found.parser
    except SystemExit:
        return None
    finally:
        for name, method in originals.items():
            setattr(argparse.ArgumentParser, name, method)
    return None


def command_help(command: str) -> str:
    """What ``nidiff <command> --help`` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            _commands()[command][0](["--help"])
        except SystemExit:
            pass
    return out.getvalue()


@dataclass(frozen=True)
class CommandLine:
    """One ``nidiff ...`` command found in a page."""

    source: str       # "docs/training.md:42"
    text: str         # the command as written
    argv: list[str]   # the words after ``nidiff``
    env: dict[str, str] = field(default_factory=dict)  # assignments before it: NIDIFF_PLUGINS=... nidiff


def shell_commands(markdown: str, source: str) -> Iterator[CommandLine]:
    """Every ``nidiff ...`` command in the shell code blocks of a Markdown page.

    Blocks fenced with no language or ``bash``/``sh``/``shell``/``console`` are read; lines
    continued with a backslash are joined, ``#`` comments dropped, and a line is split at
    ``&&``, ``||``, ``;`` and ``|`` so that ``... && nidiff train ...`` is found too.
    """
    fence = None
    pending, start = "", 0
    for number, line in enumerate(markdown.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip().lower() if fence is None else None
            pending = ""
            continue
        if fence is None or fence not in _SHELL_LANGUAGES:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text, pending = (pending + stripped).strip(), ""
        text = re.sub(r"^\$\s+", "", text)  # a console prompt
        try:
            words = shlex.split(text, comments=True)
        except ValueError as err:  # unbalanced quotes: math in an unlabelled block, or a broken command
            if re.search(r"(^|[\s;&|])nidiff\s", text):
                raise ValueError(f"{source}:{start}: cannot split {text!r}: {err}") from None
            continue
        for segment in _segments(words):
            env = {}
            while segment and _ASSIGNMENT.match(segment[0]):  # PYTHONPATH=. nidiff ...
                key, _, value = segment[0].partition("=")
                env[key] = value
                segment = segment[1:]
            if segment and segment[0] == "nidiff":
                yield CommandLine(f"{source}:{start}", shlex.join(segment), segment[1:], env)


def _segments(words: list[str]) -> Iterator[list[str]]:
    current: list[str] = []
    for word in words:
        if word in _SEPARATORS:
            yield current
            current = []
        else:
            current.append(word)
    yield current


def check_command_line(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Raise ``ValueError`` if ``nidiff ARGV`` names an unknown command, option, key, recipe, basis
    or schedule, or a value out of range; run nothing.

    A Hydra command's overrides are composed with :func:`nidiff.config.compose` exactly as the
    command composes them (a sweep is expanded by Hydra's own sweeper, one composition per job),
    then checked with the training's own ``validate_config`` and its schedule and basis built.
    An argparse command's arguments are parsed by its own parser. ``env``: the variables the
    command line sets for nidiff (``NIDIFF_PLUGINS``), in effect while it is checked.
    """
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    try:
        _check_command_line(argv)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_command_line(argv: list[str]) -> None:
    commands = _commands()
    if not argv or argv[0] in ("-h", "--help", "help"):
        return
    command, args = argv[0], argv[1:]
    if command not in commands:
        raise ValueError(f"unknown nidiff command {command!r}; commands: {', '.join(commands)}")
    if any(a in ("-h", "--help") for a in args):
        return
    if hydra_config(command) is not None:
        _check_hydra(command, args)
        return
    parser = find_parser(command)
    if parser is None:
        raise ValueError(f"nidiff {command} has neither a config nor an argument parser to check against")
    _check_argparse(parser, args)


def _check_argparse(parser: argparse.ArgumentParser, args: list[str]) -> None:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args(args)
    except SystemExit as stop:
        if stop.code:
            lines = err.getvalue().strip().splitlines() or [f"{parser.prog}: exit status {stop.code}"]
            raise ValueError(lines[-1]) from None


def _check_hydra(command: str, args: list[str]) -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nidiff.config import translate_overrides

    overrides, multirun, i = [], command in IMPLICIT_SWEEP, 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            if arg not in HYDRA_FLAGS:
                raise ValueError(f"nidiff {command}: unknown flag {arg!r}; flags: {', '.join(HYDRA_FLAGS)}")
            multirun |= arg in ("-m", "--multirun")
            i += 2 if HYDRA_FLAGS[arg] else 1
            continue
        overrides.append(arg)
        i += 1
    jobs = [overrides]
    if multirun:
        from hydra.errors import HydraException

        try:
            parsed = OverridesParser.create().parse_overrides(translate_overrides(overrides))
        except HydraException as err:
            raise ValueError(f"cannot parse the overrides of nidiff {command}: {err}") from None
        sweeps = BasicSweeper.split_arguments(parsed, max_batch_size=None)
        jobs = [list(job) for batch in sweeps for job in batch]
    for job in jobs:
        _check_composed(command, job)


def _check_composed(command: str, overrides: list[str]) -> None:
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from nidiff.build import COMPONENTS, build_component
    from nidiff.config import compose
    from nidiff.training.validate import validate_config

    try:
        cfg = compose(overrides, config_name=command)
    except (HydraException, OmegaConfBaseException) as err:
        raise ValueError(f"cannot compose nidiff {command} {' '.join(overrides)}: {err}") from None
    validate_config(cfg)
    missing = [key for key in OmegaConf.missing_keys(cfg) if not key.startswith("basis.")]
    if missing:
        raise ValueError(f"nidiff {command} {' '.join(overrides)} leaves {', '.join(sorted(missing))} unset")
    for node in ("schedule", "basis"):
        if OmegaConf.missing_keys(cfg[node]):  # e.g. the matrix basis's P, given from Python
            continue
        try:
            build_component(COMPONENTS[node], OmegaConf.to_container(cfg[node], resolve=True), node)
        except (ValueError, TypeError) as err:
            raise ValueError(f"cannot build the {node} of nidiff {command} {' '.join(overrides)}: {err}") from None
