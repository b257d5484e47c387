"""`nidiff viz`: the figures are written, are PNGs worth looking at, and show the right things."""

from __future__ import annotations

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

import nidiff
from nidiff.cli import main
from nidiff.data import synthetic_images
from nidiff.images import make_grid
from nidiff.runs import load_run
from nidiff.viz.checkpoint import sample_with_trajectory
from nidiff.viz.forward import forward_tiles
from nidiff.viz.logsnr import band_curves, coefficient_bands
from nidiff.viz.output import new_figure, save_figure
from nidiff.viz.process import FIGURE1, Process, parse_process

NIDIFF = str(Path(sys.executable).with_name("nidiff"))
CIFAR_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg75" / "test.zip"
# tests/test_train_cli.py's TINY, smaller still (8 x 8 images, 8 channels): a checkpoint in seconds
TINY = [
    "image_shape=[3,8,8]", "net.base_channels=8", "net.norm_groups=4", "net.channel_mult=[1]",
    "net.num_res_blocks=1", "net.attn_resolutions=[]", "net.head_dim=8", "net.dropout=0.0",
    "data.dataset=synthetic", "data.num_images=16", "data.batch_size=4", "data.num_workers=0",
    "optim.warmup_steps=0", "checkpoint.every_n_steps=2", "sample.every_n_steps=2", "sample.n=1",
    "sample.steps=1", "trainer.log_every_n_steps=1", "progress_refresh=1", "trainer.max_steps=2",
]


def check_png(path: Path, min_side: int = 200) -> np.ndarray:
    """A real PNG of sensible size with content: not one flat colour, more than a few colours."""
    assert path.is_file(), path
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert min(im.size) >= min_side and max(im.size) <= 6000
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 10
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    return pixels


def high_frequency_energy(z: torch.Tensor) -> float:
    """Mean squared difference of horizontally and vertically adjacent pixels of ``[C, H, W]``."""
    return float(z.diff(dim=-1).pow(2).mean() + z.diff(dim=-2).pow(2).mean())


def write_image_zip(path: Path, n: int = 6) -> Path:
    """A zip laid out like the CIFAR-10 JPEG copy, ``<class>/<NNNN>.png``, of synthetic images."""
    images, _ = synthetic_images(n, 32, seed=1)
    with zipfile.ZipFile(path, "w") as zf:
        for i, x in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(x.permute(1, 2, 0).numpy()).save(buf, format="PNG")
            zf.writestr(f"{['cat', 'dog'][i % 2]}/{i:04d}.png", buf.getvalue())
    return path


