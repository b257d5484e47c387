"""Basis transforms and ``diffuse`` on the CPU, each against its reference, measured in one run.

    python benchmarks/bases.py [--batch 128] [--size 32] [--repeat 50]

Prints, at ``[B, 3, S, S]``: the time of ``to_coeffs`` + ``from_coeffs`` per basis, with the
reference transform where one exists (torch-dct for ``dct``, PyWavelets for ``haar``), and
``diffuse`` with ``dct`` (blurring) against ``identity`` (standard diffusion). Times are medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pywt
import torch
import torch_dct

import nidiff


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def make_basis(name: str, shape: tuple[int, int, int], data: torch.Tensor) -> nidiff.Basis:
    basis = nidiff.build_basis(name, shape=shape) if name != "matrix" else None
    if name == "matrix":
        d = shape[0] * shape[1] * shape[2]
        p = torch.eye(d, dtype=torch.float64) + 0.1 * torch.randn(d, d, dtype=torch.float64) / d**0.5
        basis = nidiff.build_basis("matrix", shape=shape, P=p)
    if hasattr(basis, "fit"):
        basis.fit(data)
    return basis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    shape = (3, args.size, args.size)
    x = torch.randn(args.batch, *shape)
    rows: list[tuple[str, float, str, float | None]] = []

    refs: dict[str, tuple[str, Callable[[], object]]] = {
        "dct": ("torch-dct", lambda: torch_dct.idct_2d(torch_dct.dct_2d(x, norm="ortho"), norm="ortho")),
        "haar": (
            "PyWavelets",
            lambda: pywt.waverec2(
                pywt.wavedec2(x.numpy(), "haar", mode="periodization", axes=(-2, -1)),
                "haar",
                mode="periodization",
                axes=(-2, -1),
            ),
        ),
    }
    for name in nidiff.list_bases():
        try:
            basis = make_basis(name, shape, x[:64])
        except ValueError as err:  # e.g. a size the basis cannot take
            print(f"skip {name}: {err}")
            continue
        ours = median_ms(lambda: basis.from_coeffs(basis.to_coeffs(x)), args.repeat)
        ref_name, ref_fn = refs.get(name, ("", None))
        ref = median_ms(ref_fn, args.repeat) if ref_fn is not None else None
        rows.append((name, ours, ref_name, ref))

    print(f"\nto_coeffs + from_coeffs at [{args.batch}, {', '.join(map(str, shape))}], "
          f"{torch.get_num_threads()} threads, median of {args.repeat}")
    print(f"{'basis':<14}{'ours ms':>10}  {'reference':<12}{'ref ms':>10}{'speed-up':>10}")
    for name, ours, ref_name, ref in rows:
        tail = f"{ref_name:<12}{ref:>10.3f}{ref / ours:>9.1f}x" if ref is not None else ""
        print(f"{name:<14}{ours:>10.3f}  {tail}")

    t = torch.rand(args.batch)
    eps = torch.randn_like(x)
    blurring = nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=shape), nidiff.build_schedule("blurring"))
    ddpm = nidiff.GaussianDiffusion(nidiff.build_basis("identity", shape=shape), nidiff.build_schedule("cosine"))
    for d in (blurring, ddpm):
        d.validate_args = False  # the hot path of training
    ms_blur = median_ms(lambda: blurring.diffuse(x, t, eps=eps), args.repeat)
    ms_ddpm = median_ms(lambda: ddpm.diffuse(x, t, eps=eps), args.repeat)
    ms_blur_n = median_ms(lambda: blurring.diffuse(x, t), args.repeat)
    ms_ddpm_n = median_ms(lambda: ddpm.diffuse(x, t), args.repeat)
    print("\ndiffuse (z_t from x)            dct+blurring   identity+cosine   ratio")
    print(f"  noise given                   {ms_blur:>10.3f} ms {ms_ddpm:>12.3f} ms {ms_blur / ms_ddpm:>8.2f}x")
    print(f"  noise drawn inside            {ms_blur_n:>10.3f} ms {ms_ddpm_n:>12.3f} ms {ms_blur_n / ms_ddpm_n:>8.2f}x")
    np.random.seed(0)


if __name__ == "__main__":
    main()
