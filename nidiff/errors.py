"""What counts as a user's mistake, and how it is said: one line, no traceback.

Every command catches :func:`bad_input` errors around its work and prints them as
``nidiff <command>: error: <message>`` with exit status 2; failures during work that are not the
input's fault but need no traceback either (:func:`run_failures`: training stopped on non-finite
values, a full disk) exit with status 1.
"""

from __future__ import annotations

__all__ = [
    "CorruptCheckpointError", "DiskFullError", "NonFiniteError", "RunLockedError", "bad_input", "message",
    "run_failures",
]


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (truncated, damaged, or not a checkpoint)."""


class DiskFullError(OSError):
    """No space left to write a checkpoint; nothing already on disk was changed."""


class NonFiniteError(RuntimeError):
    """Training stopped: non-finite losses or gradients past the policy's limit, or non-finite weights."""


class RunLockedError(RuntimeError):
    """Another live process is writing to this run directory."""


def bad_input() -> tuple[type[BaseException], ...]:
    """Exception types that mean the input (arguments, configuration, files given) is wrong."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError, ImportError, KeyError, CorruptCheckpointError, RunLockedError, HydraException,
            OmegaConfBaseException)


def run_failures() -> tuple[type[BaseException], ...]:
    """Exception types that stop a run for a reason reported in one line (not a bug)."""
    return (NonFiniteError, DiskFullError)


def message(err: BaseException) -> str:
    """One line: the innermost cause's message, with the config key it concerns when there is one."""
    from omegaconf.errors import OmegaConfBaseException

    cause = err
    while _wraps(cause):  # Hydra's composition error around OmegaConf's: say the inner one
        cause = cause.__cause__
    text = str(cause.args[0] if isinstance(cause, KeyError) and cause.args else cause).strip()
    key = getattr(cause, "full_key", None) if isinstance(cause, OmegaConfBaseException) else None
    first = text.splitlines()[0] if text else type(cause).__name__
    if key and key not in first:
        first = f"{key}: {first}"
    rest = [line.strip() for line in text.splitlines()[1:] if line.strip() and not line.strip().startswith(
        ("full_key", "object_type", "reference_type"))]
    return "; ".join([first, *rest])


def _wraps(err: BaseException) -> bool:
    from hydra.errors import HydraException

    return isinstance(err, HydraException) and err.__cause__ is not None
