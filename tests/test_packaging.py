"""A wheel built from the repository carries the config folders, and works from any directory."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (path,) = out.glob("nidiff-*.whl")
    return path


def test_wheel_contains_the_config_groups(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for group in ("bases", "schedules", "nets", "recipes"):
        yamls = {p.name for p in (ROOT / group).glob("*.yaml")}
        assert yamls and {f"nidiff/conf/{group}/{y}" for y in yamls} <= names, group
    assert "nidiff/conf/train.yaml" in names


def test_installed_wheel_finds_recipes_from_another_directory(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import nidiff, nidiff.config as c; "
        "print(nidiff.__file__); print(c.options('recipe')); "
        "cfg = c.compose(['recipe=blurring_cifar10', 'basis=haar']); print(cfg.basis.name)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(target), "PATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith(str(target))  # the installed copy, not the checkout
    assert "blurring_cifar10" in lines[1] and "quickstart" in lines[1]
    assert lines[2] == "haar"
