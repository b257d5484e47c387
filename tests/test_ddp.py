"""Multi-process training: the real console script with DDP on two CPU processes (gloo)."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nidiff.data import ImageDataModule
from nidiff.training.cli import relaunch_argv
from tests.test_train_cli import TINY, run, write_cifar_like_zip


@pytest.mark.slow  # two processes of gloo DDP
def test_ddp_two_cpu_processes(tmp_path):
    data = write_cifar_like_zip(tmp_path / "images.zip", n=32)
    run_dir = tmp_path / "run"
    out = run(["train", "recipe=blurring_cifar10", *TINY, "data.dataset=folder", f"data.path={data}",
               "data.batch_size=4", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
               "trainer.max_steps=2", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("reached step 2") == 1  # rank 0 reports; rank 1 trains silently
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt")) == ["last.ckpt", "step_0000002.ckpt"]
    assert [p.name for p in (run_dir / "samples").glob("*.png")] == ["step_0000002.png"]
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    rows = list(csv.DictReader((run_dir / "logs" / "metrics.csv").open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 2 and all(np.isfinite(losses))


@pytest.mark.slow  # two DDP trainings and a resume
def test_ddp_resume_is_exact_and_processes_draw_their_own_noise(tmp_path):
    """Two processes: 4 steps straight equal 2 steps, then a resume to 4, bit for bit."""
    from tests.test_resume_exact import assert_same_state, losses

    data = write_cifar_like_zip(tmp_path / "images.zip", n=32)
    common = ["train", "recipe=blurring_cifar10", *TINY, "data.dataset=folder", f"data.path={data}",
              "data.batch_size=4", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    for args in (["trainer.max_steps=4", f"hydra.run.dir={straight}"], ["trainer.max_steps=2", f"hydra.run.dir={split}"],
                 ["trainer.max_steps=4", f"resume={split}"]):
        out = run([*common, *args], tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
    a = torch.load(straight / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(split / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        assert_same_state(a[key], b[key], key)
    assert losses(straight) == losses(split)
    per_rank = a["callbacks"]["RNGState"]["torch_per_rank"]
    assert per_rank.shape[0] == 2 and not torch.equal(per_rank[0], per_rank[1])  # each process its own stream


def test_each_process_gets_its_own_shard():
    """The data module shards every epoch over the processes: disjoint, together the whole set."""
    seen = []
    for rank in range(2):
        dm = ImageDataModule("synthetic", image_size=8, batch_size=4, num_images=16, seed=3, random_flip=False)
        epoch = SimpleNamespace(current=SimpleNamespace(processed=0))
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank, fit_loop=SimpleNamespace(epoch_progress=epoch),
                                     strategy=SimpleNamespace(root_device=torch.device("cpu")))
        loader = dm.train_dataloader()
        assert loader.sampler.num_replicas == 2 and loader.sampler.rank == rank
        seen.append(list(loader.sampler))
    assert len(seen[0]) == len(seen[1]) == 8
    assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == set(range(16))


def test_relaunch_command_is_the_users_not_hydras():
    """Lightning re-runs sys.argv for ranks > 0 and appends the run directory, job name, output subdir."""
    args = ["recipe=quickstart", "hydra.run.dir=out", "trainer.devices=2", "hydra.job.name=x"]
    assert relaunch_argv("/bin/nidiff", args) == ["/bin/nidiff", "train", "recipe=quickstart", "trainer.devices=2"]


def test_ddp_in_a_sweep_is_refused(tmp_path):
    out = run(["train", "-m", "recipe=quickstart", "trainer.accelerator=cpu", "trainer.devices=2",
               "trainer.strategy=ddp", "trainer.max_steps=1", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert out.returncode == 2 and "run each job of the sweep as its own" in out.stderr
