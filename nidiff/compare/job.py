"""One job of ``nidiff compare``: the task function that Hydra's launcher runs for each configuration.

The job directory (``DIR/<swept overrides>``) is the run directory of ``nidiff train``, and what
the job does depends on what it finds there:

| found in the job directory                | the job                                               |
| ----------------------------------------- | ----------------------------------------------------- |
| ``result.json`` of this configuration     | keeps it: nothing is trained or measured              |
| a checkpoint at ``trainer.max_steps``     | loads it, through a resume with nothing left to train |
| or later                                  | (``nidiff train`` checks the saved configuration)     |
| a checkpoint at an earlier step           | resumes training from it (``resume=JOB_DIR``)         |
| no checkpoint                             | trains; what a run killed before its first checkpoint |
|                                           | left is moved to ``interrupted/<time>/`` first        |

Then it measures every checkpoint up to ``trainer.max_steps`` (the curve metrics at each, all
metrics at the last) and writes ``result.json``. Each checkpoint's numbers are kept in
``eval/step_XXXXXXX.json`` with the protocol they were measured under, so a rerun measures only
what is new.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from nidiff.checkpoints import newest_loadable
from nidiff.compare.evaluate import Quality, evaluate_checkpoint
from nidiff.compare.logs import read_log
from nidiff.compare.naming import overrides_dict
from nidiff.compare.options import ERRORS, CompareOptions
from nidiff.compare.reference import prepare_reference
from nidiff.device import pick_device
from nidiff.evaluation.common import write_json
from nidiff.training.rundir import lock_run_dir, release_run_dir, set_aside

__all__ = ["RESULT", "checkpoints", "result_config", "run_job", "training_config"]

RESULT = "result.json"


def run_job(cfg: DictConfig) -> dict[str, Any]:
    """Train, resume or load the job's model, measure it, write ``result.json``; returns the result."""
    options = CompareOptions.from_config(cfg.compare)
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    identity = result_config(cfg)
    previous = _read_json(job_dir / RESULT)
    if previous is not None and previous.get("config") == identity:
        _say(job_dir, "its result.json was written under this configuration; kept")
        return previous
    lock_run_dir(job_dir)  # one writer per job directory, until this job is measured
    try:
        _train_or_load(training_config(cfg), job_dir)
        result = _measure(cfg, job_dir, options, identity)
        write_json(result, job_dir / RESULT, overwrite=True)
    finally:
        release_run_dir(job_dir)
    _say(job_dir, f"result written to {job_dir / RESULT}")
    return result


def training_config(cfg: DictConfig) -> DictConfig:
    """The job's configuration less ``compare``: what ``nidiff train`` takes and checkpoints save."""
    training = copy.deepcopy(cfg)
    with open_dict(training):
        del training["compare"]
    return training


def checkpoints(job_dir: Path, max_steps: int) -> dict[int, Path]:
    """``{step: checkpoint}`` up to ``max_steps``, ascending; ``step_XXXXXXX.ckpt`` before ``last.ckpt``."""
    folder = job_dir / "checkpoints"
    found: dict[int, Path] = {}
    for path in folder.glob("step_*.ckpt"):
        match = re.fullmatch(r"step_(\d+)\.ckpt", path.name)
        if match:
            found[int(match.group(1))] = path
    if (folder / "last.ckpt").is_file():
        found.setdefault(_global_step(folder / "last.ckpt"), folder / "last.ckpt")
    return {step: found[step] for step in sorted(found) if step <= max_steps}


def _train_or_load(training: DictConfig, job_dir: Path) -> None:
    """Train from scratch, or resume the newest checkpoint. A finished run goes through the same
    resume with nothing left to train: Lightning returns at once, after ``nidiff train`` has checked
    that the checkpoint was written under this configuration."""
    from nidiff.training.run import fit_run

    newest = newest_loadable(job_dir / "checkpoints")
    if newest is None:
        moved = set_aside(job_dir, "interrupted", keep=(".hydra",))  # Hydra just wrote this job's
        _say(job_dir, "training" + (f" (what a run killed before its first checkpoint left is in {moved})"
                                    if moved else ""))
    else:
        step, max_steps = _global_step(newest), training.trainer.max_steps
        _say(job_dir, f"resuming from step {step} ({newest.name}) to step {max_steps}" if step < max_steps
             else f"trained to step {step}: loading {newest.name} (checked through the resume)")
        training.resume = str(job_dir)
    fit_run(training)


def _measure(cfg: DictConfig, job_dir: Path, options: CompareOptions, identity: dict) -> dict[str, Any]:
    device = str(pick_device(options.device))
    found = checkpoints(job_dir, cfg.trainer.max_steps)
    if not found:
        raise FileNotFoundError(f"no checkpoint at or below step {cfg.trainer.max_steps} in {job_dir / 'checkpoints'}")
    quality = None
    if options.needs_reference:
        from nidiff.metrics import InceptionFeatures

        extractor = InceptionFeatures(options.weights, batch_size=options.batch_size).to(device)
        quality = Quality(extractor, prepare_reference(cfg.data, options, extractor))
    protocol = {**options.protocol(), "device": device,
                "reference": quality.reference.protocol if quality is not None else None}
    final, curve, values = max(found), [], {}
    curve_keys = {*options.curve_metrics, *(ERRORS[m] for m in options.curve_metrics if m in ERRORS)}
    for step, path in found.items():
        values = _checkpoint_values(job_dir, step, path, cfg, options, device, quality, protocol, step == final)
        curve.append({"step": step, **{k: v for k, v in values.items() if k in curve_keys}})
    log = read_log(job_dir)
    metrics: dict[str, float] = {}
    if "train_loss" in options.metrics:
        metrics["train_loss"] = log.final_loss(options.loss_window)
    if "train_images_per_s" in options.metrics:
        metrics["train_images_per_s"] = log.images_per_s()
    metrics.update(values)
    return {"job": job_dir.name, "overrides": overrides_dict(list(HydraConfig.get().overrides.task)),
            "step": final, "metrics": metrics, "curve": curve, "protocol": protocol, "config": identity}


def _checkpoint_values(job_dir: Path, step: int, path: Path, cfg: DictConfig, options: CompareOptions, device: str,
                       quality: Quality | None, protocol: dict, final: bool) -> dict[str, float]:
    """The checkpoint's numbers: those kept in ``eval/`` under the same protocol, plus the missing ones."""
    names = options.at_checkpoint(final)
    cache = job_dir / "eval" / f"step_{step:07d}.json"
    source = {"name": path.name, "step": step, "bytes": path.stat().st_size}
    kept = _read_json(cache)
    values = kept["values"] if kept and kept.get("checkpoint") == source and kept.get("protocol") == protocol else {}
    missing = [name for name in names if name not in values]
    if missing:
        _say(job_dir, f"measuring {', '.join(missing)} at step {step}")
        values = {**values, **evaluate_checkpoint(path, missing, cfg.data, options, device, quality)}
        write_json({"checkpoint": source, "protocol": protocol, "values": values}, cache, overwrite=True)
    return values


def result_config(cfg: DictConfig) -> dict:
    """The configuration a result belongs to, as its JSON holds it: everything but where it is written."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree.pop("resume", None)
    tree["compare"].pop("dir", None)
    return json.loads(json.dumps(tree))


def _global_step(checkpoint: Path) -> int:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    return int(state.get("global_step", -1))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _say(job_dir: Path, message: str) -> None:
    print(f"nidiff compare: {job_dir.name}: {message}", flush=True)
