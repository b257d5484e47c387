"""nidiff compare end to end on the CPU: a 2x1 grid of real tiny trainings, its tables and plots, a
rerun that resumes and keeps what is finished, and the refusals of bad input before any work."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nidiff.cli import main
from nidiff.compare.plan import make_plan
from tests.test_eval_cli import stand_in_weights  # noqa: F401  (a fixture: a stand-in Inception network)
from tests.test_train_cli import TINY

DOCS = Path(__file__).resolve().parents[1] / "docs" / "compare.md"
MEASURE = [
    "compare.loss_images=8", "compare.bpd_images=4", "compare.n_t=2", "compare.fid_samples=6",
    "compare.ref_images=12", "compare.kid_subset_size=4", "compare.steps=3", "compare.batch_size=8",
    "compare.device=cpu", "compare.curve_metrics=[test_loss,bits_per_dim,fid]",
]
GRID = ["recipe=quickstart", *TINY, "data.dataset=synthetic", "data.num_images=16", "basis=dct,identity", *MEASURE]
JOBS = ("basis=dct", "basis=identity")


def compare(directory: Path, steps: int, capsys) -> str:
    code = main(["compare", *GRID, f"trainer.max_steps={steps}", f"compare.dir={directory}"])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    return out.out


def checkpoint_times(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in directory.glob("*/checkpoints/*.ckpt")}


def read_rows(directory: Path) -> list[dict[str, str]]:
    with (directory / "results.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def assert_plot(path: Path) -> None:
    image = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert image.std() > 5 and (image < 128).mean() > 0.005  # lines and text on white, not blank


@pytest.mark.slow  # four trainings and their evaluations; test_literature_recipes runs a smaller compare
def test_grid_tables_plots_and_rerun(tmp_path, capsys, stand_in_weights):  # noqa: F811
    out = compare(tmp_path, 2, capsys)
    assert out.count(": training") == 2 and "2 of 2 configurations" in out
    assert (tmp_path / "fid_ref.npz").is_file()
    rows = read_rows(tmp_path)
    assert [r["basis"] for r in rows] == ["dct", "identity"]
    assert list(rows[0])[:2] == ["basis", "step"]
    for column in ("train_loss", "test_loss", "bits_per_dim", "bits_per_dim_stderr", "fid", "kid", "kid_std",
                   "sample_images_per_s", "train_images_per_s"):
        values = [float(r[column]) for r in rows]
        assert all(math.isfinite(v) for v in values), column
    for row in rows:
        assert row["step"] == "2" and float(row["fid"]) > 0 and float(row["bits_per_dim"]) > 0
        assert (row["loss_images"], row["bpd_images"], row["fid_samples"], row["ref_images"]) == ("8", "4", "6", "12")
    assert rows[0]["bits_per_dim"] != rows[1]["bits_per_dim"]  # two different models were measured
    markdown = (tmp_path / "results.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| basis"))
    assert header.split(" | ")[:3] == ["| basis", "step", "train_loss"]
    assert "| dct | 2 |" in markdown and "| identity | 2 |" in markdown and "recipe=quickstart" in markdown
    for name in ("train_loss", "test_loss", "bits_per_dim", "fid"):
        assert_plot(tmp_path / "plots" / f"{name}.png")
        assert f"(plots/{name}.png)" in markdown

    # more steps: both jobs resume from their step-2 checkpoint, which stays as it was
    before = checkpoint_times(tmp_path)
    reference = (tmp_path / "fid_ref.npz").stat().st_mtime_ns
    out = compare(tmp_path, 4, capsys)
    assert out.count("resuming from step 2") == 2 and ": training" not in out
    after = checkpoint_times(tmp_path)
    assert all(after[p] == t for p, t in before.items() if "step_" in p)
    assert (tmp_path / "fid_ref.npz").stat().st_mtime_ns == reference  # computed once per directory
    rows = read_rows(tmp_path)
    assert [r["step"] for r in rows] == ["4", "4"]
    result = json.loads((tmp_path / "basis=dct" / "result.json").read_text())
    assert [p["step"] for p in result["curve"]] == [2, 4]
    assert all(np.isfinite(p[k]) for p in result["curve"] for k in ("test_loss", "bits_per_dim", "fid"))
    assert result["overrides"]["basis"] == "dct" and result["overrides"]["trainer.max_steps"] == "4"
    logged = [int(r["step"]) for r in csv.DictReader((tmp_path / "basis=dct/logs/metrics.csv").open()) if r["train/loss"]]
    assert sorted(set(logged)) == [0, 1, 2, 3]

    # as if interrupted after the first job: the second is measured again, nothing is trained
    (tmp_path / "basis=identity" / "result.json").unlink()
    before = checkpoint_times(tmp_path)
    out = compare(tmp_path, 4, capsys)
    assert "basis=dct: its result.json was written under this configuration; kept" in out
    assert "basis=identity: trained to step 4" in out and "resuming" not in out and ": training" not in out
    assert checkpoint_times(tmp_path) == before
    assert read_rows(tmp_path) == rows


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare.fid_sample=3"], "compare.fid_sample"),
        (["compare.metrics=[fid,fidd]"], "unknown metric(s) 'fidd'; known: train_loss"),
        (["compare.curve_metrics=[train_images_per_s]"], "compare.curve_metrics: unknown metric(s)"),
        (["compare.fid_samples=0,10"], "compare.fid_samples cannot sweep"),
        (["resume=somewhere"], "remove resume="),
        (["basis=dct,wavelet"], "Known bases: dct"),
        (["schedule.blur_shape=sin2,sn"], "configuration schedule.blur_shape=sn: schedule 'blurring': unknown blur shape 'sn'"),
        (["trainer.max_steps=10,0"], "configuration trainer.max_steps=0: invalid configuration: trainer.max_steps=0"),
        (["compare.sampler=euler"], "unknown sampler 'euler'. Known samplers: ancestral"),
        (["--cfg", "job"], "takes overrides (key=value) only"),
    ],
)
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, args, message):
    code = main(["compare", "recipe=quickstart", f"compare.dir={tmp_path / 'out'}", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nidiff compare: error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_compare_dir_is_required(capsys):
    assert main(["compare", "recipe=quickstart"]) == 2
    assert "compare.dir is required" in capsys.readouterr().err


def test_help(capsys):
    assert main(["compare", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nidiff compare") and "compare.fid_samples" in out and "bits_per_dim" in out
    assert main(["--help"]) == 0 and "compare" in capsys.readouterr().out


def test_the_commands_of_the_docs_expand_as_documented(tmp_path, monkeypatch):
    (tmp_path / "cifar-10-python.tar.gz").touch()  # the data check only looks for the file
    monkeypatch.setenv("NIDIFF_DATA", str(tmp_path))
    commands = re.findall(r"^nidiff compare (.+?)\s*(?:#.*)?$", DOCS.read_text(), flags=re.M)
    assert len(commands) >= 3
    plans = {}
    for line in commands:
        plan = make_plan([a.strip("'") for a in line.split()])
        plans[plan.options.dir.name] = plan
    assert plans["table3"].names == [f"schedule.sigma_blur_max={s}" for s in (0, 1, 10, 20)]
    assert plans["table4"].names == [f"schedule.blur_shape={shape},schedule.sigma_blur_max={s}"
                                     for s in (0, 1, 10, 20) for shape in ("sin2", "sin")]
    for name in ("table3", "table4"):
        assert all(c.name == "blurring_cifar10" for c in plans[name].configs)
        assert plans[name].options.fid_samples == 50000  # the paper's protocol
