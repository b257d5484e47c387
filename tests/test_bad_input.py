"""Every bad input of ``nidiff train`` gets a clear message and exit code 2 before any work, and
nothing already written is lost. The cases are the rows of docs/reliability.md."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nidiff.cli import main
from tests.test_train_cli import TINY, write_cifar_like_zip


def train(tmp_path: Path, *args: str, run_dir: Path | None = None) -> list[str]:
    """``nidiff train`` arguments, run in this process (Hydra's log handlers off: pytest swaps stderr)."""
    recipe = next((a for a in args if a.startswith("recipe=")), "recipe=blurring_cifar10")
    return ["train", recipe, *TINY, "trainer.max_steps=2", f"hydra.run.dir={run_dir or tmp_path / 'run'}",
            "hydra/job_logging=disabled", "hydra/hydra_logging=disabled",
            *(a for a in args if not a.startswith("recipe="))]


def exit_and_error(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def no_cifar(tmp_path, monkeypatch):
    monkeypatch.setenv("NIDIFF_DATA", str(tmp_path / "no-data-here"))


# ---------------------------------------------------------------------------------------------
# configuration values out of range

@pytest.mark.parametrize("override, message", [
    ("trainer.max_steps=0", "trainer.max_steps=0 (an integer >= 1)"),
    ("data.batch_size=-4", "data.batch_size=-4 (an integer >= 1)"),
    ("checkpoint.every_n_steps=0", "checkpoint.every_n_steps=0"),
    ("optim.lr=0", "optim.lr=0.0 (a finite number > 0)"),
    ("optim.lr=inf", "optim.lr=inf (a finite number > 0)"),
    ("optim.lr=nan", "optim.lr=nan (a finite number > 0)"),
    ("optim.lr=1e39", "optim.lr=1e+39 (a learning rate whose first Adam step"),
    ("optim.betas=[0.9,1.5]", "optim.betas=[0.9, 1.5] (two numbers in [0, 1)"),
    ("optim.eps=0", "optim.eps=0"),
    ("image_shape=[1,32,32]", "3 channels: the training images are read as RGB"),
    ("image_shape=[3,32,16]", "[3, S, S] with S = data.image_size (32)"),
    ("data.image_size=16", "[3, S, S] with S = data.image_size (16)"),
    ("trainer.max_steps=abc", "trainer.max_steps: Value 'abc' of type 'str' could not be converted to Integer"),
    ("trainer.max_time=6min", "trainer.max_time"),
    ("sample.sampler=euler", "unknown sampler 'euler'"),
    ("sample.options.eta=0.5", "sampler 'ancestral' takes no parameter 'eta'"),
    ("net.no_such_parameter=1", "network 'unet' takes no parameter 'no_such_parameter'"),
    ("optim.warmup_steps=-1", "optim.warmup_steps=-1"),
    ("optim.grad_clip=-1", "optim.grad_clip=-1"),
    ("ema.decay=1.0", "ema.decay=1.0 (a number in [0, 1))"),
    ("image_shape=[3,32]", "image_shape"),
    ("trainer.precision=16-mixed", "use bf16-mixed"),
    ("nonfinite.policy=ignore", "nonfinite.policy='ignore' (one of skip, stop)"),
    ("trainer.max_epochs=3", "trainer.max_epochs=3 (-1: the length of training is trainer.max_steps)"),
    ("diffusion.parametrization=score", "one of eps, x, v, precond"),
    ("diffusion.data_std=-1", "diffusion.data_std=-1 (fit (per-coefficient statistics"),
    ("data.path=images.zip", "data.dataset=synthetic draws its images and reads no files: add data.dataset=folder"),
    ("schedule.sigma_blur_max=-1", "schedule 'blurring': sigma_blur_max must be >= 0"),
    ("schedule.d_min=2", "schedule 'blurring': d_min must be < 1"),
    ("recipe=ddpm_cifar10 schedule.logsnr_min=5 schedule.logsnr_max=-5", "the log-SNR must decrease"),
    ("schedule=cosine schedule.sigma_blur_max=3", "add '~schedule.sigma_blur_max' to drop it"),
])
def test_out_of_range_values(tmp_path, capsys, override, message):
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=synthetic", *override.split()))
    assert code == 2 and message in err, err
    assert "\n" not in err.strip() and "Traceback" not in err  # one line
    assert not (tmp_path / "run").exists()  # refused before any file was written


def test_every_problem_is_listed_at_once(tmp_path, capsys):
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=synthetic", "trainer.max_steps=0",
                                                "data.batch_size=0", "ema.decay=2"))
    assert code == 2 and "trainer.max_steps=0" in err and "data.batch_size=0" in err and "ema.decay=2" in err


# ---------------------------------------------------------------------------------------------
# image folders

