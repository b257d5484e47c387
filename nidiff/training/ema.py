"""Exponential moving average of a network's weights, as used for sampling and evaluation.

``ema <- decay * ema + (1 - decay) * weights`` after every optimizer step (the paper: decay 0.9999),
for the network's parameters and persistent floating-point buffers only. It holds a copy of the
network, not of the diffusion process, so basis matrices and schedule tables never enter it.

The update is one fused ``torch._foreach_lerp_`` over all tensors. The two tensor lists are built
once and cached: parameters are the same objects for the life of a module (``.to(device)``,
``load_state_dict`` and ``Module.compile`` change their storage in place, not the objects), so no
state dict is rebuilt per step. Buffers are looked up by owner and name at every update, because
``.to(device)`` replaces buffer objects. Call :meth:`refresh` after replacing a parameter object of
either network (``module.weight = nn.Parameter(...)``, ``load_state_dict(..., assign=True)``).
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import Tensor, nn

__all__ = ["EMA"]

# (EMA owner module, network owner module, buffer name) for each persistent floating buffer
_BufferSlot = tuple[nn.Module, nn.Module, str]


class EMA(nn.Module):
    """Holds ``self.module``, an averaged copy of ``net``; call :meth:`update` after each step."""

    def __init__(self, net: nn.Module, decay: float = 0.9999) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        # kept in the network's train/eval mode; sampling code switches it to eval while it runs
        self.module = copy.deepcopy(net).requires_grad_(False)
        # (weakref to the network, EMA parameters, network parameters, buffer slots); a plain
        # attribute, so neither the network nor the lists become part of this module's state
        self._cache: tuple[weakref.ref, list[Tensor], list[Tensor], list[_BufferSlot]] | None = None

    def refresh(self) -> None:
        """Forget the cached tensor lists (after a parameter object was replaced)."""
        self._cache = None

    def _build(self, net: nn.Module) -> tuple[weakref.ref, list[Tensor], list[Tensor], list[_BufferSlot]]:
        ema_params, net_params = dict(self.module.named_parameters()), dict(net.named_parameters())
        keys = [k for k, v in ema_params.items() if v.is_floating_point()]
        missing = [k for k in keys if k not in net_params or net_params[k].shape != ema_params[k].shape]
        if missing or len(ema_params) != len(net_params):
            raise ValueError(
                f"the network does not match its EMA copy (first differing parameter: "
                f"{(missing or sorted(set(net_params) ^ set(ema_params)))[0]!r}); build the EMA from this network"
            )
        net_modules = dict(net.named_modules())
        slots: list[_BufferSlot] = []
        for name, owner in self.module.named_modules():
            for buf_name, buf in owner._buffers.items():
                persistent = buf_name not in owner._non_persistent_buffers_set
                if buf is not None and persistent and buf.is_floating_point() and name in net_modules:
                    slots.append((owner, net_modules[name], buf_name))
        return weakref.ref(net), [ema_params[k] for k in keys], [net_params[k] for k in keys], slots

    def _pairs(self, net: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        cache = self._cache
        if cache is None or cache[0]() is not net:
            cache = self._cache = self._build(net)
        _, ema, current, slots = cache
        if not slots:  # the common case (the UNet has no buffers): the cached lists as they are
            return ema, current
        return (
            ema + [owner._buffers[name] for owner, _, name in slots],
            current + [other._buffers[name] for _, other, name in slots],
        )

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """``ema <- decay * ema + (1 - decay) * net``, one fused kernel launch per device and dtype."""
        ema, current = self._pairs(net)
        torch._foreach_lerp_(ema, current, 1.0 - self.decay)

    @torch.no_grad()
    def copy_from(self, net: nn.Module) -> None:
        """Reset the average to the current weights."""
        ema, current = self._pairs(net)
        torch._foreach_copy_(ema, current)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = None  # rebuilt on use: a copy must not update from the original's tensors
        return state
