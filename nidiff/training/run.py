"""``nidiff train``: build everything from the composed config and fit.

Run directory layout (``hydra.run.dir``)::

    .hydra/            the composed config and the overrides
    checkpoints/       step_XXXXXXX.ckpt every ``checkpoint.every_n_steps``, and last.ckpt
    samples/           step_XXXXXXX.png sample grids from the EMA weights, fixed noise seed
    logs/              metrics.csv (CSV logger)
    tb/                TensorBoard events
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from nidiff.build import build_diffusion, build_network, migrate_config
from nidiff.checkpoints import AtomicCheckpointIO, newest_loadable, remove_stale_temps, safe_load, scan
from nidiff.data import ImageDataModule
from nidiff.fitting import Fitted
from nidiff.params import check_params
from nidiff.registries import BASES
from nidiff.training.callbacks import RNGState, SampleGrid, StepCheckpoint
from nidiff.training.guard import NonFiniteError, NonFiniteGuard
from nidiff.training.logs import run_loggers
from nidiff.nets import count_parameters
from nidiff.training.module import DiffusionModule
from nidiff.training.progress import StepProgress
from nidiff.training.rundir import existing_run, lock_run_dir
from nidiff.training.validate import resume_differences, validate_config

__all__ = ["build_datamodule", "build_module", "check_resume", "fit_run", "resolve_resume", "train"]


@rank_zero_only
def _say(message: str) -> None:
    """Print once, from the process of rank 0 (every DDP process runs ``train``)."""
    print(message, flush=True)


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    """The training images of the configuration's ``data`` section."""
    params = OmegaConf.to_container(cfg.data, resolve=True)
    return ImageDataModule(**check_params(ImageDataModule, params, "data"))


def build_module(cfg: DictConfig, datamodule: ImageDataModule | None = None) -> DiffusionModule:
    """The LightningModule: diffusion (a basis fitted from data is fitted on training images first),
    network, optimizer settings, EMA and the non-finite guard, all from the configuration."""
    config = OmegaConf.to_container(cfg, resolve=True)

    cache: list[torch.Tensor] = []

    def fit_images() -> torch.Tensor:  # read once, for the basis and the parametrization alike
        if datamodule is None:
            raise ValueError("this configuration fits a component on training images (a basis learned from data, "
                             "precond's statistics), but no data module was given")
        if not cache:
            cache.append(datamodule.fit_images(cfg.basis_fit_images))
            name = config["basis"]["name"]
            fitted_basis = isinstance(BASES.get(name), type) and issubclass(BASES.get(name), Fitted)
            parts = [f"the basis {name!r}"] if fitted_basis else []
            if (config.get("diffusion") or {}).get("parametrization") == "precond":
                parts.append("per-coefficient data statistics (precond)")
            what = " and ".join(parts)
            _say(f"nidiff: fitting {what} on {cache[0].shape[0]} training images")
        return cache[0]

    diffusion = build_diffusion(config, fit_images=fit_images)
    return DiffusionModule(
        build_network(config), diffusion, **config["optim"], ema_decay=config["ema"]["decay"], **config["speed"],
        guard=NonFiniteGuard(**config["nonfinite"]), config=config,
    )


def check_resume(cfg: DictConfig, ckpt: str, checkpoint: dict) -> None:
    """Refuse to resume ``ckpt`` under a configuration that trains something else (``resume_check``)."""
    saved = checkpoint.get("config")
    if not cfg.get("resume_check", True) or saved is None:  # None: an older checkpoint, without one
        return
    diffs = resume_differences(migrate_config(saved), OmegaConf.to_container(cfg, resolve=True))
    if diffs:
        raise ValueError(
            f"cannot resume {ckpt}: it was written with a different configuration. Fields that differ: "
            + "; ".join(diffs)
            + ". Give the saved values (or the original recipe and overrides), or pass resume_check=false to "
            "continue anyway as a different run"
        )


def train(cfg: DictConfig) -> int:
    """Train as ``cfg`` says, in the Hydra run directory; returns the exit status (0: done, 1: stopped
    on non-finite values or a full disk, 2: bad input), having said why."""
    from nidiff.errors import bad_input, message, run_failures

    try:
        fit_run(cfg)
        return 0
    except run_failures() as err:
        print(f"nidiff train: error: {message(err)}", file=sys.stderr, flush=True)
        return 1
    except bad_input() as err:
        print(f"nidiff train: error: {message(err)}", file=sys.stderr, flush=True)
        return 2


