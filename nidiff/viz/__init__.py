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

from __future__ import annotations

from nidiff.lazy import lazy_exports

# public name -> its module; imported on first use (PEP 562), so that ``nidiff viz --help`` answers
# without importing torch and matplotlib
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("Trajectory", "sample_grid_figure", "sample_with_trajectory", "trajectory_figure"),
                    "nidiff.viz.checkpoint"),
    **dict.fromkeys(("DEFAULT_TIMES", "forward_strip", "forward_tiles", "load_image"), "nidiff.viz.forward"),
    **dict.fromkeys(("Bands", "band_curves", "coefficient_bands", "logsnr_figure"), "nidiff.viz.logsnr"),
    **dict.fromkeys(("check_writable", "save_figure"), "nidiff.viz.output"),
    **dict.fromkeys(("FIGURE1", "Process", "build_process", "parse_process"), "nidiff.viz.process"),
    "strip_figure": "nidiff.viz.strip",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
