"""Training throughput: our blurring_cifar10 step against the diffusers reference, in one process.

    python benchmarks/train_throughput.py --device cuda --size cifar10 --batch 128 --precision bf16 \\
        --compile default --bases dct,identity [--channels-last] [--json rows.jsonl]
    python benchmarks/train_throughput.py --device cpu --size tiny --steps 6     # seconds on a CPU

Ours: ``nidiff.training.step.TrainStep`` built from the composed recipe (what ``nidiff train
recipe=blurring_cifar10 basis=B`` builds, for each B of ``--bases``): the UNet, the blurring
diffusion, eq. 25, gradient clipping, Adam (fused on CUDA) and the EMA. The recipe's learning-rate
warm-up is set to 0 so that the loss moves within the measured steps; it only scales the learning
rate and costs nothing. ``identity`` runs the same step without basis transforms (standard DDPM),
so ``dct`` against ``identity`` is the cost of the DCT. The reference (``benchmarks/reference.py``,
only if ``diffusers`` imports) is the anchors' bare DDPM step with fused Adam.

Every model trains on the same fixed batch, ``--warmup`` steps (compilation included) and then
``--steps`` timed steps. The random generators are reseeded before every step (``--fresh-noise``
turns this off), so each step draws the same ``t``, noise and dropout: the objective is fixed and
the loss check measures optimisation, not the spread of ``t``; a step does the same work either
way. The table gives the median ms per step, images/s, peak memory and the ratio to the reference;
the note gives the model FLOP/s (``benchmarks/flops.py``) and the loss.
Exit status 1 if our loss is not finite, or not decreasing over the timed steps (the mean of the
last third must be below the mean of the first third).
"""

from __future__ import annotations

import argparse
import gc

import torch

from harness import (Row, append_json, build_recipe, compose_recipe, describe_device, format_flops, median,
                     peak_mib, pick_device, print_table, reset_peak, time_calls)
import reference
from flops import diffusers_flops, nidiff_flops


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--size", default="cifar10", choices=["cifar10", "tiny"], help="network size")
    p.add_argument("--batch", type=int, default=None, help="images per step (default 128 on a GPU, 8 on a CPU)")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps first, compilation included (default 5 on a GPU, 1 on a CPU)")
    p.add_argument("--precision", default="32", choices=["32", "bf16"], help="bf16: autocast of the networks")
    p.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                   help="torch.compile the networks (default, max-autotune, reduce-overhead, ...)")
    p.add_argument("--channels-last", action="store_true", help="NHWC weights and activations")
    p.add_argument("--bases", default="dct,identity", help="comma-separated bases of our step")
    p.add_argument("--no-reference", action="store_true", help="skip the diffusers rows")
    p.add_argument("--matmul-precision", default="highest", choices=["highest", "high", "medium"])
    p.add_argument("--json", default=None, help="append the rows to this JSON-lines file")
    p.add_argument("--fresh-noise", action="store_true",
                   help="draw new t, noise and dropout at every step (default: reseed, so the loss check "
                        "sees a fixed objective; the work per step is the same)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.steps < 3 or (args.warmup or 0) < 0:
        p.error("--steps must be >= 3 (the loss check compares thirds) and --warmup >= 0")
    return args


def setting_name(args: argparse.Namespace) -> str:
    name = f"{'fp32' if args.precision == '32' else 'bf16'} " + (f"compile:{args.compile}" if args.compile else "eager")
    return name + (" NHWC" if args.channels_last else "")


def build_ours(args: argparse.Namespace, basis: str, device: torch.device):
    from nidiff.training.step import TrainStep

    cfg = compose_recipe(args.size, basis)
    diffusion, net = build_recipe(cfg)
    net = net.to(device)
    o = cfg.optim
    return TrainStep(net, diffusion, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay,
                     warmup_steps=0, ema_decay=cfg.ema.decay, grad_clip=cfg.optim.grad_clip,
                     precision=args.precision, channels_last=args.channels_last, compile=args.compile)


def measure(step, x: torch.Tensor, args: argparse.Namespace, device: torch.device,
            model: str, flops: float | None) -> tuple[Row, torch.Tensor]:
    losses: list[torch.Tensor] = []

    def call() -> None:
        if not args.fresh_noise:  # the same t, noise and dropout at every step: a fixed objective
            torch.manual_seed(args.seed)
        losses.append(step(x))

    reset_peak(device)
    times, wall = time_calls(call, args.steps, args.warmup, device)
    timed = torch.stack(losses[args.warmup:]).float().cpu()  # the only read-back, after the loop
    ms = median(times)
    rate = x.shape[0] * 1e3 / ms
    third = max(1, timed.numel() // 3)
    note = f"loss {timed[0]:.4f} -> {timed[-1]:.4f}, last third {timed[-third:].mean():.4f}"
    if flops:
        note = f"{format_flops(flops * rate)}, " + note
    row = Row("train", setting_name(args), model, x.shape[0], ms, wall, rate, peak_mib(device), note=note)
    return row, timed


def decreasing(losses: torch.Tensor) -> bool:
    third = max(1, losses.numel() // 3)
    return bool(torch.isfinite(losses).all()) and float(losses[-third:].mean()) < float(losses[:third].mean())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    if args.warmup is None:
        args.warmup = 5 if device.type == "cuda" else 1
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)
    batch = args.batch or (128 if device.type == "cuda" else 8)
    g = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1).to(device)  # the fixed batch every model sees
    version = None if args.no_reference else reference.available()
    print(f"train throughput on {describe_device(device)}; size {args.size}, batch {batch}, {setting_name(args)}, "
          f"matmul precision {args.matmul_precision}; diffusers {version or 'not available: its rows are skipped'}")
    ours_flops = nidiff_flops(args.size)[1]

    rows: list[Row] = []
    failures: list[str] = []
    for basis in [b.strip() for b in args.bases.split(",") if b.strip()]:
        torch.manual_seed(args.seed)
        step = build_ours(args, basis, device)
        row, losses = measure(step, x, args, device, f"nidiff {basis}", ours_flops)
        rows.append(row)
        if not decreasing(losses):
            failures.append(f"nidiff {basis}: loss not finite and decreasing over the timed steps: "
                            f"{[round(v, 4) for v in losses.tolist()]}")
        del step
        gc.collect()
    if version:
        torch.manual_seed(args.seed)
        net = reference.diffusers_unet(args.size).to(device)
        ref = reference.ReferenceStep(net, args.precision, args.channels_last, args.compile)
        ref_row, _ = measure(ref, x, args, device, "diffusers", diffusers_flops(args.size)[1])
        for r in rows:
            r.ratio = r.images_per_s / ref_row.images_per_s
        ref_row.ratio = 1.0
        rows.append(ref_row)
        del ref, net
        gc.collect()

    memory = "peak MiB" if device.type == "cuda" else "peak RSS MiB"
    print_table(f"training step, {describe_device(device)}", rows, memory)
    by_model = {r.model: r for r in rows}
    if "nidiff dct" in by_model and "nidiff identity" in by_model:
        extra = by_model["nidiff dct"].ms / by_model["nidiff identity"].ms - 1
        print(f"dct step vs identity step: {100 * extra:+.1f}% time (goal: within 2%)")
    append_json(args.json, rows, describe_device(device))
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
