"""The metrics of one checkpoint, measured the same way for every configuration of a compare.

| metric                  | measured with the EMA network                                         |
| ----------------------- | --------------------------------------------------------------------- |
| ``test_loss``           | eq. 25 per image (``GaussianDiffusion.loss``), mean over the first    |
|                         | ``loss_images`` test images; ``t`` and the noise from one generator   |
|                         | seeded with ``seed``, so every configuration sees the same draws      |
| ``bits_per_dim``        | :func:`nidiff.likelihood.dataset_bits_per_dim` on ``bpd_images`` test |
|                         | images, ``n_t`` times each, with its Monte Carlo standard error       |
| ``fid``, ``kid``        | ``fid_samples`` samples, image ``i`` seeded with ``(seed, i)`` as in  |
|                         | ``nidiff sample``, against the shared reference                       |
| ``sample_images_per_s`` | those samples (or ``speed_samples`` images) over the sampler's time   |

Every value comes with the number of images it was measured on (``loss_images``, ``bpd_images``,
``fid_samples``, ``ref_images``, ``sample_images``): a split smaller than asked gives fewer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor

from nidiff.compare.options import CompareOptions
from nidiff.metrics import InceptionFeatures, ReferenceStatistics
from nidiff.progress import image_bar

__all__ = ["Quality", "evaluate_checkpoint"]


@dataclass
class Quality:
    """What FID and KID are measured with."""

    extractor: InceptionFeatures
    reference: ReferenceStatistics


def evaluate_checkpoint(
    checkpoint: Path,                 # a step_XXXXXXX.ckpt or last.ckpt
    names: Sequence[str],             # metrics to measure (options.at_checkpoint)
    data: DictConfig,                 # the run's data config: its test split is used
    options: CompareOptions,
    device: str,
    quality: Quality | None = None,   # needed for fid and kid
) -> dict[str, float]:
    """``{metric: value, ...}`` plus the image counts and standard errors that go with them."""
    from nidiff.runs import load_run

    loaded = load_run(checkpoint, device=device)
    out: dict[str, float] = {}
    with torch.no_grad():
        if "test_loss" in names:
            out.update(_test_loss(loaded, data, options, device))
        if "bits_per_dim" in names:
            out.update(_bits_per_dim(loaded, data, options, device))
        if {"fid", "kid", "sample_images_per_s"} & set(names):
            out.update(_samples(loaded, names, options, device, quality))
    return out


def _test_images(data: DictConfig, n: int, batch_size: int) -> tuple[Iterator[Tensor], int]:
    from nidiff.data import image_batches

    batches, total, _ = image_batches(
        dataset=data.dataset, root=data.root, path=data.path, image_size=data.image_size, split="test",
        batch_size=batch_size, limit=n, seed=data.seed, num_images=data.num_images, shapes=data.shapes,
        max_shapes=data.max_shapes,
    )
    return batches, total


def _test_loss(loaded, data: DictConfig, options: CompareOptions, device: str) -> dict[str, float]:
    from nidiff.data import to_float

    batches, total = _test_images(data, options.loss_images, options.batch_size)
    generator = torch.Generator(device=device).manual_seed(options.seed)
    losses = []
    with image_bar(total, "test loss") as bar:
        for b in batches:
            losses.append(loaded.diffusion.loss(loaded.net, to_float(b).to(device), generator=generator).double().cpu())
            bar.update(b.shape[0])  # losses: each [B]
    return {"test_loss": float(torch.cat(losses).mean()), "loss_images": total}


def _bits_per_dim(loaded, data: DictConfig, options: CompareOptions, device: str) -> dict[str, float]:
    from nidiff.data import to_float
    from nidiff.likelihood import dataset_bits_per_dim

    batches, total = _test_images(data, options.bpd_images, options.batch_size)
    result = dataset_bits_per_dim(
        loaded.diffusion, loaded.net, (to_float(b) for b in batches), n_t=options.n_t,
        generator=torch.Generator(device=device).manual_seed(options.seed), device=device, total=total,
    )
    return {"bits_per_dim": result.bpd, "bits_per_dim_stderr": result.stderr, "bpd_images": result.n}


def _samples(loaded, names: Sequence[str], options: CompareOptions, device: str,
             quality: Quality | None) -> dict[str, float]:
    """Draw the samples (timed), then FID and KID of them against the reference."""
    from nidiff.images import to_uint8
    from nidiff.metrics import against_reference, update

    wants_quality = bool({"fid", "kid"} & set(names))
    if wants_quality and quality is None:
        raise ValueError("fid and kid need the Inception network and the reference statistics")
    n = options.fid_samples if wants_quality else options.speed_samples
    if wants_quality:
        reference = quality.reference
        kid_size = min(options.kid_subset_size, n, len(reference.features)) if "kid" in names else None
        fid, kid = against_reference(quality.extractor, reference, kid_size)
        metrics = [fid] if kid is None else [fid, kid]
    seconds = 0.0
    with image_bar(n, "samples") as bar:
        for start in range(0, n, options.batch_size):
            indices = list(range(start, min(start + options.batch_size, n)))
            tic = time.perf_counter()
            images = to_uint8(loaded.draw(options.plan, indices, options.seed)).cpu()  # [B, C, H, W]; .cpu() waits
            seconds += time.perf_counter() - tic
            if wants_quality:
                update(metrics, images, real=False, bar=bar)
            else:
                bar.update(len(indices))
    out: dict[str, float] = {}
    if "sample_images_per_s" in names:
        out.update(sample_images_per_s=n / seconds, sample_images=n)
    if wants_quality:
        out["fid_samples"] = n
        out["ref_images"] = int(reference.protocol["num_images"])
        if "fid" in names:
            out["fid"] = float(fid.compute())
        if "kid" in names:
            mean, std = kid.compute()
            out["kid"], out["kid_std"] = float(mean), float(std)
    return out
