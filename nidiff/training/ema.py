"""Exponential moving average of a network's weights, as used for sampling and evaluation.

``ema <- decay * ema + (1 - decay) * weights`` after every optimizer step (the paper: decay 0.9999),
for the network's parameters and floating-point buffers only. It holds a copy of the network, not
of the diffusion process, so basis matrices and schedule tables never enter it. The update is one
fused ``torch._foreach_lerp_`` over all tensors.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

__all__ = ["EMA"]


class EMA(nn.Module):
    """Holds ``self.module``, an averaged copy of ``net``; call :meth:`update` after each step."""

    def __init__(self, net: nn.Module, decay: float = 0.9999) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        # kept in the network's train/eval mode; sampling code switches it to eval while it runs
        self.module = copy.deepcopy(net).requires_grad_(False)

    def _pairs(self, net: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        ema_state, net_state = self.module.state_dict(keep_vars=True), net.state_dict(keep_vars=True)
        keys = [k for k, v in ema_state.items() if v.is_floating_point()]
        return [ema_state[k].data for k in keys], [net_state[k].data for k in keys]

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        ema, current = self._pairs(net)
        torch._foreach_lerp_(ema, current, 1.0 - self.decay)

    @torch.no_grad()
    def copy_from(self, net: nn.Module) -> None:
        """Reset the average to the current weights."""
        ema, current = self._pairs(net)
        torch._foreach_copy_(ema, current)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
