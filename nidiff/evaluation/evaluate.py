"""``nidiff eval``: FID and KID of samples against reference statistics, bits/dim on a data split.

Every number is written to the JSON file with the protocol it was measured under: the number of
samples, the reference's protocol (data set, split, image count, Inception weights hash, resize
method), and for bits/dim the checkpoint, split, image count, number of time samples and the
Monte Carlo standard error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from nidiff.evaluation.common import add_data_arguments, data_kwargs, require_run, write_json

if TYPE_CHECKING:
    import torch

__all__ = ["main", "parser", "run_data_kwargs", "sample_batches"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nidiff eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="results JSON (kept if it exists, unless --overwrite)")
    fid = p.add_argument_group("FID / KID")
    fid.add_argument("--samples", help="a folder of NNNNNN.png samples or an .npz with 'samples' [N, H, W, C]")
    fid.add_argument("--num-samples", type=int, default=None,
                     help="how many samples to use; fewer present is an error (default: all found)")
    fid.add_argument("--ref", help="reference statistics .npz; computed from the data options and saved there "
                                   "when it does not exist (like nidiff fid-ref)")
    fid.add_argument("--kid", action="store_true", help="also KID (the reference must hold features)")
    fid.add_argument("--weights", default=None, help="Inception weights file (default: looked up)")
    bpd = p.add_argument_group("bits/dim")
    bpd.add_argument("--run", help="a run directory or .ckpt: measure its bits/dim on the data split")
    bpd.add_argument("--n-t", type=int, default=64, help="time samples per image (default 64)")
    bpd.add_argument("--seed", type=int, default=0)
    add_data_arguments(p, split="test", run_size=True)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--overwrite", action="store_true")
    return p


def sample_batches(path: str | Path, n: int | None, batch_size: int) -> tuple[list[torch.Tensor], int]:
    """uint8 ``[B, 3, H, W]`` batches of the first ``n`` samples of a folder of PNGs or an .npz."""
    import numpy as np
    import torch
    from PIL import Image

    path = Path(path)
    if path.suffix == ".npz":
        array = np.load(path)["samples"]
        found = array.shape[0]
        get = lambda i: array[i]  # noqa: E731
    elif path.is_dir():
        files = sorted(path.glob("[0-9]*.png"))
        found = len(files)
        get = lambda i: np.asarray(Image.open(files[i]).convert("RGB"))  # noqa: E731
    else:
        raise FileNotFoundError(f"no samples at {path}: give a folder of PNG files or an .npz")
    n = found if n is None else n
    if found < n:
        raise ValueError(f"{path} holds {found} samples, fewer than the {n} requested: sample more first")
    if n < 1:
        raise ValueError(f"{path} holds no samples")
    batches = []
    for start in range(0, n, batch_size):
        chunk = np.stack([get(i) for i in range(start, min(start + batch_size, n))])
        batches.append(torch.from_numpy(chunk).permute(0, 3, 1, 2).contiguous())
    return batches, n


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # before the heavy imports: --help and usage errors answer at once
    if not args.samples and not args.run:
        raise ValueError("nothing to evaluate: give --samples (FID/KID) and/or --run (bits/dim)")
    if Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    if args.samples and not args.ref:
        raise ValueError("--samples needs --ref: reference statistics to compare with (see nidiff fid-ref)")
    if args.run:
        require_run(args.run)
    from nidiff.device import pick_device

    device = pick_device(args.device)
    results: dict = {}
    if args.samples:
        results.update(_fid(args, device))
    if args.run:
        results["bits_per_dim"] = _bits_per_dim(args, device)
    path = write_json(results, args.out, overwrite=args.overwrite)
    for name, entry in results.items():
        extra = f" +- {entry['stderr']:.4f}" if "stderr" in entry else (f" +- {entry['std']:.5f}" if "std" in entry else "")
        print(f"nidiff eval: {name} = {entry['value']:.4f}{extra}")
    print(f"nidiff eval: results and protocol written to {path}")
    return 0


def _fid(args: argparse.Namespace, device: str) -> dict:
    from nidiff.data import image_batches
    from nidiff.metrics import (
        InceptionFeatures,
        accumulate,
        against_reference,
        load_reference,
        reference_statistics,
        save_reference,
    )

    batches, n = sample_batches(args.samples, args.num_samples, args.batch_size)  # checks the samples first
    extractor = InceptionFeatures(args.weights, batch_size=args.batch_size).to(device)
    if not Path(args.ref).exists():
        data, total, what = image_batches(batch_size=args.batch_size, **data_kwargs(args))
        print(f"nidiff eval: computing reference statistics of {what} ({total} images) into {args.ref}")
        ref_stats = reference_statistics(data, extractor, total=total, keep_features=args.kid)
        protocol = {**extractor.protocol, "dataset": args.dataset, "split": args.split,
                    "dataset_path": str(args.path or args.root or "")}
        save_reference(args.ref, ref_stats, protocol)
    ref = load_reference(args.ref, expect=extractor.protocol)
    if args.kid and ref.features is None:
        raise ValueError(f"{args.ref} holds no features: recompute it with --with-features for KID")
    fid, kid = against_reference(extractor, ref, min(1000, n, len(ref.features)) if args.kid else None)
    accumulate([fid] if kid is None else [fid, kid], batches, real=False, total=n, desc="samples")
    protocol = {"num_samples": n, "samples": str(args.samples), "reference": str(args.ref), **ref.protocol}
    out = {"fid": {"value": float(fid.compute()), "protocol": protocol}}
    if kid is not None:
        mean, std = kid.compute()
        out["kid"] = {"value": float(mean), "std": float(std), "protocol": protocol}
    return out


def _bits_per_dim(args: argparse.Namespace, device: str) -> dict:
    import torch

    from nidiff.data import image_batches, to_float
    from nidiff.likelihood import dataset_bits_per_dim
    from nidiff.runs import load_run

    loaded = load_run(args.run, device=device)
    data, total, what = image_batches(batch_size=args.batch_size, **run_data_kwargs(args, loaded.config))
    print(f"nidiff eval: bits/dim of step {loaded.step} on {what} ({total} images)")
    result = dataset_bits_per_dim(
        loaded.diffusion, loaded.net, (to_float(b) for b in data), n_t=args.n_t,
        generator=torch.Generator(device=device).manual_seed(args.seed), device=device, total=total,
    )
    protocol = {"checkpoint": str(loaded.checkpoint), "step": loaded.step, "dataset": args.dataset,
                "split": args.split, "num_images": result.n, "n_t": args.n_t, "decoder": "discretized 8-bit",
                "ema": True}
    return {"value": result.bpd, "stderr": result.stderr, "protocol": protocol}


def run_data_kwargs(args: argparse.Namespace, config: dict) -> dict:
    """The data options for measuring a run: the image size, unless given, is the run's (a different
    one is refused); the synthetic set is the one the run was trained on (shapes, count, seed)."""
    kwargs = data_kwargs(args)
    size = int(config["image_shape"][-1])
    if args.image_size is None:
        kwargs["image_size"] = size
    elif args.image_size != size:
        raise ValueError(f"--image-size {args.image_size}, but the run's images are {size}x{size}: "
                         f"leave --image-size out to use the run's")
    data = config.get("data") or {}
    if args.dataset == "synthetic" and data.get("dataset") == "synthetic":
        kwargs.update({k: data[k] for k in ("shapes", "max_shapes", "num_images", "seed") if k in data})
    return kwargs
