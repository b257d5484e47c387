"""The bilinear resize of the standard TensorFlow FID pipeline, as two interpolation matrices.

The reference FID code (TTUR, TF-GAN) resizes inside the TF1 graph with
``tf.image.resize_bilinear(images, [299, 299])``: bilinear, ``align_corners=False`` and the legacy
``half_pixel_centers=False`` coordinate map, no antialiasing. Output pixel ``i`` reads the source at

    ``s = i * in / out``, ``s0 = floor(s)``, ``s1 = min(s0 + 1, in - 1)``, weight ``s - s0`` on s1,

which is neither of ``torch.nn.functional.interpolate``'s bilinear maps (``align_corners=False``
uses half-pixel centers, ``(i + 0.5) * in / out - 0.5``). The map is separable and linear, so it is
applied as ``R_h @ x @ R_w^T``. Source coordinates are computed in float32 as TF does, the weights
in float64, and the product in the images' dtype; it agrees with TensorFlow (and with
torch-fidelity's port of it) up to float32 rounding, since TF interpolates with lerps, in another
order.

Shrinking by an integer factor ``k`` picks every ``k``-th pixel exactly (``s = k i``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["RESIZE", "tf1_bilinear_matrix", "tf1_bilinear_resize"]

# the name recorded as the protocol's ``resize`` field
RESIZE = "tf1-bilinear-299"


def tf1_bilinear_matrix(size_in: int, size_out: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``[size_out, size_in]`` matrix of the TF1 legacy bilinear map along one axis."""
    if size_in < 1 or size_out < 1:
        raise ValueError(f"sizes must be positive, got size_in={size_in}, size_out={size_out}")
    # the source coordinate in float32, as TF computes it (scale = float(in) / out)
    scale = torch.tensor(size_in / size_out, dtype=torch.float32)
    s = (torch.arange(size_out, dtype=torch.float32) * scale).double()  # [out]
    s0 = s.floor().long().clamp(max=size_in - 1)
    s1 = (s0 + 1).clamp(max=size_in - 1)
    w1 = s - s0.double()
    rows = torch.arange(size_out)
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    matrix.index_put_((rows, s0), 1.0 - w1, accumulate=True)
    # where s1 == s0 (the last source pixel) the two weights add up to 1
    matrix.index_put_((rows, s1), w1, accumulate=True)
    return matrix.to(dtype)


def tf1_bilinear_resize(images: Tensor, size: tuple[int, int] = (299, 299)) -> Tensor:
    """Resize float images ``[N, C, H, W]`` to ``[N, C, *size]`` like TF1 ``resize_bilinear``.

    Computed in the images' floating dtype on their device; never under autocast.
    """
    if images.dim() != 4 or not images.is_floating_point():
        raise TypeError(
            f"expected float images [N, C, H, W], got {images.dtype} {list(images.shape)}"
        )
    h, w = images.shape[-2:]
    if (h, w) == tuple(size):
        return images
    r_h = tf1_bilinear_matrix(h, size[0], images.dtype).to(images.device)  # [H', H]
    r_w = tf1_bilinear_matrix(w, size[1], images.dtype).to(images.device)  # [W', W]
    with torch.autocast(device_type=images.device.type, enabled=False):
        return r_h @ images @ r_w.T  # [N, C, H', W']
