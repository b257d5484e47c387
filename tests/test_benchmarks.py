"""The benchmarks still run: tiny size on the CPU, each in its own process, as a user runs them.

Only that they run and print their tables is checked, never a time. diffusers is optional (the test
extra installs it): where it is not installed, its rows are skipped and the scripts say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


@pytest.mark.slow  # both benchmarks end to end
def test_train_and_sample_throughput_print_their_tables(tmp_path):
    rows = tmp_path / "rows.jsonl"
    common = ("--device", "cpu", "--size", "tiny", "--threads", "1", "--json", str(rows))
    train = bench("train_throughput.py", *common, "--steps", "6").stdout
    assert "ms/call" in train and "images/s" in train and "peak RSS MiB" in train
    assert "nidiff dct" in train and "nidiff identity" in train and "dct step vs identity step" in train
    assert ("diffusers " in train.split("peak RSS MiB")[1]) or "diffusers not available" in train
    sample = bench("sample_throughput.py", *common, "--steps", "3").stdout
    assert "nidiff dct" in sample and "samples finite" in sample

    recorded = [json.loads(line) for line in rows.read_text().splitlines()]
    assert {(r["bench"], r["model"]) for r in recorded} >= {("train", "nidiff dct"), ("sample", "nidiff identity")}
    assert all(r["images_per_s"] > 0 and r["peak_mib"] > 0 for r in recorded)
    report = bench("report.py", str(rows)).stdout
    assert "nidiff vs diffusers" in report and "dct" in report


@pytest.mark.slow  # the GPU script's checks, on the CPU
def test_device_check_passes_on_the_cpu():
    out = bench("check_device.py", "--device", "cpu", "--size", "tiny", "--steps", "2").stdout
    assert "device check: all passed" in out and "DCT under bf16 autocast stays float32" in out


def test_sampler_accuracy_prints_its_table():
    out = bench("sampler_accuracy.py", "--problems", "blurring", "--grids", "angle", "--nfe", "5",
                "--samplers", "ddim,dpm2,unipc").stdout
    assert "blurring (sigma_blur_max = 20)" in out and "unipc (order=2)" in out and "best at 5 NFE" in out
    assert "(4)" in out  # dpm2 takes two evaluations per step: 2 steps for a budget of 5
