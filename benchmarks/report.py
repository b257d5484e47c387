"""One table from the JSON rows that the throughput benchmarks appended (``--json FILE``).

    python benchmarks/report.py rows.jsonl

Adds, per benchmark, each row's images/s relative to the fastest diffusers row (the issue's
goal: 1.6x the compiled diffusers model), and per setting the time of the dct row against the
identity row (goal: within 2%).
"""

from __future__ import annotations

import argparse
import json

from harness import format_rate

GOAL_RATIO = 1.6  # images/s against the fastest diffusers setting
GOAL_DCT = 0.02   # dct step time over the identity step time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", help="JSON-lines file written by train_throughput.py / sample_throughput.py --json")
    rows = [json.loads(line) for line in open(p.parse_args().rows) if line.strip()]
    if not rows:
        print("no rows")
        return 1
    print(f"\nnidiff vs diffusers on {rows[0]['device']}")
    header = (f"{'bench':<7}{'setting':<26}{'model':<16}{'batch':>6}{'ms/call':>10}{'images/s':>11}"
              f"{'peak MiB':>10}{'vs same':>9}{'vs best diffusers':>19}")
    print(header)
    print("-" * len(header))
    for bench in dict.fromkeys(r["bench"] for r in rows):
        group = [r for r in rows if r["bench"] == bench]
        refs = [r for r in group if r["model"].startswith("diffusers")]
        best = max(refs, key=lambda r: r["images_per_s"]) if refs else None
        for r in group:
            same = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-"
            vs_best = f"{r['images_per_s'] / best['images_per_s']:.2f}x" if best else "-"
            print(f"{bench:<7}{r['setting']:<26}{r['model']:<16}{r['batch']:>6}{r['ms']:>10.2f}"
                  f"{format_rate(r['images_per_s']):>11}{r['peak_mib']:>10.0f}{same:>9}{vs_best:>19}")
        ours = [r for r in group if r["model"].startswith("nidiff")]
        if best and ours:
            top = max(ours, key=lambda r: r["images_per_s"])
            ratio = top["images_per_s"] / best["images_per_s"]
            print(f"  {bench}: fastest nidiff ({top['model']}, {top['setting']}) is {ratio:.2f}x the fastest "
                  f"diffusers ({best['setting']}): goal {GOAL_RATIO}x {'met' if ratio >= GOAL_RATIO else 'NOT met'}")
        for setting in dict.fromkeys(r["setting"] for r in group):
            by = {r["model"]: r for r in group if r["setting"] == setting}
            if "nidiff dct" in by and "nidiff identity" in by:
                extra = by["nidiff dct"]["ms"] / by["nidiff identity"]["ms"] - 1
                verdict = "met" if extra <= GOAL_DCT else "NOT met"
                print(f"  {bench} {setting}: dct {100 * extra:+.1f}% time vs identity (goal within "
                      f"{100 * GOAL_DCT:.0f}%: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
