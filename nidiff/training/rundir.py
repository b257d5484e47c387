"""A run directory: whether it holds a run, one writer at a time, and what a failed start left.

Lock: the process that trains a run holds an exclusive ``fcntl`` lock on ``RUN/.lock`` (which
holds its pid) for its whole life. A second ``nidiff train`` (or ``resume=``, or ``compare`` job)
on the same directory is refused at once, naming the holder. The operating system releases the
lock when the holder exits, however it exits (a SIGKILL included), so no stale lock is ever left.
DDP processes of rank > 0 take no lock: rank 0 holds it for the run. On a platform without
``fcntl`` no lock is taken.

A directory that holds a checkpoint holds a run: a new run there is refused (resume it instead).
One whose start failed before its first checkpoint may be reused: what that start left (logs,
sample grids, its Hydra record) is moved to ``failed_starts/<time>/`` first, so nothing is lost.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from nidiff.errors import RunLockedError

__all__ = ["LOCK_FILE", "RunLockedError", "existing_run", "lock_run_dir", "release_all", "release_run_dir",
           "set_aside"]

LOCK_FILE = ".lock"
_HELD: dict[Path, int] = {}  # run directory -> open descriptor of its lock file, for this process
_LEFTOVERS = (".hydra", "logs", "tb", "samples", "checkpoints", "eval", "result.json")


def existing_run(run_dir: Path) -> list[Path]:
    """The checkpoints in ``run_dir`` (empty: no run a new one would overwrite)."""
    return sorted((Path(run_dir) / "checkpoints").glob("*.ckpt"))


def lock_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` if needed and hold its lock until this process exits (idempotent)."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _HELD or os.environ.get("LOCAL_RANK", "0") != "0":
        return
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): one writer per run is up to the user
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunLockedError(
            f"{run_dir} is in use by another nidiff process (pid {holder}): one process writes a run at a "
            f"time. Wait for it to finish, or stop it, then resume={run_dir}"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[run_dir] = fd


def release_run_dir(run_dir: Path) -> None:
    """Give up this process's lock on ``run_dir`` (a command that trained in-process is done)."""
    fd = _HELD.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


def release_all() -> None:
    """Give up every run-directory lock this process holds."""
    for run_dir in list(_HELD):
        release_run_dir(run_dir)


def set_aside(run_dir: Path, into: str = "failed_starts", keep: tuple[str, ...] = ()) -> Path | None:
    """Move what a start that left no loadable checkpoint wrote into ``run_dir/into/<time>/``
    (except the entries named in ``keep``)."""
    found = [run_dir / name for name in _LEFTOVERS if name not in keep and (run_dir / name).exists()]
    if not found:
        return None
    target = run_dir / into / time.strftime("%Y-%m-%d_%H-%M-%S")
    n = 0
    while target.exists():  # two set-asides in one second
        n += 1
        target = target.with_name(f"{target.name.split('.')[0]}.{n}")
    target.mkdir(parents=True)
    for path in found:
        path.rename(target / path.name)
    return target
