"""``nidiff sample``: images from a checkpoint's EMA network, one fixed seed per image, resumable.

Image ``i`` is drawn from its own generator seeded with ``(seed, i)``: its prior noise and every
step's noise come from that stream alone, so any subset of images can be regenerated exactly,
whatever the batch size. Each image is written as ``OUT/NNNNNN.png`` atomically (a temporary file
renamed into place), so a killed run leaves only whole images, and a rerun skips the images that
exist. ``--npz`` packs all ``N`` images into one ``uint8 [N, H, W, C]`` array at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nidiff.evaluation.common import pick_device
from nidiff.images import save_png, to_uint8
from nidiff.sampling import SAMPLERS, X_CLIPS, get_sampler, logsnr_grid, uniform_grid
from nidiff.sampling.noise import per_sample_generators

__all__ = ["main", "parser", "sample_images"]

GRIDS = {"uniform": lambda diffusion, steps, device: uniform_grid(steps, device=device),
         "logsnr": lambda diffusion, steps, device: logsnr_grid(diffusion, steps).to(device)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nidiff sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a run directory (its newest loadable checkpoint) or a .ckpt file")
    p.add_argument("--out", required=True, help="folder for NNNNNN.png files (created; existing images are kept)")
    p.add_argument("-n", "--num-samples", type=int, default=50_000, help="number of images (default 50,000)")
    p.add_argument("--sampler", default="ancestral", choices=sorted(SAMPLERS), help="default ancestral (algorithm 1)")
    p.add_argument("--steps", type=int, default=1000, help="time steps (default 1000)")
    p.add_argument("--grid", default="uniform", choices=sorted(GRIDS), help="time grid (default uniform)")
    p.add_argument("--eta", type=float, default=0.0, help="ddim only: 0 deterministic, 1 ancestral")
    p.add_argument("--x-clip", default="none", choices=["none", *sorted(X_CLIPS)], help="clipping of x_hat")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="image i uses the seed (seed, i)")
    p.add_argument("--bf16", action="store_true", help="run the network under bf16 autocast (transforms stay float32)")
    p.add_argument("--raw-weights", action="store_true", help="use the raw network instead of the EMA one")
    p.add_argument("--npz", default=None, help="also write all images into this .npz (key 'samples')")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    return p


def sample_images(loaded, indices: list[int], sampler: str, steps: int, grid: str, seed: int, device: str,
                  x_clip: str | None = None, eta: float = 0.0, bf16: bool = False) -> torch.Tensor:
    """Images ``indices`` of the run (uint8 ``[len, C, H, W]``), each from its own seed."""
    diffusion, net = loaded.diffusion, loaded.net
    generators = per_sample_generators(seed, indices, device)
    z = diffusion.prior_sample(len(indices), generator=generators, device=device)
    kwargs = {"eta": eta} if sampler == "ddim" else {}
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        x = get_sampler(sampler)(diffusion, net, z, GRIDS[grid](diffusion, steps, device),
                                 generator=generators, x_clip=x_clip, **kwargs)
    return to_uint8(x.float())


def main(argv: list[str]) -> int:
    from nidiff.training.load import load_run

    args = parser().parse_args(argv)
    if args.num_samples < 1 or args.batch_size < 1 or args.steps < 1:
        raise ValueError("--num-samples, --batch-size and --steps must be positive")
    device = pick_device(args.device)
    loaded = load_run(args.run, device=device, ema=not args.raw_weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp*"):  # temporary files of a killed run
        stale.unlink()
    todo = [i for i in range(args.num_samples) if not (out / f"{i:06d}.png").is_file()]
    print(f"nidiff sample: step {loaded.step} of {loaded.checkpoint}; {args.num_samples - len(todo)} images "
          f"exist, {len(todo)} to draw with {args.sampler} ({args.steps} steps, {args.grid} grid)")
    start = time.perf_counter()
    x_clip = None if args.x_clip == "none" else args.x_clip
    with tqdm(total=len(todo), unit="img", desc="sampling") as bar:
        for b in range(0, len(todo), args.batch_size):
            batch = todo[b : b + args.batch_size]
            images = sample_images(loaded, batch, args.sampler, args.steps, args.grid, args.seed, device,
                                   x_clip=x_clip, eta=args.eta, bf16=args.bf16)
            for i, image in zip(batch, images):
                save_png(image, out / f"{i:06d}.png")
            bar.update(len(batch))
    if todo:
        rate = len(todo) / (time.perf_counter() - start)
        print(f"nidiff sample: {len(todo)} images in {time.perf_counter() - start:.1f} s ({rate:.2f} images/s)")
    if args.npz:
        path = pack_npz(out, args.num_samples, args.npz)
        print(f"nidiff sample: {args.num_samples} images packed into {path}")
    return 0


def pack_npz(folder: Path, n: int, path: str | os.PathLike) -> Path:
    """All ``n`` PNGs of ``folder`` as one ``uint8 [n, H, W, C]`` array ``samples``, written atomically."""
    from PIL import Image

    missing = [i for i in range(n) if not (folder / f"{i:06d}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {n} images are missing in {folder} (first: {missing[0]:06d}.png)")
    array = np.stack([np.asarray(Image.open(folder / f"{i:06d}.png").convert("RGB")) for i in range(n)])
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    np.savez(tmp, samples=array)
    os.replace(tmp, path)
    return path
