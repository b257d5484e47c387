"""The ``compare:`` block of ``nidiff compare`` (``nidiff/conf/compare.yaml``), checked before any work.

:data:`METRICS` names what can be measured. Each of them is measured at the final checkpoint of
every configuration; those of :data:`CURVE_METRICS` listed in ``curve_metrics`` also at every
``step_XXXXXXX.ckpt``. A metric whose size option is 0 (``fid_samples=0`` for ``fid`` and ``kid``)
is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from nidiff.sampling.plan import SamplingPlan

__all__ = ["CURVE_METRICS", "ERRORS", "METRICS", "SIZE_OF", "CompareOptions"]

# metric name -> what it is (docs/compare.md states the protocol in full)
METRICS: dict[str, str] = {
    "train_loss": "mean of the last loss_window logged training losses (eq. 25, the trained network)",
    "test_loss": "eq. 25 with the EMA network on loss_images test images, the same t and noise everywhere",
    "bits_per_dim": "the variational bound on bpd_images test images with n_t times each",
    "fid": "FID of fid_samples samples against the shared reference statistics",
    "kid": "KID of the same samples against the reference's features",
    "sample_images_per_s": "images per second of the sampler (over the FID samples, else speed_samples)",
    "train_images_per_s": "median of the logged training images per second",
}
CURVE_METRICS: tuple[str, ...] = ("test_loss", "bits_per_dim", "fid", "kid")
# metric -> the column of its uncertainty: the Monte Carlo standard error, the spread over KID subsets
ERRORS: dict[str, str] = {"bits_per_dim": "bits_per_dim_stderr", "kid": "kid_std"}
# metric -> the option holding its number of images; 0 skips it
SIZE_OF: dict[str, str] = {"test_loss": "loss_images", "bits_per_dim": "bpd_images", "fid": "fid_samples",
                           "kid": "fid_samples"}


@dataclass(frozen=True)
class CompareOptions:
    """The ``compare:`` block, typed; :meth:`from_config` checks every field."""

    dir: Path                   # the compare directory
    metrics: tuple[str, ...]    # measured at the final checkpoint
    curve_metrics: tuple[str, ...]  # also measured at every step_XXXXXXX.ckpt
    loss_window: int            # train_loss: logged losses averaged
    loss_images: int            # test_loss: test images
    bpd_images: int             # bits_per_dim: test images
    n_t: int                    # bits_per_dim: times per image
    fid_samples: int            # fid, kid: samples
    ref: Path                   # reference statistics (.npz)
    ref_images: int | None      # images in a computed reference; None: the whole training split
    kid_subset_size: int        # kid: vectors per subset
    speed_samples: int          # sample_images_per_s without FID samples
    plan: SamplingPlan          # sampler, its options, steps, grid, x_clip
    batch_size: int             # images per batch
    seed: int                   # seeds every random draw of the evaluation
    device: str | None          # None: cuda when available
    weights: str | None         # Inception weights file; None: looked up

    @classmethod
    def from_config(cls, node: DictConfig) -> CompareOptions:
        """Check the ``compare`` node of a composed config; ``ValueError`` lists every problem."""
        if OmegaConf.is_missing(node, "dir") or not str(node.dir):
            raise ValueError("compare.dir is required: the directory for the jobs, tables and plots, "
                             "e.g. compare.dir=compare/blur")
        raw: dict[str, Any] = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
        problems: list[str] = []

        def integer(key: str, low: int) -> None:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"compare.{key}={value!r} (an integer >= {low})")

        for key in ("loss_window", "n_t", "steps", "batch_size", "kid_subset_size"):
            integer(key, 2 if key == "kid_subset_size" else 1)
        for key in ("loss_images", "bpd_images", "fid_samples", "speed_samples", "seed"):
            integer(key, 0)
        if raw["fid_samples"] == 1:
            problems.append("compare.fid_samples=1 (0 to skip FID and KID, or >= 2: a covariance needs two)")
        if raw["ref_images"] is not None:
            integer("ref_images", 2)
        from nidiff.sampling.plan import SamplingPlan

        plan = None
        try:
            plan = SamplingPlan.from_mapping(raw)
        except (ValueError, TypeError) as err:
            problems.append(f"compare.sampler, .options, .steps, .grid, .x_clip: {err}")
        metrics = _names(raw["metrics"], "metrics", METRICS, problems)
        curve = _names(raw["curve_metrics"], "curve_metrics", CURVE_METRICS, problems)
        if problems:
            raise ValueError("invalid compare options: " + "; ".join(problems))
        directory = Path(str(raw["dir"]))
        return cls(
            dir=directory, metrics=metrics, curve_metrics=curve, loss_window=raw["loss_window"],
            loss_images=raw["loss_images"], bpd_images=raw["bpd_images"], n_t=raw["n_t"],
            fid_samples=raw["fid_samples"], ref=Path(str(raw["ref"])) if raw["ref"] else directory / "fid_ref.npz",
            ref_images=raw["ref_images"], kid_subset_size=raw["kid_subset_size"],
            speed_samples=raw["speed_samples"], plan=plan, batch_size=raw["batch_size"], seed=raw["seed"],
            device=raw["device"],
            weights=raw["weights"],
        )

    def measured(self, metric: str) -> bool:
        """Whether ``metric`` is measured at all: listed, and its size (if it has one) above 0."""
        listed = metric in self.metrics or metric in self.curve_metrics
        if metric == "sample_images_per_s":  # timed on the FID samples where there are any
            return listed and (self.needs_reference or self.speed_samples > 0)
        return listed and (metric not in SIZE_OF or getattr(self, SIZE_OF[metric]) > 0)

    def at_checkpoint(self, final: bool) -> tuple[str, ...]:
        """The metrics measured from a checkpoint: the final one, or one on the way."""
        names = (*self.metrics, *self.curve_metrics) if final else self.curve_metrics
        return tuple(m for m in dict.fromkeys(names) if m not in ("train_loss", "train_images_per_s")
                     and self.measured(m))

    @property
    def needs_reference(self) -> bool:
        return self.measured("fid") or self.measured("kid")

    def protocol(self) -> dict[str, Any]:
        """The fields that decide the numbers measured from a checkpoint (the batch size decides the
        draws of the test loss and the bound; the device is added where it is known)."""
        fields = {f.name: getattr(self, f.name) for f in dataclass_fields(self)}
        for key in ("dir", "metrics", "curve_metrics", "loss_window", "device", "plan"):
            fields.pop(key)
        fields.update(self.plan.as_dict())
        return {k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}


def _names(value: Any, key: str, known: Any, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        problems.append(f"compare.{key}={value!r} (a list, e.g. compare.{key}=[{','.join(list(known)[:2])}])")
        return ()
    unknown = [v for v in value if v not in known]
    if unknown:
        problems.append(f"compare.{key}: unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return tuple(dict.fromkeys(str(v) for v in value))
