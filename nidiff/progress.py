"""Progress bars of the evaluation commands: they count images, not batches, and redraw once a second."""

from __future__ import annotations

__all__ = ["image_bar"]


def image_bar(total: int | None, desc: str, progress: bool = True):
    """A tqdm bar over ``total`` images (``None``: unknown), redrawn at most once a second.

    Advance it with ``bar.update(images)`` as each piece of work finishes; ``progress=False`` hides it.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", mininterval=1.0, dynamic_ncols=True, disable=not progress)
