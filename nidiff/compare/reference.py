"""The FID reference of a compare directory: one statistics file that every configuration is measured against.

``compare.ref`` when given, else ``DIR/fid_ref.npz``, computed once from the training split of
the configurations' data (the first ``compare.ref_images`` images, or all) with its features for
KID, then reused by every job and every rerun. Its protocol (data set, split, image count, Inception
weights hash, resize) is checked on every load, so a reference computed otherwise is refused
rather than silently mixed in.
"""

from __future__ import annotations

from omegaconf import DictConfig

from nidiff.compare.options import CompareOptions
from nidiff.metrics import InceptionFeatures, ReferenceStatistics

__all__ = ["prepare_reference"]


def prepare_reference(data: DictConfig, options: CompareOptions, extractor: InceptionFeatures) -> ReferenceStatistics:
    """Load ``options.ref``, computing it from ``data``'s training split first if it does not exist."""
    from nidiff.data import image_batches
    from nidiff.metrics import load_reference, reference_statistics, save_reference

    path = options.ref
    expect = {**extractor.protocol, "dataset": str(data.dataset), "split": "train"}
    if not path.exists():
        batches, total, what = image_batches(
            dataset=data.dataset, root=data.root, path=data.path, image_size=data.image_size, split="train",
            batch_size=options.batch_size, limit=options.ref_images, seed=data.seed, num_images=data.num_images,
            shapes=data.shapes, max_shapes=data.max_shapes,
        )
        if options.ref_images is not None and total < options.ref_images:
            raise ValueError(f"compare.ref_images={options.ref_images}, but the training split holds {total} "
                             f"images ({what})")
        print(f"nidiff compare: reference statistics of {total} images of {what} into {path}", flush=True)
        stats = reference_statistics(batches, extractor, total=total, keep_features=True)
        save_reference(path, stats, {**expect, "dataset_path": str(data.path or data.root or "")})
    reference = load_reference(path, expect=expect)
    found = reference.protocol.get("num_images")
    if options.ref_images is not None and found != options.ref_images:
        raise ValueError(f"{path} holds statistics of {found} images, but compare.ref_images={options.ref_images}: "
                         f"set compare.ref_images={found}, or delete {path} to compute it again")
    if options.measured("kid") and reference.features is None:
        raise ValueError(f"{path} holds no features, which KID needs: write it with nidiff fid-ref --with-features, "
                         f"or leave kid out of compare.metrics and compare.curve_metrics")
    return reference
