"""Job directory names and labels: the swept overrides of a job, ``basis=dct,schedule.sigma_blur_max=10``.

Hydra names a job (``hydra.job.override_dirname``) from its overrides, sorted, less
``hydra.job.config.override_dirname.exclude_keys``. ``nidiff compare`` excludes every override
that does not sweep, so a name holds exactly what varies, and the same command finds the same
directories when it runs again. The resolver ``nidiff_job_dir`` (used by ``hydra.sweep.subdir``
in ``compare.yaml``) turns Hydra's folder names of the config groups back into the command line's
(``bases=dct`` -> ``basis=dct``) and keeps the name one path component.
"""

from __future__ import annotations

import re

from omegaconf import OmegaConf

from nidiff.config import GROUPS

__all__ = ["RESOLVER", "SINGLE", "job_dirname", "overrides_dict", "register_resolver", "user_key"]

RESOLVER = "nidiff_job_dir"
SINGLE = "run"  # the job directory of a compare that sweeps nothing
_FOLDER_TO_NAME = {folder: name for name, folder in GROUPS.items()}


def user_key(key: str) -> str:
    """The command line's name of an override key: ``bases`` -> ``basis``, others unchanged."""
    return _FOLDER_TO_NAME.get(key, key)


def job_dirname(override_dirname: str) -> str:
    """``bases=dct,schedule.sigma_blur_max=10`` -> ``basis=dct,schedule.sigma_blur_max=10``;
    ``""`` (nothing swept) -> ``run``; path separators become ``_``."""
    if not override_dirname:
        return SINGLE
    pattern = rf"(^|,)({'|'.join(map(re.escape, _FOLDER_TO_NAME))})="
    name = re.sub(pattern, lambda m: f"{m.group(1)}{user_key(m.group(2))}=", override_dirname)
    return name.replace("/", "_").replace("\\", "_")


def overrides_dict(lines: list[str]) -> dict[str, str]:
    """A job's task overrides as ``{key: value}`` in the command line's names, less ``compare.*``."""
    out: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition("=")
        key = user_key(key.lstrip("+~"))
        if not key.startswith("compare."):
            out[key] = value
    return out


def register_resolver() -> None:
    """Make ``${nidiff_job_dir:...}`` known to OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, job_dirname)