# ---- forward ----------------------------------------------------------------------------------
def test_forward_default_is_figure1_on_synthetic_images(tmp_path, capsys):
    assert main(["viz", "forward", "--out", str(tmp_path / "new" / "dir")]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "new" / "dir" / "forward.png"
    assert "synthetic" in out and str(path) in out
    pixels = check_png(path)
    assert pixels.shape[1] > 2 * pixels.shape[0]  # a strip: 11 columns, 3 rows
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_forward_rows_differ_as_in_figure1():
    image = synthetic_images(1, 32)[0][0].float() / 127.5 - 1  # [3, 32, 32]
    tiles = forward_tiles(image, FIGURE1, times=(0.0, 0.5, 1.0), seed=3)  # [3 processes, 3 times, 3, 32, 32]
    standard, heat, blurring = tiles
    # t = 0: every process starts at (nearly) the image; IHDM's t = 0 is already a slight blur
    for row, tol in zip(tiles, (0.02, 0.1, 0.02)):
        assert (row[0] - image).pow(2).mean().sqrt() < tol
    # t = 1: heat dissipation is a smooth field, standard diffusion white noise
    assert high_frequency_energy(heat[-1]) < 1e-3 * high_frequency_energy(standard[-1])
    assert heat[-1].std() < 0.1 and 0.9 < standard[-1].std() < 1.1
    # the same noise draw in every row: at t = 1 both noisy processes are sigma_1 eps, alpha_1 ~ 0
    assert (standard[-1] - blurring[-1]).abs().max() < 0.05
    # heat dissipation only smooths: detail decreases along the row
    assert high_frequency_energy(heat[-1]) < high_frequency_energy(heat[1]) < high_frequency_energy(heat[0])


def test_forward_from_an_image_zip_with_chosen_processes(tmp_path, capsys):
    data = write_image_zip(tmp_path / "images.zip")
    args = ["viz", "forward", "--images", str(data), "--index", "4", "--times", "0,0.5,1", "--out", str(tmp_path),
            "--process", "sharp=dct:blurring(sigma_blur_max=1)", "--basis", "haar", "--name", "mine.png"]
    assert main(args) == 0
    assert "images.zip: dog/0003.png" in capsys.readouterr().out
    check_png(tmp_path / "mine.png", min_side=150)


@pytest.mark.skipif(not CIFAR_TEST.is_file(), reason="the shared CIFAR-10 JPEG copy is not beside the checkout")
def test_forward_from_the_cifar10_copy(tmp_path, capsys):
    args = ["viz", "forward", "--images", str(CIFAR_TEST), "--index", "3000", "--times", "0,0.5,1"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    assert "test.zip: cat/0000.jpg" in capsys.readouterr().out
    check_png(tmp_path / "forward.png", min_side=150)


# ---- logsnr -----------------------------------------------------------------------------------
def test_logsnr_figure(tmp_path, capsys):
    assert main(["viz", "logsnr", "--points", "41", "--out", str(tmp_path)]) == 0
    assert str(tmp_path / "logsnr.png") in capsys.readouterr().out
    check_png(tmp_path / "logsnr.png")


@pytest.mark.parametrize("basis", ["dct", "haar", "identity"])
@pytest.mark.parametrize("mode", ["quantile", "distinct"])
def test_bands_partition_the_coefficients(basis, mode):
    diffusion = nidiff.GaussianDiffusion(nidiff.build_basis(basis, shape=(3, 16, 16)), nidiff.build_schedule("blurring"))
    bands = coefficient_bands(diffusion, bands=5, mode=mode)
    lam = diffusion.lam.expand(diffusion.basis.coeff_shape).reshape(-1)  # every coefficient's eigenvalue
    distinct = np.unique(np.round(lam.numpy(), 9))
    assert float(bands.count.sum()) == diffusion.lam.numel()
    assert bool((bands.low <= bands.high).all()) and bool((bands.high[:-1] < bands.low[1:]).all())
    if mode == "distinct":
        assert len(bands) == len(distinct)
    else:  # at most 5: a value held by many coefficients (a Haar level) is not split
        assert len(bands) <= min(5, len(distinct))
        if basis != "identity":
            assert float(bands.low[0]) == float(bands.high[0]) == 0.0  # the mean colour is a band alone
        if basis == "dct":  # many distinct values: four bands of nearly equal size after the mean colour
            sizes = torch.zeros(len(bands), dtype=torch.float64).scatter_add(0, bands.band, bands.count)[1:]
            assert len(bands) == 5 and float(sizes.max() / sizes.min()) < 1.2


def test_band_curves_match_brute_force_over_coefficients():
    diffusion = nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=(3, 8, 8)), nidiff.build_schedule("blurring"))
    bands = coefficient_bands(diffusion, bands=4)
    t = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    curves = band_curves(diffusion, t, bands)
    logsnr = diffusion.logsnr(t).expand(4, 3, 8, 8).reshape(4, -1)  # [T, every coefficient]
    alpha = diffusion.alpha_sigma(t, torch.float64)[0].expand(4, 3, 8, 8).reshape(4, -1)
    lam = diffusion.lam.expand(3, 8, 8).reshape(-1)
    for k in range(len(bands)):
        mask = (lam >= bands.low[k] - 1e-12) & (lam <= bands.high[k] + 1e-12)
        torch.testing.assert_close(curves["logsnr"][:, k], logsnr[:, mask].mean(1))
        torch.testing.assert_close(curves["logsnr_low"][:, k], logsnr[:, mask].min(1).values)
        torch.testing.assert_close(curves["alpha"][:, k], alpha[:, mask].mean(1))


