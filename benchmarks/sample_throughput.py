"""Sampling throughput: our ancestral sampler (algorithm 1) against the diffusers network's forward.

    python benchmarks/sample_throughput.py --device cuda --size cifar10 --batch 512 --steps 1000 \\
        --precision bf16 --compile default --bases dct,identity [--json rows.jsonl]
    python benchmarks/sample_throughput.py --device cpu --size tiny --steps 4        # seconds on a CPU

Ours: ``nidiff.sampling.ancestral`` on a uniform grid of ``--steps`` steps with the recipe's network
(untrained: the work per step does not depend on the weights) and diffusion, each step one network
evaluation, two basis transforms and the posterior update in coefficient space. Reference: the
diffusers network of ``benchmarks/reference.py`` alone, one forward per call at the same batch, with
no sampler around it: a lower bound on any diffusers sampler's time per step.

The table gives ms per step (one network evaluation) and images/s for a full ``--nfe``-step sample
(default 1000, the paper's), ``batch * 1000 / (ms per step * nfe)``: every step of a uniform grid
does the same work, so a run of fewer ``--steps`` measures the same rate. Exit status 1 if our
samples are not finite.
"""

from __future__ import annotations

import argparse
import gc

import torch

from harness import (Row, append_json, build_recipe, compose_recipe, describe_device, median, peak_mib,
                     pick_device, print_table, reset_peak, time_calls)
import reference


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--size", default="cifar10", choices=["cifar10", "tiny"], help="network size")
    p.add_argument("--batch", type=int, default=None, help="images sampled at once (default 512 on a GPU, 8 on a CPU)")
    p.add_argument("--steps", type=int, default=1000, help="sampler steps actually run")
    p.add_argument("--nfe", type=int, default=1000, help="steps of the full sample that images/s refers to")
    p.add_argument("--repeats", type=int, default=1, help="timed sampler runs (median)")
    p.add_argument("--ref-calls", type=int, default=20, help="timed forward calls of the reference")
    p.add_argument("--precision", default="32", choices=["32", "bf16"], help="bf16: autocast of the networks")
    p.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                   help="torch.compile the networks (default, max-autotune, reduce-overhead, ...)")
    p.add_argument("--channels-last", action="store_true", help="NHWC weights and activations")
    p.add_argument("--bases", default="dct,identity", help="comma-separated bases of our sampler")
    p.add_argument("--no-reference", action="store_true", help="skip the diffusers rows")
    p.add_argument("--matmul-precision", default="highest", choices=["highest", "high", "medium"])
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's choice)")
    p.add_argument("--json", default=None, help="append the rows to this JSON-lines file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if min(args.steps, args.nfe, args.repeats, args.ref_calls) < 1:
        p.error("--steps, --nfe, --repeats and --ref-calls must be positive")
    return args


def setting_name(args: argparse.Namespace) -> str:
    name = f"{'fp32' if args.precision == '32' else 'bf16'} " + (f"compile:{args.compile}" if args.compile else "eager")
    return name + (" NHWC" if args.channels_last else "")


def autocast(args: argparse.Namespace, device: torch.device):
    bf16 = args.precision == "bf16"
    return torch.autocast(device.type, dtype=torch.bfloat16 if bf16 else torch.float32, enabled=bf16)


def build_ours(args: argparse.Namespace, basis: str, device: torch.device):
    from nidiff.training.step import compile_network

    diffusion, net = build_recipe(compose_recipe(args.size, basis))
    diffusion = diffusion.to(device)
    net = net.to(device).eval().requires_grad_(False)
    if args.channels_last:
        net.to(memory_format=torch.channels_last)
    return diffusion, compile_network(net, args.compile)


def rate(batch: int, ms_per_step: float, nfe: int) -> float:
    return batch * 1e3 / (ms_per_step * nfe)


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    from nidiff.sampling import ancestral, uniform_grid

    args = parse_args(argv)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)
    batch = args.batch or (512 if device.type == "cuda" else 8)
    version = None if args.no_reference else reference.available()
    print(f"sample throughput on {describe_device(device)}; size {args.size}, batch {batch}, {args.steps} steps "
          f"run, images/s for {args.nfe}; {setting_name(args)}; diffusers {version or 'not available: skipped'}")

    rows: list[Row] = []
    failures: list[str] = []
    for basis in [b.strip() for b in args.bases.split(",") if b.strip()]:
        torch.manual_seed(args.seed)
        diffusion, net = build_ours(args, basis, device)
        g = torch.Generator(device=device).manual_seed(args.seed)
        z = diffusion.prior_sample(batch, generator=g, device=device)
        out: list[torch.Tensor] = []

        def sample(steps: int) -> None:
            with autocast(args, device):
                out.append(ancestral(diffusion, net, z, uniform_grid(steps, device=device), generator=g))

        sample(min(args.steps, 3))  # a short warm-up run (compilation happens here)
        reset_peak(device)
        times, wall = time_calls(lambda: sample(args.steps), args.repeats, 0, device)
        ms = median(times) / args.steps
        x = out[-1]
        ok = bool(torch.isfinite(x).all())
        if not ok:
            failures.append(f"nidiff {basis}: the samples are not finite")
        rows.append(Row("sample", setting_name(args), f"nidiff {basis}", batch, ms, wall / args.steps,
                        rate(batch, ms, args.nfe), peak_mib(device),
                        note=f"{args.steps} steps run; samples {'finite' if ok else 'NOT FINITE'}"))
        del diffusion, net, out
        gc.collect()
    if version:
        torch.manual_seed(args.seed)
        ref = reference.ReferenceStep(reference.diffusers_unet(args.size).to(device).eval(), args.precision,
                                      args.channels_last, args.compile)
        ref.net.requires_grad_(False)
        z = torch.randn(batch, 3, 32, 32, device=device)
        t = torch.full((batch,), 500, device=device, dtype=torch.long)
        reset_peak(device)
        times, wall = time_calls(lambda: ref.forward(z, t), args.ref_calls, 3, device)
        ms = median(times)
        ref_row = Row("sample", setting_name(args), "diffusers fwd", batch, ms, wall, rate(batch, ms, args.nfe),
                      peak_mib(device), ratio=1.0, note="network forward only")
        for r in rows:
            r.ratio = r.images_per_s / ref_row.images_per_s
        rows.append(ref_row)

    memory = "peak MiB" if device.type == "cuda" else "peak RSS MiB"
    print_table(f"sampling, ms per step and images/s for a {args.nfe}-step sample, {describe_device(device)}",
                rows, memory)
    append_json(args.json, rows, describe_device(device))
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
