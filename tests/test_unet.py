"""The denoising UNet: shapes, time conditioning, gradients, the paper's CIFAR10 size, bad input."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from nidiff.nets import (
    AttentionBlock,
    ResBlock,
    UNet,
    count_parameters,
    summarize,
    timestep_embedding,
)

# Table 5 of the paper, CIFAR10 row (appendix A.2).
CIFAR10 = dict(
    in_channels=3,
    out_channels=3,
    base_channels=256,
    channel_mult=(1, 1, 1),
    num_res_blocks=3,
    attn_resolutions=(16, 8),
    head_dim=256,
    dropout=0.2,
    image_size=32,
)
# 52.9M with additive time conditioning; scale-and-shift adds 7.08M (2 C instead of C outputs per ResBlock)
# and 3.41M the four resampling ResBlocks (instead of plain convolutions); without both, the
# DDPM-style layout of diffusers' UNet2DModel, the same table row gives 49.5M.
CIFAR10_PARAMETERS = 52_919_299
CIFAR10_PARAMETERS_SCALE_SHIFT = 60_004_099

TINY = dict(
    in_channels=3,
    out_channels=3,
    base_channels=16,
    channel_mult=(1, 2, 2),
    num_res_blocks=1,
    attn_resolutions=(4,),
    head_dim=8,
    dropout=0.0,
    image_size=16,
    norm_groups=8,
)


def tiny(**overrides) -> UNet:
    torch.manual_seed(0)
    return UNet(**{**TINY, **overrides})


def perturb_zero_init(model: UNet, scale: float = 0.2) -> UNet:
    """Give the zero-initialised last layers random values, so every path carries signal."""
    g = torch.Generator().manual_seed(1)
    last_layers = [model.conv_out]
    last_layers += [m.conv2 for m in model.modules() if isinstance(m, ResBlock)]
    last_layers += [m.proj for m in model.modules() if isinstance(m, AttentionBlock)]
    with torch.no_grad():
        for layer in last_layers:
            for p in layer.parameters():
                p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def expected_parameters(
    in_channels,
    out_channels,
    base_channels,
    channel_mult,
    num_res_blocks,
    attn_resolutions,
    image_size,
    scale_shift=False,
    **_,
) -> int:
    """Closed-form parameter count of the layout described in the appendix, layer by layer."""

    def conv(c_in, c_out, k):
        return k * k * c_in * c_out + c_out

    def linear(n_in, n_out):
        return n_in * n_out + n_out

    def norm(c):
        return 2 * c

    emb = 4 * base_channels

    def res(c_in, c_out):
        skip = conv(c_in, c_out, 1) if c_in != c_out else 0
        branch = norm(c_in) + conv(c_in, c_out, 3) + linear(emb, (2 if scale_shift else 1) * c_out)
        return branch + norm(c_out) + conv(c_out, c_out, 3) + skip

    def attn(c):
        return norm(c) + linear(c, 3 * c) + linear(c, c)

    channels = [base_channels * m for m in channel_mult]
    sizes = [image_size // 2**i for i in range(len(channel_mult))]
    n = linear(base_channels, emb) + linear(emb, emb) + conv(in_channels, base_channels, 3)
    skips, c = [base_channels], base_channels
    for level, (ch, size) in enumerate(zip(channels, sizes)):
        for _ in range(num_res_blocks):
            n += res(c, ch) + (attn(ch) if size in attn_resolutions else 0)
            c = ch
            skips.append(c)
        if level < len(channels) - 1:
            n += res(c, c)
            skips.append(c)
    n += 2 * res(c, c) + attn(c)
    for level in reversed(range(len(channels))):
        for _ in range(num_res_blocks + 1):
            n += res(c + skips.pop(), channels[level])
            c = channels[level]
            n += attn(c) if sizes[level] in attn_resolutions else 0
        if level > 0:
            n += res(c, c)
    return n + norm(c) + conv(c, out_channels, 3)


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 3, 8, 20), (1, 3, 12, 4)])
def test_output_shape_square_and_non_square(shape):
    model = perturb_zero_init(tiny()).eval()
    out = model(torch.randn(shape), torch.rand(shape[0]))
    assert out.shape == shape
    assert torch.isfinite(out).all()


def test_output_channels_and_scalar_time():
    model = tiny(in_channels=1, out_channels=2)
    out = model(torch.randn(3, 1, 8, 8), torch.tensor(0.5))
    assert out.shape == (3, 2, 8, 8)


def test_zero_initialised_network_outputs_zero():
    model = tiny().eval()
    out = model(torch.randn(2, 3, 16, 16), torch.rand(2))
    assert torch.equal(out, torch.zeros_like(out))


def test_time_conditioning_changes_the_output():
    model = perturb_zero_init(tiny()).eval()
    x = torch.randn(1, 3, 16, 16).expand(3, -1, -1, -1)
    t = torch.tensor([0.3, 0.3 + 1e-3, 0.9])
    with torch.no_grad():
        out = model(x, t)
    assert (out[0] - out[1]).abs().mean() > 1e-3  # one step of a 1000-step grid is seen
    assert (out[0] - out[2]).abs().mean() > 1e-2
    with torch.no_grad():  # each sample reads its own t
        assert torch.allclose(model(x[:1], t[2:]), out[2:], atol=1e-5)


def test_timestep_embedding_resolves_a_thousandth():
    t = torch.tensor([0.5, 0.5 + 1e-3])
    emb = timestep_embedding(t, 128)
    assert emb.shape == (2, 128) and emb.dtype == torch.float32
    assert (emb[0] - emb[1]).abs().max() > 0.5
    assert timestep_embedding(t, 7).shape == (2, 7)


def test_gradient_reaches_every_parameter():
    model = perturb_zero_init(tiny(dropout=0.1)).train()
    out = model(torch.randn(2, 3, 16, 16), torch.rand(2))
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_cifar10_configuration_of_table5_on_meta_device():
    with torch.device("meta"):
        model = UNet(**CIFAR10)
    assert all(p.is_meta for p in model.parameters())
    n = count_parameters(model)
    assert n == expected_parameters(**CIFAR10)
    assert abs(n - CIFAR10_PARAMETERS) <= 0.02 * CIFAR10_PARAMETERS
    assert n == CIFAR10_PARAMETERS
    assert summarize(model) == "UNet: 52.9M parameters"
    with torch.device("meta"):
        film = UNet(**CIFAR10, scale_shift=True)
    assert count_parameters(film) == expected_parameters(**CIFAR10, scale_shift=True) == CIFAR10_PARAMETERS_SCALE_SHIFT
    attention = [m for m in model.modules() if isinstance(m, AttentionBlock)]
    # down: 3 per attention stage; middle: 1 at 8x8; up: 4 per attention stage
    assert Counter(m.resolution for m in attention) == {16: 3 + 4, 8: 3 + 1 + 4}
    assert all(m.heads == 1 and m.head_dim == 256 for m in attention)
    resblocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert Counter(m.resample for m in resblocks) == {None: 9 + 2 + 12, "down": 2, "up": 2}


def test_attention_runs_at_the_configured_feature_map_sizes():
    model = tiny(channel_mult=(1, 1, 2, 2), attn_resolutions=(8, 2), image_size=16).eval()
    seen: list[tuple[int, int]] = []
    for m in model.modules():
        if isinstance(m, AttentionBlock):
            m.register_forward_hook(lambda mod, args, out: seen.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16), torch.rand(1))
    # sizes 16, 8, 4, 2: one block down and two up at 8x8 and 2x2, plus the middle block at 2x2
    assert Counter(seen) == {(8, 8): 3, (2, 2): 4}


def test_channels_last_and_bf16_autocast():
    model = perturb_zero_init(tiny()).eval()
    x, t = torch.randn(2, 3, 16, 16), torch.rand(2)
    with torch.no_grad():
        ref = model(x, t)
        model_cl = model.to(memory_format=torch.channels_last)
        out_cl = model_cl(x.contiguous(memory_format=torch.channels_last), t)
        assert torch.allclose(out_cl, ref, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, t)
    assert out.shape == ref.shape
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().mean() < 0.1 * ref.abs().mean()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(head_dim=12), "head_dim=12 does not divide the 32 channels at resolution 4"),
        (dict(head_dim=0), "head_dim must be a positive integer"),
        (dict(image_size=10), r"must be divisible by 2\*\*\(len\(channel_mult\) - 1\) = 4"),
        (dict(image_size=(16, 6)), "must be divisible"),
        (dict(image_size=0), "image_size must be a positive integer"),
        (dict(base_channels=0), "base_channels must be a positive integer"),
        (dict(in_channels=-1), "in_channels must be a positive integer"),
        (dict(num_res_blocks=0), "num_res_blocks must be a positive integer"),
        (dict(channel_mult=()), "channel_mult must not be empty"),
        (dict(channel_mult=(1, 0)), r"channel_mult\[1\] must be a positive integer"),
        (dict(attn_resolutions=(5,)), r"attn_resolutions \[5\] are not .* \(16, 8, 4\)"),
        (dict(dropout=1.0), "dropout must be a probability"),
        (dict(norm_groups=5), "divisible by norm_groups=5"),
    ],
)
def test_invalid_arguments_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        UNet(**{**TINY, **overrides})


def test_invalid_inputs_raise_value_error():
    model = tiny()
    with pytest.raises(ValueError, match=r"x must be \[B, 3, H, W\]"):
        model(torch.randn(2, 1, 16, 16), torch.rand(2))
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(2, 3, 16, 10), torch.rand(2))
    with pytest.raises(ValueError, match=r"t must have shape \[B\] = \[2\]"):
        model(torch.randn(2, 3, 16, 16), torch.rand(3))


def test_summary_helpers():
    model = tiny()
    n = count_parameters(model)
    assert n == expected_parameters(**TINY)
    assert summarize(model) == f"UNet: {n / 1e3:.1f}K parameters"
    model.conv_in.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == n - count_parameters(model.conv_in)
    assert summarize(torch.nn.Linear(3, 4)) == "Linear: 16 parameters"