# ---- samples ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory made by the real `nidiff train`: two steps of a tiny model."""
    root = tmp_path_factory.mktemp("train")
    run_dir = root / "run"
    env = {**os.environ, "NIDIFF_DATA": str(root / "no-data-here")}
    out = subprocess.run([NIDIFF, "train", "recipe=quickstart", *TINY, f"hydra.run.dir={run_dir}"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


def test_samples_from_a_run_directory(tiny_run, tmp_path, capsys):
    args = ["viz", "samples", "--run", str(tiny_run), "--steps", "4", "--n", "4", "--trajectories", "2",
            "--columns", "3", "--device", "cpu", "--x-clip", "static", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "step 2" in out and "EMA" in out
    check_png(tmp_path / "samples.png")
    pixels = check_png(tmp_path / "samples_trajectory.png")
    assert pixels.shape[0] > pixels.shape[1] * 0.8  # 4 rows (z_t and x_hat of 2 samples) of 3 tiles
    # a checkpoint file inside the run works too, with the raw weights
    run = load_run(tiny_run / "checkpoints" / "step_0000002.ckpt", weights="net")
    assert run.step == 2 and run.describe() == "quickstart: dct + blurring, step 2, raw weights"
    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    torch.testing.assert_close(run.net.state_dict(), {k[4:]: v for k, v in state.items() if k.startswith("net.")})


def test_samples_match_the_training_runs_own_grid(tiny_run):
    """The same EMA network, seed and grid as the run's SampleGrid callback give the same pixels."""
    run = load_run(tiny_run)
    x, traj = sample_with_trajectory(run, run.plan(steps=1), n=1, seed=0, keep=1, columns=1)
    written = np.asarray(Image.open(tiny_run / "samples" / "step_0000002.png").convert("RGB")).astype(int)
    ours = make_grid(x, scale=0).permute(1, 2, 0).numpy().astype(int)  # the grids' default: >= 512 px wide
    assert ours.shape == written.shape and np.abs(ours - written).max() <= 1
    assert traj.times == [1.0] and traj.z.shape == (1, 1, 3, 8, 8)


def test_samples_without_a_run_says_what_is_needed(tmp_path, capsys):
    assert main(["viz", "samples", "--run", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no loadable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- command line -----------------------------------------------------------------------------
def test_console_script(tmp_path):
    out = subprocess.run([NIDIFF, "viz", "logsnr", "--process", "haar:blurring", "--points", "21",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith(str(tmp_path / "logsnr.png"))
    check_png(tmp_path / "logsnr.png")


def test_refuses_to_overwrite(tmp_path, capsys):
    args = ["viz", "logsnr", "--points", "11", "--process", "identity:cosine", "--out", str(tmp_path)]
    assert main(args) == 0
    path = tmp_path / "logsnr.png"
    before = path.read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "--overwrite" in err
    assert path.read_bytes() == before
    assert main([*args, "--overwrite", "--process", "dct:ihdm"]) == 0
    assert path.read_bytes() != before


def test_save_figure_never_replaces_a_file_without_overwrite(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"keep")
    fig = new_figure(2, 2)
    fig.subplots().plot([0, 1], [1, 0])
    with pytest.raises(FileExistsError):
        save_figure(fig, path)
    assert path.read_bytes() == b"keep" and sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["forward", "--basis", "wavelet"], "Known bases: dct, fourier, haar"),
        (["logsnr", "--schedule", "blurry"], "Did you mean 'blur'? Known schedules: blur, blurring"),
        (["forward", "--process", "dct:blurrin"], "Known schedules:"),
        (["logsnr", "--process", "dct"], "cannot read the process 'dct'"),
        (["forward", "--times", "0,2"], "numbers in [0, 1]"),
    ],
)
def test_bad_names_exit_with_the_known_ones(tmp_path, capsys, args, message):
    assert main(["viz", *args, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_help(capsys):
    assert main(["viz", "--help"]) == 0
    text = capsys.readouterr().out
    assert all(word in text for word in ("forward", "logsnr", "samples", "haar", "ihdm"))
    assert main(["viz", "samples", "--help"]) == 0
    assert "--run RUN_DIR" in capsys.readouterr().out
    assert main(["--help"]) == 0 and "viz" in capsys.readouterr().out
    assert main(["viz"]) == 2  # a subcommand is required


def test_process_specs():
    p = parse_process("blurring diffusion=dct:blurring(sigma_blur_max=10, blur_shape='sin')")
    assert p == Process("blurring diffusion", "dct", "blurring", {"sigma_blur_max": 10, "blur_shape": "sin"})
    assert parse_process("haar(levels=2):ihdm").basis_kwargs == {"levels": 2}
    assert parse_process("dct:cosine").label == "dct + cosine"
    with pytest.raises(ValueError, match="key=value"):
        parse_process("dct:blurring(10)")
