"""Every recipe composes and instantiates; recipe values are the paper's (table 5, sections 4.1, 6)."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

import nidiff
from nidiff.config import compose, options, translate_overrides
from nidiff.diffusion import GaussianDiffusion
from nidiff.nets import UNet, count_parameters

RECIPES = options("recipe")


def test_expected_recipes_exist():
    assert {"blurring_cifar10", "ddpm_cifar10", "ihdm_cifar10", "blurring_lsun_church64",
            "blurring_lsun_church128", "quickstart"} <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_composes_and_instantiates(recipe):
    cfg = compose([f"recipe={recipe}"])
    assert cfg.name == recipe
    with torch.device("meta"):
        net = instantiate(cfg.net)
    assert isinstance(net, UNet)
    basis = instantiate(cfg.basis)
    assert tuple(basis.shape) == tuple(cfg.image_shape)
    schedule = instantiate(cfg.schedule)
    GaussianDiffusion(basis, schedule, parametrization=cfg.diffusion.parametrization)
    data = instantiate(cfg.data)  # constructing checks the arguments; no data is read
    assert data.batch_size == cfg.data.batch_size


@pytest.mark.parametrize("basis", options("basis"))
def test_every_basis_config_instantiates(basis):
    cfg = compose([f"basis={basis}"])
    if basis == "matrix":  # P has no default: it must be given
        from omegaconf import OmegaConf

        assert OmegaConf.is_missing(cfg.basis, "P")
        return
    assert isinstance(instantiate(cfg.basis), nidiff.Basis)


@pytest.mark.parametrize("schedule", options("schedule"))
def test_every_schedule_config_instantiates(schedule):
    assert isinstance(instantiate(compose([f"schedule={schedule}"]).schedule), nidiff.Schedule)


def test_blurring_cifar10_is_the_papers_setting():
    cfg = compose(["recipe=blurring_cifar10"])
    assert cfg.basis._target_ == "nidiff.bases.DCTBasis"
    assert cfg.schedule._target_ == "nidiff.schedules.BlurringSchedule"
    assert (cfg.schedule.sigma_blur_max, cfg.schedule.d_min, cfg.schedule.blur_shape) == (20.0, 0.001, "sin2")
    assert (cfg.schedule.logsnr_min, cfg.schedule.logsnr_max) == (-10.0, 10.0)
    net = cfg.net  # table 5, CIFAR10 row
    assert (net.base_channels, list(net.channel_mult), net.num_res_blocks) == (256, [1, 1, 1], 3)
    assert (list(net.attn_resolutions), net.head_dim, net.dropout) == ([16, 8], 256, 0.2)
    assert (cfg.optim.lr, cfg.data.batch_size, cfg.ema.decay) == (2e-4, 128, 0.9999)
    assert cfg.trainer.max_steps == 2_000_000 and cfg.data.random_flip is True
    assert cfg.diffusion.parametrization == "eps"


def test_ddpm_and_ihdm_baselines():
    ddpm = compose(["recipe=ddpm_cifar10"])
    assert ddpm.schedule.sigma_blur_max == 0.0 and ddpm.net == compose(["recipe=blurring_cifar10"]).net
    ihdm = compose(["recipe=ihdm_cifar10"])
    assert ihdm.schedule._target_ == "nidiff.schedules.IHDMSchedule"


@pytest.mark.parametrize("size", [64, 128])
def test_lsun_recipes(size):
    cfg = compose([f"recipe=blurring_lsun_church{size}"])
    assert tuple(cfg.image_shape) == (3, size, size)
    assert (cfg.optim.lr, cfg.data.batch_size) == (1e-4, 256)
    assert cfg.data.dataset == "lsun"


def test_cifar10_network_parameter_count():
    """The table-5 CIFAR10 network: 52.9M parameters (docs/training.md)."""
    cfg = compose(["recipe=blurring_cifar10"])
    with torch.device("meta"):
        net = instantiate(cfg.net)
    assert count_parameters(net) == 52_919_299


def test_overrides_reach_the_config():
    cfg = compose(["recipe=blurring_cifar10", "basis=haar", "schedule.sigma_blur_max=10",
                   "trainer.max_steps=1000", "data.batch_size=64"])
    assert cfg.basis._target_ == "nidiff.bases.HaarBasis"
    assert (cfg.schedule.sigma_blur_max, cfg.trainer.max_steps, cfg.data.batch_size) == (10, 1000, 64)


def test_group_names_are_singular_on_the_command_line():
    assert translate_overrides(["recipe=quickstart", "basis=dct,haar", "schedule.sigma_blur_max=3",
                                "basis.levels=2", "+schedule=cosine"]) == [
        "recipes=quickstart", "bases=dct,haar", "schedule.sigma_blur_max=3", "basis.levels=2", "+schedules=cosine"]


@pytest.mark.parametrize("arg, known", [("recipe=blurring_cifar", "blurring_cifar10"),
                                        ("basis=dtc", "dct"), ("schedule=cosin", "cosine")])
def test_unknown_choice_lists_known(arg, known):
    with pytest.raises(ValueError, match=f"Did you mean '{known}'") as e:
        translate_overrides([arg])
    assert "Known" in str(e.value)
