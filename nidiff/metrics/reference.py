"""Reference statistics for FID as ``.npz`` files that carry the protocol they were computed under.

A file holds ``mu`` (float64 ``[D]``) and ``sigma`` (float64 ``[D, D]``), the names pytorch-fid and
TTUR use, so those tools read it too; optionally ``features`` (float32 ``[N, D]``, for KID); and
``protocol``, a JSON object with the fields of :data:`PROTOCOL_FIELDS`:

| field              | meaning                                                        |
| ------------------ | -------------------------------------------------------------- |
| ``dataset``        | dataset name, e.g. ``"cifar10"``                               |
| ``split``          | ``"train"`` for the paper's FID (50,000 samples vs train set)  |
| ``num_images``     | images the statistics were computed from (filled in)           |
| ``dataset_path``   | where the images were read from (may be ``""``)                |
| ``network``        | feature network, from ``InceptionFeatures.protocol``           |
| ``weights_sha256`` | SHA-256 of the network's weights file                          |
| ``resize``         | resize method, e.g. ``"tf1-bilinear-299"``                     |
| ``nidiff_version`` | nidiff version that wrote the file (filled in)                 |

In a metric (:class:`~nidiff.metrics.FID`, :class:`~nidiff.metrics.KID`) a reference is the real
side of the state: ``mu``, ``sigma`` and ``num_images`` become FID's sums, ``features`` KID's real
features. In a distributed run only the first process holds it (:func:`holds_reference`), since the
synchronisation adds up (FID) or gathers (KID) the states of all processes.

Files are written atomically (a temporary file beside the target, then a rename) and never replace
an existing file unless ``overwrite=True``. A file written by nidiff also holds ``sha256``, a digest
of its other arrays, checked when it is read: a damaged file is refused rather than compared
against. Files are read with ``allow_pickle=False``: a file holding Python objects is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import nidiff
from nidiff.atomic import atomic_write

__all__ = [
    "PROTOCOL_FIELDS",
    "ReferenceStatistics",
    "check_protocol",
    "holds_reference",
    "load_reference",
    "save_reference",
]

PROTOCOL_FIELDS: tuple[str, ...] = (
    "dataset", "split", "num_images", "dataset_path", "network", "weights_sha256", "resize",
    "nidiff_version",
)


@dataclass(frozen=True)
class ReferenceStatistics:
    """Statistics of one set of features: ``mu`` ``[D]``, ``sigma`` ``[D, D]`` (float64), the
    number of images ``count``, optionally the ``features`` ``[N, D]`` and the file's protocol."""

    mu: np.ndarray
    sigma: np.ndarray
    protocol: dict[str, object] = field(default_factory=dict)
    features: np.ndarray | None = None
    count: int | None = None  # a file's num_images; None when it does not say


def holds_reference(process_group: object = None) -> bool:
    """Whether this process puts a loaded reference into a metric's state: the first process of a
    distributed run (of ``process_group``), or the only one."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return True
    return dist.get_rank(process_group) == 0


def check_protocol(
    found: Mapping[str, object], expected: Mapping[str, object], source: str = ""
) -> None:
    """Raise ``ValueError`` naming every field of ``expected`` whose value in ``found`` differs."""
    differ = [k for k, v in expected.items() if k not in found or found[k] != v]
    if differ:
        details = "; ".join(
            f"{k}: expected {expected[k]!r}, found {found.get(k, '<missing>')!r}" for k in differ
        )
        raise ValueError(
            f"protocol mismatch{' in ' + source if source else ''} "
            f"for field(s) {', '.join(differ)} "
            f"({details}); statistics computed under a different protocol are not comparable"
        )


def save_reference(
    path: str | os.PathLike,
    stats: ReferenceStatistics,              # mu, sigma, count; features too if not None
    protocol: Mapping[str, object],          # dataset, split, network, weights_sha256, resize, ...
    overwrite: bool = False,                 # replace an existing file
) -> Path:
    """Write ``stats`` (e.g. ``FID.statistics()``) with ``protocol`` to ``path``; returns ``path``.

    ``protocol`` adds to (and overrides) ``stats.protocol``. ``num_images`` and ``nidiff_version``
    are filled in (a given ``num_images`` must equal ``stats.count``); the other fields of
    :data:`PROTOCOL_FIELDS` except ``dataset_path`` are required. ``features`` are stored as
    float32. Raises ``FileExistsError`` if ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path).expanduser()
    protocol = {**stats.protocol, **protocol}
    unknown = sorted(set(protocol) - set(PROTOCOL_FIELDS))
    required = ("dataset", "split", "network", "weights_sha256", "resize")
    missing = [k for k in required if k not in protocol]
    if unknown or missing:
        raise ValueError(
            f"protocol for {path}: missing field(s) {missing}, unknown field(s) {unknown}; "
            f"expected the fields {list(PROTOCOL_FIELDS)}"
        )
    if stats.count is None:
        raise ValueError("the statistics' image count is unknown: give ReferenceStatistics(count=N)")
    if "num_images" in protocol and protocol["num_images"] != stats.count:
        raise ValueError(
            f"protocol num_images={protocol['num_images']} but the statistics count {stats.count}"
        )
    filled = {"num_images": stats.count, "nidiff_version": nidiff.__version__}
    full = {"dataset_path": "", **protocol, **filled}
    full = {k: full[k] for k in PROTOCOL_FIELDS}
    arrays = {"mu": np.asarray(stats.mu, dtype=np.float64), "sigma": np.asarray(stats.sigma, dtype=np.float64),
              "protocol": np.array(json.dumps(full))}
    if stats.features is not None:
        arrays["features"] = np.asarray(torch.as_tensor(stats.features).float().cpu())
    arrays["sha256"] = np.array(_digest(arrays))
    return atomic_write(path, lambda f: np.savez(f, **arrays), overwrite,
                        f"{path} exists; pass overwrite=True to replace it")


def load_reference(
    path: str | os.PathLike, expect: Mapping[str, object] | None = None
) -> ReferenceStatistics:
    """Read a reference ``.npz``; with ``expect``, check those protocol fields (``ValueError``).

    Files without a protocol (pytorch-fid, TTUR) load with an empty protocol, so any ``expect``
    fails on them.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"reference statistics {path} do not exist; write them with save_reference"
        )
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read as reference statistics (.npz): {err}") from None
    with data:
        if "mu" not in data or "sigma" not in data:
            raise ValueError(f"{path} is not a reference statistics file: no arrays 'mu', 'sigma'")
        if "sha256" in data and str(data["sha256"]) != _digest({k: data[k] for k in data.files if k != "sha256"}):
            raise ValueError(f"{path} is damaged: its arrays do not match its SHA-256 digest; compute it again "
                             f"with nidiff fid-ref --overwrite")
        protocol = json.loads(str(data["protocol"])) if "protocol" in data else {}
        ref = ReferenceStatistics(
            mu=data["mu"].astype(np.float64),
            sigma=data["sigma"].astype(np.float64),
            protocol=protocol,
            features=data.get("features"),
            count=_count(protocol.get("num_images")),
        )
    if expect:
        check_protocol(ref.protocol, expect, str(path))
    return ref


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{array.dtype.str}:{array.shape}:".encode())
        h.update(array.tobytes())
    return h.hexdigest()
