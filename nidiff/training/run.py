"""``nidiff train``: build everything from the composed config and fit.

Run directory layout (``hydra.run.dir``)::

    .hydra/            the composed config and the overrides
    checkpoints/       step_XXXXXXX.ckpt every ``checkpoint.every_n_steps``, and last.ckpt
    samples/           step_XXXXXXX.png sample grids from the EMA weights, fixed noise seed
    logs/              metrics.csv (CSV logger)
    tb/                TensorBoard events
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from nidiff.checkpoints import AtomicCheckpointIO, newest_loadable, safe_load
from nidiff.diffusion import GaussianDiffusion
from nidiff.training.callbacks import RNGState, SampleGrid
from nidiff.training.module import DiffusionModule, count_parameters

__all__ = ["build_diffusion", "build_module", "train"]


@rank_zero_only
def _say(message: str) -> None:
    """Print once, from the process of rank 0 (every DDP process runs ``train``)."""
    print(message, flush=True)


def build_diffusion(cfg: DictConfig, datamodule=None) -> GaussianDiffusion:
    """Basis (fitted on training images first if it learns from data) + schedule."""
    basis = instantiate(cfg.basis)
    if hasattr(basis, "fit") and not bool(getattr(basis, "fitted", True)):
        if datamodule is None:
            raise ValueError(f"{type(basis).__name__} must be fitted on data, but no data module was given")
        images = datamodule.fit_images(cfg.basis_fit_images)
        _say(f"nidiff: fitting the {type(basis).__name__} on {images.shape[0]} training images")
        basis.fit(images)
    schedule = instantiate(cfg.schedule)
    return GaussianDiffusion(basis, schedule, parametrization=cfg.diffusion.parametrization)


def build_module(cfg: DictConfig, datamodule=None) -> DiffusionModule:
    diffusion = build_diffusion(cfg, datamodule)
    net = instantiate(cfg.net)
    return DiffusionModule(net, diffusion, **cfg.optim, ema_decay=cfg.ema.decay, **cfg.get("speed", {}))


def train(cfg: DictConfig) -> Path:
    """Train as ``cfg`` says, in the Hydra run directory; returns that directory."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    datamodule = instantiate(cfg.data)
    module = build_module(cfg, datamodule)
    _say(f"nidiff: {cfg.name}: network {type(module.net).__name__} with "
          f"{count_parameters(module.net) / 1e6:.2f}M parameters; run directory {run_dir}")
    sample_cb = SampleGrid(run_dir / "samples", **cfg.sample)
    callbacks = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="step_{step:07d}",
            auto_insert_metric_name=False,
            every_n_train_steps=cfg.checkpoint.every_n_steps,
            save_top_k=-1,
            save_last=True,
        ),
        sample_cb,
        RNGState(),
        LearningRateMonitor(logging_interval="step"),
        TQDMProgressBar(refresh_rate=cfg.progress_refresh),
    ]
    loggers = [CSVLogger(run_dir, name="logs", version=""), TensorBoardLogger(run_dir, name="tb", version="")]
    trainer = L.Trainer(
        **cfg.trainer, callbacks=callbacks, logger=loggers, default_root_dir=run_dir, plugins=[AtomicCheckpointIO()]
    )
    if trainer.world_size > 1 and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ValueError(
            f"trainer.devices={cfg.trainer.devices} starts {trainer.world_size} processes, which a -m sweep "
            f"cannot do: run each job of the sweep as its own `nidiff train` command"
        )
    ckpt = resolve_resume(cfg.resume, run_dir)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    if trainer.global_step % cfg.checkpoint.every_n_steps:  # the end of training is a checkpoint too
        trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")  # atomic, via the plugin
    loss = trainer.callback_metrics.get("train/loss")
    _say(f"nidiff: {cfg.name}: reached step {trainer.global_step} in {time.perf_counter() - start:.0f} s"
          + (f", last loss {float(loss):.4f}" if loss is not None else ""))
    if sample_cb.last_path is not None:
        _say(f"nidiff: sample grid written to {sample_cb.last_path}")
    return run_dir


def resolve_resume(resume: str | None, run_dir: Path) -> str | None:
    """``resume`` is a checkpoint file, or a run directory: its newest checkpoint that loads."""
    if not resume:
        return None
    path = Path(str(resume))
    if path.is_dir():
        found = newest_loadable(path / "checkpoints")
        if found is None:
            raise FileNotFoundError(
                f"cannot resume: no loadable checkpoint in {path / 'checkpoints'}; give resume=RUN_DIR "
                f"(holding checkpoints/*.ckpt) or resume=PATH.ckpt"
            )
        return str(found)
    safe_load(path)  # a clear error naming the file (and the previous good one) if it is bad
    return str(path)
