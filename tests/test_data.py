"""The data package: CIFAR-10 pickles, download, image folders and zips, LSUN lmdb, synthetic
images, in-memory batches, the sampler and the DataModule. Every file is written by the tests."""

from __future__ import annotations

import io
import pickle
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nidiff.data.cifar10 as cifar10_module
from nidiff.data import (
    CIFAR10_CLASSES,
    CIFAR10_URL,
    EpochSampler,
    ImageDataModule,
    ImageFolder,
    LSUNImages,
    Mirrored,
    SyntheticImages,
    TensorImages,
    download_url,
    load_cifar10,
    md5sum,
    random_hflip,
    synthetic_images,
    to_float,
)
from nidiff.images import to_uint8

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# ---------------------------------------------------------------------------------------------
# CIFAR-10 python tarball


def _batch(n: int, offset: int, rng: np.random.Generator) -> dict:
    return {
        b"batch_label": b"fake batch",
        b"labels": [(offset + i) % 10 for i in range(n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{offset + i}.png".encode() for i in range(n)],
    }


def write_cifar(root: Path, extracted: bool = False) -> dict[str, dict]:
    """The official layout, 2 images per training batch and 3 in the test batch."""
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": _batch(2, 2 * (i - 1), rng) for i in range(1, 6)}
    batches["test_batch"] = _batch(3, 0, rng)
    # a known pixel: image 0 of data_batch_1, row 5, column 7 is RGB (11, 22, 33)
    row = batches["data_batch_1"][b"data"][0]
    row[0 * 1024 + 5 * 32 + 7], row[1 * 1024 + 5 * 32 + 7], row[2 * 1024 + 5 * 32 + 7] = 11, 22, 33
    root.mkdir(parents=True, exist_ok=True)
    if extracted:
        folder = root / "cifar-10-batches-py"
        folder.mkdir()
        for name, batch in batches.items():
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    else:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, batch in batches.items():
                data = pickle.dumps(batch, protocol=2)
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return batches


@pytest.mark.parametrize("extracted", [False, True], ids=["tarball", "extracted"])
def test_cifar10_reads_official_format(tmp_path, extracted):
    batches = write_cifar(tmp_path, extracted)
    images, labels = load_cifar10(tmp_path, "train")
    assert images.shape == (10, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == list(range(10))
    assert images[0, :, 5, 7].tolist() == [11, 22, 33]  # R plane, G plane, B plane
    expected = batches["data_batch_3"][b"data"][1].reshape(3, 32, 32)
    assert np.array_equal(images[5].numpy(), expected)
    test_images, test_labels = load_cifar10(tmp_path, "test")
    assert test_images.shape == (3, 3, 32, 32) and test_labels.tolist() == [0, 1, 2]


def test_cifar10_root_from_environment(tmp_path, monkeypatch):
    write_cifar(tmp_path / "data")
    monkeypatch.setenv("NIDIFF_DATA", str(tmp_path / "data"))
    assert load_cifar10(split="test")[0].shape == (3, 3, 32, 32)


def test_cifar10_missing_says_where_and_from_where(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path / "nothing")
    message = str(err.value)
    assert str(tmp_path / "nothing" / "cifar-10-python.tar.gz") in message
    assert CIFAR10_URL in message


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"cos\nsystem\n(S'echo unsafe'\ntR.")
    with pytest.raises(ValueError, match="refusing to load os.system"):
        load_cifar10(tmp_path, "test")


def test_download_checks_md5_and_renames_atomically(tmp_path):
    write_cifar(tmp_path / "src")
    source = tmp_path / "src" / "cifar-10-python.tar.gz"
    dest = tmp_path / "dl" / "cifar-10-python.tar.gz"
    download_url(source.as_uri(), dest, md5=md5sum(source), progress=False)
    assert dest.read_bytes() == source.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temporary file left

    bad = tmp_path / "bad" / "cifar-10-python.tar.gz"
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_url(source.as_uri(), bad, md5="0" * 32, progress=False)
    assert list(bad.parent.iterdir()) == []  # neither the file nor a partial one


def test_load_cifar10_download(tmp_path, monkeypatch):
    write_cifar(tmp_path / "src")
    source = tmp_path / "src" / "cifar-10-python.tar.gz"
    monkeypatch.setattr(cifar10_module, "CIFAR10_URL", source.as_uri())
    monkeypatch.setattr(cifar10_module, "CIFAR10_MD5", md5sum(source))
    assert load_cifar10(tmp_path / "root", "test", download=True)[0].shape == (3, 3, 32, 32)
    assert (tmp_path / "root" / "cifar-10-python.tar.gz").is_file()

    monkeypatch.setattr(cifar10_module, "CIFAR10_URL", (tmp_path / "absent.tar.gz").as_uri())
    with pytest.raises(FileNotFoundError, match="download failed") as err:
        load_cifar10(tmp_path / "other", download=True)
    assert str(tmp_path / "other" / "cifar-10-python.tar.gz") in str(err.value)
    assert not (tmp_path / "other" / "cifar-10-python.tar.gz").exists()


# ---------------------------------------------------------------------------------------------
# image folders and zips


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def image_files() -> dict[str, bytes]:
    """Class "bands": a 40x20 red|green|blue image; class "modes": grayscale, RGBA, palette."""
    bands = np.zeros((20, 40, 3), np.uint8)
    bands[:, :10, 0] = bands[:, 10:30, 1] = bands[:, 30:, 2] = 255
    gray = Image.fromarray(np.full((16, 16), 100, np.uint8), mode="L")
    jpeg = io.BytesIO()
    gray.save(jpeg, format="JPEG", quality=95)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[:8, :, 3], rgba[8:, :, 3] = 200, 255, 0  # bottom half transparent
    palette = Image.fromarray(np.full((24, 24, 3), (10, 20, 30), np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE
    )
    return {
        "bands/wide.png": _png(Image.fromarray(bands)),
        "modes/a_gray.jpg": jpeg.getvalue(),
        "modes/b_rgba.png": _png(Image.fromarray(rgba, mode="RGBA")),
        "modes/c_palette.PNG": _png(palette),
    }


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return path


@pytest.fixture(params=["folder", "zip", "wrapped_zip"])
def image_source(request, tmp_path) -> Path:
    files = image_files()
    if request.param == "folder":
        return write_folder(tmp_path / "images", files)
    prefix = "train/" if request.param == "wrapped_zip" else ""  # one folder around the classes
    return write_zip(tmp_path / "images.zip", files, prefix=prefix)


def test_folder_labels_modes_and_crops(image_source):
    ds = ImageFolder(image_source, image_size=16)
    assert ds.classes == ["bands", "modes"] and ds.labels == [0, 1, 1, 1]
    items = [ds[i] for i in range(len(ds))]
    assert all(x.shape == (3, 16, 16) and x.dtype == torch.uint8 for x, _ in items)
    bands, gray, rgba, palette = (x.int() for x, _ in items)
    # 40x20 -> 32x16 (shorter side 16, bicubic) -> centre 16 columns = the original's green band
    assert (bands[1, :, 2:14] >= 250).all() and (bands[[0, 2], :, 2:14] <= 5).all()
    assert (gray[0] - 100).abs().max() <= 2 and (gray == gray[0]).all()
    assert rgba[:, 0, 0].tolist() == [200, 0, 0]
    assert rgba[:, 15, 0].tolist() == [255, 255, 255]  # transparent: composited over white
    assert palette[:, 8, 8].tolist() == [10, 20, 30]


def test_zip_reads_the_same_in_worker_processes(tmp_path):
    path = write_zip(tmp_path / "images.zip", image_files())
    ds = ImageFolder(path, image_size=8)
    assert ds._zip is None  # opened lazily, in each process that reads
    expected = torch.stack([ds[i][0] for i in range(len(ds))])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    got = torch.cat([x for x, _ in loader])
    assert torch.equal(got, expected)


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_corrupt_files_skip_or_raise(tmp_path, kind):
    files = image_files()
    files["modes/b_rgba.png"] = files["modes/b_rgba.png"][:60]  # truncated
    if kind == "folder":
        path = write_folder(tmp_path / "f", files)
    else:
        path = write_zip(tmp_path / "f.zip", files)

    strict = ImageFolder(path, image_size=8, on_error="raise")
    with pytest.raises(ValueError, match="b_rgba.png"):
        strict[2]
    with pytest.raises(ValueError, match="b_rgba.png"):
        strict.decode_all()

    lenient = ImageFolder(path, image_size=8, on_error="skip")
    with pytest.warns(RuntimeWarning, match="b_rgba.png") as record:
        item = lenient[2]
        lenient[2]
    assert len(record) == 1 and lenient.skipped == ["modes/b_rgba.png"]
    assert torch.equal(item[0], lenient[3][0])  # replaced by the next readable image
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable"):
        images, labels = ImageFolder(path, image_size=8).decode_all()
    assert images.shape == (3, 3, 8, 8) and labels.tolist() == [0, 1, 1]


def test_missing_empty_or_wrong_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image folder"):
        ImageFolder(tmp_path / "absent", 8)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(tmp_path / "empty", 8)
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(write_zip(tmp_path / "empty.zip", {"a.txt": b"x"}), 8)
    (tmp_path / "file.jpg").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a .zip"):
        ImageFolder(tmp_path / "file.jpg", 8)
    with pytest.raises(ValueError, match="on_error"):
        ImageFolder(tmp_path / "empty", 8, on_error="ignore")


# ---------------------------------------------------------------------------------------------
# LSUN lmdb


def test_lsun_lmdb_export(tmp_path):
    lmdb = pytest.importorskip("lmdb")
    rng = np.random.default_rng(0)
    pictures = {b"f00d": (64, 96), b"0abc": (96, 64), b"beef": (40, 40)}  # key -> (H, W)
    env = lmdb.open(str(tmp_path / "church_outdoor_train_lmdb"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, (h, w) in pictures.items():
            buf = io.BytesIO()
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buf, format="WEBP")
            txn.put(key, buf.getvalue())
    env.close()
    ds = LSUNImages(tmp_path / "church_outdoor_train_lmdb", image_size=32)
    assert ds.keys == [b"0abc", b"beef", b"f00d"] and len(ds) == 3
    for i in range(3):
        image, label = ds[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and label == 0
    assert len(LSUNImages(tmp_path / "church_outdoor_train_lmdb", 16, max_images=2)) == 2
    with pytest.raises(FileNotFoundError, match="data.mdb"):
        LSUNImages(tmp_path / "absent", 32)


def test_lsun_without_lmdb_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdb", None)
    with pytest.raises(ImportError, match="pip install lmdb"):
        LSUNImages(tmp_path, 32)


# ---------------------------------------------------------------------------------------------
# synthetic images, transforms, in-memory batches, sampler


def test_synthetic_is_a_function_of_seed_and_index():
    images, labels = synthetic_images(6, 24, seed=1)
    again, _ = synthetic_images(6, 24, seed=1)
    assert images.shape == (6, 3, 24, 24) and images.dtype == torch.uint8
    assert torch.equal(images, again)
    assert torch.equal(SyntheticImages(100, 24, seed=1)[4][0], images[4])  # whatever the count
    assert not torch.equal(synthetic_images(6, 24, seed=2)[0], images)
    assert set(labels.tolist()) <= {0, 1, 2} and images.float().std() > 30


def test_synthetic_subsets_of_shapes():
    """The defaults are the full set; a subset draws only its kinds, a given count at most."""
    full, _ = synthetic_images(8, 16, seed=1)
    assert torch.equal(synthetic_images(8, 16, 1, ("disc", "rectangle", "stripes"), 3)[0], full)
    _, labels = synthetic_images(200, 16, 0, ("rectangle",), 1)
    assert set(labels.tolist()) == {1}
    images = SyntheticImages(50, 16, shapes=["disc", "rectangle"], max_shapes=2)
    assert {images[i][1] for i in range(50)} == {0, 1}
    for bad in ({"shapes": ["square"]}, {"shapes": []}, {"shapes": ["disc", "disc"]}, {"max_shapes": 0}):
        with pytest.raises(ValueError, match="shapes"):
            synthetic_images(2, 8, **bad)


def test_to_float_mapping_and_flips():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    y = to_float(x)
    assert y[0, 0, 0, 0] == -1 and y[0, 0, -1, -1] == 1
    torch.testing.assert_close(y, x.double().div(127.5).sub(1).float())
    assert torch.equal(to_uint8(y), x)
    with pytest.raises(TypeError):
        to_float(y)
    batch = torch.randn(64, 1, 2, 3)
    flipped = random_hflip(batch, generator=torch.Generator().manual_seed(0))
    same = (flipped == batch).flatten(1).all(1)
    mirrored = (flipped == batch.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54


def test_mirrored_index_convention():
    images = torch.randint(0, 256, (3, 3, 4, 5), dtype=torch.uint8)
    memory = TensorImages(images, torch.tensor([0, 1, 2]), mirror=True)
    x, y = memory.__getitems__([1, 4])
    assert len(memory) == 6 and y.tolist() == [1, 1]
    assert torch.equal(x[0], to_float(images[1]))
    assert torch.equal(x[1], to_float(images[1]).flip(-1))
    streamed = Mirrored(list(zip(images, [0, 1, 2], strict=True)), mirror=True)
    assert torch.equal(streamed[4][0], x[1]) and len(Mirrored(streamed.dataset, mirror=False)) == 3


def test_sampler_epoch_permutations_shards_and_resume():
    a = EpochSampler(10, seed=5, mirror=True)
    first = list(a)
    assert sorted(i % 10 for i in first) == list(range(10))  # each image once, maybe mirrored
    assert list(EpochSampler(10, seed=5, mirror=True)) == first
    a.set_epoch(1)
    assert list(a) != first and sorted(i % 10 for i in a) == list(range(10))
    shards = [list(EpochSampler(10, seed=5, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(s) == 4 for s in shards) and set(sum(shards, [])) == set(range(10))
    b = EpochSampler(10, seed=5, mirror=True)
    b.resume(0, 4)
    assert list(b) == first[4:] and list(b) == first  # the skip applies once


# ---------------------------------------------------------------------------------------------
# DataModule


def test_datamodule_batches_and_reproducible_order():
    def batches(seed):
        dm = ImageDataModule("synthetic", image_size=16, batch_size=8, num_images=40, seed=seed)
        return [x for x, _ in dm.train_dataloader()]

    first = batches(0)
    assert len(first) == 5
    assert all(x.shape == (8, 3, 16, 16) and x.dtype == torch.float32 for x in first)
    assert all(x.min() >= -1 and x.max() <= 1 for x in first)
    assert all(torch.equal(a, b) for a, b in zip(first, batches(0), strict=True))
    assert not torch.equal(first[0], batches(1)[0])


def test_datamodule_folder_resume_state_and_fit_images(tmp_path):
    images, _ = synthetic_images(12, 8)
    files = {
        f"{'ab'[i % 2]}/{i:02d}.png": _png(Image.fromarray(images[i].permute(1, 2, 0).numpy()))
        for i in range(12)
    }
    folder = write_folder(tmp_path, files)
    dm = ImageDataModule("folder", path=str(folder), image_size=8, batch_size=3, num_workers=0)
    loader = dm.train_dataloader()
    full = [x for x, _ in loader]
    assert len(full) == 4 and set(dm.dataset.dataset.classes) == {"a", "b"}
    loader.load_state_dict({"epoch": 0, "batches": 1, "seed": 0})
    assert all(torch.equal(a, b) for a, b in zip([x for x, _ in loader], full[1:], strict=True))
    fit = dm.fit_images(5)
    assert fit.shape == (5, 3, 8, 8) and fit.min() >= -1 and fit.max() <= 1


def test_datamodule_resumes_mid_epoch_under_lightning(tmp_path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Record(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.seen = []

        def training_step(self, batch, batch_idx):
            self.seen.append(batch[0].clone())
            return self.w**2

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(ckpt=None, callbacks=()):
        model = Record()
        trainer = L.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=list(callbacks),
            enable_checkpointing=bool(callbacks),
        )
        dm = ImageDataModule("synthetic", image_size=4, batch_size=4, num_images=20, seed=7)
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt)
        return torch.cat(model.seen)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        every3 = ModelCheckpoint(
            dirpath=tmp_path, filename="s{step}", every_n_train_steps=3, save_top_k=-1
        )
        full = fit(callbacks=[every3])  # 2 epochs of 5 batches
        resumed = fit(ckpt=str(tmp_path / "sstep=6.ckpt"))  # epoch 1, after its first batch
    assert torch.equal(resumed, full[6 * 4:])


def test_datamodule_auto_choice(tmp_path, capsys):
    dm = ImageDataModule(root=str(tmp_path / "none"), num_images=20, batch_size=4)
    dm.setup()
    assert "picked synthetic" in dm.source and "picked synthetic" in capsys.readouterr().out
    write_cifar(tmp_path / "root")
    dm = ImageDataModule(root=str(tmp_path / "root"), batch_size=4, random_flip=False, on_gpu=True)
    x, y = next(iter(dm.train_dataloader()))
    assert "picked cifar10" in dm.source and x.shape == (4, 3, 32, 32)
    assert x.device == dm.dataset.device
    (tmp_path / "split").mkdir()
    zipped = write_zip(tmp_path / "split" / "train.zip", image_files())
    root, path = str(tmp_path / "root"), str(zipped.parent)
    dm = ImageDataModule(root=root, path=path, image_size=8, batch_size=2)
    dm.setup()
    assert "picked folder" in dm.source and dm.num_distinct_images == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "imagenet"}, "known datasets: auto, cifar10"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"num_workers": -1}, "num_workers"),
        ({"split": "val"}, "split"),
        ({"on_error": "ignore"}, "on_error"),
        ({"dataset": "folder"}, "needs data.path"),
        ({"dataset": "synthetic", "num_images": 5, "batch_size": 8}, "batch_size=8 exceeds"),
        ({"dataset": "cifar10", "image_size": 64}, "32x32"),
    ],
)
def test_datamodule_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageDataModule(**kwargs).train_dataloader()


# ---------------------------------------------------------------------------------------------
# the shared copies of CIFAR-10 beside the checkout, when present


def test_cifar10_jpeg75_zip_reads_as_cifar10():
    path = SHARED_DATA / "cifar10-jpeg75" / "train.zip"
    if not path.is_file():
        pytest.skip("the cifar10-jpeg75 copy is not beside this checkout")
    ds = ImageFolder(path, image_size=32)
    assert len(ds) == 50_000 and tuple(ds.classes) == CIFAR10_CLASSES
    for i in (0, 5_000, 49_999):
        image, label = ds[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and label == i // 5_000


def test_cifar10_lossless_subset_pixel():
    path = SHARED_DATA / "cifar10-lossless-subset" / "train.zip"
    if not path.is_file():
        pytest.skip("the cifar10-lossless-subset copy is not beside this checkout")
    ds = ImageFolder(path, image_size=32, on_error="raise")
    frog = ds.files.index("frog/0000.png")
    image, label = ds[frog]
    assert CIFAR10_CLASSES[label] == "frog" and image[:, 0, 0].tolist() == [59, 62, 63]
