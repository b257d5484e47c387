"""SIGKILL a real training process at several moments, resume it, and get the uninterrupted run bit for bit.

The reference trains N steps straight. Each trial starts the same run, kills it with SIGKILL at a
chosen moment (between checkpoint writes, or in the middle of writing a step file or last.ckpt,
widened by ``NIDIFF_FAULT_CHECKPOINT_DELAY``), resumes it with ``resume=RUN_DIR`` to N, and
compares the final checkpoint (weights, EMA, Adam, warm-up schedule, step) with ``torch.equal`` and
the logged losses of every step exactly. ``NIDIFF_TEST_KILL_TRIALS=K`` adds K kills at random
moments.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.test_train_cli import NIDIFF, TINY, write_cifar_like_zip

N = 8  # steps; checkpoints every 2 (TINY)


def command(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [NIDIFF, "train", "recipe=blurring_cifar10", *TINY, "data.dataset=folder", f"data.path={data}",
            f"trainer.max_steps={N}", "optim.warmup_steps=3", "ema.decay=0.9", *extra, f"hydra.run.dir={run_dir}"]


def environment(tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "NIDIFF_DATA": str(tmp / "no-data-here"), **extra}


def losses(run_dir: Path) -> dict[int, str]:
    rows = csv.DictReader((run_dir / "logs" / "metrics.csv").open())
    out: dict[int, str] = {}
    for row in rows:
        if row.get("train/loss"):
            assert int(row["step"]) not in out, f"step {row['step']} logged twice"
            out[int(row["step"])] = row["train/loss"]
    return out


def assert_same_state(a: dict, b: dict, path: str = "") -> None:
    """Bitwise equality of two checkpoint trees (tensors by ``torch.equal``, the rest by ``==``)."""
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))[:5]}"
        for key in a:
            assert_same_state(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), f"{path} differs"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("straight")
    data = write_cifar_like_zip(tmp / "images.zip", n=40)
    out = subprocess.run(command(data, tmp / "run"), env=environment(tmp), capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return data, tmp / "run"


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (code {proc.returncode}) before {what}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def step_of(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:
        return -1


# kill point -> (environment, files the kill waits for, predicate)
KILL_POINTS = {
    "between writes": ({}, lambda ck: step_of(ck / "last.ckpt") >= 4),
    "writing a step file": ({"NIDIFF_FAULT_CHECKPOINT_DELAY": "1"}, lambda ck: any(ck.glob(".step_0000004.ckpt.tmp-*"))),
    "writing last.ckpt": ({"NIDIFF_FAULT_CHECKPOINT_DELAY": "1"},
                          lambda ck: (ck / "step_0000004.ckpt").is_file() and any(ck.glob(".last.ckpt.tmp-*"))),
    "between writes, 2 loader workers": ({}, lambda ck: step_of(ck / "last.ckpt") >= 2),
}


def kill_and_resume(straight, tmp: Path, env: dict, ready, workers: int = 0, delay: float | None = None) -> int:
    data, reference = straight
    run_dir = tmp / "run"
    extra = [f"data.num_workers={workers}"]
    proc = subprocess.Popen(command(data, run_dir, *extra), env=environment(tmp, **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if delay is not None:
        time.sleep(delay)
        if proc.poll() is not None:
            pytest.skip("the run finished before the random kill time")
    else:
        wait_for(lambda: ready(run_dir / "checkpoints"), proc, "the kill point")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max([step_of(p) for p in (run_dir / "checkpoints").glob("*.ckpt")], default=0)

    resumed = subprocess.run(command(data, run_dir, *extra, f"resume={run_dir}"), env=environment(tmp),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not list((run_dir / "checkpoints").glob(".*.tmp-*")), "stale temporary files left behind"
    a = torch.load(reference / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == N
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "nonfinite"):
        assert_same_state(a[key], b[key], key)
    assert losses(run_dir) == losses(reference)  # every step, the ones before the kill kept
    return killed_at


@pytest.mark.slow  # a training process killed and resumed per kill point: about 30 s each
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_resume_is_bit_exact(straight, tmp_path, point):
    env, ready = KILL_POINTS[point]
    workers = 2 if "workers" in point else 0
    killed_at = kill_and_resume(straight, tmp_path, env, ready, workers=workers)
    if "writing" in point:  # the write under way was lost, the previous checkpoints were not
        assert killed_at in (2, 4)


@pytest.mark.parametrize("trial", range(int(os.environ.get("NIDIFF_TEST_KILL_TRIALS", "0"))))
def test_sigkill_at_a_random_moment(straight, tmp_path, trial):
    delay = random.Random(trial).uniform(3.0, 8.0)  # from start-up to the end of training
    kill_and_resume(straight, tmp_path, {}, None, delay=delay)


@pytest.mark.slow  # three training processes
def test_resumed_twice_to_steps_between_checkpoints(straight, tmp_path):
    """3 steps, then to 5, then to N: each end falls between checkpoints and is written from inside its step."""
    data, reference = straight
    run_dir = tmp_path / "run"
    for steps, resume in ((3, []), (5, [f"resume={run_dir}"]), (N, [f"resume={run_dir}"])):
        out = subprocess.run([*command(data, run_dir, *resume)[:-1], f"trainer.max_steps={steps}",
                              f"hydra.run.dir={run_dir}"], env=environment(tmp_path), capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt")) == [
        "last.ckpt", "step_0000002.ckpt", "step_0000003.ckpt", "step_0000004.ckpt", "step_0000005.ckpt",
        "step_0000006.ckpt", "step_0000008.ckpt"]
    a = torch.load(reference / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "nonfinite"):
        assert_same_state(a[key], b[key], key)
    assert losses(run_dir) == losses(reference)
