"""Trained runs: load one and sample from it, in three lines.

    import nidiff
    run = nidiff.load_run("outputs/quickstart/RUN")            # newest good checkpoint, EMA weights
    images = run.sample(16, sampler="ddim", steps=50, seed=0)  # float32 [16, C, H, W] in [0, 1], on CPU

A run directory of ``nidiff train`` holds ``checkpoints/*.ckpt`` (each with the configuration that
wrote it) and ``.hydra/config.yaml``. :func:`load_run` is the one loader of ``nidiff sample``,
``eval``, ``viz`` and ``compare``. What it reads is data: checkpoints load with
``weights_only=True`` and must match their SHA-256 digest (:mod:`nidiff.checkpoints`); the
configuration is checked for anything naming code and every component is rebuilt from its
registered name and checked parameters (:mod:`nidiff.build`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nidiff.build import build_diffusion, build_network, migrate_config
from nidiff.checkpoints import safe_load, scan
from nidiff.device import pick_device
from nidiff.diffusion import GaussianDiffusion
from nidiff.noise import per_sample_generators
from nidiff.sampling.plan import SamplingPlan, draw

__all__ = ["Run", "load_run", "resolve_checkpoint"]

WEIGHTS = ("ema", "net")


@dataclass
class Run:
    """A trained model: its diffusion, its network in eval mode, and where they came from."""

    config: dict[str, Any]          # the configuration that wrote the checkpoint (plain, checked)
    diffusion: GaussianDiffusion    # basis + schedule (+ fitted state), on ``device``
    net: nn.Module                  # the EMA network (weights="ema") or the raw one, eval mode
    step: int                       # the checkpoint's global step
    checkpoint: Path                # the checkpoint file
    directory: Path                 # the run directory
    weights: str = "ema"            # "ema" or "net"

    @property
    def device(self) -> torch.device:
        return self.diffusion.lam.device

    @property
    def name(self) -> str:
        return str(self.config.get("name", "run"))

    def describe(self) -> str:
        """``"quickstart: dct + blurring, step 400, EMA weights"``, for titles and logs."""
        which = "EMA" if self.weights == "ema" else "raw"
        return (f"{self.name}: {self.config['basis']['name']} + {self.config['schedule']['name']}, step {self.step}, "
                f"{which} weights")

    def plan(
        self,
        sampler: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
        x_clip: str | tuple[float, float] | None = None,
        **options: Any,
    ) -> SamplingPlan:
        """A sampling plan. What is not given (``None``) comes from the run's own ``sample``
        settings, those of its training grids; the saved options only with the saved sampler.
        ``x_clip="none"`` asks for no clipping whatever the run used."""
        saved = self.config.get("sample") or {}
        same = sampler is None or sampler == saved.get("sampler", "ancestral")
        if x_clip is None:
            x_clip = saved.get("x_clip")
        return SamplingPlan(
            sampler=sampler if sampler is not None else saved.get("sampler", "ancestral"),
            steps=steps if steps is not None else saved.get("steps", 1000),
            grid=grid if grid is not None else saved.get("grid", "uniform"),
            options=options or (dict(saved.get("options") or {}) if same else {}),
            x_clip=None if x_clip == "none" else x_clip,
        )

    @torch.no_grad()
    def sample(
        self,
        n: int | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int = 0,
        grid: str | None = None,
        x_clip: str | tuple[float, float] | None = None,
        indices: list[int] | None = None,
        batch_size: int = 256,
        bf16: bool = False,
        **options: Any,
    ) -> Tensor:
        """Images ``float32 [n, C, H, W]`` in [0, 1], on the CPU.

        Image ``i`` is drawn from its own generator seeded with ``(seed, i)`` (prior and every step's
        noise), so the result does not depend on the batch size, and image ``i`` here equals image
        ``i`` of ``nidiff sample --seed SEED`` with the same sampling settings. ``indices`` draws
        those images instead of ``0 .. n-1``. ``sampler``, ``steps``, ``grid``, ``x_clip`` and the
        sampler's ``options`` (e.g. ``eta=0.5``) default, here and in ``nidiff sample``, to the run's
        own sample settings (those of its training grids); see :meth:`plan`.
        """
        if indices is None:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"n must be a positive integer, got {n!r}")
            indices = list(range(n))
        elif n is not None and n != len(indices):
            raise ValueError(f"n={n} but {len(indices)} indices were given; give one of them")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        plan = self.plan(sampler, steps, grid, x_clip, **options)
        out = []
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            out.append(self.draw(plan, chunk, seed, bf16).float().cpu())
        return ((torch.cat(out).clamp(-1.0, 1.0) + 1.0) / 2.0).contiguous()

    def draw(self, plan: SamplingPlan, indices: list[int], seed: int = 0, bf16: bool = False) -> Tensor:
        """Images ``indices`` in the model's space (``[-1, 1]`` for data in range, unclipped), on the device."""
        generators = per_sample_generators(seed, indices, self.device)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)
        with autocast:
            return draw(self.diffusion, self.net, plan, len(indices), generators, self.device)

    def to(self, device: torch.device | str) -> Run:
        self.diffusion.to(device)
        self.net.to(device)
        return self


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(run_dir, checkpoint)`` from a run directory (its newest good checkpoint) or a ``.ckpt`` file."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints"
        found, damaged = scan(folder)
        if found is None:
            what = f" ({len(damaged)} damaged: {', '.join(p.name for p in damaged)})" if damaged else ""
            raise FileNotFoundError(f"no loadable checkpoint in {folder}{what}: is {path} a nidiff run directory?")
        for bad in damaged:
            print(f"nidiff: skipped {bad}: truncated or damaged; using {found.name}", flush=True)
        return path, found
    if not path.is_file():
        raise FileNotFoundError(f"no run directory or checkpoint at {path}")
    return path.parent.parent, path  # RUN/checkpoints/x.ckpt


