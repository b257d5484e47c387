"""Load a trained model from a run directory or a checkpoint: the diffusion and the EMA network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nidiff.checkpoints import newest_loadable, safe_load
from nidiff.diffusion import GaussianDiffusion

__all__ = ["LoadedRun", "load_run", "resolve_checkpoint"]


@dataclass
class LoadedRun:
    cfg: DictConfig           # the run's composed configuration
    diffusion: GaussianDiffusion
    net: nn.Module            # the EMA network (or the raw one with ema=False), in eval mode
    step: int                 # the checkpoint's global step
    checkpoint: Path


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """``(run_dir, checkpoint)`` from a run directory (its newest loadable checkpoint) or a file."""
    path = Path(path)
    if path.is_dir():
        ckpt = newest_loadable(path / "checkpoints")
        if ckpt is None:
            raise FileNotFoundError(f"no loadable checkpoint in {path / 'checkpoints'}: is {path} a nidiff run directory?")
        return path, ckpt
    if not path.is_file():
        raise FileNotFoundError(f"no run directory or checkpoint at {path}")
    return path.parent.parent, path  # RUN/checkpoints/x.ckpt


def _sub_state(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_run(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> LoadedRun:
    """Rebuild the diffusion process and the network of a run and load a checkpoint into them."""
    run_dir, ckpt = resolve_checkpoint(path)
    state = safe_load(ckpt)
    config = run_dir / ".hydra" / "config.yaml"
    if "config" in state:  # the configuration that wrote these weights
        cfg, config = OmegaConf.create(state["config"]), ckpt
    elif config.is_file():
        cfg = OmegaConf.load(config)
    else:
        raise FileNotFoundError(f"{config} is missing: the checkpoint's run directory must hold its .hydra/config.yaml")
    weights = state.get("state_dict", {})
    basis = instantiate(cfg.basis)
    basis_state = _sub_state(weights, "diffusion.basis.")
    if basis_state:  # a data-driven basis (PCA) travels in the checkpoint
        basis.load_state_dict(basis_state)
    diffusion = GaussianDiffusion(basis, instantiate(cfg.schedule), parametrization=cfg.diffusion.parametrization)
    net = instantiate(cfg.net)
    net_state = _sub_state(weights, "ema.module." if ema else "net.")
    missing, unexpected = set(net.state_dict()) - set(net_state), set(net_state) - set(net.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {ckpt} does not match the network of {config}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]} (was it written by a different configuration?)"
        )
    try:
        net.load_state_dict(net_state)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {ckpt} does not match the network of {config}: {err}") from None
    return LoadedRun(cfg, diffusion.to(device), net.to(device).eval(), int(state.get("global_step", -1)), ckpt)
