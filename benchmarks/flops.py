"""Floating-point operations per image of our network and of the diffusers reference.

    python benchmarks/flops.py [--size cifar10|tiny]

Counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device at batch 1 (no memory,
no time): convolutions, matrix products and attention, 2 FLOPs per multiply-add, the usual
convention; normalisations and pointwise ops are not counted. "train" is forward + backward.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from harness import compose_recipe  # also puts the checkout on sys.path

__all__ = ["count_flops", "diffusers_flops", "nidiff_flops"]


def count_flops(build: Callable[[], nn.Module], call: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                shape: tuple[int, int, int] = (3, 32, 32)) -> tuple[float, float]:
    """``(forward, forward + backward)`` FLOPs per image of ``call(net, x)``, ``x`` ``[1, *shape]``."""
    with torch.device("meta"):
        net = build()
        x = torch.randn(1, *shape)
    with FlopCounterMode(display=False) as forward:
        call(net, x)
    with FlopCounterMode(display=False) as train:
        call(net, x).float().sum().backward()
    return float(forward.get_total_flops()), float(train.get_total_flops())


def nidiff_flops(size: str = "cifar10") -> tuple[float, float]:
    from omegaconf import OmegaConf

    from nidiff.build import build_network

    tree = OmegaConf.to_container(compose_recipe(size, "dct"), resolve=True)
    return count_flops(lambda: build_network(tree), lambda net, x: net(x, torch.rand(x.shape[0], device=x.device)))


def diffusers_flops(size: str = "cifar10") -> tuple[float, float]:
    from reference import diffusers_unet

    def call(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return net(x, torch.randint(0, 1000, (x.shape[0],), device=x.device)).sample

    return count_flops(lambda: diffusers_unet(size), call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="cifar10", choices=["cifar10", "tiny"])
    args = parser.parse_args()
    from reference import available

    rows = [("nidiff UNet", nidiff_flops(args.size))]
    if available():
        rows.append(("diffusers UNet2DModel", diffusers_flops(args.size)))
    print(f"GFLOP per image at {args.size} size (FlopCounterMode, batch 1, 2 FLOPs per multiply-add)")
    print(f"{'network':<24}{'forward':>10}{'train':>10}")
    for name, (fwd, train) in rows:
        print(f"{name:<24}{fwd / 1e9:>10.2f}{train / 1e9:>10.2f}")


if __name__ == "__main__":
    main()
