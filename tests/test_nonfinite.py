"""The non-finite guard: a NaN in a batch or in a gradient changes nothing, by each policy, in
float32 and bf16, in a plain loop, under Lightning, and under DDP (both processes decide alike)."""

from __future__ import annotations

import copy
import csv

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nidiff.training.guard import NonFiniteError, NonFiniteGuard
from nidiff.training.module import DiffusionModule
from nidiff.training.step import TrainStep
from tests.test_train_cli import TINY, run, write_cifar_like_zip
from tests.test_train_step import blurring, images, tiny_net


def snapshot(step: TrainStep) -> dict:
    return copy.deepcopy({"net": step.net.state_dict(), "ema": step.ema.module.state_dict(),
                          "opt": step.optimizer.state_dict(), "sched": step.scheduler.state_dict()})


def assert_unchanged(before: dict, after: dict) -> None:
    for part in ("net", "ema"):
        for k, v in before[part].items():
            assert torch.equal(v, after[part][k]), f"{part}.{k} changed"
    for i, state in before["opt"]["state"].items():
        for k, v in state.items():
            assert torch.equal(v, after["opt"]["state"][i][k]), f"optimizer {i}.{k} changed"
    assert before["sched"] == after["sched"]


def test_guard_policies():
    ok, nan = torch.tensor(1.0), torch.tensor(float("nan"))
    skip = NonFiniteGuard("skip", max_consecutive=1)
    assert [skip.check(ok, ok), skip.check(nan, ok), skip.check(ok, torch.tensor(float("inf")))] == [True, False, False]
    assert skip.skipped == 2 and skip.consecutive == 2  # skip never stops
    stop = NonFiniteGuard("stop", max_consecutive=2)
    assert stop.check(nan, ok) is False and stop.check(ok, ok) is True and stop.consecutive == 0
    assert stop.check(ok, nan) is False
    with pytest.raises(NonFiniteError, match="2 training step"):
        stop.check(nan, ok)
    with pytest.raises(ValueError, match="policy"):
        NonFiniteGuard("ignore")
    with pytest.raises(ValueError, match="max_consecutive"):
        NonFiniteGuard("stop", 0)


@pytest.mark.parametrize("precision", ["32", "bf16"])
@pytest.mark.parametrize("where", ["batch", "gradient"])
def test_nan_step_changes_nothing(precision, where):
    step = TrainStep(tiny_net(), blurring(), lr=1e-3, warmup_steps=3, ema_decay=0.9, precision=precision,
                     guard=NonFiniteGuard("stop", max_consecutive=2))
    x = images()
    step(x)  # Adam has moments, the EMA has moved
    before = snapshot(step)
    if where == "batch":
        bad = x.clone()
        bad[1, 0, 3, 3] = float("nan")
        loss = step(bad)
        assert not torch.isfinite(loss)
    else:
        handle = step.net.conv_out.weight.register_hook(lambda g: g * float("nan"))
        loss = step(x)
        handle.remove()
        assert torch.isfinite(loss)  # a finite loss, NaN gradients
    assert step.guard.skipped == 1
    assert_unchanged(before, snapshot(step))
    assert all(p.grad is None for p in step.net.parameters())  # nothing carried to the next step
    step(x)  # a good step applies again and resets the count
    assert step.guard.consecutive == 0
    assert not torch.equal(before["net"]["conv_out.weight"], step.net.conv_out.weight)
    bad = x * float("nan")
    step(bad)
    with pytest.raises(NonFiniteError):
        step(bad)
    assert all(torch.isfinite(v).all() for v in step.ema.module.state_dict().values())


def poisoned_batches(n: int, bad: set[int]) -> list[torch.Tensor]:
    out = []
    for i in range(n):
        x = images(4) * 0.5 + 0.01 * i
        if i in bad:
            x[0, 0, 0, 0] = float("nan")
        out.append(x)
    return out


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_lightning_skips_a_nan_batch(tmp_path, precision):
    module = DiffusionModule(tiny_net(), blurring(), lr=1e-3, warmup_steps=0, ema_decay=0.9,
                             guard=NonFiniteGuard("skip"))
    trainer = L.Trainer(max_steps=4, accelerator="cpu", precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(poisoned_batches(5, {2}), batch_size=None))
    assert trainer.global_step == 4 and module.guard.skipped == 1  # five batches, four applied steps
    assert all(torch.isfinite(v).all() for v in module.state_dict().values())


def test_stop_policy_keeps_the_last_good_checkpoint(tmp_path):
    data = write_cifar_like_zip(tmp_path / "images.zip")
    run_dir = tmp_path / "run"
    out = run(["train", "recipe=blurring_cifar10", *TINY, "data.dataset=folder", f"data.path={data}",
               "net.name=faulty_unet", "net.nan_calls=[4,5]", "nonfinite.policy=stop",
               "nonfinite.max_consecutive=2", "trainer.max_steps=8", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 1
    assert "2 training step(s) in a row had a non-finite loss" in out.stderr
    assert "Stopped at step 3" in out.stderr and "last.ckpt" in out.stderr
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


@pytest.mark.slow  # two processes of gloo DDP
def test_ddp_processes_decide_together(tmp_path):
    """NaN on rank 1 only: rank 0 skips too (a finite loss there), and both stop without a hang."""
    data = write_cifar_like_zip(tmp_path / "images.zip", n=32)
    run_dir = tmp_path / "run"
    common = ["train", "recipe=blurring_cifar10", *TINY, "data.dataset=folder", f"data.path={data}",
              "data.batch_size=4", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
              "net.name=faulty_unet", "net.nan_rank=1"]
    skip = run([*common, "net.nan_calls=[2]", "nonfinite.policy=skip", "trainer.max_steps=3",
                f"hydra.run.dir={run_dir}"], tmp_path)
    assert skip.returncode == 0, skip.stderr[-3000:]
    rows = [r for r in csv.DictReader((run_dir / "logs" / "metrics.csv").open()) if r.get("train/loss")]
    assert [float(r["train/nonfinite_steps"]) for r in rows] == [0.0, 1.0, 1.0, 1.0]
    assert np.isnan(float(rows[1]["train/loss"]))  # the mean over processes of a NaN
    stop = run([*common, "net.nan_calls=[3]", "nonfinite.policy=stop", "nonfinite.max_consecutive=1",
                "trainer.max_steps=6", f"hydra.run.dir={tmp_path / 'stop'}"], tmp_path)
    assert stop.returncode != 0 and "non-finite" in stop.stderr
