"""The variational bound over a data set: the mean bits per dimension with its standard error.

| symbol                                         | code          |
| ---------------------------------------------- | ------------- |
| per-image bound ``b_i`` and its Monte Carlo error ``e_i`` | ``bits_per_dim`` |
| ``bpd = mean_i b_i``                           | ``bpd``       |
| ``stderr = sqrt(sum_i e_i^2) / N``             | ``stderr``    |
| ``std_i b_i``                                  | ``image_std`` |

``stderr`` is the Monte Carlo error of the estimate of this data set's mean bound (the draws of
``t`` and of the noise are independent across images). ``image_std / sqrt(N)`` would add the
spread between images, the error of the data set as a sample of the data distribution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from nidiff.likelihood.bound import Model, bits_per_dim, make_time_proposal
from nidiff.likelihood.decoders import Decoder, resolve_decoder

__all__ = ["DatasetBitsPerDim", "dataset_bits_per_dim"]


@dataclass
class DatasetBitsPerDim:
    """The bound over a data set, in bits per dimension."""

    bpd: float          # mean over images
    stderr: float       # Monte Carlo standard error of bpd
    image_std: float    # standard deviation of the per-image bounds
    n: int              # images
    per_image: Tensor   # [N] float64 bounds, in the order seen


@torch.no_grad()
def dataset_bits_per_dim(
    diffusion,
    model: Model,
    batches: Iterable,
    n_t: int = 64,
    generator: torch.Generator | None = None,
    decoder: Decoder | str = "discretized",
    times: Tensor | None = None,
    importance: bool = True,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    total: int | None = None,
) -> DatasetBitsPerDim:
    """Run :func:`~nidiff.likelihood.bits_per_dim` over ``batches`` and combine.

    ``batches`` yields image tensors ``[B, C, H, W]`` or tuples/lists whose first element is one
    (a ``DataLoader`` with labels). ``device``: where to move each batch (default: where it is).
    With ``progress``, shows a tqdm bar over the ``total`` images (if given) and prints the result
    with its standard error; the bar advances after each model call by the work done, counted in
    images (``n_t`` draws of ``t`` make one). Put the model in eval mode first.
    """
    from nidiff.progress import image_bar

    decoder = resolve_decoder(decoder)
    proposal = make_time_proposal(diffusion, times, importance)
    bounds, variances = [], []
    bar = image_bar(total, "bits/dim", progress)
    draws = 0  # draws of t done: every image takes n_t of them

    def advance(rows: int) -> None:
        nonlocal draws
        draws += rows
        bar.update(draws // n_t - bar.n)

    with bar:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if not isinstance(x, Tensor):
                raise TypeError(f"batches must yield image tensors or (images, ...) tuples, got {type(x).__name__}")
            x = x if device is None else x.to(device)
            result = bits_per_dim(
                diffusion, model, x, n_t=n_t, generator=generator, decoder=decoder,
                batch_size=batch_size, proposal=proposal, callback=advance,
            )
            bounds.append(result.bpd.cpu())
            variances.append(result.stderr.cpu() ** 2)
            bar.set_postfix(bpd=f"{torch.cat(bounds).mean().item():.4f}", refresh=False)
    if not bounds:
        raise ValueError("batches yielded no images")
    per_image = torch.cat(bounds)
    n = per_image.numel()
    result = DatasetBitsPerDim(
        bpd=per_image.mean().item(),
        stderr=math.sqrt(torch.cat(variances).sum().item()) / n,
        image_std=per_image.std().item() if n > 1 else 0.0,
        n=n,
        per_image=per_image,
    )
    if progress:
        print(
            f"bits/dim: {result.bpd:.4f} +- {result.stderr:.4f} (Monte Carlo standard error; "
            f"{n} images, n_t={n_t}, std over images {result.image_std:.4f})"
        )
    return result
