"""Every `nidiff ...` command line in README.md and docs/*.md is one nidiff accepts.

The commands are read from the pages' shell code blocks and checked without running anything
(`tools.docgen.check_command_line`): a Hydra command's overrides are composed as the command
composes them, validated and its schedule and basis built; an argparse command's arguments are
parsed by its own parser. Paths that do not exist yet (`outputs/blurring_cifar10/RUN`, `samples/`)
need no substitution: nothing checks for files. The stand-ins are the `my_schedules` module of
docs/howto-schedule.md and the `my_samplers` module of docs/sampling.md, which their commands name
in NIDIFF_PLUGINS and which the pages themselves define.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.docgen import check_command_line, shell_commands
from tests.docs_examples import (
    load_howto_schedule_module,
    load_sampler_module,
    unload_howto_schedule_module,
    unload_sampler_module,
)

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS = [c for page in PAGES for c in shell_commands(page.read_text(), str(page.relative_to(ROOT)))]


@pytest.fixture(scope="module", autouse=True)
def example_modules():
    """The modules the pages define and their commands name in NIDIFF_PLUGINS."""
    load_howto_schedule_module()
    load_sampler_module()
    yield
    unload_howto_schedule_module()
    unload_sampler_module()


@pytest.mark.parametrize("command", COMMANDS, ids=[c.source for c in COMMANDS])
def test_documented_command_is_accepted(command):
    try:
        check_command_line(command.argv, command.env)
    except ValueError as err:
        pytest.fail(f"{command.source}: `{command.text}` would fail: {err}", pytrace=False)


def test_every_command_and_page_is_covered():
    from nidiff.cli import COMMANDS as CLI

    found = {c.argv[0] for c in COMMANDS if c.argv}
    assert set(CLI) <= found, f"commands no page shows in a code block: {set(CLI) - found}"
    pages = {c.source.split(":")[0] for c in COMMANDS}
    for page in ("README.md", "docs/getting-started.md", "docs/reproduce.md", "docs/howto-schedule.md"):
        assert page in pages, page


def test_commands_are_found_in_every_shell_form():
    text = "\n".join([
        "```bash",
        "python3 -m venv .venv && . .venv/bin/activate && nidiff train recipe=quickstart  # comment",
        "PYTHONPATH=. nidiff sample --run RUN \\",
        "    --out samples/",
        "```",
        "```python",
        "nidiff = 1",
        "```",
        "```",
        "$ nidiff --help",
        "```",
    ])
    found = [(c.source, c.argv) for c in shell_commands(text, "page.md")]
    assert found == [("page.md:2", ["train", "recipe=quickstart"]),
                     ("page.md:3", ["sample", "--run", "RUN", "--out", "samples/"]),
                     ("page.md:10", ["--help"])]


@pytest.mark.parametrize("argv, message", [
    (["train", "recipe=quickstart", "trainer.max_stepz=3"], "trainer.max_stepz"),
    (["train", "recipe=quickstar"], "Did you mean 'quickstart'"),
    (["train", "recipe=quickstart", "basis=wavelet"], "unknown basis"),
    (["train", "recipe=quickstart", "schedules.sigma_blur_max=3"], "schedules.sigma_blur_max"),
    (["train", "recipe=quickstart", "schedule.sigma_blur_max=0,1"], "Ambiguous value"),  # a sweep needs -m
    (["train", "-m", "recipe=quickstart", "schedule.sigma_blur_max=0,-1"], "sigma_blur_max"),
    (["train", "recipe=quickstart", "optim.lr=0"], "optim.lr"),
    (["train", "recipe=quickstart", "schedule.blur_shape=sinx"], "blur shape"),
    (["train", "recipe=quickstart", "--bogus"], "unknown flag"),
    (["compare", "recipe=quickstart", "compare.dirr=x"], "compare.dirr"),
    (["compare", "recipe=quickstart"], "compare.dir"),
    (["sample", "--run", "RUN", "--out", "samples/", "--stepz", "3"], "--stepz"),
    (["eval", "--samples", "samples/"], "--out"),
    (["viz", "forwrd"], "invalid choice"),
    (["viz", "forward", "--bands", "3"], "--bands"),
    (["frobnicate"], "unknown nidiff command"),
])
def test_a_drifted_command_is_refused(argv, message):
    with pytest.raises(ValueError, match=message):
        check_command_line(argv)
