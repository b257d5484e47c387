"""``nidiff compare``: one model per configuration of a grid, each measured the same way, one table.

A Hydra multirun (the sweeper enumerates the grid, the launcher runs the jobs, each job trains
with :func:`nidiff.training.run.train`), then tables and plots; ``docs/compare.md`` has the
protocol and the paper's tables 3 and 4 as commands.

| module        | what                                                                         |
| ------------- | ---------------------------------------------------------------------------- |
| ``options``   | the ``compare:`` block (``nidiff/conf/compare.yaml``): metric names, sizes   |
| ``plan``      | the command line checked and expanded into jobs before any work              |
| ``naming``    | job directory names from the swept overrides                                 |
| ``reference`` | the shared FID reference, computed once per compare directory                |
| ``job``       | the task function: train, resume or load, then measure every checkpoint      |
| ``evaluate``  | the metrics of one checkpoint: held-out loss, bits/dim, FID, KID, speed      |
| ``logs``      | the training log: loss and images per second against the step                |
| ``report``    | ``results.csv`` and ``results.md``                                           |
| ``plots``     | training loss and metrics against the step, one line per configuration       |
| ``cli``       | ``nidiff compare``                                                           |
"""

from nidiff.compare.options import CURVE_METRICS, METRICS, CompareOptions

__all__ = ["CURVE_METRICS", "METRICS", "CompareOptions"]
