"""``nidiff sample``: images from a checkpoint's EMA network, one fixed seed per image, resumable.

Image ``i`` is drawn from its own generator seeded with ``(seed, i)``: its prior noise and every
step's noise come from that stream alone, so any subset of images can be regenerated exactly,
whatever the batch size. Each image is written as ``OUT/NNNNNN.png`` atomically (a temporary file
renamed into place), so a killed run leaves only whole images, and a rerun skips the images that
exist. ``--npz`` packs all ``N`` images into one ``uint8 [N, H, W, C]`` array at the end.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from nidiff.evaluation.common import require_run
from nidiff.names import X_CLIP_NAMES, registered

__all__ = ["add_sampling_arguments", "main", "parser", "plan_from_args"]


def add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """``--sampler``, ``--option``, ``--steps``, ``--grid``, ``--x-clip``: one sampling plan; each
    not given is the run's own (its config's ``sample`` settings, those of its training grids)."""
    group = p.add_argument_group("sampling (each not given: the run's own sample.* setting)")
    group.add_argument("--sampler", choices=registered("sampler"), help="a registered sampler")
    group.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="an option of the sampler, e.g. --option eta=0.5 for ddim; repeat for several")
    group.add_argument("--steps", type=int, help="time steps")
    group.add_argument("--grid", choices=registered("grid"), help="time grid")
    group.add_argument("--x-clip", choices=["none", *sorted(X_CLIP_NAMES)], help="clipping of x_hat")


def plan_from_args(args: argparse.Namespace, run):
    """The :class:`~nidiff.SamplingPlan` of the sampling arguments for ``run`` (checked: bad options raise)."""
    from nidiff.sampling import parse_options

    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be positive, got {args.steps}")
    return run.plan(args.sampler, args.steps, args.grid, args.x_clip, **parse_options(args.option))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nidiff sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a run directory (its newest loadable checkpoint) or a .ckpt file")
    p.add_argument("--out", required=True, help="folder for NNNNNN.png files (created; existing images are kept)")
    p.add_argument("-n", "--num-samples", type=int, default=50_000, help="number of images (default 50,000)")
    add_sampling_arguments(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="image i uses the seed (seed, i)")
    p.add_argument("--bf16", action="store_true", help="run the network under bf16 autocast (transforms stay float32)")
    p.add_argument("--raw-weights", action="store_true", help="use the raw network instead of the EMA one")
    p.add_argument("--npz", default=None, help="also write all images into this .npz (key 'samples')")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # before the heavy imports: --help and usage errors answer at once
    if args.num_samples < 1 or args.batch_size < 1:
        raise ValueError("--num-samples and --batch-size must be positive")
    require_run(args.run)
    from tqdm import tqdm

    from nidiff.images import save_png, to_uint8
    from nidiff.runs import load_run

    loaded = load_run(args.run, device=args.device, weights="net" if args.raw_weights else "ema")
    plan = plan_from_args(args, loaded)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp*"):  # temporary files of a killed run
        stale.unlink()
    todo = [i for i in range(args.num_samples) if not (out / f"{i:06d}.png").is_file()]
    print(f"nidiff sample: step {loaded.step} of {loaded.checkpoint}; {args.num_samples - len(todo)} images "
          f"exist, {len(todo)} to draw with {plan.describe()}")
    start = time.perf_counter()
    with tqdm(total=len(todo), unit="img", desc="sampling") as bar:
        for b in range(0, len(todo), args.batch_size):
            batch = todo[b : b + args.batch_size]
            images = to_uint8(loaded.draw(plan, batch, args.seed, args.bf16).float())
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
    import numpy as np
    from PIL import Image

    from nidiff.atomic import atomic_write

    missing = [i for i in range(n) if not (folder / f"{i:06d}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {n} images are missing in {folder} (first: {missing[0]:06d}.png)")
    array = np.stack([np.asarray(Image.open(folder / f"{i:06d}.png").convert("RGB")) for i in range(n)])
    return atomic_write(path, lambda f: np.savez(f, samples=array))
