"""What the throughput benchmarks share: sizes, the clock, peak memory, the table and JSON rows.

Timing: on a GPU every call is bracketed by CUDA events (no sync between calls, one at the end);
on the CPU by ``time.perf_counter``. ``ms`` is the median over the measured calls; ``wall_ms`` the
whole measured loop divided by the calls, which also shows host-side stalls the events miss.
Peak memory: ``torch.cuda.max_memory_allocated`` since the last reset on a GPU; on the CPU the
process's peak resident set size, which only grows (so a later row includes earlier rows' peaks).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

__all__ = ["SIZES", "Row", "append_json", "compose_recipe", "describe_device", "format_flops", "format_rate", "median",
           "peak_mib", "pick_device", "print_table", "reset_peak", "time_calls"]

# network overrides of the blurring_cifar10 recipe; "tiny" runs on a laptop CPU in seconds
SIZES: dict[str, list[str]] = {
    "cifar10": [],
    "tiny": ["net.base_channels=16", "net.channel_mult=[1,2]", "net.num_res_blocks=1",
             "net.attn_resolutions=[16]", "net.head_dim=16", "net.norm_groups=8"],
}


@dataclass
class Row:
    """One measured setting of one model."""

    bench: str                   # "train" or "sample"
    setting: str                 # e.g. "bf16 compile"
    model: str                   # e.g. "nidiff dct", "diffusers"
    batch: int
    ms: float                    # median ms per call (a training step, or one network evaluation)
    wall_ms: float               # measured loop / calls
    images_per_s: float
    peak_mib: float
    ratio: float | None = None   # images/s relative to the diffusers row of the same setting
    note: str = ""


def pick_device(name: str) -> torch.device:
    """``--device``: auto, cpu, cuda, cuda:N (nidiff's own choice and checks)."""
    from nidiff.device import pick_device as choose

    try:
        return choose(None if name == "auto" else name)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def describe_device(device: torch.device) -> str:
    torch_version = f"torch {torch.__version__}"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, {torch_version}"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads), no GPU, {torch_version}"


def time_calls(fn: Callable[[], object], calls: int, warmup: int, device: torch.device) -> tuple[list[float], float]:
    """Run ``fn`` ``warmup`` times, then ``calls`` times: (ms of each measured call, wall ms per call)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(calls)]
        start = time.perf_counter()
        for begin, end in events:
            begin.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
        return [b.elapsed_time(e) for b, e in events], 1e3 * wall / calls
    times = []
    start = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return times, 1e3 * (time.perf_counter() - start) / calls


def median(values: list[float]) -> float:
    return statistics.median(values)


def format_flops(per_second: float) -> str:
    """``1.23e12`` -> ``"1.2 TFLOP/s"``; small rates (a CPU) in GFLOP/s."""
    if per_second >= 1e12:
        return f"{per_second / 1e12:.1f} TFLOP/s"
    return f"{per_second / 1e9:.1f} GFLOP/s"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compose_recipe(size: str, basis: str, recipe: str = "blurring_cifar10"):
    """The composed training config of ``recipe`` at ``size`` with ``basis`` (as ``nidiff train``)."""
    from nidiff.config import compose

    if size not in SIZES:
        raise SystemExit(f"error: unknown size {size!r}; known: {', '.join(SIZES)}")
    return compose([f"recipe={recipe}", f"basis={basis}", *SIZES[size]])


def build_recipe(cfg, validate_args: bool = False):
    """``(diffusion, net)`` of a composed config, built as ``nidiff train`` builds them."""
    from omegaconf import OmegaConf

    from nidiff.build import build_diffusion, build_network

    tree = OmegaConf.to_container(cfg, resolve=True)
    diffusion = build_diffusion(tree)
    diffusion.validate_args = validate_args
    return diffusion, build_network(tree)


def print_table(title: str, rows: list[Row], memory_label: str) -> None:
    print(f"\n{title}")
    header = (f"{'bench':<7}{'setting':<26}{'model':<16}{'batch':>6}{'ms/call':>10}{'wall ms':>10}"
              f"{'images/s':>11}{memory_label:>13}{'vs diffusers':>14}  note")
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        print(f"{r.bench:<7}{r.setting:<26}{r.model:<16}{r.batch:>6}{r.ms:>10.2f}{r.wall_ms:>10.2f}"
              f"{format_rate(r.images_per_s):>11}{r.peak_mib:>13.0f}{ratio:>14}  {r.note}")


def format_rate(images_per_s: float) -> str:
    return f"{images_per_s:.1f}" if images_per_s >= 10 else f"{images_per_s:.3g}"


def append_json(path: str | None, rows: list[Row], device: str) -> None:
    """Append the rows as JSON lines (``benchmarks/report.py`` prints them as one table)."""
    if not path:
        return
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps({**asdict(r), "device": device}) + "\n")