def fit_run(cfg: DictConfig) -> Path:
    """Train as ``cfg`` says, in the Hydra run directory; returns that directory. Raises on bad input
    and on a run stopped by non-finite values or a full disk."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    lock_run_dir(run_dir)  # held already unless this is a job of a -m sweep
    validate_config(cfg)
    ckpt = resolve_resume(cfg.resume, run_dir)
    if ckpt is None and not cfg.resume and existing_run(run_dir):
        raise FileExistsError(
            f"{run_dir} already holds a run ({existing_run(run_dir)[0].relative_to(run_dir)}, ...): pass "
            f"resume={run_dir} to continue it, or choose another hydra.run.dir"
        )
    resumed = None if ckpt is None else torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    if resumed is not None:
        check_resume(cfg, ckpt, resumed)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    _say(f"nidiff: {cfg.name}: network {cfg.net.name} with {count_parameters(module.net) / 1e6:.2f}M parameters; "
         f"run directory {run_dir}")
    sample_cb = SampleGrid(run_dir / "samples", **OmegaConf.to_container(cfg.sample, resolve=True))
    callbacks = [
        StepCheckpoint(run_dir / "checkpoints", cfg.checkpoint.every_n_steps),
        sample_cb,
        RNGState(),
        LearningRateMonitor(logging_interval="step"),
        StepProgress(cfg.progress_refresh),
    ]
    loggers = run_loggers(run_dir, resumed)
    _quiet()
    trainer = L.Trainer(
        **cfg.trainer, callbacks=callbacks, logger=loggers, default_root_dir=run_dir, plugins=[AtomicCheckpointIO()],
        enable_progress_bar=False,  # StepProgress draws the bar, in steps
    )
    if trainer.world_size > 1 and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ValueError(
            f"trainer.devices={cfg.trainer.devices} starts {trainer.world_size} processes, which a -m sweep "
            f"cannot do: run each job of the sweep as its own `nidiff train` command"
        )
    # the checkpoints hold the state after the step's update, which is what they are for
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    if resumed is not None:  # a resumed run's checkpoint folder holds its earlier checkpoints, as it should
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    except NonFiniteError as err:
        good = newest_loadable(run_dir / "checkpoints")
        raise NonFiniteError(
            f"{err}. Stopped at step {trainer.global_step}; the newest checkpoint, {good or 'none (none written yet)'}, "
            f"is untouched: resume={run_dir} continues from it"
        ) from None
    loss = trainer.callback_metrics.get("train/loss")
    _say(f"nidiff: {cfg.name}: reached step {trainer.global_step} in {time.perf_counter() - start:.0f} s"
         + (f", last loss {float(loss):.4f}" if loss is not None else ""))
    if sample_cb.last_path is not None:
        _say(f"nidiff: sample grid written to {sample_cb.last_path}")
    return run_dir


def _quiet() -> None:
    """Keep Lightning's informational lines (which accelerators exist, tips for its cloud products,
    why fit stopped) and a deprecation warning Lightning raises inside its own code off the console:
    nidiff says what the run is and where it stands itself. Warnings of Lightning still show."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def resolve_resume(resume: str | None, run_dir: Path) -> str | None:
    """``resume`` is a checkpoint file, or a run directory: its newest checkpoint that loads and
    matches its digest. A run directory whose checkpoints are all damaged is refused (never silently
    restarted); one killed before its first checkpoint starts again from step 0."""
    if not resume:
        return None
    path = Path(str(resume))
    if path.is_dir():
        for stale in remove_stale_temps(path / "checkpoints"):
            _say(f"nidiff: removed {stale}, left by a write that was interrupted")
        found, damaged = scan(path / "checkpoints")
        for bad in damaged:
            _say(f"nidiff: warning: {bad} cannot be loaded (truncated or damaged): skipped"
                 + (f"; resuming from {found}" if found else ""))
        if found is None and damaged:
            raise FileNotFoundError(
                f"cannot resume {path}: none of its {len(damaged)} checkpoint(s) loads ({', '.join(p.name for p in damaged)}"
                f" are truncated or damaged); nothing was changed. Move them away to train this run again from step 0"
            )
        if found is None and (path / ".hydra").is_dir():  # a run killed before its first checkpoint
            _say(f"nidiff: {path} has no checkpoint yet: starting it again from step 0")
            return None
        if found is None:
            raise FileNotFoundError(
                f"cannot resume: no loadable checkpoint in {path / 'checkpoints'}; give resume=RUN_DIR "
                f"(holding checkpoints/*.ckpt) or resume=PATH.ckpt"
            )
        return str(found)
    safe_load(path)  # a clear error naming the file (and the previous good one) if it is bad
    return str(path)
