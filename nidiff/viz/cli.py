"""``nidiff viz forward|logsnr|samples``: PNG figures of processes and of trained models.

Every subcommand writes into ``--out`` (created if missing), refuses to replace an existing file
unless ``--overwrite`` is given (checked before any work), writes each PNG atomically and prints
the path of every file it wrote.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from nidiff.viz.process import Process

__all__ = ["main", "build_parser"]

EPILOG = """examples:
  nidiff viz forward --images data/cifar10-jpeg75/test.zip --index 3000
      the paper's figure 1 (standard diffusion, heat dissipation, blurring diffusion) on a real image
  nidiff viz forward --process "sharp=dct:blurring(sigma_blur_max=1)" --process "haar:blurring"
  nidiff viz logsnr --process dct:blurring --process haar:blurring --process fourier:ihdm --bands 6
  nidiff viz samples --run outputs/quickstart/2024-01-01_12-00-00 --steps 250

a process is [LABEL=]BASIS[(k=v,...)]:SCHEDULE[(k=v,...)]; --basis/--schedule give one process
(defaults dct, blurring); with neither, the three processes of the paper's figure 1 are drawn.
bases: {bases}
schedules: {schedules}
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nidiff viz`` with its three subcommands."""
    from nidiff.evaluation.sample import add_sampling_arguments
    from nidiff.names import registered

    bases, schedules = ", ".join(registered("basis")), ", ".join(registered("schedule"))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="viz", metavar="DIR", help="folder to write into [viz]")
    common.add_argument("--overwrite", action="store_true", help="replace files that already exist")
    common.add_argument("--dpi", type=int, default=120, help="resolution of the PNG files [120]")

    chosen = argparse.ArgumentParser(add_help=False)
    add = chosen.add_argument
    add("--basis", metavar="NAME", help=f"basis of a single process [dct]: {bases}")
    add("--schedule", metavar="NAME", help=f"schedule of a single process, NAME or NAME(k=v,...) "
                                           f"[blurring]: {schedules}")
    add("--process", action="append", default=[], metavar="SPEC",
        help="a process [LABEL=]BASIS[(k=v)]:SCHEDULE[(k=v)]; repeat for several")
    add("--image-size", type=int, default=32, metavar="S", help="images are S x S [32]")
    add("--images", metavar="PATH", help="a folder or .zip of images (e.g. a CIFAR-10 test.zip); "
                                         "default: the built-in synthetic images")
    add("--fit-images", type=int, default=512, metavar="N",
        help="images a basis that learns from data (pca) is fitted on [512]")

    parser = argparse.ArgumentParser(
        prog="nidiff viz", description="Figures (PNG) of diffusion processes and of trained models.",
        epilog=EPILOG.format(bases=bases, schedules=schedules),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="{forward,logsnr,samples}", required=True)

    fwd = sub.add_parser(
        "forward", parents=[common, chosen], help="forward-process strips of one image over t",
        description="z_t ~ q(z_t | x) of one image: one row per process, one column per t; the same "
                    "image and noise draw in every row.",
    )
    fwd.add_argument("--index", type=int, default=0, help="which image of the set [0]")
    fwd.add_argument("--times", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
                     help="comma-separated times in [0, 1], one column each [0,0.1,...,1]")
    fwd.add_argument("--seed", type=int, default=0, help="seed of the noise draw [0]")
    fwd.add_argument("--name", default="forward", help="file name, .png added [forward]")

    snr = sub.add_parser(
        "logsnr", parents=[common, chosen], help="per-coefficient log-SNR and alpha_t per band",
        description="log-SNR and alpha_t against t, one line per eigenvalue band (in the DCT: per "
                    "frequency band), one column per (basis, schedule).",
    )
    snr.add_argument("--bands", type=int, default=8, help="number of quantile bands [8]")
    snr.add_argument("--band-mode", choices=("quantile", "distinct"), default="quantile",
                     help="bands of equal size cut at eigenvalue quantiles, or one per distinct "
                          "eigenvalue [quantile]")
    snr.add_argument("--points", type=int, default=201, help="times evaluated on [0, 1] [201]")
    snr.add_argument("--logsnr-floor", type=float, default=-30.0, help="lowest log-SNR shown [-30]")
    snr.add_argument("--name", default="logsnr", help="file name, .png added [logsnr]")

    smp = sub.add_parser(
        "samples", parents=[common], help="sample grid and denoising trajectories from a checkpoint",
        description="Loads a run directory of `nidiff train` (.hydra/config.yaml and "
                    "checkpoints/last.ckpt) and samples with algorithm 1.",
    )
    add = smp.add_argument
    add("--run", required=True, metavar="RUN_DIR", help="a run directory, or a .ckpt file in one")
    add_sampling_arguments(smp)
    add("--n", type=int, default=16, help="samples in the grid [16]")
    add("--trajectories", type=int, default=4, metavar="K", help="samples whose trajectory is drawn [4]")
    add("--columns", type=int, default=6, help="sampler steps shown per trajectory [6]")
    add("--seed", type=int, default=0, help="seed of the sampling noise [0]")
    add("--weights", choices=("ema", "net"), default="ema", help="EMA or raw network weights [ema]")
    add("--device", default=None, help="cpu, cuda, cuda:1, ... [cuda if available]")
    add("--name", default="samples", help="file names NAME.png and NAME_trajectory.png [samples]")
    return parser


def main(argv: list[str]) -> int:
    """Run ``nidiff viz`` with ``argv`` (the words after ``viz``); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed by argparse
        return int(stop.code or 0)
    if args.dpi < 10:
        raise ValueError(f"--dpi must be at least 10, got {args.dpi}")
    out = Path(args.out)
    try:
        return {"forward": _forward, "logsnr": _logsnr, "samples": _samples}[args.command](args, out)
    except FileExistsError as err:
        print(f"nidiff viz {args.command}: error: {err}", file=sys.stderr)
        return 2


