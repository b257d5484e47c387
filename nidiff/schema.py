"""The typed configuration of ``nidiff train``: every field with its type, default and meaning.

These dataclasses are the schema of the composed configuration (Hydra's ConfigStore entry
``train_schema``, the first default of ``nidiff/conf/train.yaml``): a value of the wrong type on
the command line or in a recipe fails at composition, before any work, and a misspelt field is
refused. ``basis``, ``schedule`` and ``net`` are mappings ``{name: <registered name>, <parameter>:
<value>, ...}`` chosen with ``basis=``, ``schedule=``, ``net=`` from the config groups and checked
against the component's signature when it is built (:mod:`nidiff.build`). ``nidiff train --help``
lists every field (:func:`describe_fields`). Ranges and cross-field rules are checked afterwards
by :mod:`nidiff.training.validate`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035 (OmegaConf reads typing generics)

__all__ = ["CompareConfig", "CompareSection", "TrainConfig", "describe_fields", "register_schema"]

# mappings whose keys are the parameters of a component or a sampler: open (no "+" needed to add one),
# and checked against the component's signature when it is built
OPEN_KEYS = ("basis", "schedule", "net", "sample.options")


def _f(default: Any, help: str) -> Any:  # noqa: A002
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class DiffusionConfig:
    parametrization: str = _f("eps", "what the network predicts: eps (the paper's), x, v or precond (docs/engine.md)")
    data_std: Any = _f("fit", "precond only: fit (per-coefficient mean and variance of basis_fit_images "
                              "training images) or one std for every coefficient")


@dataclass
class DataConfig:
    dataset: str = _f("auto", "auto | cifar10 | folder | lsun | synthetic (docs/training.md)")
    root: Optional[str] = _f(None, "CIFAR-10 folder; null: $NIDIFF_DATA, else ~/.cache/nidiff")
    path: Optional[str] = _f(None, "an image folder, a zip of images or an LSUN lmdb")
    image_size: int = _f("${image_shape.1}", "side of the square training images")
    batch_size: int = _f(128, "images per batch and process")
    num_workers: int = _f(2, "decoding processes for folders, zips and LSUN")
    random_flip: bool = _f(True, "random horizontal flips")
    on_gpu: bool = _f(False, "hold the data set on the GPU as uint8, flips done there")
    split: str = _f("train", "train or test")
    seed: int = _f("${seed}", "seeds the data order and flips")
    download: bool = _f(False, "cifar10: fetch the official tarball (MD5-checked) when missing")
    num_images: int = _f(10_000, "synthetic: how many images")
    shapes: List[str] = _f(["disc", "rectangle", "stripes"], "synthetic: the kinds of shape drawn")
    max_shapes: int = _f(3, "synthetic: one to this many shapes per image")
    on_error: str = _f("skip", "unreadable image files: skip (counted, reported) or raise")


@dataclass
class OptimConfig:
    lr: float = _f(2.0e-4, "Adam learning rate (table 5)")
    betas: List[float] = _f([0.9, 0.999], "Adam's betas")
    eps: float = _f(1.0e-8, "Adam's epsilon")
    weight_decay: float = _f(0.0, "Adam's weight decay")
    warmup_steps: int = _f(5000, "linear learning-rate warm-up (DDPM's 5000; the paper gives none)")
    grad_clip: Optional[float] = _f(1.0, "global gradient norm (DDPM's value); null: no clipping")


@dataclass
class NonFiniteConfig:
    policy: str = _f("stop", "a step with a NaN/inf loss or gradient changes nothing; skip: go on, "
                             "stop: stop after max_consecutive in a row")
    max_consecutive: int = _f(10, "stop: non-finite steps in a row before stopping")
    skip_max_consecutive: int = _f(1000, "skip: non-finite steps in a row before stopping anyway")
    skip_max_total: int = _f(10_000, "skip: non-finite steps in the whole run before stopping anyway")


@dataclass
class EMAConfig:
    decay: float = _f(0.9999, "EMA decay of the weights used for sampling (section 6)")


@dataclass
class SpeedConfig:
    channels_last: bool = _f(False, "NHWC layout of the network (GPU convolutions); docs/performance.md")
    compile: Optional[str] = _f(None, "torch.compile mode of the network: default, max-autotune, "
                                      "reduce-overhead, ...")


@dataclass
class CheckpointConfig:
    every_n_steps: int = _f(10_000, "step_XXXXXXX.ckpt every N steps, and last.ckpt")


@dataclass
class SampleConfig:
    every_n_steps: int = _f(10_000, "a sample grid from the EMA weights every N steps and at the end")
    n: int = _f(64, "images in a grid")
    sampler: str = _f("ancestral", "a registered sampler (nidiff.list_samplers())")
    steps: int = _f(1000, "sampler steps")
    grid: str = _f("uniform", "time grid: uniform, logsnr or angle (see nidiff list grids)")
    options: Dict[str, Any] = _f({}, "the sampler's options, e.g. {eta: 0.5} for ddim")
    seed: int = _f(0, "fixed noise, so grids are comparable across steps")
    x_clip: Optional[str] = _f(None, "null (the paper leaves clipping open, A.1), static or dynamic")
    scale: int = _f(0, "nearest-neighbour upscaling of grid tiles; 0: so the grid is at least 512 px wide")


@dataclass
class TrainerConfig:
    max_steps: int = _f(2_000_000, "optimizer steps to train")
    max_time: Optional[str] = _f(None, "wall-clock limit DD:HH:MM:SS; the run stops and checkpoints there")
    max_epochs: int = _f(-1, "-1: the length of training is max_steps")
    accelerator: str = _f("auto", "auto, cpu, gpu")
    devices: Any = _f(1, "devices (processes) to train on")
    strategy: str = _f("auto", "Lightning strategy (ddp for several devices)")
    precision: str = _f("32", "32 or bf16-mixed (basis transforms stay float32)")
    log_every_n_steps: int = _f(50, "steps between logged rows")
    enable_model_summary: bool = _f(False, "print Lightning's model summary")
    num_sanity_val_steps: int = _f(0, "no validation loop: 0")


@dataclass
class TrainConfig:
    name: str = _f("custom", "the run's name: outputs/<name>/<date_time>/")
    seed: int = _f(0, "seeds Python, NumPy, torch and the data order")
    image_shape: List[int] = _f([3, 32, 32], "(C, H, W) of the training images")
    basis_fit_images: int = _f(10_000, "images a fitted component (a pca basis, precond's statistics) is fitted "
                                       "on before training")
    matmul_precision: str = _f("highest", "torch.set_float32_matmul_precision (high allows TF32 on GPUs)")
    check_memory: bool = _f(True, "refuse a run whose estimated training memory exceeds the device's; false: try it")
    resume: Optional[str] = _f(None, "a run directory or a .ckpt file to continue from")
    resume_check: bool = _f(True, "refuse to resume a checkpoint written with a different configuration")
    progress_refresh: float = _f(1.0, "seconds between refreshes of the progress bar")
    basis: Dict[str, Any] = _f({}, "the basis: {name: ..., parameters}; basis=NAME chooses one")
    schedule: Dict[str, Any] = _f({}, "the schedule: {name: ..., parameters}; schedule=NAME chooses one")
    net: Dict[str, Any] = _f({}, "the network: {name: ..., parameters}; net=NAME chooses one")
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    nonfinite: NonFiniteConfig = field(default_factory=NonFiniteConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class CompareSection:
    dir: str = _f("???", "the compare directory: a job directory per configuration, tables, plots")
    metrics: List[str] = _f(["train_loss", "test_loss", "bits_per_dim", "fid", "kid", "sample_images_per_s",
                             "train_images_per_s"], "measured at the final checkpoint")
    curve_metrics: List[str] = _f(["test_loss"], "also measured at every step_XXXXXXX.ckpt: test_loss "
                                                 "bits_per_dim fid kid")
    loss_window: int = _f(100, "train_loss: the mean of the last N logged training losses")
    loss_images: int = _f(10_000, "test_loss: images of the test split (0: skip)")
    bpd_images: int = _f(10_000, "bits_per_dim: images of the test split (0: skip)")
    n_t: int = _f(64, "bits_per_dim: importance-sampled times per image")
    fid_samples: int = _f(50_000, "fid, kid: samples from the EMA network (0: skip both); the paper's 50,000")
    ref: Optional[str] = _f(None, "reference statistics .npz; null: DIR/fid_ref.npz, computed once")
    ref_images: Optional[int] = _f(None, "images of the training split in a computed reference; null: all")
    kid_subset_size: int = _f(1000, "kid: vectors per subset, 100 subsets")
    speed_samples: int = _f(256, "sample_images_per_s without FID or KID: images drawn to time the sampler")
    sampler: str = _f("ancestral", "a registered sampler (nidiff.list_samplers())")
    steps: int = _f(1000, "sampler steps")
    grid: str = _f("uniform", "uniform in t, or logsnr")
    options: Dict[str, Any] = _f({}, "the sampler's options, e.g. {eta: 0.5} for ddim")
    x_clip: Optional[str] = _f(None, "null, static or dynamic")
    batch_size: int = _f(250, "images per batch in every measurement")
    seed: int = _f(0, "the test loss's t and noise, the bound's times, sample i's seed (seed, i)")
    device: Optional[str] = _f(None, "cuda or cpu; null: cuda when available")
    weights: Optional[str] = _f(None, "Inception weights file; null: looked up (docs/evaluation.md)")


@dataclass
class CompareConfig(TrainConfig):
    compare: CompareSection = field(default_factory=CompareSection)


def register_schema() -> None:
    """Store the schemas as ``train_schema`` and ``compare_schema`` in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    for name, cls, open_keys in (("train_schema", TrainConfig, OPEN_KEYS),
                                 ("compare_schema", CompareConfig, (*OPEN_KEYS, "compare.options"))):
        node = OmegaConf.structured(cls)
        for key in open_keys:
            OmegaConf.set_struct(OmegaConf.select(node, key), False)
        ConfigStore.instance().store(name=name, node=node)


def describe_fields(cls: type = TrainConfig, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(dotted name, type, default, help)`` of every field, nested sections flattened."""
    rows: list[tuple[str, str, str, str]] = []
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None) or (
            f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)
        ):
            rows.extend(describe_fields(f.default_factory, name + "."))
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        kind = str(f.type).replace("typing.", "")
        rows.append((name, kind, "null" if default is None else str(default), f.metadata.get("help", "")))
    return rows
