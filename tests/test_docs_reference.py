"""The generated reference pages in docs/reference/ are what their generators write now."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tools.docgen import PAGES
from tools.docgen.yaml_keys import leaf_paths, read_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [*sorted((ROOT / "nidiff/conf").glob("*.yaml")),
           *[p for group in ("bases", "schedules", "nets", "recipes") for p in sorted((ROOT / group).glob("*.yaml"))]]


@pytest.mark.parametrize("name", sorted(PAGES))
def test_reference_page_is_current(name):
    generate, path = PAGES[name]
    expected = generate()
    committed = (ROOT / path).read_text() if (ROOT / path).is_file() else ""
    if committed != expected:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(True), expected.splitlines(True),
                                                 path, "generated", n=1))[:40])
        pytest.fail(f"{path} is out of date; regenerate it with\n\n    python -m tools.docgen {name} > {path}\n\n"
                    f"{diff}", pytrace=False)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_reference_page_is_the_same_on_every_machine(name):
    """No absolute path of this checkout or home folder, no memory address."""
    text = PAGES[name][0]()
    for needle in (str(ROOT), str(Path.home()), " at 0x"):
        assert needle not in text, needle


def test_cli_reference_covers_every_command_key_and_option():
    from nidiff.cli import COMMANDS
    from nidiff.config import options

    from nidiff.schema import CompareConfig, describe_fields

    text = PAGES["cli"][0]()
    for command in COMMANDS:
        assert f"\n## nidiff {command}\n" in text, command
    for key, _, default, _ in describe_fields(CompareConfig):
        assert f"| `{key}` |" in text and f"| `{default}` |" in text, key
    for group in ("recipe", "basis", "schedule", "net"):
        for option in options(group):
            assert f"\n#### {group}={option}\n" in text, (group, option)
    for option in ("--num-samples", "--x-clip", "--with-features", "--n-t", "--band-mode", "--trajectories"):
        assert f"{option} " in text or f"{option}`" in text, option


def test_api_reference_covers_every_export():
    import importlib

    from tools.docgen.api_reference import API_MODULES

    text = PAGES["api"][0]()
    for module_name in API_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            assert f"### {module_name}.{name}\n" in text or f"- `{name}`: see" in text, (module_name, name)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_reader_sees_the_keys_omegaconf_sees(path):
    conf = read_config(path)
    paths = {k.path for k in conf.keys}
    leaves = {k.path for k in conf.keys if not k.mapping or not any(p.startswith(k.path + ".") for p in paths)}
    assert leaves == leaf_paths(path)
