"""The code examples of docs/, loadable by the tests that run or check them."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from nidiff.registries import SAMPLERS, SCHEDULES

DOCS = Path(__file__).resolve().parents[1] / "docs"
# names the examples in docs/ register themselves
EXAMPLE_NAMES = {"row_dct", "shifted_cosine", "tempered"}


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


def load_howto_schedule_module() -> types.ModuleType:
    """docs/howto-schedule.md's ``my_schedules.py``, importable as ``my_schedules`` (it registers
    "shifted_cosine"); undo with :func:`unload_howto_schedule_module`."""
    (block,) = [b for b in python_blocks("howto-schedule.md") if "register_schedule" in b]
    module = types.ModuleType("my_schedules")
    module.__file__ = str(DOCS / "howto-schedule.md")
    sys.modules["my_schedules"] = module
    exec(compile(block, "docs/howto-schedule.md", "exec"), module.__dict__)
    return module


def unload_howto_schedule_module() -> None:
    sys.modules.pop("my_schedules", None)
    SCHEDULES._entries.pop("shifted_cosine", None)


def load_sampler_module() -> types.ModuleType:
    """docs/sampling.md's ``my_samplers.py``, importable as ``my_samplers`` (it registers "tempered");
    undo with :func:`unload_sampler_module`."""
    (block,) = [b for b in python_blocks("sampling.md") if "register_sampler" in b]
    module = types.ModuleType("my_samplers")
    module.__file__ = str(DOCS / "sampling.md")
    sys.modules["my_samplers"] = module
    exec(compile(block, "docs/sampling.md", "exec"), module.__dict__)
    return module


def unload_sampler_module() -> None:
    sys.modules.pop("my_samplers", None)
    SAMPLERS._entries.pop("tempered", None)