def _forward(args: argparse.Namespace, out: Path) -> int:
    from nidiff.viz.forward import forward_strip, load_image
    from nidiff.viz.output import check_writable, save_figure

    processes = _processes(args)
    times = [_number(v, "--times") for v in args.times.split(",") if v.strip()]
    (path,) = check_writable([out / _png(args.name)], args.overwrite)
    image, source = load_image(args.images, args.index, args.image_size)
    hint = "" if args.images else " (pass --images PATH for real images)"
    print(f"nidiff viz forward: image from {source}{hint}")
    fig = forward_strip(image, processes, times, args.seed, source, fit_images=_fit_images(args))
    print(save_figure(fig, path, args.overwrite, args.dpi))
    return 0


def _logsnr(args: argparse.Namespace, out: Path) -> int:
    from nidiff.viz.logsnr import logsnr_figure
    from nidiff.viz.output import check_writable, save_figure

    processes = _processes(args)
    (path,) = check_writable([out / _png(args.name)], args.overwrite)
    s = args.image_size
    fig = logsnr_figure(processes, (3, s, s), args.bands, args.band_mode, args.points, args.logsnr_floor,
                        fit_images=_fit_images(args))
    print(save_figure(fig, path, args.overwrite, args.dpi))
    return 0


def _samples(args: argparse.Namespace, out: Path) -> int:
    from nidiff.evaluation.common import require_run

    require_run(args.run)  # before the imports that loading it needs
    from nidiff.evaluation.sample import plan_from_args
    from nidiff.runs import load_run
    from nidiff.viz.checkpoint import sample_grid_figure, sample_with_trajectory, trajectory_figure
    from nidiff.viz.output import check_writable, save_figure

    name = _png(args.name)[: -len(".png")]
    paths = [out / f"{name}.png", out / f"{name}_trajectory.png"]
    grid_path, traj_path = check_writable(paths, args.overwrite)
    run = load_run(args.run, args.device, args.weights)
    plan = plan_from_args(args, run)
    description = run.describe()
    print(f"nidiff viz samples: {run.checkpoint} ({description}), {plan.describe()} on {run.device}")
    x, traj = sample_with_trajectory(run, plan, args.n, args.seed, args.trajectories, args.columns)
    caption = f"{plan.describe()}, seed {args.seed}; values shown clipped to [-1, 1]"
    grid = sample_grid_figure(x, f"{args.n} samples\n{description}", caption)
    print(save_figure(grid, grid_path, args.overwrite, args.dpi))
    title = f"Denoising trajectories: state $z_t$ and prediction $\\hat{{x}}$\n{description}"
    print(save_figure(trajectory_figure(traj, title, caption), traj_path, args.overwrite, args.dpi))
    return 0


def _processes(args: argparse.Namespace) -> list[Process]:
    """The processes named by ``--process`` and ``--basis``/``--schedule``; figure 1 by default."""
    from nidiff.viz.process import FIGURE1, Process, check_names, parse_named, parse_process

    processes = [parse_process(spec) for spec in args.process]
    if args.basis or args.schedule:
        basis, basis_kwargs = parse_named(args.basis or "dct", "basis")
        schedule, schedule_kwargs = parse_named(args.schedule or "blurring", "schedule")
        single = Process("", basis, schedule, schedule_kwargs, basis_kwargs)
        processes.append(dataclasses.replace(single, label=single.describe()))
    processes = processes or list(FIGURE1)
    check_names(processes)
    return processes


def _fit_images(args: argparse.Namespace) -> Callable[[], Tensor]:
    """Images for a basis that learns from data, loaded (and announced) only if one needs them."""

    def load() -> Tensor:
        from nidiff.viz.forward import load_fit_images

        where = args.images or "the built-in synthetic images"
        print(f"nidiff viz {args.command}: fitting the basis on {args.fit_images} images from {where}")
        return load_fit_images(args.images, args.fit_images, args.image_size)

    return load


def _png(name: str) -> str:
    if not name or Path(name).name != name:
        raise ValueError(f"--name must be a plain file name (no folders; use --out for those), got {name!r}")
    return name if name.endswith(".png") else f"{name}.png"


def _number(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated numbers, got {text!r}") from None
