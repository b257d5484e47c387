"""``nidiff compare``: a Hydra multirun of :func:`~nidiff.compare.job.run_job`, then the tables and plots.

The command line is checked and expanded first (:mod:`nidiff.compare.plan`), the FID reference is
prepared once (:mod:`nidiff.compare.reference`), then Hydra's sweeper and launcher run one job per
configuration into ``compare.dir``, and the results of this command's jobs become
``results.csv``, ``results.md`` and ``plots/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nidiff.compare.options import CURVE_METRICS, METRICS

__all__ = ["HELP", "main"]

HELP = """usage: nidiff compare recipe=NAME [key=v1,v2,... ...] compare.dir=DIR [compare.KEY=VALUE ...]

Trains (or loads, or resumes) one model per configuration of a grid, measures every one with the
same protocol and writes DIR/results.md, DIR/results.csv and DIR/plots/*.png. Comma lists sweep,
as with nidiff train -m; a rerun of the same command keeps finished jobs and resumes the others.

  recipe=NAME, basis=A,B, schedule=NAME, key=v1,v2   the grid: any nidiff train override, e.g.
                     basis=dct,identity schedule.sigma_blur_max=0,10 trainer.max_steps=100000
  compare.dir=DIR    required: DIR/<swept overrides>/ is each job's run directory
  compare.metrics=[...]        measured at the last checkpoint [all of them]:
                               {metrics}
  compare.curve_metrics=[...]  also measured at every step_XXXXXXX.ckpt [test_loss]:
                               {curve}
  compare.fid_samples=N        samples for FID and KID [50000]; 0 skips both
  compare.bpd_images=N         test images for bits/dim [10000] (compare.n_t=64 times each); 0 skips it
  compare.loss_images=N        test images for the held-out loss [10000]; 0 skips it
  compare.ref=FILE.npz         reference statistics [DIR/fid_ref.npz, computed once from the
                               training split, compare.ref_images=N of it]
  compare.sampler=NAME compare.steps=N compare.grid=uniform|logsnr compare.x_clip=null|static|dynamic
  compare.batch_size=N compare.seed=N compare.device=cuda|cpu compare.weights=FILE

All options, with their defaults: nidiff/conf/compare.yaml; the protocol: docs/compare.md.
"""

def main(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(HELP.format(metrics=" ".join(METRICS), curve=" ".join(CURVE_METRICS)))
        return 0
    from nidiff.compare.naming import user_key
    from nidiff.compare.plan import make_plan

    plan = make_plan(args)
    options = plan.options
    sweeping = f"sweeping {', '.join(map(user_key, plan.swept))}" if plan.swept else "sweeping nothing"
    print(f"nidiff compare: {len(plan.jobs)} configuration(s), {sweeping}, into {options.dir}: "
          f"{'; '.join(plan.names)}", flush=True)
    if options.needs_reference:
        _prepare_reference(plan)
    failed = _run_sweep(plan)
    return _report(plan, failed)


def _prepare_reference(plan) -> None:
    """Compute (or check) the shared reference before the first job: a missing Inception file or
    data set is reported before any training."""
    from nidiff.compare.reference import prepare_reference
    from nidiff.device import pick_device
    from nidiff.metrics import InceptionFeatures

    options = plan.options
    extractor = InceptionFeatures(options.weights, batch_size=options.batch_size).to(pick_device(options.device))
    prepare_reference(plan.configs[0].data, options, extractor)


def _run_sweep(plan) -> list[str]:
    """Hydra's multirun over the plan's overrides; returns the jobs that stopped on bad input."""
    import hydra
    from omegaconf import DictConfig

    from nidiff.compare.job import run_job
    from nidiff.compare.naming import register_resolver
    from nidiff.config import conf_dir
    from nidiff.errors import bad_input, message, run_failures

    failed: list[str] = []

    def task(cfg: DictConfig) -> None:
        try:
            run_job(cfg)
        except (*bad_input(), *run_failures()) as err:  # this job's input or run: say why, go on with the others
            from hydra.core.hydra_config import HydraConfig

            name = Path(HydraConfig.get().runtime.output_dir).name
            print(f"nidiff compare: error: {name}: {message(err)}", file=sys.stderr, flush=True)
            failed.append(name)

    register_resolver()
    argv = sys.argv
    sys.argv = ["nidiff compare", *plan.hydra_argv()]
    try:
        hydra.main(config_path=str(conf_dir()), config_name="compare", version_base="1.3")(task)()
    except SystemExit as stop:  # Hydra exits after the sweep when a job raised an unexpected error
        if stop.code:
            failed.append("(a job that raised an exception, see above)")
    finally:
        sys.argv = argv
    return failed


def _report(plan, failed: list[str]) -> int:
    from nidiff.compare.job import result_config
    from nidiff.compare.plots import write_plots
    from nidiff.compare.report import load_results, write_tables

    directory = plan.options.dir
    results = load_results(directory, plan.names, [result_config(cfg) for cfg in plan.configs])
    plots = write_plots(directory, results)
    missing = [name for name in plan.names if name not in {r["job"] for r in results}]
    tables = write_tables(directory, results, plots, missing)
    print(f"nidiff compare: {len(results)} of {len(plan.names)} configurations in "
          f"{', '.join(map(str, tables))}; plots in {directory / 'plots'}", flush=True)
    if failed:
        print(f"nidiff compare: error: {len(failed)} job(s) failed: {'; '.join(failed)}; fix them and run the "
              f"same command again (finished jobs are kept)", file=sys.stderr)
        return 1
    return 0
