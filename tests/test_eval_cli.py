"""nidiff sample / fid-ref / eval end to end on the CPU with a tiny checkpoint, and their bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nidiff.cli import main
from nidiff.metrics import inception as inception_module
from nidiff.metrics import tf1_bilinear_resize
from tests.test_metrics import low_rank_fid, numpy_kid
from tests.test_train_cli import TINY, run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    out = run(["train", "recipe=quickstart", *TINY, "image_shape=[3,32,32]", "data.dataset=synthetic", "data.num_images=16",
               "trainer.max_steps=2", f"hydra.run.dir={tmp / 'run'}"], tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp / "run"


class FirstPixels(nn.Module):
    """A stand-in for the Inception network: the first 2048 values of its resized, scaled input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :2048]


@pytest.fixture
def stand_in_weights(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "stand_in.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(FirstPixels()).save(str(path))
    monkeypatch.setitem(inception_module.KNOWN_SHA256, inception_module.FID_HELPER, inception_module.sha256sum(path))
    monkeypatch.setenv("NIDIFF_INCEPTION_WEIGHTS", str(path))
    return path


def write_images(folder: Path, n: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def stand_in_features(folder: Path) -> np.ndarray:
    """What FirstPixels returns for the PNGs of a folder, in name order: float64 [N, 2048]."""
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    return ((tf1_bilinear_resize(x.float()).double() - 128) / 128).flatten(1)[:, :2048].float().double().numpy()


def test_sample_is_per_image_seeded_and_resumable(tiny_run, tmp_path):
    args = ["sample", "--run", str(tiny_run), "-n", "5", "--steps", "4", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a"), "--batch-size", "5"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--batch-size", "2", "--npz", str(tmp_path / "b.npz")]) == 0
    for i in range(5):  # the same image whatever batch it was drawn in
        assert (tmp_path / "a" / f"{i:06d}.png").read_bytes() == (tmp_path / "b" / f"{i:06d}.png").read_bytes()
    packed = np.load(tmp_path / "b.npz")["samples"]
    assert packed.shape == (5, 32, 32, 3) and packed.dtype == np.uint8
    (tmp_path / "a" / "000003.png").unlink()  # as if killed before writing image 3
    (tmp_path / "a" / ".000004.png.tmp").write_bytes(b"partial")
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "000003.png").read_bytes() == (tmp_path / "b" / "000003.png").read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"{i:06d}.png" for i in range(5)]


@pytest.mark.parametrize("sampler", ["ddim", "dpm2", "heun"])
def test_other_samplers_from_the_command_line(tiny_run, tmp_path, sampler):
    assert main(["sample", "--run", str(tiny_run), "-n", "2", "--steps", "3", "--sampler", sampler,
                 "--grid", "logsnr", "--x-clip", "static", "--out", str(tmp_path / sampler), "--device", "cpu"]) == 0
    assert len(list((tmp_path / sampler).glob("*.png"))) == 2