def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def image_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def rgb(i: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_missing_folder(tmp_path, capsys):
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=folder", f"data.path={tmp_path / 'absent'}"))
    assert code == 2 and "no image folder" in err and "absent" in err
    assert not (tmp_path / "run").exists()


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=folder", f"data.path={tmp_path / 'empty'}"))
    assert code == 2 and "no images" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_corrupt_images(tmp_path, capsys, policy):
    files = {f"cat/{i}.png": png(rgb(i)) for i in range(12)}
    files["cat/broken.png"] = png(rgb(99))[:60]  # truncated
    files["cat/text.jpg"] = b"this is not a JPEG"
    data = image_zip(tmp_path / "images.zip", files)
    argv = train(tmp_path, "data.dataset=folder", f"data.path={data}", f"data.on_error={policy}")
    if policy == "skip":
        with pytest.warns(RuntimeWarning, match=r"skipped an unreadable image: cannot read image 'cat/(broken.png|text.jpg)'"):
            code, out, err = exit_and_error(capsys, argv)
        assert code == 0, err
    else:
        code, out, err = exit_and_error(capsys, argv)
        assert code == 2 and ("broken.png" in err or "text.jpg" in err) and "data.on_error=skip" in err


def test_mixed_sizes_grayscale_and_rgba_are_converted(tmp_path, capsys):
    files = {f"a/{i}.png": png(rgb(i)) for i in range(6)}
    files.update({f"b/{i}.png": png(rgb(i, 48)) for i in range(6, 10)})  # larger: resized and cropped
    files.update({f"c/{i}.png": png(rgb(i)[..., 0]) for i in range(10, 13)})  # grayscale
    files.update({f"d/{i}.png": png(np.dstack([rgb(i), np.full((32, 32), 128, np.uint8)])) for i in range(13, 16)})
    data = image_zip(tmp_path / "images.zip", files)
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=folder", f"data.path={data}"))
    assert code == 0, err
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


# ---------------------------------------------------------------------------------------------
# run directories and checkpoints

@pytest.fixture
def finished_run(tmp_path, capsys):
    data = write_cifar_like_zip(tmp_path / "images.zip")
    args = ["data.dataset=folder", f"data.path={data}"]
    code, _, err = exit_and_error(capsys, train(tmp_path, *args))
    assert code == 0, err
    return tmp_path / "run", args


def test_existing_run_directory_is_refused(tmp_path, capsys, finished_run):
    run_dir, args = finished_run
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    for spelling in ([], ["resume=null"]):
        code, _, err = exit_and_error(capsys, train(tmp_path, *args, "trainer.max_steps=4", *spelling))
        assert code == 2 and "already holds a run" in err and f"resume={run_dir}" in err
    argv = [a if not a.startswith("hydra.run.dir=") else "++" + a for a in train(tmp_path, *args)]
    code, _, err = exit_and_error(capsys, argv)
    assert code == 2 and "already holds a run" in err
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # nothing written, not even Hydra's .hydra/


def test_resume_with_another_configuration_lists_the_fields(tmp_path, capsys, finished_run):
    run_dir, args = finished_run
    code, _, err = exit_and_error(capsys, train(tmp_path, *args, "trainer.max_steps=4", "net.base_channels=64",
                                                "optim.lr=0.001", f"resume={run_dir}"))
    assert code == 2 and "different configuration" in err
    assert "net.base_channels: saved 32, now 64" in err and "optim.lr: saved 0.0002, now 0.001" in err
    assert "trainer.max_steps" not in err  # training longer is what resuming is for
    code, _, err = exit_and_error(capsys, train(tmp_path, *args, "trainer.devices=2", f"resume={run_dir}"))
    assert code == 2 and "trainer.devices: saved 1, now 2" in err  # the global batch would change
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    code, _, err = exit_and_error(capsys, train(tmp_path, *args, "trainer.max_steps=3", "trainer.precision=32",
                                                f"resume={run_dir}"))
    assert code == 0, err  # 32 on the command line is the "32" of the recipe
    code, _, err = exit_and_error(capsys, train(tmp_path, *args, "trainer.max_steps=4", "optim.lr=0.001",
                                                "resume_check=false", f"resume={run_dir}"))
    assert code == 0, err


def test_fields_added_since_a_run_was_saved_resume_at_their_defaults():
    """A run saved before ``diffusion.data_std`` existed trained as if at its default: resumable."""
    from nidiff.training.validate import resume_differences

    now = {"diffusion": {"parametrization": "eps", "data_std": "fit"}, "data": {"max_shapes": 3}}
    assert resume_differences({"diffusion": {"parametrization": "eps"}}, now) == []
    assert resume_differences({"diffusion": {"parametrization": "eps"}},
                              {**now, "data": {"max_shapes": 2}}) == ["data.max_shapes: saved '<absent>', now 2"]


def test_corrupt_checkpoint(tmp_path, capsys, finished_run):
    run_dir, args = finished_run
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    code, _, err = exit_and_error(capsys, train(tmp_path, *args, "trainer.max_steps=3", f"resume={last}"))
    assert code == 2 and f"checkpoint {last} cannot be loaded" in err and "step_0000002.ckpt" in err
    code, out, err = exit_and_error(capsys, train(tmp_path, *args, "trainer.max_steps=3", f"resume={run_dir}"))
    assert code == 0, err  # the run directory resumes from the newest checkpoint that loads
    assert "last.ckpt cannot be loaded" in out and "reached step 3" in out


def test_resume_of_nothing(tmp_path, capsys):
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=synthetic", f"resume={tmp_path / 'none'}"))
    assert code == 2 and "no run directory or checkpoint" in err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# refused before any file is written: the rest of the list of docs/reliability.md

def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_network_too_large_for_the_memory_is_refused_with_the_estimate(tmp_path, capsys):
    before = listing(tmp_path)
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=synthetic", "image_shape=[3,8192,8192]",
                                                "data.image_size=8192", "net.attn_resolutions=[]"))
    assert code == 2 and "GiB" in err and "more than the" in err and "smaller" in err, err
    assert "Traceback" not in err and listing(tmp_path) == before


