"""FID / KID on torchmetrics: closed forms, scipy, numpy and torchmetrics' own computation as
references, and the reference files with their protocol. Everything runs on small synthetic features.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from nidiff.metrics import (
    FID,
    KID,
    ReferenceStatistics,
    accumulate,
    against_reference,
    frechet_distance,
    load_reference,
    reference_statistics,
    save_reference,
)
from nidiff.metrics.resize import RESIZE

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


def low_rank_fid(x: np.ndarray, y: np.ndarray) -> float:
    """FID of few samples in closed form: Sigma_i = A_i A_i^T / (n_i - 1) with A_i the centred
    features [D, n_i], and the nonzero eigenvalues of Sigma_1 Sigma_2 are those of the small
    symmetric M = A_1^T A_2 A_2^T A_1 / ((n_1 - 1)(n_2 - 1))."""
    a1, a2 = (x - x.mean(0)).T, (y - y.mean(0)).T
    c = a1.T @ a2  # [n1, n2]
    m = c @ c.T / ((len(x) - 1) * (len(y) - 1))
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(m), 0, None)).sum()
    traces = (a1**2).sum() / (len(x) - 1) + (a2**2).sum() / (len(y) - 1)
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + traces - 2 * tr_sqrt)


# ---------------------------------------------------------------- FID


class Features(nn.Module):
    """Feature vectors in, the same vectors out: the metrics on given features."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def fid_of(real: np.ndarray, fake: np.ndarray, chunks: int = 1) -> float:
    """nidiff's FID (torchmetrics' accumulation, float64 distance) of two feature sets."""
    metric = FID(Features(real.shape[1]))
    for side, x in ((True, real), (False, fake)):
        for part in np.array_split(x, chunks):
            metric.update(torch.from_numpy(part), real=side)
    value = metric.compute()
    assert value.dtype == torch.float64
    return float(value)


def test_fid_state_holds_the_moments_numpy_computes():
    x = gaussian_features(1000, 16, seed=0, shift=1.0)
    metric = FID(Features(16))
    for chunk in np.split(x, [1, 7, 300, 301, 999]):
        metric.update(torch.from_numpy(chunk).float(), real=True)  # float32 features, as Inception's
    stats = metric.statistics(real=True)
    x32 = x.astype(np.float32).astype(np.float64)
    assert stats.count == 1000 and stats.mu.dtype == stats.sigma.dtype == np.float64
    np.testing.assert_allclose(stats.mu, x32.mean(0), rtol=1e-13)
    np.testing.assert_allclose(stats.sigma, np.cov(x32, rowvar=False), rtol=1e-11, atol=1e-13)


def test_fid_of_a_set_against_itself_is_zero():
    x = gaussian_features(500, 64, seed=0)
    assert abs(fid_of(x, x, chunks=3)) < 1e-10 * np.trace(np.cov(x, rowvar=False))
    few = x[:20]  # singular covariance (20 samples, 64 dimensions): still real, finite, zero
    assert abs(fid_of(few, few)) < 1e-10 * np.trace(np.cov(few, rowvar=False))


