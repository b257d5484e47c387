"""A forward process to draw: a labelled (basis, schedule) pair, built through the registries.

On the command line a process is written ``[LABEL=]BASIS[(k=v,...)]:SCHEDULE[(k=v,...)]``, e.g.
``"blurring diffusion=dct:blurring(sigma_blur_max=20)"`` or ``haar(levels=3):blurring``. Values
are Python literals (numbers, ``True``, quoted strings); anything else is taken as a string.

The paper's figure 1 compares three processes, :data:`FIGURE1`: standard diffusion (pixels, cosine
noise), heat dissipation (DCT, IHDM's blur with a small fixed noise) and blurring diffusion (DCT,
eq. 28).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from nidiff.diffusion import GaussianDiffusion

__all__ = ["Process", "FIGURE1", "build_process", "check_names", "parse_named", "parse_process"]


@dataclass(frozen=True)
class Process:
    """One row of a strip or one panel of a plot: a labelled basis + schedule with arguments."""

    label: str
    basis: str
    schedule: str
    schedule_kwargs: dict[str, Any] = field(default_factory=dict)
    basis_kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``"dct + blurring(sigma_blur_max=10)"``: what the process is, for titles."""
        return f"{_call(self.basis, self.basis_kwargs)} + {_call(self.schedule, self.schedule_kwargs)}"

    def title(self, width: int = 24) -> str:
        """The label, then the description in brackets when it differs; lines broken after
        ``" + "`` where they would pass ``width`` characters."""
        lines = [self.label] if self.label == self.describe() else [self.label, f"({self.describe()})"]
        return "\n".join(line.replace(" + ", " +\n") if len(line) > width else line for line in lines)


FIGURE1: tuple[Process, ...] = (
    Process("standard diffusion", "identity", "cosine"),
    Process("heat dissipation", "dct", "ihdm"),
    Process("blurring diffusion", "dct", "blurring"),
)

_NAME = r"[A-Za-z_][\w-]*"
_PART = re.compile(rf"\s*(?P<name>{_NAME})\s*(?:\((?P<args>[^()]*)\))?\s*")
_SPEC = re.compile(r"^(?:(?P<label>[^=:()]+)=)?(?P<basis>[^:]+):(?P<schedule>.+)$")
_SPEC_HELP = "[LABEL=]BASIS[(k=v,...)]:SCHEDULE[(k=v,...)], e.g. \"blurring=dct:blurring(sigma_blur_max=10)\""


def parse_named(text: str, what: str = "name") -> tuple[str, dict[str, Any]]:
    """``"blurring(sigma_blur_max=10, d_min=0.001)"`` -> ``("blurring", {...})``."""
    m = _PART.fullmatch(text)
    if m is None:
        raise ValueError(f"cannot read the {what} {text!r}: write NAME or NAME(key=value, ...)")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in (m.group("args") or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key.strip()):
            raise ValueError(f"cannot read {item!r} in the {what} {text!r}: write key=value")
        kwargs[key.strip()] = _literal(value.strip())
    return m.group("name"), kwargs


def parse_process(spec: str) -> Process:
    """Read ``[LABEL=]BASIS[(k=v,...)]:SCHEDULE[(k=v,...)]``; the label defaults to the description."""
    m = _SPEC.fullmatch(spec.strip())
    if m is None:
        raise ValueError(f"cannot read the process {spec!r}: write {_SPEC_HELP}")
    basis, basis_kwargs = parse_named(m.group("basis"), "basis")
    schedule, schedule_kwargs = parse_named(m.group("schedule"), "schedule")
    process = Process("", basis, schedule, schedule_kwargs, basis_kwargs)
    label = (m.group("label") or "").strip() or process.describe()
    return Process(label, basis, schedule, schedule_kwargs, basis_kwargs)


def check_names(processes: list[Process] | tuple[Process, ...]) -> None:
    """Raise, listing the known names, if a basis or schedule is not registered (cheap, no build)."""
    from nidiff.registries import BASES, SCHEDULES

    for p in processes:
        BASES.get(p.basis)
        SCHEDULES.get(p.schedule)


def build_process(
    process: Process,
    shape: tuple[int, int, int],
    fit_images: Callable[[], Tensor] | None = None,
) -> GaussianDiffusion:
    """The :class:`~nidiff.GaussianDiffusion` of ``process`` for images ``shape = (C, H, W)``.

    A basis that learns from data (``pca``) is fitted on ``fit_images()`` (float ``[N, C, H, W]``
    in [-1, 1]) when that is given; otherwise it is refused.
    """
    from nidiff.build import build_diffusion

    config = {"basis": {"name": process.basis, "shape": list(shape), **process.basis_kwargs},
              "schedule": {"name": process.schedule, **process.schedule_kwargs}}
    try:  # the build path of training and of saved runs: names registered, parameters checked
        return build_diffusion(config, fit_images=fit_images)
    except TypeError as err:  # a missing or unexpected argument: say which entry it was
        raise TypeError(f"cannot build {process.describe()}: {err}") from None


_WORDS = {"true": True, "false": False, "null": None, "none": None}  # as written on a command line


def _literal(text: str) -> Any:
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _call(name: str, kwargs: dict[str, Any]) -> str:
    if not kwargs:
        return name
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
