"""Choosing the device a command runs on."""

from __future__ import annotations

import torch

__all__ = ["pick_device"]


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """``name`` as a device, checked to exist here; ``None``: the first GPU if there is one, else the CPU.

    Raises ``ValueError`` for a name torch does not know, or a CUDA device this machine lacks.
    """
    if name is None or name == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for, but no CUDA GPU is available here: use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for, but MPS is not available here: use --device cpu")
    return device
