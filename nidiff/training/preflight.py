"""Every check of ``nidiff train`` that can fail on bad input, run before any file is written.

In order, from cheap to dear:

1. the configuration's ranges and cross-field rules (:func:`~nidiff.training.validate.validate_config`,
   no torch; types were checked when the configuration was composed);
2. the components: every name registered, every parameter accepted by its component, the sample
   grids' sampler and options;
3. the diffusion is built (schedule values, the SNR check of eq. 16); a basis fitted from data is
   only checked, since fitting needs the data; for images of more than 256x256 pixels this comes
   after the memory check, since the basis itself then takes memory;
4. memory: the network is built on the ``meta`` device (no memory) and run once on a batch of the
   training size; the activations it keeps for the backward pass, plus the weights, their
   gradients, Adam's moments and the EMA copy, must fit in the device's memory;
5. the data: the files are there and the first readable image decodes (:func:`nidiff.data.probe`);
6. the output: the run directory can be created and written.

Only then does ``nidiff train`` lock the run directory and start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nidiff.training.validate import validate_config

__all__ = ["available_memory", "preflight", "training_memory"]

GB = 1024**3
_BUILD_LIMIT = 3 * 256 * 256  # coefficients of an image whose basis is cheap to build before the memory check


def _coefficients(tree: Mapping[str, Any]) -> int:
    c, h, w = tree["image_shape"]
    return int(c) * int(h) * int(w)


def preflight(cfg: DictConfig, run_dir: Path | None) -> str:
    """Raise ``ValueError``/``FileNotFoundError``/``ImportError``/``PermissionError`` for bad input;
    returns what data will be read, in words."""
    validate_config(cfg)
    tree: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]

    from nidiff.build import build_diffusion, check_component
    from nidiff.fitting import Fitted
    from nidiff.registries import BASES, NETS, SCHEDULES
    from nidiff.sampling import SamplingPlan

    basis_factory, _ = check_component(BASES, tree["basis"], "basis")
    check_component(SCHEDULES, tree["schedule"], "schedule")
    check_component(NETS, tree["net"], "net")
    SamplingPlan.from_mapping(tree["sample"])
    # basis and schedule together (SNR monotone per coefficient); the parametrization's name and
    # data_std are checked by validate_config, and precond's statistics need the data
    probe = {**tree, "diffusion": {"parametrization": "eps"}}
    if not (isinstance(basis_factory, type) and issubclass(basis_factory, Fitted)):
        if _coefficients(tree) <= _BUILD_LIMIT:  # a larger basis is built after the memory check
            build_diffusion(probe)
    if tree.get("check_memory", True):
        _check_memory(tree)
    if not (isinstance(basis_factory, type) and issubclass(basis_factory, Fitted)):
        if _coefficients(tree) > _BUILD_LIMIT:
            build_diffusion(probe)
    data = _probe_data(tree["data"])
    if run_dir is not None:
        _check_writable(run_dir)
    return data


def training_memory(net_config: Mapping[str, Any], image_shape: list[int], batch: int, bf16: bool = False) -> int:
    """Bytes one training step needs, estimated: the activations every layer of the network keeps
    for the backward pass at this batch and image size, and five copies of the weights (weights,
    gradients, Adam's two moments, the EMA)."""
    import torch

    from nidiff.build import build_network

    with torch.device("meta"):
        net = build_network({"net": net_config})
    elements = 0

    def count(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        nonlocal elements
        if isinstance(output, torch.Tensor):
            elements += output.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net(torch.empty(batch, *image_shape, device="meta"), torch.empty(batch, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    parameters = sum(p.numel() for p in net.parameters())
    return elements * (2 if bf16 else 4) + 5 * 4 * parameters


def available_memory(accelerator: str) -> tuple[int, str]:
    """``(bytes, where)``: the GPU's total memory when training will run on one, else the memory
    this machine has available."""
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.mem_get_info()[1], f"GPU {torch.cuda.get_device_name()}"
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024, "this machine's available memory"
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's memory"


def _check_memory(tree: Mapping[str, Any]) -> None:
    shape, batch = list(tree["image_shape"]), int(tree["data"]["batch_size"])
    need = training_memory(tree["net"], shape, batch, bf16="bf16" in str(tree["trainer"]["precision"]))
    have, where = available_memory(str(tree["trainer"]["accelerator"]))
    if need > have:
        raise ValueError(
            f"a training step at image_shape={shape} and data.batch_size={batch} with this network needs about "
            f"{need / GB:.1f} GiB (activations kept for the backward pass, weights, gradients, Adam and EMA), "
            f"more than the {have / GB:.1f} GiB of {where}: use smaller images, a smaller batch or a smaller "
            f"network (net=...), or check_memory=false to try anyway"
        )


def _probe_data(data: Mapping[str, Any]) -> str:
    from nidiff.data.cifar10 import default_root
    from nidiff.data.sources import probe

    root = Path(data["root"]).expanduser() if data.get("root") else default_root()
    path = Path(data["path"]).expanduser() if data.get("path") else None
    return probe(data["dataset"], root=root, path=path, image_size=data["image_size"], split=data["split"],
                 download=data["download"], on_error=data["on_error"])


def _check_writable(run_dir: Path) -> None:
    """The nearest existing folder of ``run_dir`` must be a writable directory."""
    existing = Path(run_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot create the run directory {run_dir}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write the run directory {run_dir}: {existing} is not writable; choose "
                              f"another with hydra.run.dir=DIR")
