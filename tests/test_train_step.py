"""The standalone training step: the same math as the Lightning step, and a cached, exact EMA."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import nidiff
from nidiff.nets import UNet
from nidiff.training.ema import EMA
from nidiff.training.module import DiffusionModule
from nidiff.training.step import LinearWarmup, TrainStep, autocast_dtype, build_optimizer, compile_network


def tiny_net(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    net = UNet(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), head_dim=16,
               dropout=0.1, image_size=32, norm_groups=8)
    with torch.no_grad():  # give the zero-initialised output layer values, so every weight gets a gradient
        net.conv_out.weight.normal_(0.0, 0.05)
    return net


def blurring() -> nidiff.GaussianDiffusion:
    return nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=(3, 32, 32)), nidiff.build_schedule("blurring"))


def images(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_train_step_is_loss_clip_adam_warmup_ema():
    """Three steps of TrainStep equal the hand-written sequence the LightningModule runs."""
    diffusion, x = blurring(), images()
    net = tiny_net()
    ref_net = copy.deepcopy(net)
    step = TrainStep(net, diffusion, lr=1e-3, warmup_steps=2, ema_decay=0.9, grad_clip=0.5)

    opt = torch.optim.Adam(ref_net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 2))
    ref_ema = copy.deepcopy(ref_net)
    for i in range(3):
        torch.manual_seed(100 + i)
        loss = step(x)
        torch.manual_seed(100 + i)
        ref_loss = diffusion.loss(ref_net, x).mean()
        ref_loss.backward()
        torch.nn.utils.clip_grad_norm_(ref_net.parameters(), 0.5)
        opt.step()
        opt.zero_grad()
        sched.step()
        with torch.no_grad():
            for e, p in zip(ref_ema.parameters(), ref_net.parameters()):
                e.mul_(0.9).add_(p, alpha=0.1)
        assert not loss.requires_grad and loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    for (name, p), q in zip(net.named_parameters(), ref_net.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7, msg=name)
    for p, q in zip(step.ema.module.parameters(), ref_ema.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    assert step.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert diffusion.validate_args  # switched off inside the step only


def test_lightning_module_uses_the_same_pieces():
    net, diffusion = tiny_net(), blurring()
    module = DiffusionModule(net, diffusion, lr=3e-4, warmup_steps=3, channels_last=True)
    cfg = module.configure_optimizers()
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == 3e-4
    assert isinstance(sched.lr_lambdas[0], LinearWarmup) and sched.state_dict()["lr_lambdas"] == [{"warmup_steps": 3}]
    assert net.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert module.ema.module.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    buffers = dict(module.named_buffers())
    ignored = module._ddp_params_and_buffers_to_ignore
    assert ignored and all(name.startswith("diffusion.") and name in buffers for name in ignored)


def test_bf16_runs_the_network_in_bf16_and_the_loss_in_float32():
    net, seen = tiny_net(), {}
    net.conv_in.register_forward_hook(lambda m, i, o: seen.update(conv=o.dtype))
    step = TrainStep(net, blurring(), precision="bf16", channels_last=True)
    loss = step(images())
    assert seen["conv"] == torch.bfloat16 and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert net.conv_in.weight.dtype == torch.float32  # autocast: the weights stay float32


def test_ema_caches_its_lists_and_matches_state_dict_lerp():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(2, 2))
    net[1].register_buffer("constant", torch.ones(2), persistent=False)
    ema = EMA(net, decay=0.75)
    for _ in range(2):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net[1].running_mean.add_(1.0)
            net[1].constant.add_(1.0)
        expected = {k: v.clone() for k, v in ema.module.state_dict().items()}
        current = net.state_dict()
        for k, v in expected.items():
            if v.is_floating_point():
                v.lerp_(current[k], 0.25)
        ema.update(net)
        for k, v in ema.module.state_dict().items():
            torch.testing.assert_close(v, expected[k], msg=k)
    assert ema._cache is not None and torch.equal(ema.module[1].constant, torch.ones(2))  # non-persistent: kept
    cached = ema._cache[1]
    net.double()
    ema.module.double()  # moves storage in place: the cached parameter objects stay valid
    ema.update(net)
    assert ema._cache[1] is cached and ema.module[0].weight.dtype == torch.float64
    torch.testing.assert_close(ema.module[0].weight, 0.75 * expected["0.weight"].double() + 0.25 * net[0].weight)

    clone = copy.deepcopy(ema)
    assert clone._cache is None
    before = ema.module[0].weight.clone()
    clone.update(net)
    assert torch.equal(ema.module[0].weight, before)
    with pytest.raises(ValueError, match="does not match"):
        ema.update(nn.Sequential(nn.Conv2d(3, 5, 3)))


def test_step_options_are_checked():
    assert LinearWarmup(4)(0) == 0.25 and LinearWarmup(4)(10) == 1.0 and LinearWarmup(0)(0) == 1.0
    with pytest.raises(ValueError, match="warmup_steps"):
        LinearWarmup(-1)
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("16")
    with pytest.raises(ValueError, match="compile mode"):
        compile_network(tiny_net(), "fastest")
    assert compile_network(net := tiny_net(), None) is net and getattr(net, "_compiled_call_impl", None) is None
    with pytest.raises(ValueError, match="learning rate"):
        build_optimizer(tiny_net().parameters(), lr=0.0)
    assert build_optimizer(tiny_net().parameters()).defaults["fused"] is None  # fused on CUDA only
