"""The real console script end to end: train a few steps, check outputs, resume; bad input."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

NIDIFF = str(Path(sys.executable).with_name("nidiff"))
TINY = [
    "net.base_channels=32", "net.channel_mult=[1,2]", "net.num_res_blocks=1", "net.attn_resolutions=[16]",
    "net.head_dim=32", "net.dropout=0.0", "data.batch_size=8", "data.num_workers=0", "optim.warmup_steps=0",
    "checkpoint.every_n_steps=2", "sample.every_n_steps=2", "sample.n=4", "sample.steps=4",
    "trainer.log_every_n_steps=1", "progress_refresh=1",
]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # the repository on the path, and its tests.faults registered: the network faulty_unet
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "NIDIFF_DATA": str(cwd / "no-data-here"), "PYTHONPATH": path, "NIDIFF_PLUGINS": "tests.faults"}
    return subprocess.run([NIDIFF, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def write_cifar_like_zip(path: Path, n: int = 24) -> Path:
    """A zip laid out like the CIFAR-10 JPEG copy: <class>/<NNNN>.png, 32x32 RGB."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
            zf.writestr(f"{['cat', 'dog'][i % 2]}/{i:04d}.png", buf.getvalue())
    return path


def test_train_then_resume(tmp_path):
    data = write_cifar_like_zip(tmp_path / "images.zip")
    run_dir = tmp_path / "run"
    common = ["train", "recipe=blurring_cifar10", *TINY, "data.dataset=folder", f"data.path={data}"]
    first = run([*common, "trainer.max_steps=3", f"hydra.run.dir={run_dir}"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "reached step 3" in first.stdout
    ckpts = run_dir / "checkpoints"
    assert (ckpts / "last.ckpt").is_file() and (ckpts / "step_0000002.ckpt").is_file()
    grids = sorted((run_dir / "samples").glob("step_*.png"))
    assert [g.name for g in grids] == ["step_0000002.png", "step_0000003.png"]
    grid = np.asarray(Image.open(grids[-1]))
    assert grid.ndim == 3 and grid.shape[2] == 3 and grid.std() > 1  # four tiles, not blank
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((run_dir / "logs" / "metrics.csv").open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 3 and all(np.isfinite(losses))
    state = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 3
    assert any(k.startswith("ema.module.") for k in state["state_dict"])
    assert not any("d_h" in k or "lam" in k for k in state["state_dict"])  # basis/schedule tables stay out

    second = run([*common, "trainer.max_steps=5", f"resume={run_dir}"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "reached step 5" in second.stdout
    state = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 5
    rows = list(csv.DictReader((run_dir / "logs" / "metrics.csv").open()))
    steps = [int(r["step"]) for r in rows if r.get("train/loss")]
    assert max(steps) >= 4


def test_precond_statistics_are_fitted_saved_and_loaded(tmp_path):
    """diffusion.parametrization=precond: per-coefficient moments of the training images and their
    mirror images (random_flip), in the checkpoint, back in load_run; checked against scipy."""
    import scipy.fft

    from nidiff import load_run

    data = write_cifar_like_zip(tmp_path / "images.zip")
    run_dir = tmp_path / "run"
    out = run(["train", "recipe=blurring_cifar10", *TINY, "data.dataset=folder", f"data.path={data}",
               "diffusion.parametrization=precond", "trainer.max_steps=2", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "per-coefficient data statistics (precond) on 24 training images" in out.stdout
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert bool(state["state_dict"]["diffusion.parametrization.fitted"])
    with zipfile.ZipFile(data) as zf:
        x = np.stack([np.asarray(Image.open(io.BytesIO(zf.read(n)))) for n in sorted(zf.namelist())])
    x = np.concatenate([x, x[:, :, ::-1]]).transpose(0, 3, 1, 2) / 127.5 - 1  # [48, 3, 32, 32]
    u = scipy.fft.dctn(x, axes=(-2, -1), norm="ortho")
    loaded = load_run(run_dir).diffusion.parametrization
    np.testing.assert_allclose(loaded.mean.numpy(), u.mean(0), atol=1e-5)
    np.testing.assert_allclose(loaded.var.numpy(), u.var(0, ddof=1), rtol=1e-4, atol=1e-6)


def test_quickstart_composes_and_trains(tmp_path):
    """The quickstart as shipped (16x16 synthetic images, precond), shortened to 2 steps."""
    run_dir = tmp_path / "run"
    out = run(["train", "recipe=quickstart", "trainer.max_steps=2", "data.num_images=64", "basis_fit_images=64",
               "sample.n=4", "sample.steps=4", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "16x16" in out.stdout and "per-coefficient data statistics (precond) on 64" in out.stdout
    grid = np.asarray(Image.open(run_dir / "samples" / "step_0000002.png"))
    assert grid.ndim == 3 and grid.std() > 1


def test_help_lists_what_exists(tmp_path):
    out = run(["--help"], tmp_path)
    assert out.returncode == 0
    for name in ("train", "blurring_cifar10", "quickstart", "dct", "haar", "blurring", "ihdm"):
        assert name in out.stdout
    out = run(["train", "--help"], tmp_path)
    assert out.returncode == 0 and "recipe=NAME" in out.stdout and "blurring_lsun_church64" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "recipe=blurring_cifar"], "Did you mean 'blurring_cifar10'? Known recipes:"),
        (["train", "recipe=quickstart", "basis=wavelet"], "Known bases: dct, fourier, haar"),
        (["train", "recipe=quickstart", "schedule=blurry"], "Known schedules: blur, blurring"),
        (["trian"], "Did you mean 'train'?"),
    ],
)
def test_unknown_names_exit_with_the_known_ones(tmp_path, args, message):
    out = run(args, tmp_path)
    assert out.returncode != 0
    assert message in out.stderr
    assert not (tmp_path / "outputs").exists()  # refused before any run directory was made


def test_missing_dataset_says_where_to_put_it(tmp_path):
    out = run(["train", "recipe=blurring_cifar10", *TINY, f"data.root={tmp_path / 'empty'}",
               "trainer.max_steps=1", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == 2
    assert "cifar-10-python.tar.gz" in out.stderr and str(tmp_path / "empty") in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


def test_multirun_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    out = run(["train", "-m", "recipe=quickstart", "schedule.sigma_blur_max=0,5", "trainer.max_steps=1",
               "sample.n=2", "sample.steps=2", "data.num_images=16", "data.batch_size=4",
               f"hydra.sweep.dir={sweep}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    for job, blur in (("0", "0"), ("1", "5")):
        cfg = (sweep / job / ".hydra" / "config.yaml").read_text()
        assert f"sigma_blur_max: {blur}\n" in cfg
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert list((sweep / job / "samples").glob("*.png"))


def test_a_wall_clock_budget_ends_with_a_checkpoint_of_the_last_step(tmp_path):
    """trainer.max_time stops the run inside a step; that step is checkpointed like a last step."""
    run_dir = tmp_path / "run"
    out = run(["train", "recipe=quickstart", *TINY, "data.dataset=synthetic", "data.num_images=64",
               "trainer.max_steps=100000", "trainer.max_time=00:00:00:03", "checkpoint.every_n_steps=100000",
               "sample.every_n_steps=100000", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    step = state["global_step"]
    assert 1 <= step < 100000 and (run_dir / "checkpoints" / f"step_{step:07d}.ckpt").is_file()
    assert f"reached step {step}" in out.stdout and (run_dir / "samples" / f"step_{step:07d}.png").is_file()
