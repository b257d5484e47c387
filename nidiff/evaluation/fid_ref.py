"""``nidiff fid-ref``: FID reference statistics of a data set split, cached as ``.npz``."""

from __future__ import annotations

import argparse

from nidiff.evaluation.common import add_data_arguments, data_kwargs

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nidiff fid-ref",
        description="Compute Inception (pool_3) statistics of a data set split for FID, with the protocol "
                    "(image count, split, weights hash, resize method) stored beside them.",
    )
    p.add_argument("--out", required=True, help="the .npz file to write (kept if it exists, unless --overwrite)")
    add_data_arguments(p, split="train")
    p.add_argument("--weights", default=None, help="Inception weights file (default: looked up, see docs/evaluation.md)")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--with-features", action="store_true", help="also store the features (needed for KID)")
    p.add_argument("--overwrite", action="store_true")
    return p


def main(argv: list[str]) -> int:
    from pathlib import Path

    args = parser().parse_args(argv)  # before the heavy imports: --help and usage errors answer at once
    from nidiff.data import image_batches
    from nidiff.device import pick_device
    from nidiff.metrics import InceptionFeatures, reference_statistics, save_reference

    if Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    batches, total, what = image_batches(batch_size=args.batch_size, **data_kwargs(args))
    extractor = InceptionFeatures(args.weights, batch_size=args.batch_size).to(pick_device(args.device))
    print(f"nidiff fid-ref: {what}; {total} images")
    stats = reference_statistics(batches, extractor, total=total, keep_features=args.with_features)
    protocol = {**extractor.protocol, "dataset": args.dataset, "split": args.split,
                "dataset_path": str(args.path or args.root or "")}
    path = save_reference(args.out, stats, protocol, overwrite=args.overwrite)
    print(f"nidiff fid-ref: statistics of {stats.count} images written to {path}")
    return 0
