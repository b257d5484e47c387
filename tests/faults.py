"""Fault injection for tests: a UNet that returns NaN, or sends NaN gradients, at chosen calls.

Registered as the network ``faulty_unet``; the tests of the non-finite guard run ``nidiff train``
with ``NIDIFF_PLUGINS=tests.faults net.name=faulty_unet net.nan_calls=[3]`` (the other ``net``
fields are the UNet's), including under DDP where only one process is poisoned.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.optim.optimizer import register_optimizer_step_post_hook

from nidiff.nets import UNet
from nidiff.registries import register_net


@register_net("faulty_unet")
class FaultyUNet(UNet):
    """``UNet`` whose training-mode call number ``k`` (from 1) in ``nan_calls`` is poisoned.

    ``nan_where="output"``: the output is NaN (a NaN loss); ``"grad"``: the output is right but its
    gradient is NaN (a finite loss with NaN gradients); ``"update"``: the output and its gradient are
    right, but the optimizer step of this call leaves one weight infinite, as an update that
    overflows would (the step's loss and gradient are finite). ``nan_rank``: poison only that DDP
    rank.
    """

    def __init__(self, *args, nan_calls: Sequence[int] = (), nan_where: str = "output",
                 nan_rank: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.nan_calls, self.nan_where, self.nan_rank = set(nan_calls), nan_where, nan_rank
        self.calls = 0

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = super().forward(x, t)
        if not self.training:
            return out
        self.calls += 1
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.calls in self.nan_calls and (self.nan_rank is None or rank == self.nan_rank):
            if self.nan_where == "output":
                return out * float("nan")
            if self.nan_where == "update":
                weight = self.conv_in.weight

                def overflow(optimizer, args, kwargs) -> None:
                    with torch.no_grad():
                        weight.view(-1)[0] = float("inf")
                    handle.remove()

                handle = register_optimizer_step_post_hook(overflow)
                return out
            if out.requires_grad:
                out.register_hook(lambda g: torch.full_like(g, float("nan")))
        return out
