"""FID and KID as torchmetrics accumulates them: one network pass for both, progress in images, and
a reference held once across processes (two CPU processes, gloo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nidiff.metrics import FID, KID, ReferenceStatistics, SharedFeatures, accumulate, update
from tests.test_metrics import Features, fid_of, gaussian_features, numpy_kid


class CountingFeatures(nn.Module):
    """Mean pixel value per channel and its square: [N, 3, H, W] -> [N, 6]; counts its calls."""

    num_features = 6

    def __init__(self, batch_size: int = 200) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.calls: list[int] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append(images.shape[0])
        m = images.double().mean((2, 3))
        return torch.cat([m, m**2], 1)


class Bar:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def update(self, n: int) -> None:
        self.steps.append(n)


def test_fid_and_kid_share_one_network_pass_and_the_bar_counts_images():
    extractor = CountingFeatures()
    shared = SharedFeatures(extractor)
    assert shared.images_per_pass == 4  # on the CPU a pass is a few images, so the bar moves often
    fid, kid = FID(shared), KID(shared, subsets=2, subset_size=5)
    images = torch.rand(10, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    bar = Bar()
    update([fid, kid], images, real=False, bar=bar)
    assert extractor.calls == [4, 4, 2] and bar.steps == [4, 4, 2]
    assert int(fid.fake_features_num_samples) == 10 and kid.features(real=False).shape == (10, 6)
    np.testing.assert_allclose(fid.statistics(real=False).mu, CountingFeatures()(images).mean(0).numpy(),
                               rtol=1e-12)
    piece = images[:3]
    fid.update(piece, real=True)
    kid.update(piece, real=True)  # the same tensor: the features are reused
    piece.mul_(0.5)
    fid.update(piece, real=True)  # changed in place: computed again
    assert extractor.calls == [4, 4, 2, 3, 3]
    assert int(fid.real_features_num_samples) == 6 and kid.features(real=True).shape == (3, 6)


def test_accumulate_shows_a_bar_in_images(capsys):
    extractor = CountingFeatures(batch_size=3)
    fid = FID(extractor)
    batches = [torch.rand(5, 3, 4, 4), (torch.rand(4, 3, 4, 4), torch.zeros(4))]
    assert accumulate([fid], batches, real=True, total=9, desc="reference") == 9
    assert extractor.calls == [3, 2, 3, 1]
    err = capsys.readouterr().err
    assert "reference" in err and "9/9" in err and "img" in err


def test_images_per_pass_is_the_extractors_batch_size_on_an_accelerator():
    class OnGPU(CountingFeatures):
        device = torch.device("cuda")

    assert SharedFeatures(OnGPU(batch_size=200)).images_per_pass == 200
    assert SharedFeatures(CountingFeatures(batch_size=3)).images_per_pass == 3


def test_shared_features_check_what_the_extractor_returns():
    with pytest.raises(TypeError, match="num_features"):
        SharedFeatures(nn.Identity())
    wrong = SharedFeatures(nn.Identity(), num_features=5)
    with pytest.raises(ValueError, match=r"expected \[2, 5\]"):
        wrong(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        SharedFeatures(Features(2))(torch.tensor([[0.0, float("nan")]]))


REAL, FAKE = gaussian_features(120, 6, seed=0), gaussian_features(90, 6, seed=1, shift=0.3)


def _process(rank: int, world: int, folder: str) -> None:
    """One of the processes: it is given the whole reference and measures its share of the samples."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/init", rank=rank, world_size=world)
    reference = ReferenceStatistics(mu=REAL.mean(0), sigma=np.cov(REAL, rowvar=False), features=REAL, count=120)
    fid, kid = FID(Features(6)), KID(Features(6), subsets=3, subset_size=40, seed=5)
    for metric in (fid, kid):
        metric.set_reference(reference)
        metric.update(torch.from_numpy(np.array_split(FAKE, world)[rank]), real=False)
    mean, std = kid.compute()
    result = {"fid": float(fid.compute()), "kid": [float(mean), float(std)],
              "real": fid.statistics(real=True).count, "kid_real": len(kid.features(real=True))}
    (Path(folder) / f"rank{rank}.json").write_text(json.dumps(result))
    torch.distributed.destroy_process_group()


def test_a_reference_counts_once_across_processes(tmp_path):
    """Every process is given the reference; it enters the synchronised state once, not twice."""
    # forked, the processes start with what this one has imported
    torch.multiprocessing.start_processes(_process, args=(2, str(tmp_path)), nprocs=2, start_method="fork")
    with torch.random.fork_rng():
        kid = numpy_kid(REAL, FAKE, subsets=3, m=40, seed=5)
    for rank in range(2):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["real"] == 120 and result["kid_real"] == 120
        assert result["fid"] == pytest.approx(fid_of(REAL, FAKE), rel=1e-10)
        assert result["kid"] == pytest.approx(kid, rel=1e-10)