def test_frechet_distance_matches_scipy_sqrtm():
    x, y = gaussian_features(400, 32, seed=1), gaussian_features(300, 32, seed=2, shift=0.3)
    mu1, s1, mu2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    expected = closed_form_fd(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert fid_of(y, x, chunks=4) == pytest.approx(expected, rel=1e-9)


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
    metric = FID(Features(d))
    with torch.no_grad():
        for real, layer in zip((False, True), maps):
            for _ in range(n // 5000):
                metric.update(layer(torch.randn(5000, d, generator=g, dtype=torch.float64)), real=real)
    fid = float(metric.compute())

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
    assert fid_of(z @ a2.T + b2, z @ a1.T + b1, chunks=3) == pytest.approx(expected, rel=1e-9)


def test_fid_of_few_samples_equals_the_low_rank_closed_form():
    """Singular covariances (10 and 30 samples in 256 dimensions): still real, and accurate to about
    sqrt(eps) (the square roots of the rounding errors on the zero eigenvalues)."""
    x, y = gaussian_features(30, 256, seed=12, shift=0.5), gaussian_features(10, 256, seed=13)
    assert fid_of(x, y, chunks=3) == pytest.approx(low_rank_fid(y, x), rel=1e-7)


@pytest.mark.parametrize("n_real, n_fake", [(600, 500), (2000, 3000)])
def test_fid_matches_torchmetrics(n_real, n_fake):
    """The same features through torchmetrics' own FID (its eigvals square root) and ours."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    x, y = gaussian_features(n_real, 48, seed=3), gaussian_features(n_fake, 48, seed=4, shift=0.2)
    theirs = FrechetInceptionDistance(feature=Features(48))  # returns float64 for float64 features
    theirs.update(torch.from_numpy(x), real=True)
    theirs.update(torch.from_numpy(y), real=False)
    assert fid_of(x, y, chunks=2) == pytest.approx(float(theirs.compute()), rel=1e-12)


def test_fid_from_a_reference_equals_fid_from_its_features():
    """A reference's (mu, sigma, n) become torchmetrics' real-side sums: the same state, the same FID."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    x, y = gaussian_features(300, 12, seed=5, shift=0.5), gaussian_features(200, 12, seed=6)
    reference = ReferenceStatistics(mu=x.mean(0), sigma=np.cov(x, rowvar=False), count=300)
    ours = FID(Features(12))
    ours.set_reference(reference)
    theirs = FrechetInceptionDistance(feature=Features(12))
    theirs.update(torch.from_numpy(x), real=True)
    assert int(ours.real_features_num_samples) == 300
    for name in ("real_features_sum", "real_features_cov_sum"):
        torch.testing.assert_close(getattr(ours, name), getattr(theirs, name), rtol=1e-13, atol=1e-12)
    stats = ours.statistics(real=True)
    np.testing.assert_allclose(stats.sigma, reference.sigma, rtol=1e-12, atol=1e-14)
    ours.update(torch.from_numpy(y), real=False)
    theirs.update(torch.from_numpy(y), real=False)
    assert float(ours.compute()) == pytest.approx(float(theirs.compute()), rel=1e-12)
    ours.reset()  # the samples go, the reference stays
    assert int(ours.fake_features_num_samples) == 0 and int(ours.real_features_num_samples) == 300
    with pytest.raises(ValueError, match="count"):
        ours.set_reference(ReferenceStatistics(mu=x.mean(0), sigma=np.cov(x, rowvar=False)))
    with pytest.raises(ValueError, match="size 12"):
        ours.set_reference(ReferenceStatistics(mu=np.zeros(3), sigma=np.eye(3), count=5))
    with pytest.raises(ValueError, match="at least 2 fake"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "compute called before update"
        ours.compute()


# ---------------------------------------------------------------- KID


def numpy_kid(x: np.ndarray, y: np.ndarray, subsets: int, m: int, seed: int) -> tuple[float, float]:
    """Unbiased MMD^2 with k(a, b) = (a.b / D + 1)^3 over the subsets torch.randperm draws after
    torch.manual_seed(seed): per subset, of the first set, then of the second."""
    torch.manual_seed(seed)
    values = []
    for _ in range(subsets):
        xs, ys = x[torch.randperm(len(x)).numpy()[:m]], y[torch.randperm(len(y)).numpy()[:m]]
        k_xx, k_yy, k_xy = ((a @ b.T / x.shape[1] + 1) ** 3 for a, b in ((xs, xs), (ys, ys), (xs, ys)))
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values))


def test_kid_matches_numpy_and_torchmetrics_on_the_same_subsets():
    from torchmetrics.image.kid import KernelInceptionDistance

    x, y = gaussian_features(300, 32, seed=5), gaussian_features(250, 32, seed=6, shift=0.1)
    ours = KID(Features(32), subsets=7, subset_size=60, seed=11)
    ours.update(torch.from_numpy(x).float(), real=True)  # float32 in, float64 kernels
    ours.update(torch.from_numpy(y).float(), real=False)
    state = torch.get_rng_state()
    mean, std = ours.compute()
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left alone
    assert mean.dtype == torch.float64
    x32, y32 = (a.astype(np.float32).astype(np.float64) for a in (x, y))
    with torch.random.fork_rng():
        expected = numpy_kid(x32, y32, subsets=7, m=60, seed=11)
    assert float(mean) == pytest.approx(expected[0], rel=1e-10)
    assert float(std) == pytest.approx(expected[1], rel=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features"
        theirs = KernelInceptionDistance(feature=nn.Identity(), subsets=7, subset_size=60)
    theirs.update(torch.from_numpy(x32), real=True)
    theirs.update(torch.from_numpy(y32), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(11)
        mean_ref, std_ref = theirs.compute()
    assert float(mean) == pytest.approx(float(mean_ref), rel=1e-12)
    assert float(std) == pytest.approx(float(std_ref), rel=1e-10)


def test_kid_with_whole_sets_equals_brute_force_mmd():
    x, y = gaussian_features(40, 8, seed=7), gaussian_features(40, 8, seed=8, shift=0.5)

    def k(a, b):
        return (a @ b / 8 + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    metric = KID(Features(8), subsets=3, subset_size=m)
    metric.set_reference(ReferenceStatistics(mu=x.mean(0), sigma=np.cov(x, rowvar=False), features=x))
    metric.update(torch.from_numpy(y), real=False)
    mean, std = metric.compute()
    assert float(mean) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert float(std) == pytest.approx(0.0, abs=1e-12)
    metric.reset()  # the samples go, the reference stays
    np.testing.assert_array_equal(metric.features(real=True).numpy(), x)
    metric.update(torch.from_numpy(y[:30]), real=False)
    with pytest.raises(ValueError, match="subset_size=40 exceeds"):
        metric.compute()
    with pytest.raises(ValueError, match="no features"):
        metric.set_reference(ReferenceStatistics(mu=x.mean(0), sigma=np.cov(x, rowvar=False)))


# ---------------------------------------------------------------- reference files


def test_reference_npz_round_trip_with_protocol(tmp_path):
    x = gaussian_features(200, 16, seed=9)
    batches = [torch.from_numpy(x[:150]), (torch.from_numpy(x[150:]), torch.zeros(50))]  # (images, labels)
    stats = reference_statistics(batches, Features(16), keep_features=True, progress=False)
    path = save_reference(tmp_path / "ref.npz", stats, PROTOCOL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.npz"]  # no temporary file left
    ref = load_reference(path, expect={"dataset": "toy", "num_images": 200, "resize": RESIZE})
    np.testing.assert_array_equal(ref.mu, stats.mu)
    np.testing.assert_array_equal(ref.sigma, stats.sigma)
    np.testing.assert_allclose(ref.sigma, np.cov(x, rowvar=False), rtol=1e-11, atol=1e-13)
    np.testing.assert_array_equal(ref.features, x.astype(np.float32))
    assert ref.count == 200 and ref.mu.dtype == ref.sigma.dtype == np.float64
    import nidiff

    filled = {"num_images": 200, "dataset_path": "", "nidiff_version": nidiff.__version__}
    assert ref.protocol == {**PROTOCOL, **filled}
    y = gaussian_features(100, 16, seed=10, shift=0.1)
    fid, kid = against_reference(Features(16), ref, kid_subset_size=50)
    accumulate([fid, kid], [torch.from_numpy(y)], real=False, progress=False)
    assert float(fid.compute()) == pytest.approx(fid_of(x, y), rel=1e-10)
    x32 = x.astype(np.float32).astype(np.float64)
    with torch.random.fork_rng():
        assert float(kid.compute()[0]) == pytest.approx(numpy_kid(x32, y, 100, 50, seed=0)[0], rel=1e-10)


def test_reference_protocol_mismatch_raises_naming_fields(tmp_path):
    x = gaussian_features(50, 4, 0)
    stats = ReferenceStatistics(mu=x.mean(0), sigma=np.cov(x, rowvar=False), count=50)
    path = save_reference(tmp_path / "ref.npz", stats, PROTOCOL)
    expect = {"split": "test", "weights_sha256": "cd" * 32, "dataset": "toy"}
    named = r"field\(s\) split, weights_sha256 \(split: expected 'test', found 'train'"
    with pytest.raises(ValueError, match=named):
        load_reference(path, expect=expect)
    with pytest.raises(ValueError, match="resize"):
        load_reference(path, expect={"resize": "torch-bilinear"})


def test_reference_is_never_overwritten_silently(tmp_path):
    path = tmp_path / "ref.npz"
    first, other = (
        ReferenceStatistics(mu=x.mean(0), sigma=np.cov(x, rowvar=False), count=50)
        for x in (gaussian_features(50, 4, s) for s in (0, 1))
    )
    save_reference(path, first, PROTOCOL)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_reference(path, other, PROTOCOL)
    np.testing.assert_array_equal(load_reference(path).mu, first.mu)
    save_reference(path, other, PROTOCOL, overwrite=True)
    np.testing.assert_array_equal(load_reference(path).mu, other.mu)
    with pytest.raises(ValueError, match="missing field"):
        save_reference(tmp_path / "bad.npz", other, {"dataset": "toy"})
    with pytest.raises(ValueError, match="count"):
        save_reference(tmp_path / "bad.npz", ReferenceStatistics(mu=other.mu, sigma=other.sigma), PROTOCOL)


# ---------------------------------------------------------------- band statistics of samples


def test_band_statistics_closed_forms():
    """Constant images put all their energy in the DC coefficient (N * colour)."""
    from nidiff.metrics import band_statistics

    colours = torch.tensor([[0.5, -0.5, 0.0], [-0.5, 0.5, 0.0]]).double()  # [2, 3]
    x = colours[:, :, None, None].expand(2, 3, 16, 16)
    stats = band_statistics(x)
    assert stats["mean_colour_std"] == pytest.approx(float(colours.flatten().std()))
    # 2x2 low block of 3 channels: only the DC of each carries 16 * colour
    assert stats["low_rms"] == pytest.approx(math.sqrt((16 * colours).pow(2).sum().item() / (2 * 3 * 4)))
    assert stats["high_rms"] == pytest.approx(0.0, abs=1e-12)
    assert (stats["min"], stats["max"]) == (-0.5, 0.5)
    # random images: the bands against scipy's orthonormal DCT-II
    import scipy.fft

    y = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    u = torch.from_numpy(scipy.fft.dctn(y.numpy(), axes=(-2, -1), norm="ortho"))
    stats = band_statistics(y)
    assert stats["low_rms"] == pytest.approx(u[..., :2, :2].pow(2).mean().sqrt().item(), rel=1e-12)
    assert stats["high_rms"] == pytest.approx(u[..., 8:, 8:].pow(2).mean().sqrt().item(), rel=1e-12)
    with pytest.raises(ValueError, match="square"):
        band_statistics(torch.zeros(2, 3, 8, 4))
