"""Every recipe composes and builds; recipe values are the paper's (table 5, sections 4.1, 6); the
config groups agree with the registries; the typed schema refuses bad types at composition."""

from __future__ import annotations

import inspect

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import nidiff
from nidiff.build import build_component, build_diffusion, build_network
from nidiff.config import compose, group_dirs, options, translate_overrides
from nidiff.data import ImageDataModule
from nidiff.nets import UNet, count_parameters
from nidiff.params import ParameterError, check_params
from nidiff.registries import BASES, NETS, SCHEDULES

RECIPES = options("recipe")


def _tree(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def test_expected_recipes_exist():
    assert {"blurring_cifar10", "ddpm_cifar10", "ihdm_cifar10", "blurring_lsun_church64",
            "blurring_lsun_church128", "quickstart"} <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_composes_and_builds(recipe):
    cfg = compose([f"recipe={recipe}"])
    assert cfg.name == recipe
    tree = _tree(cfg)
    with torch.device("meta"):
        net = build_network(tree)
    assert isinstance(net, UNet)
    if recipe != "blurring_lsun_church128":  # a 128x128 DCT basis is built the same way; skip its cost
        images = lambda: torch.rand(8, *tree["image_shape"], generator=torch.Generator().manual_seed(0))  # noqa: E731
        diffusion = build_diffusion(tree, fit_images=images)  # images: only a fitted basis reads them
        assert tuple(diffusion.basis.shape) == tuple(cfg.image_shape)
    data = ImageDataModule(**check_params(ImageDataModule, tree["data"], "data"))  # no data is read
    assert data.batch_size == cfg.data.batch_size


@pytest.mark.parametrize("basis", options("basis"))
def test_every_basis_config_builds(basis):
    cfg = compose([f"basis={basis}"])
    if basis == "matrix":  # P has no default: it must be given
        assert OmegaConf.is_missing(cfg.basis, "P")
        return
    assert isinstance(build_component(BASES, _tree(cfg)["basis"]), nidiff.Basis)


@pytest.mark.parametrize("schedule", options("schedule"))
def test_every_schedule_config_builds(schedule):
    assert isinstance(build_component(SCHEDULES, _tree(compose([f"schedule={schedule}"]))["schedule"]), nidiff.Schedule)


@pytest.mark.parametrize("group, registry", [("basis", BASES), ("schedule", SCHEDULES), ("net", NETS)])
def test_every_config_file_lists_exactly_its_components_parameters(group, registry):
    """So that any parameter can be set on the command line without '+', and none is misspelt."""
    for path in sorted(group_dirs()[group].glob("*.yaml")):
        node = OmegaConf.load(path)
        factory = registry.get(node.name)
        expected = [n for n, p in inspect.signature(factory).parameters.items()
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        assert sorted(k for k in node if k != "name") == sorted(expected), path.name


def test_config_choices_are_the_registries():
    assert options("basis") == nidiff.list_bases()
    # one config per registered schedule, plus presets that name one (blurring_16: the quickstart's)
    assert set(nidiff.list_schedules()) <= set(options("schedule"))
    assert {OmegaConf.load(p).name for p in group_dirs()["schedule"].glob("*.yaml")} == set(nidiff.list_schedules())
    assert {OmegaConf.load(p).name for p in group_dirs()["net"].glob("*.yaml")} <= set(nidiff.list_nets())


def test_blurring_cifar10_is_the_papers_setting():
    cfg = compose(["recipe=blurring_cifar10"])
    assert cfg.basis.name == "dct"
    assert cfg.schedule.name == "blurring"
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
    assert ihdm.schedule.name == "ihdm" and ihdm.diffusion.parametrization == "x"
    assert ihdm.net == ddpm.net and ihdm.optim == ddpm.optim and ihdm.data == ddpm.data


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
        net = build_network(_tree(cfg))
    assert count_parameters(net) == 52_919_299


def test_overrides_reach_the_config():
    cfg = compose(["recipe=blurring_cifar10", "basis=haar", "schedule.sigma_blur_max=10",
                   "trainer.max_steps=1000", "data.batch_size=64"])
    assert cfg.basis.name == "haar"
    assert (cfg.schedule.sigma_blur_max, cfg.trainer.max_steps, cfg.data.batch_size) == (10, 1000, 64)


def test_switching_the_schedule_needs_no_deletions():
    for recipe in ("blurring_cifar10", "quickstart", "blurring_lsun_church64"):
        for schedule in ("cosine", "linear", "ihdm"):
            tree = _tree(compose([f"recipe={recipe}", f"schedule={schedule}"]))
            assert build_component(SCHEDULES, tree["schedule"]).__class__.__name__.lower().startswith(schedule[:3])


def test_any_component_parameter_is_set_without_plus():
    cfg = compose(["recipe=quickstart", "net.norm_groups=8", "basis=haar", "basis.levels=2"])
    assert cfg.net.norm_groups == 8 and cfg.basis.levels == 2


def test_types_are_checked_at_composition():
    with pytest.raises(ConfigCompositionException):
        compose(["trainer.max_steps=abc"])
    with pytest.raises(ConfigCompositionException):
        compose(["trainer.no_such_field=1"])


def test_a_parameter_the_component_does_not_take_says_how_to_drop_it():
    tree = _tree(compose(["recipe=quickstart", "schedule=cosine", "schedule.sigma_blur_max=3"]))
    with pytest.raises(ParameterError, match=r"takes no parameter 'sigma_blur_max'.*'~schedule.sigma_blur_max'"):
        build_component(SCHEDULES, tree["schedule"], "schedule")
    with pytest.raises(ParameterError, match="levels=.x. is not an integer or null"):
        build_component(BASES, {"name": "haar", "shape": [3, 8, 8], "levels": "x"})


def test_train_help_lists_every_field(capsys):
    from nidiff.cli import main

    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for field in ("trainer.max_steps", "sample.sampler", "sample.options", "nonfinite.skip_max_total", "optim.lr"):
        assert field in text


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
