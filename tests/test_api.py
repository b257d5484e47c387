"""The three-line Python API: load a trained run, sample from it (README and docs/reference/api.md)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import nidiff
from nidiff.cli import main
from tests.test_untrusted_runs import tiny_run  # noqa: F401  (a fixture: a real two-step run)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_snippet_runs_on_a_trained_run(tiny_run):  # noqa: F811
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if "load_run" in b]
    namespace: dict = {}
    exec(compile(block.replace("outputs/quickstart/RUN", str(tiny_run)), "README.md", "exec"), namespace)
    images, run = namespace["images"], namespace["run"]
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32 and images.device.type == "cpu"
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert isinstance(run.diffusion, nidiff.GaussianDiffusion) and not run.net.training
    assert run.step == 2 and run.config["name"] == "quickstart" and run.weights == "ema"


def test_seeded_per_image_like_nidiff_sample(tiny_run, tmp_path):  # noqa: F811
    run = nidiff.load_run(tiny_run)
    images = run.sample(5, sampler="ddim", steps=4, seed=3)
    torch.testing.assert_close(run.sample(5, sampler="ddim", steps=4, seed=3), images, rtol=0, atol=0)
    # the same images in batches of one, up to float32 rounding: the UNet's outputs for one image
    # differ by about 1e-7 between a batch of 5 and a batch of 1 on the CPU
    torch.testing.assert_close(run.sample(indices=[1, 4], sampler="ddim", steps=4, seed=3, batch_size=1),
                               images[[1, 4]], rtol=1e-6, atol=1e-6)
    assert not torch.equal(run.sample(5, sampler="ddim", steps=4, seed=4), images)
    assert main(["sample", "--run", str(tiny_run), "--out", str(tmp_path), "-n", "5", "--sampler", "ddim",
                 "--steps", "4", "--seed", "3", "--device", "cpu"]) == 0
    for i in range(5):
        png = np.asarray(Image.open(tmp_path / f"{i:06d}.png").convert("RGB")).transpose(2, 0, 1)
        assert np.abs(png.astype(int) - (images[i] * 255).round().numpy().astype(int)).max() <= 1


def test_defaults_and_options(tiny_run):  # noqa: F811
    run = nidiff.load_run(tiny_run, weights="net")
    plan = run.plan()  # what the run's training grids used
    assert (plan.sampler, plan.steps) == (run.config["sample"]["sampler"], run.config["sample"]["steps"])
    assert run.plan(sampler="ddim", eta=0.5).options == {"eta": 0.5}
    x = run.sample(2, sampler="ddim", steps=3, eta=1.0, x_clip="static")
    assert x.shape == (2, 3, 32, 32)
    for bad, message in (({"n": 0}, "positive integer"), ({"n": 2, "sampler": "euler"}, "unknown sampler"),
                         ({"n": 2, "sampler": "ddim", "order": 3}, "takes no parameter 'order'")):
        try:
            run.sample(**bad)
        except (ValueError, TypeError) as err:
            assert message in str(err)
        else:
            raise AssertionError(f"{bad} was accepted")
