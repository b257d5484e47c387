"""Figures of diffusion processes and of trained models, as PNG files (matplotlib, Agg canvas).

| module        | figure                                                                   |
| ------------- | ------------------------------------------------------------------------ |
| ``forward``   | ``z_t ~ q(z_t | x)`` of one image over t, one row per process (figure 1) |
| ``logsnr``    | log-SNR and ``alpha_t`` per eigenvalue band against t                    |
| ``checkpoint``| a sample grid and denoising trajectories of a trained run                |
| ``strip``     | the table of image tiles that ``forward`` and ``checkpoint`` draw        |
| ``process``   | a labelled (basis, schedule) pair and its command-line spelling          |
| ``output``    | atomic PNG writing that never replaces a file unless asked               |

The command line is ``nidiff viz forward|logsnr|samples`` (:mod:`nidiff.viz.cli`).
"""

from nidiff.viz.checkpoint import (
    Trajectory,
    sample_grid_figure,
    sample_with_trajectory,
    trajectory_figure,
)
from nidiff.viz.forward import DEFAULT_TIMES, forward_strip, forward_tiles, load_image
from nidiff.viz.logsnr import Bands, band_curves, coefficient_bands, logsnr_figure
from nidiff.viz.output import check_writable, save_figure
from nidiff.viz.process import FIGURE1, Process, build_process, parse_process
from nidiff.viz.strip import strip_figure

__all__ = [
    "DEFAULT_TIMES",
    "FIGURE1",
    "Bands",
    "Process",
    "Trajectory",
    "band_curves",
    "build_process",
    "check_writable",
    "coefficient_bands",
    "forward_strip",
    "forward_tiles",
    "load_image",
    "logsnr_figure",
    "parse_process",
    "sample_grid_figure",
    "sample_with_trajectory",
    "save_figure",
    "strip_figure",
    "trajectory_figure",
]
