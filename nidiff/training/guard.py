"""Non-finite guard: a step whose loss or gradient is NaN or infinite changes nothing.

At every step the loss and the global gradient norm are checked, after the gradients were
averaged over processes, and the decision is summed over processes too, so under DDP every rank
skips or stops together (no rank waits on a collective the others left). A skipped step leaves the
weights, the EMA, Adam's moments and step count and the learning-rate schedule as they were; the
batch is consumed. Then, by ``policy``:

- ``skip``: count it (``train/nonfinite_steps``) and go on, but stop all the same after
  ``skip_max_consecutive`` in a row or ``skip_max_total`` in the run (a diverged run must end);
- ``stop``: the same, but after ``max_consecutive`` non-finite steps in a row raise
  :class:`NonFiniteError`. No checkpoint is written after the last good step, so the newest
  checkpoint on disk is a good one.

A finite loss and gradient can still give non-finite weights (an infinite learning rate, an
overflowing update). After every applied step :meth:`NonFiniteGuard.watch` forms, on the device, a
flag of whether any weight is NaN or infinite (one fused max-abs over all parameters, no host
sync); the next step's check reads it together with its own flags, and a checkpoint is written only
after :func:`check_weights` (nidiff.training.module). Weights that are not finite are gone: that
always stops the run, whatever the policy, and the newest checkpoint on disk is still good.

The check reads one tensor of flags back to the host per step: the price of a decision every rank
takes at the step the fault happens.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from nidiff.errors import NonFiniteError
from nidiff.training.validate import POLICIES  # kept with the other checks that need no torch

__all__ = ["POLICIES", "NonFiniteError", "NonFiniteGuard", "check_weights", "nonfinite_flag"]


def nonfinite_flag(params: list[Tensor]) -> Tensor:
    """1.0 if any of ``params`` holds a NaN or an infinity, else 0.0: a device scalar, no host sync."""
    params = [p.detach() for p in params]
    if not params:
        return torch.zeros(())
    peak = torch.stack(torch._foreach_norm(params, float("inf")))  # max |w| per tensor; NaN stays NaN
    return (~torch.isfinite(peak).all()).float()


def check_weights(modules: dict[str, torch.nn.Module], step: int) -> None:
    """Raise :class:`NonFiniteError` if a weight of any of ``modules`` is not finite (reads back one flag)."""
    for name, module in modules.items():
        if bool(nonfinite_flag(list(module.parameters())) > 0):
            raise NonFiniteError(
                f"the {name} weights are non-finite (NaN or infinite) after the update of step {step} (a "
                f"learning rate far too large?); they were not checkpointed"
            )


class NonFiniteGuard:
    """``check(loss, grad_norm)`` -> whether to apply the step; counts and stops by ``policy``."""

    def __init__(
        self,
        policy: str = "stop",               # skip or stop
        max_consecutive: int = 10,          # stop: non-finite steps in a row before stopping
        skip_max_consecutive: int = 1000,   # skip: in a row before stopping anyway
        skip_max_total: int = 10_000,       # skip: in the whole run before stopping anyway
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"nonfinite.policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        for name, value in (("max_consecutive", max_consecutive), ("skip_max_consecutive", skip_max_consecutive),
                            ("skip_max_total", skip_max_total)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"nonfinite.{name} must be an integer >= 1, got {value!r}")
        self.policy, self.max_consecutive = policy, max_consecutive
        self.skip_max_consecutive, self.skip_max_total = skip_max_consecutive, skip_max_total
        self.skipped = 0          # non-finite steps in the whole run
        self.consecutive = 0      # non-finite steps since the last good one
        self.step = 0             # applied steps seen (for messages)
        self._weights_bad: Tensor | None = None  # set by watch() after an applied step

    def watch(self, params: list[Tensor]) -> None:
        """After an applied step: note, on the device, whether the weights are still finite."""
        self._weights_bad = nonfinite_flag(params)
        self.step += 1

    def check(self, loss: Tensor, grad_norm: Tensor, reduce: Callable[[Tensor], Tensor] | None = None) -> bool:
        """True: apply the step. ``reduce`` sums a tensor over processes (None: one process)."""
        step_bad = (~(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm.detach()))).float()
        weights_bad = self._weights_bad if self._weights_bad is not None else torch.zeros_like(step_bad)
        flags = torch.stack([step_bad.reshape(()), weights_bad.to(step_bad.device).reshape(())])
        if reduce is not None:
            flags = reduce(flags)
        step_is_bad, weights_are_bad = (bool(v > 0) for v in flags.tolist())  # the one host sync
        if weights_are_bad:
            raise NonFiniteError(
                f"the update of step {self.step} made the weights non-finite although its loss and gradient "
                f"were finite (a learning rate far too large?); weights that are NaN or infinite cannot be "
                f"skipped, and they were not checkpointed"
            )
        if not step_is_bad:
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
        if self.policy == "skip" and (self.consecutive >= self.skip_max_consecutive
                                      or self.skipped >= self.skip_max_total):
            raise NonFiniteError(
                f"{self.skipped} training step(s) had a non-finite loss or gradient, {self.consecutive} of them in "
                f"a row (nonfinite.policy=skip stops at skip_max_consecutive={self.skip_max_consecutive} in a row "
                f"or skip_max_total={self.skip_max_total} in all); none of them changed the weights, the EMA "
                f"or the optimizer"
            )
        return False

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "consecutive": self.consecutive, "step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped, self.consecutive = int(state["skipped"]), int(state["consecutive"])
        self.step = int(state.get("step", 0))


def grad_norm(params: list[torch.nn.Parameter], max_norm: float | None) -> Tensor:
    """The global 2-norm of the gradients, clipping them to ``max_norm`` first if given (and finite)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if max_norm:
        return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    return torch.nn.utils.get_total_norm(grads, foreach=True)