def test_an_output_folder_that_cannot_be_written(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user can write into a read-only folder (root)")
        code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=synthetic", run_dir=locked / "run"))
        assert code == 2 and "not writable" in err and not (locked / "run").exists()
    finally:
        locked.chmod(0o755)


def test_a_regular_file_where_the_run_directory_would_go(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=synthetic", run_dir=tmp_path / "file" / "run"))
    assert code == 2 and "is a file" in err and (tmp_path / "file").read_text() == "not a folder"


def test_a_zip_that_is_not_a_zip_and_a_zip_without_images(tmp_path, capsys):
    (tmp_path / "fake.zip").write_bytes(b"PK but not really")
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=folder", f"data.path={tmp_path / 'fake.zip'}"))
    assert code == 2 and "not a .zip archive" in err
    image_zip(tmp_path / "text.zip", {"notes/readme.txt": b"no images here"})
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=folder", f"data.path={tmp_path / 'text.zip'}"))
    assert code == 2 and "no images" in err
    image_zip(tmp_path / "broken.zip", {f"cat/{i}.png": b"not a png" for i in range(3)})
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=folder", f"data.path={tmp_path / 'broken.zip'}"))
    assert code == 2 and "no readable image" in err
    assert not (tmp_path / "run").exists()


def test_a_run_directory_holding_only_a_failed_start_is_reused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("name: the failed start\n")
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "metrics.csv").write_text("step,train/loss\n")
    code, out, err = exit_and_error(capsys, train(tmp_path, "data.dataset=synthetic", "data.num_images=16"))
    assert code == 0, err
    assert "held a start that wrote no checkpoint" in out
    (moved,) = (run_dir / "failed_starts").iterdir()
    assert (moved / ".hydra" / "config.yaml").read_text() == "name: the failed start\n"  # kept, not lost
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_a_full_disk_while_checkpointing_says_so(tmp_path, capsys, monkeypatch):
    import errno

    import nidiff.checkpoints as checkpoints

    real = checkpoints.atomic_save
    calls = {"n": 0}

    def full_after_the_first(obj, path, save=torch.save):
        calls["n"] += 1
        if calls["n"] > 2:  # step 2's two files were written; step 4's are not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, path, save)

    monkeypatch.setattr(checkpoints, "atomic_save", full_after_the_first)
    code, _, err = exit_and_error(capsys, train(tmp_path, "data.dataset=synthetic", "data.num_images=32",
                                                "trainer.max_steps=4"))
    assert code == 1 and "the disk is full" in err and "is intact" in err and "Traceback" not in err, err
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


@pytest.mark.parametrize("argv, message", [
    (["sample", "--run", "{ckpt}", "--out", "{out}", "-n", "1"], "cannot be loaded"),
    (["sample", "--run", "{run}", "--out", "{out}", "-n", "1", "--device", "cuda"], "no CUDA GPU is available"),
    (["sample", "--run", "{run}", "--out", "{out}", "-n", "1", "--device", "tpu9"], "unknown device"),
    (["eval", "--samples", "{missing}", "--ref", "{ref}", "--out", "{out}.json"], "no samples at"),
    (["viz", "samples", "--run", "{ckpt}", "--out", "{out}"], "cannot be loaded"),
])
def test_commands_that_read_a_run(tmp_path, capsys, argv, message, monkeypatch):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("NIDIFF_INCEPTION_WEIGHTS", str(tmp_path / "absent.pt"))  # never reached
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")  # zero length
    values = {"ckpt": run_dir / "checkpoints" / "last.ckpt", "run": run_dir, "out": tmp_path / "out",
              "missing": tmp_path / "no-samples", "ref": tmp_path / "ref.npz"}
    code, _, err = exit_and_error(capsys, [a.format(**values) for a in argv])
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.json").exists()
