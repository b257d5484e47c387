"""Shared command-line pieces of the evaluation commands: data options and JSON output."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from nidiff.atomic import atomic_write_text
from nidiff.names import DATASET_NAMES

__all__ = ["add_data_arguments", "data_kwargs", "require_run", "write_json"]


def add_data_arguments(parser: argparse.ArgumentParser, split: str = "train", run_size: bool = False) -> None:
    """The data options; ``run_size``: ``--image-size`` defaults to the image size of ``--run``."""
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default="auto", choices=sorted(DATASET_NAMES),
                       help="data set (default auto: --path if given, else CIFAR-10 under --root)")
    group.add_argument("--path", default=None, help="a folder or .zip of images, or an LSUN lmdb folder")
    group.add_argument("--root", default=None, help="where CIFAR-10 is looked for ($NIDIFF_DATA, else ~/.cache/nidiff)")
    group.add_argument("--split", default=split, choices=("train", "test"), help=f"split (default {split})")
    group.add_argument("--image-size", type=int, default=None,
                       help="side of the images (default: the run's with --run, else 32)" if run_size
                       else "side of the images (default 32)")
    group.add_argument("--limit", type=int, default=None, help="use only the first N images")


def data_kwargs(args: argparse.Namespace) -> dict:
    """The data options as keyword arguments of :func:`nidiff.data.image_batches`."""
    return {"dataset": args.dataset, "path": args.path, "root": args.root, "split": args.split,
            "image_size": 32 if args.image_size is None else args.image_size, "limit": args.limit}


def write_json(obj: dict, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``obj`` as JSON atomically; an existing file is kept unless ``overwrite``."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", overwrite)


def require_run(path: str | os.PathLike) -> None:
    """Refuse a ``--run`` that names nothing at once, before the imports that loading a run needs."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no run directory or checkpoint at {path}")
