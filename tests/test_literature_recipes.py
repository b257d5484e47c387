"""The recipes of published processes (docs/literature.md): their settings, a tiny training through
the console script, and the fitted EqualSNR basis reloaded from the checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from nidiff.build import build_component
from nidiff.config import compose
from nidiff.registries import SCHEDULES
from nidiff.runs import load_run

NIDIFF = str(Path(sys.executable).with_name("nidiff"))
RECIPES = ["equalsnr_cifar10", "sagd_cifar10", "soft_diffusion_cifar10"]
TINY = [
    "net.base_channels=32", "net.channel_mult=[1]", "net.num_res_blocks=1", "net.attn_resolutions=[]",
    "net.head_dim=32", "net.dropout=0.0", "data.dataset=synthetic", "data.num_images=64",
    "data.batch_size=8", "data.num_workers=0", "basis_fit_images=64", "optim.warmup_steps=0",
    "trainer.max_steps=2", "checkpoint.every_n_steps=2", "sample.every_n_steps=2", "sample.n=4",
    "sample.steps=2", "progress_refresh=1",
]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_uses_the_cifar10_network_and_training_of_table_5(recipe):
    cfg, reference = compose([f"recipe={recipe}"]), compose(["recipe=blurring_cifar10"])
    assert cfg.name == recipe and tuple(cfg.image_shape) == (3, 32, 32)
    for group in ("net", "optim", "ema", "trainer"):
        assert cfg[group] == reference[group], group
    assert (cfg.data.dataset, cfg.data.batch_size, cfg.data.random_flip) == ("cifar10", 128, True)


def test_recipe_processes():
    equalsnr = compose(["recipe=equalsnr_cifar10"])
    assert equalsnr.basis.name == "whitened"
    assert (equalsnr.basis.base, equalsnr.basis.tie_pairs) == ("hartley", True)
    assert equalsnr.schedule.name == "cosine"
    sagd = compose(["recipe=sagd_cifar10"])
    assert (sagd.basis.name, sagd.schedule.name) == ("fourier", "sagd")
    soft = compose(["recipe=soft_diffusion_cifar10"])
    assert (soft.basis.name, soft.schedule.name) == ("dct", "soft_diffusion")
    schedule = build_component(SCHEDULES, OmegaConf.to_container(soft.schedule, resolve=True))
    assert schedule.blur.d_min == 0.0  # an exact Gaussian blur


# one training process each (about 11 s); the fitted recipe (equalsnr) runs by default
@pytest.mark.parametrize("recipe", [r if r == "equalsnr_cifar10" else pytest.param(r, marks=pytest.mark.slow)
                                    for r in RECIPES])
def test_recipe_trains_samples_and_reloads(recipe, tmp_path):
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "NIDIFF_DATA": str(tmp_path / "no-data-here"), "PYTHONPATH": path}
    run_dir = tmp_path / "run"
    out = subprocess.run([NIDIFF, "train", f"recipe={recipe}", *TINY, f"hydra.run.dir={run_dir}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "reached step 2" in out.stdout
    assert (run_dir / "samples" / "step_0000002.png").is_file()
    loaded = load_run(run_dir)
    basis = loaded.diffusion.basis
    if recipe == "equalsnr_cifar10":
        assert "fitting the basis 'whitened' on 64 training images" in out.stdout
        assert basis._is_fitted and float(basis.variances.max() / basis.variances.min()) > 10.0
        state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        torch.testing.assert_close(state["state_dict"]["diffusion.basis.variances"], basis.variances)
    z = loaded.diffusion.prior_sample(2, generator=torch.Generator().manual_seed(0))
    x = loaded.diffusion.sample(loaded.net, 2, steps=2, generator=torch.Generator().manual_seed(1))
    assert z.shape == x.shape == (2, 3, 32, 32) and bool(torch.isfinite(x).all())


def test_compare_over_the_published_recipes(tmp_path, capsys, monkeypatch):
    """nidiff compare trains and measures the three published processes alike at a tiny size."""
    from nidiff.cli import main

    monkeypatch.setenv("NIDIFF_DATA", str(tmp_path / "no-data-here"))
    measure = ["compare.metrics=[train_loss,test_loss,bits_per_dim]", "compare.curve_metrics=[]",
               "compare.loss_images=8", "compare.bpd_images=4", "compare.n_t=2", "compare.fid_samples=0",
               "compare.batch_size=8", "compare.device=cpu", "data.num_images=16", "basis_fit_images=16",
               "trainer.log_every_n_steps=1"]
    code = main(["compare", f"recipe={','.join(RECIPES)}", *(a for a in TINY if not a.startswith(("data.num_images",
                 "basis_fit_images"))), *measure, f"compare.dir={tmp_path / 'cmp'}"])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    # the command's own lines name the overrides as users write them; Hydra's (recipes=...) are off
    assert "[HYDRA]" not in out.out + out.err and "recipes=" not in out.out + out.err
    assert f"recipe={RECIPES[0]}" in out.out
    import csv
    import math

    with (tmp_path / "cmp" / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["recipe"] for r in rows] == RECIPES
    for row in rows:
        for metric in ("train_loss", "test_loss", "bits_per_dim"):
            assert math.isfinite(float(row[metric])) and float(row[metric]) > 0, (row["recipe"], metric)