def test_fid_ref_then_eval(tiny_run, tmp_path, stand_in_weights, capsys):
    real = write_images(tmp_path / "real", 12)
    ref = tmp_path / "ref.npz"
    assert main(["fid-ref", "--dataset", "folder", "--path", str(real), "--out", str(ref), "--with-features",
                 "--batch-size", "5", "--device", "cpu"]) == 0
    protocol = json.loads(str(np.load(ref)["protocol"]))
    assert protocol["num_images"] == 12 and protocol["split"] == "train" and protocol["dataset"] == "folder"
    samples = tmp_path / "samples"
    assert main(["sample", "--run", str(tiny_run), "-n", "6", "--steps", "3", "--out", str(samples), "--device", "cpu"]) == 0
    out = tmp_path / "results.json"
    assert main(["eval", "--samples", str(samples), "--ref", str(ref), "--kid", "--run", str(tiny_run),
                 "--dataset", "folder", "--path", str(real), "--n-t", "2", "--batch-size", "4",
                 "--out", str(out), "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    real_f, sample_f = stand_in_features(real), stand_in_features(samples)
    # 6 and 12 samples in 2048 dimensions: the square roots of ~2040 zero eigenvalues, each
    # sqrt(eps lambda_max) after rounding, leave a relative error of order 1e-9
    assert results["fid"]["value"] == pytest.approx(low_rank_fid(sample_f, real_f), rel=1e-7)
    assert results["fid"]["protocol"]["num_samples"] == 6 and results["fid"]["protocol"]["num_images"] == 12
    assert results["fid"]["protocol"]["weights_sha256"] == inception_module.sha256sum(stand_in_weights)
    with torch.random.fork_rng():  # 100 subsets of 6 (all the samples) from each side
        kid = numpy_kid(real_f, sample_f, subsets=100, m=6, seed=0)
    assert [results["kid"]["value"], results["kid"]["std"]] == pytest.approx(kid, rel=1e-9)
    bpd = results["bits_per_dim"]
    assert bpd["value"] > 0 and bpd["stderr"] > 0 and bpd["protocol"]["num_images"] == 12
    captured = capsys.readouterr()
    assert "fid = " in captured.out
    for bar in ("reference", "samples", "bits/dim"):  # progress in images, not batches
        assert bar in captured.err
    assert "12/12" in captured.err and "6/6" in captured.err and "batch" not in captured.err
    # the reference is checked, never silently overwritten
    assert main(["fid-ref", "--dataset", "folder", "--path", str(real), "--out", str(ref)]) == 2
    assert "exists" in capsys.readouterr().err


def test_eval_refuses_too_few_samples_and_keeps_results(tiny_run, tmp_path, stand_in_weights, capsys):
    samples = write_images(tmp_path / "samples", 3)
    ref = tmp_path / "ref.npz"
    out = tmp_path / "results.json"
    out.write_text("{}")
    code = main(["eval", "--samples", str(samples), "--num-samples", "10", "--ref", str(ref), "--out", str(out),
                 "--overwrite", "--dataset", "folder", "--path", str(samples)])
    assert code == 2 and "fewer than the 10 requested" in capsys.readouterr().err
    assert out.read_text() == "{}" and not ref.exists()


def test_wrong_weights_hash(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not the inception network")
    monkeypatch.delenv("NIDIFF_INCEPTION_WEIGHTS", raising=False)
    code = main(["fid-ref", "--dataset", "folder", "--path", str(write_images(tmp_path / "r", 2)),
                 "--weights", str(bad), "--out", str(tmp_path / "ref.npz")])
    assert code == 2 and "sha256" in capsys.readouterr().err.lower()
    assert not (tmp_path / "ref.npz").exists()


def test_missing_and_mismatched_checkpoints(tiny_run, tmp_path, capsys):
    assert main(["sample", "--run", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "no run directory or checkpoint" in capsys.readouterr().err
    other = tmp_path / "other"
    (other / "checkpoints").mkdir(parents=True)
    (other / ".hydra").mkdir()
    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["config"]["net"]["base_channels"] == 32  # checkpoints carry the configuration of their weights
    state.pop("config")  # as checkpoints written before they did: the run's .hydra/config.yaml is used
    state.pop("nidiff_sha256")  # and without the digest they did not carry either
    torch.save(state, other / "checkpoints" / "last.ckpt")
    config = (tiny_run / ".hydra" / "config.yaml").read_text().replace("base_channels: 32", "base_channels: 64")
    (other / ".hydra" / "config.yaml").write_text(config)
    assert main(["sample", "--run", str(other), "--out", str(tmp_path / "o"), "-n", "1"]) == 2
    assert "does not match its network" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_unknown_sampler(tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--run", str(tiny_run), "--out", str(tmp_path), "--sampler", "euler"])
    err = capsys.readouterr().err
    assert "invalid choice: 'euler'" in err and "ancestral" in err and "dpm2" in err


def test_console_script_help(tmp_path, capsys):
    out = subprocess.run([str(Path(sys.executable).with_name("nidiff")), "sample", "--help"], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)  # the console script, once
    assert out.returncode == 0 and "usage: nidiff sample" in out.stdout
    for cmd in ("sample", "eval", "fid-ref"):  # each command's help, in this process
        with pytest.raises(SystemExit) as exited:
            main([cmd, "--help"])
        assert exited.value.code == 0 and "usage: nidiff " + cmd in capsys.readouterr().out


def test_bits_per_dim_data_follow_the_run(tiny_run, tmp_path, capsys):
    """eval --run measures on images of the run's size (a different --image-size is refused) and, for
    the synthetic set, on the set the run was trained on."""
    from nidiff.evaluation.evaluate import parser, run_data_kwargs

    config = {"image_shape": [3, 16, 16],
              "data": {"dataset": "synthetic", "shapes": ["disc"], "max_shapes": 1, "num_images": 50, "seed": 3}}
    args = parser().parse_args(["--out", "r.json", "--run", "RUN", "--dataset", "synthetic"])
    kwargs = run_data_kwargs(args, config)
    assert kwargs["image_size"] == 16
    assert (kwargs["shapes"], kwargs["max_shapes"], kwargs["num_images"], kwargs["seed"]) == (["disc"], 1, 50, 3)
    folder = run_data_kwargs(parser().parse_args(["--out", "r.json", "--run", "RUN", "--dataset", "folder"]), config)
    assert folder["image_size"] == 16 and "shapes" not in folder
    with pytest.raises(ValueError, match="--image-size 32, but the run's images are 16x16"):
        run_data_kwargs(parser().parse_args(["--out", "r.json", "--run", "RUN", "--image-size", "32"]), config)

    out = tmp_path / "bpd.json"  # the tiny run is 32x32
    assert main(["eval", "--run", str(tiny_run), "--dataset", "synthetic", "--image-size", "16", "--out", str(out),
                 "--device", "cpu"]) == 2
    assert "but the run's images are 32x32" in capsys.readouterr().err and not out.exists()
    assert main(["eval", "--run", str(tiny_run), "--dataset", "synthetic", "--limit", "4", "--n-t", "2",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert json.loads(out.read_text())["bits_per_dim"]["protocol"]["num_images"] == 4
