"""Pictures from a trained model: a sample grid and denoising trajectories (algorithm 1).

A run directory of ``nidiff train`` holds ``.hydra/config.yaml`` (the composed configuration) and
``checkpoints/*.ckpt`` (Lightning; the ``state_dict`` has ``net.*``, ``ema.module.*`` and, for a
basis fitted from data, ``diffusion.basis.*``). The model is rebuilt and loaded by the same code as
``nidiff sample`` and ``nidiff eval`` use, :func:`nidiff.load_run`.

The recorded ``x_hat`` is the network's own prediction (eq. 22), before any ``x_clip``: where
``alpha_t`` underflows (heat dissipation at high frequencies) it is not finite, and the figures
show such pixels as mid-grey.

| paper (algorithm 1, eq. 22)                      | code                                     |
| ------------------------------------------------ | ---------------------------------------- |
| ``z_t``, the sampler's state at time ``t``       | the model's input, recorded per step     |
| ``x_hat = P (u_t - sigma_t u_eps_hat) / alpha_t``| ``GaussianDiffusion.predict``            |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from nidiff.images import make_grid
from nidiff.viz.output import new_figure
from nidiff.viz.strip import strip_figure

if TYPE_CHECKING:
    from nidiff.runs import Run
    from nidiff.sampling import SamplingPlan

__all__ = ["Trajectory", "sample_with_trajectory", "sample_grid_figure", "trajectory_figure"]


@dataclass
class Trajectory:
    """``times [K]``; ``z [K, B, C, H, W]``: the state entering each recorded step; ``x_hat``
    ``[K, B, C, H, W]``: the prediction made from it."""

    times: list[float]
    z: Tensor
    x_hat: Tensor


@torch.no_grad()
def sample_with_trajectory(
    run: Run,
    plan: SamplingPlan,                      # sampler, options, steps, grid, x_clip
    n: int = 16,                             # images to draw
    seed: int = 0,                           # seeds the prior draw and every step's noise
    keep: int = 4,                           # samples whose trajectory is recorded: the first ones
    columns: int = 6,                        # recorded steps, spread from t = 1 to the last step
) -> tuple[Tensor, Trajectory]:
    """Sample ``n`` images ``[n, C, H, W]`` following ``plan``, recording ``z_t`` and ``x_hat`` of the
    first ``keep`` samples at the start of ``columns`` steps (the sampler's ``callback`` marks them)."""
    from nidiff.sampling import draw

    for name, value in (("n", n), ("keep", keep), ("columns", columns)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    steps = plan.steps
    diffusion, device = run.diffusion, run.device
    chosen = set(np.unique(np.linspace(0, steps - 1, min(columns, steps)).round().astype(int)).tolist())
    entering: dict[str, Tensor] = {}  # the first evaluation of the current step

    def model(z_t: Tensor, t: Tensor) -> Tensor:
        out = run.net(z_t, t)
        if not entering:
            entering.update(z=z_t[:keep], t=t[:keep], out=out[:keep])
        return out

    times, zs, x_hats = [], [], []

    def callback(info: dict) -> None:
        if info["i"] in chosen:
            times.append(info["t"])
            zs.append(entering["z"].cpu())
            x_hats.append(diffusion.predict(entering["z"], entering["t"], entering["out"])[0].cpu())
        entering.clear()

    g = torch.Generator(device=device).manual_seed(seed)
    x = draw(diffusion, model, plan, n, generator=g, device=device, callback=callback)
    return x.cpu(), Trajectory(times, torch.stack(zs), torch.stack(x_hats))


def sample_grid_figure(x: Tensor, title: str, caption: str | None = None) -> Figure:
    """The samples ``[n, C, H, W]`` (in [-1, 1]) as one titled grid."""
    grid = make_grid(x.clamp(-1, 1))  # [C, H', W'] uint8
    image = grid.permute(1, 2, 0).expand(-1, -1, 3).numpy()
    side = min(9.0, max(5.0, image.shape[1] / 40))  # inches; wide enough for a two-line title
    fig = new_figure(side, (side - 0.3) * image.shape[0] / image.shape[1] + 0.7 + (0.25 if caption else 0.0))
    ax = fig.subplots()
    ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=11)
    if caption:
        fig.supxlabel(caption, fontsize=8, color="0.3")
    return fig


def trajectory_figure(traj: Trajectory, title: str, caption: str | None = None) -> Figure:
    """Two rows per sample, ``z_t`` and ``x_hat``, one column per recorded step, labelled with ``t``."""
    k, b = traj.z.shape[:2]
    rows = torch.stack([traj.z, traj.x_hat], dim=1)  # [K, 2, B, C, H, W]
    tiles = rows.permute(2, 1, 0, 3, 4, 5).reshape(2 * b, k, *traj.z.shape[2:])  # [2B, K, C, H, W]
    labels = [lab for i in range(b) for lab in (f"sample {i + 1}: $z_t$", r"$\hat{x}$ predicted")]
    return strip_figure(tiles, [f"t = {t:.3g}" for t in traj.times], labels, title=title, caption=caption)
