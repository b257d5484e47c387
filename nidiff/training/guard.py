"""Non-finite guard: a step whose loss or gradient is NaN or infinite changes nothing.

At every step the loss and the global gradient norm are checked, after the gradients were
averaged over processes, and the decision is summed over processes too, so under DDP every rank
skips or stops together (no rank waits on a collective the others left). A skipped step leaves the
weights, the EMA, Adam's moments and step count and the learning-rate schedule as they were; the
batch is consumed. Then, by ``policy``:

- ``skip``: count it (``train/nonfinite_steps``) and go on;
- ``stop``: the same, but after ``max_consecutive`` non-finite steps in a row raise
  :class:`NonFiniteError`. No checkpoint is written after the last good step, so the newest
  checkpoint on disk is a good one.

The check reads one flag back to the host per step: the price of a decision every rank takes at the
step the fault happens.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["POLICIES", "NonFiniteError", "NonFiniteGuard"]

POLICIES: tuple[str, ...] = ("skip", "stop")


class NonFiniteError(RuntimeError):
    """Training stopped: too many consecutive steps had a non-finite loss or gradient."""


class NonFiniteGuard:
    """``check(loss, grad_norm)`` -> whether to apply the step; counts and stops by ``policy``."""

    def __init__(self, policy: str = "stop", max_consecutive: int = 10) -> None:
        if policy not in POLICIES:
            raise ValueError(f"nonfinite.policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        if isinstance(max_consecutive, bool) or not isinstance(max_consecutive, int) or max_consecutive < 1:
            raise ValueError(f"nonfinite.max_consecutive must be an integer >= 1, got {max_consecutive!r}")
        self.policy, self.max_consecutive = policy, max_consecutive
        self.skipped = 0          # non-finite steps in the whole run
        self.consecutive = 0      # non-finite steps since the last good one

    def check(self, loss: Tensor, grad_norm: Tensor, reduce: Callable[[Tensor], Tensor] | None = None) -> bool:
        """True: apply the step. ``reduce`` sums a tensor over processes (None: one process)."""
        bad = (~(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm.detach()))).float()
        if reduce is not None:
            bad = reduce(bad)
        if not bool(bad > 0):
            self.consecutive = 0
            return True
        self.skipped += 1
        self.consecutive += 1
        if self.policy == "stop" and self.consecutive >= self.max_consecutive:
            raise NonFiniteError(
                f"{self.consecutive} training step(s) in a row had a non-finite loss or gradient "
                f"(nonfinite.policy=stop, nonfinite.max_consecutive={self.max_consecutive}); none of them "
                f"changed the weights, the EMA or the optimizer"
            )
        return False

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped, self.consecutive = int(state["skipped"]), int(state["consecutive"])


def grad_norm(params: list[torch.nn.Parameter], max_norm: float | None) -> Tensor:
    """The global 2-norm of the gradients, clipping them to ``max_norm`` first if given (and finite)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if max_norm:
        return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    return torch.nn.utils.get_total_norm(grads, foreach=True)
