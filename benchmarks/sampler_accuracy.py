"""Accuracy of every deterministic sampler against model evaluations, on the Gaussian check.

    python benchmarks/sampler_accuracy.py                          # both problems, every sampler and grid
    python benchmarks/sampler_accuracy.py --problems blurring --grids angle --nfe 10,20

The check is ``nidiff.sampling.gaussian_check``: zero-mean Gaussian data, diagonal in the 1x8x8 DCT
basis with variance ``1 / (1 + 10 lambda)`` per coefficient, its exact (linear) denoiser, and the
``blurring`` schedule with ``sigma_blur_max = 20`` ("blurring") or 0 ("isotropic", the cosine
schedule). A deterministic sampler is then linear per coefficient, so one run gives its output
variance exactly; a cell is the largest relative error of that variance over coefficients against
the exact probability-flow ODE from the same prior. ``inf``: a non-finite output.

Rows: every registered deterministic sampler with its default options, plus the option sets of
``VARIANTS``, on every grid of ``--grids``. Columns: model evaluations (NFE). A sampler with two
evaluations per step takes ``NFE // 2`` steps; where that is fewer evaluations than the column's,
the cell says how many it used, e.g. ``0.12 (14)``. The last lines give the best row per column.
Stochastic samplers (``ancestral``, ``ddim`` with ``eta > 0``) are left out: their output variance
needs Monte Carlo (``tests/test_samplers.py`` checks them that way).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import nidiff  # noqa: E402
from nidiff.registries import SAMPLERS  # noqa: E402
from nidiff.sampling.gaussian_check import gaussian_check  # noqa: E402

PROBLEMS = {"blurring": 20.0, "isotropic": 0.0}  # sigma_blur_max of the check's blurring schedule
NFE = (5, 10, 15, 20, 35, 50, 100)
VARIANTS: dict[str, list[dict]] = {  # option sets shown besides the defaults
    "dpmpp": [{"order": 3}, {"coefficients": "dpmsolver"}, {"order": 3, "coefficients": "dpmsolver"}],
    "unipc": [{"order": 1}, {"order": 2}, {"corrector": "adams"}, {"order": 2, "corrector": "adams"}],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated: blurring, isotropic")
    p.add_argument("--grids", default=None, help="comma-separated registered grids (default: all)")
    p.add_argument("--samplers", default=None, help="comma-separated registered samplers (default: all deterministic)")
    p.add_argument("--nfe", default=",".join(map(str, NFE)), help="comma-separated model-evaluation budgets")
    return p.parse_args(argv)


def configurations(names: list[str]) -> list[tuple[str, dict]]:
    """``(sampler, options)`` rows: defaults first, then ``VARIANTS``; stochastic samplers skipped."""
    rows = []
    for name in names:
        for options in [{}, *VARIANTS.get(name, [])]:
            if not nidiff.build_sampler(name, **options).stochastic:
                rows.append((name, options))
    return rows


def label(name: str, options: dict) -> str:
    return name + (" (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")" if options else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors
    problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    unknown = [p for p in problems if p not in PROBLEMS]
    if unknown:
        raise SystemExit(f"unknown problem(s) {unknown}; known: {', '.join(PROBLEMS)}")
    grids = [g.strip() for g in args.grids.split(",")] if args.grids else nidiff.list_grids()
    names = [s.strip() for s in args.samplers.split(",")] if args.samplers else nidiff.list_samplers()
    budgets = [int(n) for n in args.nfe.split(",")]
    rows = configurations(names)
    print("Gaussian check (nidiff.sampling.gaussian_check): largest relative error of the output variance")
    print(f"machine: {os.cpu_count()}-core {platform.machine()} CPU, torch {torch.__version__}, float64")
    width = max(len(label(*r)) for r in rows) + 2
    for problem in problems:
        check = gaussian_check(PROBLEMS[problem])
        print(f"\n{problem} (sigma_blur_max = {PROBLEMS[problem]:g})")
        header = f"{'sampler':<{width}}{'grid':<9}" + "".join(f"{n:>15}" for n in budgets)
        print(header)
        print("-" * len(header))
        best: dict[int, tuple[float, str]] = {}
        for name, options in rows:
            sampler = nidiff.build_sampler(name, **options)
            per_step = SAMPLERS.get(name).evaluations_per_step
            for grid in grids:
                cells = []
                for nfe in budgets:
                    steps = nfe // per_step
                    if steps < 1:
                        cells.append("-")
                        continue
                    error = check.variance_error(sampler, nidiff.time_grid(grid, check.diffusion, steps))
                    cells.append(f"{error:.3g}" + (f" ({steps * per_step})" if steps * per_step != nfe else ""))
                    where = f"{label(name, options)}, {grid}"
                    if error < best.get(nfe, (float("inf"), ""))[0]:
                        best[nfe] = (error, where)
                print(f"{label(name, options):<{width}}{grid:<9}" + "".join(f"{c:>15}" for c in cells), flush=True)
        for nfe in budgets:
            if nfe in best:
                print(f"best at {nfe} NFE: {best[nfe][0]:.3g}, {best[nfe][1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
