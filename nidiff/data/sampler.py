"""The training order: one seeded permutation per epoch, sharded over processes, resumable.

Epoch ``e`` visits the images in the order ``permutation(N)`` of NumPy's PCG64 seeded with
``[seed, e]``; with ``mirror=True`` the same generator then draws one coin per image, and the
sampler yields ``image + N * coin`` (``N + i`` is the mirrored copy of image ``i``, see
:class:`~nidiff.data.transforms.Mirrored`).
The order of an epoch is therefore a function of ``(seed, epoch)`` only: not of worker processes,
not of how many epochs ran before, not of whether the run was restarted from a checkpoint.

Under DDP the permutation is padded by wrapping around to a multiple of the number of processes and
process ``r`` takes positions ``r, r + P, r + 2P, ...``, as ``torch``'s ``DistributedSampler`` does.
The class derives from ``DistributedSampler`` so that Lightning keeps it instead of substituting
its own, and Lightning calls :meth:`set_epoch` at the start of every epoch. In a hand-written loop,
call ``sampler.set_epoch(epoch)`` yourself.

A restart in the middle of an epoch calls :meth:`EpochSampler.resume` with the number of samples
this process had already consumed in it, and the next pass over that epoch starts after them.
:class:`ResumableLoader` does so for Lightning, which saves its ``state_dict`` in checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

__all__ = ["EpochSampler", "ResumableLoader"]


class EpochSampler(DistributedSampler):
    """Epoch-seeded permutation of ``N`` images (``2N`` items with ``mirror``), sharded."""

    def __init__(
        self,
        num_images: int,                     # N, the distinct images
        seed: int = 0,                       # the order is a function of (seed, epoch)
        mirror: bool = False,                # also pick the image or its mirror (index N + i)
        num_replicas: int = 1,               # processes sharing the data (DDP world size)
        rank: int = 0,                       # this process
    ) -> None:
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
            raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        super().__init__(
            range(num_images), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
        self.num_images = num_images
        self.mirror = bool(mirror)
        self._resume: tuple[int, int] | None = None  # (epoch, samples to skip in it)

    def order(self, epoch: int) -> list[int]:
        """This process's indices for ``epoch``, in order (``len(self)`` of them)."""
        n = self.num_images
        rng = np.random.default_rng([self.seed, epoch])
        idx = rng.permutation(n)
        if self.mirror:
            idx = idx + n * rng.integers(0, 2, size=n)
        idx = np.resize(idx, self.total_size)  # wrap around to a multiple of num_replicas
        return idx[self.rank :: self.num_replicas].tolist()

    def resume(self, epoch: int, consumed: int) -> None:
        """Skip the first ``consumed`` indices of ``epoch``, once (the next pass over it).

        ``consumed`` outside ``(0, len(self))`` means the epoch had not started or had ended, and
        changes nothing.
        """
        self._resume = (epoch, consumed) if 0 < consumed < len(self) else None

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        if self._resume is not None and self._resume[0] <= self.epoch:
            if self._resume[0] == self.epoch:
                order = order[self._resume[1]:]
            self._resume = None
        return iter(order)

    def __len__(self) -> int:
        # the full epoch, also when resuming inside it: Lightning counts the epoch's batches from
        # this and the batches already done from its own progress
        return self.num_samples


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` whose ``state_dict`` is ``{epoch, batches}``.

    Lightning saves it in checkpoints and, on resume, hands it back through ``load_state_dict``
    before the first batch: the sampler then starts that epoch after the batches already done.
    """

    progress: Callable[[], tuple[int, int]] | None = None

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.progress() if self.progress is not None else (self.sampler.epoch, 0)
        return {"epoch": int(epoch), "batches": int(batches), "seed": int(self.sampler.seed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        if not isinstance(sampler, EpochSampler) or state.get("seed", sampler.seed) != sampler.seed:
            return  # another order: replaying a position in it would mean nothing
        epoch, batches = state["epoch"], state["batches"]
        if batches >= len(self):  # saved at the end of an epoch: the next one comes
            epoch, batches = epoch + 1, 0
        # set now: worker processes prefetch from the sampler as soon as the loader is iterated,
        # before Lightning's own set_epoch at the start of the epoch
        sampler.set_epoch(epoch)
        sampler.resume(epoch, batches * (self.batch_size or 1))