def load_run(path: str | os.PathLike, device: str | torch.device | None = "cpu", weights: str = "ema") -> Run:
    """Load a run directory (its newest good checkpoint) or a ``.ckpt`` file in one.

    ``weights``: ``"ema"`` (the averaged network, the one to sample) or ``"net"`` (the raw one).
    ``device``: where to put the model; ``None`` picks the GPU when there is one.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    device = pick_device(device)
    run_dir, ckpt = resolve_checkpoint(path)
    state = safe_load(ckpt)
    config = _run_config(state, run_dir, ckpt)
    tensors = state.get("state_dict", {})
    if not isinstance(tensors, Mapping):
        raise ValueError(f"checkpoint {ckpt} has no state_dict of tensors")
    diffusion = build_diffusion(config, state=_sub_state(tensors, "diffusion."))
    net = build_network(config)
    _load_weights(net, _sub_state(tensors, "ema.module." if weights == "ema" else "net."), ckpt)
    step = state.get("global_step", -1)
    return Run(config, diffusion.to(device), net.to(device).eval(), int(step) if isinstance(step, int) else -1,
               ckpt, run_dir, weights)


def _run_config(state: Mapping[str, Any], run_dir: Path, ckpt: Path) -> dict[str, Any]:
    """The configuration that wrote ``ckpt``: the one it carries, else the run's ``.hydra/config.yaml``."""
    if "config" in state:
        return migrate_config(state["config"])
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(f"{ckpt} carries no configuration and {saved} is missing: cannot rebuild the model")
    from omegaconf import OmegaConf  # a safe YAML loader; interpolations resolve to data only

    return migrate_config(OmegaConf.to_container(OmegaConf.load(saved), resolve=True))


def _sub_state(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _load_weights(net: nn.Module, weights: Mapping[str, Tensor], ckpt: Path) -> None:
    own = net.state_dict()
    missing, unexpected = set(own) - set(weights), set(weights) - set(own)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {ckpt} does not match its network: missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]} (was it written by a different configuration?)"
        )
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {ckpt} does not match its network: {str(err).splitlines()[0]}") from None
