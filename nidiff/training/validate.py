"""Checks of a training configuration before any work: ranges, and what a resume may change.

:func:`validate_config` lists every out-of-range field at once (``trainer.max_steps=0``,
``data.batch_size=-1``, ...). :func:`resume_differences` compares the configuration saved in a
checkpoint with the one given to resume it: fields that decide what is trained (network, basis,
schedule, optimizer, EMA, data, seed, precision, and the number of processes, which sets the global
batch) must match, or the resumed run would not continue the saved one; fields in
:data:`MAY_CHANGE_ON_RESUME` (how long, where, how fast, how often to write) may differ. Scalars
compare by value whatever their spelling (``32`` and ``"32"``, ``20`` and ``20.0``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nidiff.names import PARAMETRIZATION_NAMES, X_CLIP_NAMES

__all__ = ["MAY_CHANGE_ON_RESUME", "POLICIES", "PRECISION_NAMES", "validate_config", "resume_differences",
           "flatten"]

# kept free of torch, so that a bad configuration is refused before the heavy imports
POLICIES: tuple[str, ...] = ("skip", "stop")  # nonfinite.policy (nidiff.training.guard)
PRECISION_NAMES: tuple[str, ...] = ("32", "32-true", "bf16", "bf16-mixed")  # nidiff.training.step.PRECISIONS
FLOAT32_MAX = 3.4028234663852886e38

# dotted prefixes of the fields a resumed run may set differently from the saved one
MAY_CHANGE_ON_RESUME: tuple[str, ...] = (
    "name", "resume", "resume_check", "progress_refresh", "matmul_precision", "check_memory", "checkpoint", "sample",
    "speed",
    "nonfinite", "trainer.max_steps", "trainer.accelerator", "trainer.log_every_n_steps",
    "trainer.enable_model_summary",
    "data.root", "data.path", "data.num_workers", "data.download", "data.on_gpu",
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ValueError`` listing every field of ``cfg`` out of its range."""
    problems: list[str] = []

    def need(ok: bool, key: str, rule: str) -> None:
        if not ok:
            value = OmegaConf.select(cfg, key, default="<missing>")
            problems.append(f"{key}={value!r} ({rule})")

    def positive_int(key: str) -> None:
        value = OmegaConf.select(cfg, key)
        need(_is_int(value) and value >= 1, key, "an integer >= 1")

    for key in ("trainer.max_steps", "data.batch_size", "checkpoint.every_n_steps", "sample.every_n_steps",
                "sample.n", "sample.steps", "basis_fit_images", "trainer.log_every_n_steps",
                "nonfinite.max_consecutive", "nonfinite.skip_max_consecutive", "nonfinite.skip_max_total"):
        positive_int(key)
    shape = OmegaConf.select(cfg, "image_shape")
    shape_ok = shape is not None and len(shape) == 3 and all(_is_int(v) and v >= 1 for v in shape)
    need(shape_ok, "image_shape", "three integers >= 1: [channels, height, width]")
    if shape_ok:
        size = OmegaConf.select(cfg, "data.image_size")
        need(shape[0] == 3, "image_shape", "3 channels: the training images are read as RGB")
        need(shape[1] == shape[2] == size, "image_shape",
             f"[3, S, S] with S = data.image_size ({size}): the training images are S x S")
    workers = OmegaConf.select(cfg, "data.num_workers")
    need(_is_int(workers) and workers >= 0, "data.num_workers", "an integer >= 0")
    warmup = OmegaConf.select(cfg, "optim.warmup_steps")
    need(_is_int(warmup) and warmup >= 0, "optim.warmup_steps", "an integer >= 0")
    refresh = OmegaConf.select(cfg, "progress_refresh")
    need(_number(refresh) and refresh > 0, "progress_refresh", "a number of seconds > 0")
    lr = OmegaConf.select(cfg, "optim.lr")
    need(_number(lr) and lr > 0, "optim.lr", "a finite number > 0")
    betas = OmegaConf.select(cfg, "optim.betas")
    betas_ok = betas is not None and len(betas) == 2 and all(_number(b) and 0 <= b < 1 for b in betas)
    need(betas_ok, "optim.betas", "two numbers in [0, 1), e.g. [0.9, 0.999]")
    if betas_ok and _number(lr) and lr > 0:  # Adam's first step moves weights by lr / (1 - beta1), in float32
        need(lr / (1.0 - betas[0]) < FLOAT32_MAX, "optim.lr",
             f"a learning rate whose first Adam step, lr / (1 - betas[0]), stays below float32's {FLOAT32_MAX:.3g}")
    adam_eps = OmegaConf.select(cfg, "optim.eps")
    need(_number(adam_eps) and adam_eps > 0, "optim.eps", "a finite number > 0")
    decay_w = OmegaConf.select(cfg, "optim.weight_decay")
    need(_number(decay_w) and decay_w >= 0, "optim.weight_decay", "a finite number >= 0")
    clip = OmegaConf.select(cfg, "optim.grad_clip")
    need(clip is None or (_number(clip) and clip >= 0), "optim.grad_clip", "null or a finite number >= 0")
    decay = OmegaConf.select(cfg, "ema.decay")
    need(_number(decay) and 0 <= decay < 1, "ema.decay", "a number in [0, 1)")
    seed = OmegaConf.select(cfg, "seed")
    need(_is_int(seed) and seed >= 0, "seed", "an integer >= 0")
    epochs = OmegaConf.select(cfg, "trainer.max_epochs")
    need(epochs in (-1, None), "trainer.max_epochs", "-1: the length of training is trainer.max_steps")
    precision = str(OmegaConf.select(cfg, "trainer.precision"))
    need(precision in PRECISION_NAMES, "trainer.precision",
         f"one of {', '.join(PRECISION_NAMES)}; float16 mixed precision is not supported, use bf16-mixed")
    max_time = OmegaConf.select(cfg, "trainer.max_time")
    need(max_time is None or bool(re.fullmatch(r"\d+:\d\d:\d\d:\d\d", str(max_time))), "trainer.max_time",
         "null or DD:HH:MM:SS, e.g. 00:00:06:00 for six minutes")
    x_clip = OmegaConf.select(cfg, "sample.x_clip")
    need(x_clip is None or x_clip in X_CLIP_NAMES, "sample.x_clip", f"null or one of {', '.join(X_CLIP_NAMES)}")
    scale = OmegaConf.select(cfg, "sample.scale")
    need(_is_int(scale) and scale >= 0, "sample.scale", "an integer >= 0 (0: automatic)")
    need(OmegaConf.select(cfg, "nonfinite.policy") in POLICIES, "nonfinite.policy", f"one of {', '.join(POLICIES)}")
    need(OmegaConf.select(cfg, "diffusion.parametrization") in PARAMETRIZATION_NAMES, "diffusion.parametrization",
         f"one of {', '.join(PARAMETRIZATION_NAMES)}")
    data_std = OmegaConf.select(cfg, "diffusion.data_std", default="fit")
    need(data_std == "fit" or (_number(data_std) and 0 < data_std < math.inf), "diffusion.data_std",
         "fit (per-coefficient statistics of the training images) or a number > 0")
    if problems:
        raise ValueError("invalid configuration: " + "; ".join(problems))


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _may_change(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in MAY_CHANGE_ON_RESUME)


def _same(a: Any, b: Any) -> bool:
    """Equal as configuration values: ``32 == "32"`` (Hydra parses the command line), ``20 == 20.0``."""
    if a == b:
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (str, int, float)) and isinstance(b, (str, int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        try:
            return float(a) == float(b)
        except ValueError:
            return str(a) == str(b)
    return False


@functools.cache
def _schema_defaults() -> dict[str, Any]:
    from nidiff.schema import TrainConfig

    return flatten(OmegaConf.to_container(OmegaConf.structured(TrainConfig), resolve=False))


def resume_differences(saved: Mapping, current: Mapping) -> list[str]:
    """``"key: saved X, now Y"`` for each field that differs and must not (sorted by key)."""
    old, new = flatten(saved), flatten(current)
    lines = []
    for key in sorted(set(old) | set(new)):
        if _may_change(key):
            continue
        if key not in old and _same(new[key], _schema_defaults().get(key, "<absent>")):
            continue  # a field added since the run was saved, at the default that it trained with
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if not _same(a, b):
            lines.append(f"{key}: saved {a!r}, now {b!r}")
    return lines
