"""``results.csv`` and ``results.md``: one row per configuration, from the jobs' ``result.json``.

Columns: the overrides whose values differ between the rows (what the grid sweeps), ``step`` (the
checkpoint measured), the metrics in :data:`~nidiff.compare.options.METRICS` order, each followed
by its uncertainty where it has one, then the number of images behind each metric. The CSV holds
full-precision numbers; the Markdown page rounds them to four significant digits and adds the
overrides every row shares, the protocol and the plots. Both files are written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from nidiff.atomic import atomic_write_text
from nidiff.compare.options import ERRORS, METRICS

__all__ = ["COUNTS", "label", "load_results", "shared_overrides", "table", "varying_keys", "write_tables"]

# image counts, in the order of the metrics they belong to
COUNTS: tuple[str, ...] = ("loss_images", "bpd_images", "fid_samples", "ref_images", "sample_images")


def load_results(directory: Path, names: list[str], configs: list[dict]) -> list[dict[str, Any]]:
    """The ``result.json`` of each job in ``names`` written under its configuration in ``configs``
    (a result of an earlier configuration is left out), in that order."""
    results = []
    for name, config in zip(names, configs):
        path = Path(directory) / name / "result.json"
        if path.is_file():
            result = json.loads(path.read_text())
            if result.get("config") == config:
                results.append(result)
    return results


def varying_keys(results: list[dict[str, Any]]) -> list[str]:
    """Override keys whose value is not the same in every result, in order of appearance."""
    keys = list(dict.fromkeys(k for r in results for k in r["overrides"]))
    return [k for k in keys if len({r["overrides"].get(k) for r in results}) > 1]


def shared_overrides(results: list[dict[str, Any]]) -> dict[str, str]:
    """Overrides with one value in every result."""
    varying = set(varying_keys(results))
    return {k: v for k, v in results[0]["overrides"].items() if k not in varying} if results else {}


def label(result: dict[str, Any], keys: list[str]) -> str:
    """``basis=dct, schedule.sigma_blur_max=10``: the result's values of ``keys`` (its job name if none)."""
    return ", ".join(f"{k}={result['overrides'].get(k, '')}" for k in keys) or result["job"]


def table(results: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """``(columns, rows)``; an empty cell is ``None``."""
    keys = varying_keys(results)
    present = {k for r in results for k in r["metrics"]}
    metrics = [c for m in METRICS for c in (m, ERRORS.get(m)) if c in present]
    counts = [c for c in COUNTS if c in present]
    columns = [*keys, "step", *metrics, *counts]
    rows = [[r["overrides"].get(k) for k in keys] + [r["step"]] + [r["metrics"].get(c) for c in (*metrics, *counts)]
            for r in results]
    return columns, rows


def write_tables(directory: Path, results: list[dict[str, Any]], plots: list[Path],
                 missing: list[str] | None = None) -> list[Path]:
    """Write ``results.csv`` and ``results.md`` into ``directory``; ``missing`` names the jobs
    without a result. Returns the paths written."""
    directory = Path(directory)
    columns, rows = table(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    csv_path = _write_text(directory / "results.csv", buffer.getvalue())
    md_path = _write_text(directory / "results.md", _markdown(directory, results, columns, rows, plots, missing or []))
    return [csv_path, md_path]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _markdown(directory: Path, results: list[dict[str, Any]], columns: list[str], rows: list[list[Any]],
              plots: list[Path], missing: list[str]) -> str:
    shared = " ".join(f"{k}={v}" for k, v in shared_overrides(results).items())
    lines = [f"# nidiff compare: {directory.name}", ""]
    if not results:
        lines += ["No configuration has been measured yet."]
    else:
        lines += [f"{len(results)} configuration{'s' * (len(results) != 1)}, trained with "
                  f"`{shared or '(the defaults)'}` and the overrides in the first columns; each measured at its "
                  f"last checkpoint up to `trainer.max_steps` (column `step`).", "",
                  "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
        lines += ["", "## Protocol", ""]
        present = set(columns)
        lines += [f"- `{m}`: {doc}." for m, doc in METRICS.items() if m in present]
        protocol = results[0]["protocol"]
        settings = ", ".join(f"{k}={json.dumps(protocol[k])}" for k in ("sampler", "steps", "grid", "x_clip", "n_t",
                                                                       "seed", "batch_size", "device") if k in protocol)
        lines += [f"- settings: {settings}."]
        if protocol.get("reference"):
            ref = protocol["reference"]
            lines += [f"- reference `{protocol.get('ref')}`: {ref.get('num_images')} images of the {ref.get('split')} "
                      f"split of {ref.get('dataset')}, network {ref.get('network')}, weights sha256 "
                      f"{str(ref.get('weights_sha256'))[:12]}..., resize {ref.get('resize')}."]
    if missing:
        lines += ["", f"Not measured (failed or interrupted; run the same command again): {', '.join(missing)}."]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(directory).as_posix()})" for p in plots]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> Path:
    return atomic_write_text(path, text)
