"""The torch-free name lists (nidiff.names) agree with the registries and tables they mirror, and the
commands' help answers without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nidiff
from nidiff.names import BUILTIN, DATASET_NAMES, PARAMETRIZATION_NAMES, X_CLIP_NAMES, registered


@pytest.mark.parametrize("kind, listed", [("basis", nidiff.list_bases), ("schedule", nidiff.list_schedules),
                                          ("sampler", nidiff.list_samplers), ("grid", nidiff.list_grids)])
def test_builtin_names_are_the_registries(kind, listed):
    assert sorted(BUILTIN[kind][0]) == listed()  # no plugin is installed in the test environment
    assert registered(kind) == listed()


def test_tables_mirrored():
    from nidiff.data.sources import DATASETS
    from nidiff.parametrization import PARAMETRIZATIONS
    from nidiff.sampling.clipping import X_CLIPS

    assert tuple(DATASETS) == DATASET_NAMES
    assert tuple(PARAMETRIZATIONS) == PARAMETRIZATION_NAMES
    assert sorted(X_CLIPS) == sorted(X_CLIP_NAMES)


def cli_without_torch(*argv: str) -> subprocess.CompletedProcess:
    """``nidiff ARGV`` in a fresh interpreter; its stdout ends with the heavy modules it imported."""
    code = ("import sys\nfrom nidiff.cli import main\n"
            "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as stop:\n    rc = stop.code\n"
            "print('HEAVY', [m for m in ('torch', 'lightning') if m in sys.modules])\nsys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["sample"], ["eval"], ["fid-ref"], ["viz", "samples"], ["viz", "forward"],
                                     ["compare"], ["train"]])
def test_help_without_torch(command):
    """Each command's ``--help`` prints its options and never imports torch (or Lightning)."""
    done = cli_without_torch(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert "HEAVY []" in done.stdout, done.stdout[-300:]


@pytest.mark.parametrize("command", [["sample", "--out", "{tmp}/out"], ["eval", "--out", "{tmp}/r.json"],
                                     ["viz", "samples", "--out", "{tmp}/out"]])
def test_a_missing_run_is_refused_without_torch(tmp_path, command):
    done = cli_without_torch(*[a.format(tmp=tmp_path) for a in command], "--run", str(tmp_path / "nothing"))
    assert done.returncode == 2
    assert f"no run directory or checkpoint at {tmp_path / 'nothing'}" in done.stderr
    assert "HEAVY []" in done.stdout, done.stdout[-300:]
    assert not any(tmp_path.iterdir())  # nothing written
