"""Datasets, the DataLoader and augmentation, checked against numpy oracles and real files."""

import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor
from tinygrad_cnn.data import (
    DataLoader,
    ImageFolder,
    TensorDataset,
    download_file,
    flow_from_directory,
    load_cifar10,
    load_digits,
    load_mnist,
    make_shapes,
    md5sum,
    random_split,
    read_idx,
    transforms,
)
from tinygrad_cnn.data import datasets as datasets_module

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
HAVE_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"real MNIST test set not found at {MNIST_DIR}")


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=12, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:5], False)   # raw, uncompressed
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:5], False)
    return tmp_path, images, labels


# ----------------------------------------------------------------- files
def test_read_idx_gz_and_raw_and_load_mnist(tiny_mnist):
    root, images, labels = tiny_mnist
    np.testing.assert_array_equal(read_idx(root / "train-images-idx3-ubyte.gz"), images)
    x, y = load_mnist(root, "train")
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-3)
    np.testing.assert_array_equal(y, labels)
    x_test, y_test = load_mnist(root, "test")  # the raw files are found too
    assert x_test.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(y_test, labels[:5])


def test_corrupt_and_missing_idx_files_raise_clearly(tiny_mnist, tmp_path):
    root, images, _ = tiny_mnist
    truncated = tmp_path / "bad-images-idx3-ubyte"
    truncated.write_bytes((root / "t10k-images-idx3-ubyte").read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(truncated)
    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="garbage.gz"):
        read_idx(garbage)
    (tmp_path / "magic").write_bytes(b"\x01\x02\x03\x04" * 4)
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "magic")
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist(tmp_path / "empty", "train")
    with pytest.raises(ValueError, match="split"):
        load_mnist(root, "validation")


def test_download_offline_fails_clearly_and_checksums_are_verified(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets_module.urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match="offline"):
        load_mnist(tmp_path, "test", download=True)
    assert list(tmp_path.iterdir()) == []  # nothing half-written

    class Response:
        def __init__(self, data):
            self.data, self.done = data, False

        def read(self, n=-1):
            if self.done:
                return b""
            self.done = True
            return self.data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    payload = b"hello checksum"
    monkeypatch.setattr(datasets_module.urllib.request, "urlopen",
                        lambda url, timeout=None: Response(payload))
    good = hashlib.md5(payload).hexdigest()
    path = download_file("http://example/x", tmp_path / "x.bin", md5=good)
    assert path.read_bytes() == payload and md5sum(path) == good
    with pytest.raises(ConnectionError, match="checksum mismatch"):
        download_file("http://example/y", tmp_path / "y.bin", md5="0" * 32)
    assert not (tmp_path / "y.bin").exists()


@needs_mnist
def test_real_mnist_test_set():
    assert md5sum(MNIST_DIR / "t10k-images-idx3-ubyte.gz") == "9fb629c4189551a2d022fa330f9573f3"
    x, y = load_mnist(MNIST_DIR, "test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert 0.0 <= x.min() and x.max() == 1.0
    np.testing.assert_array_equal(y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])  # the well-known first labels
    assert np.bincount(y).min() > 850


def test_cifar10_binary_batches(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    records = rng.integers(0, 256, size=(7, 3073), dtype=np.uint8)
    records[:, 0] = rng.integers(0, 10, size=7)
    (folder / "test_batch.bin").write_bytes(records.tobytes())
    x, y = load_cifar10(tmp_path, "test")
    assert x.shape == (7, 3, 32, 32) and y.dtype == np.int64
    np.testing.assert_array_equal(y, records[:, 0])
    # the record is R plane, G plane, B plane: pixel (row 2, col 5) of green is byte 1 + 1024 + 2*32 + 5
    np.testing.assert_allclose(x[3, 1, 2, 5] * 255, records[3, 1 + 1024 + 69], atol=1e-3)
    (folder / "test_batch.bin").write_bytes(records.tobytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        load_cifar10(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="data_batch_1.bin"):
        load_cifar10(tmp_path, "train")


def test_digits_and_shapes():
    x, y, xt, yt = load_digits(image_size=28)
    assert x.shape[1:] == (1, 28, 28) and len(x) + len(xt) == 1797
    images, labels = make_shapes(30, 32, seed=3)
    again, _ = make_shapes(30, 32, seed=3)
    np.testing.assert_array_equal(images, again)
    assert set(np.unique(labels)) <= {0, 1, 2} and images.shape == (30, 1, 32, 32)
    images, masks = make_shapes(30, 32, "segmentation", seed=3)
    assert masks.shape == (30, 32, 32)
    for mask, label in zip(masks, labels):  # same seed, same shapes: the mask holds label + 1
        assert set(np.unique(mask)) == {0, label + 1}
    with pytest.raises(ValueError, match="task"):
        make_shapes(5, task="detection")


# ---------------------------------------------------------------- loader
def test_dataloader_batches_shuffle_and_drop_last():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    y = np.arange(10)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2] and len(loader) == 3
    assert isinstance(batches[0][0], Tensor) and batches[0][1].dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    assert [len(b[1]) for b in DataLoader((x, y), 4, drop_last=True)] == [4, 4]

    a = DataLoader((x, y), 3, shuffle=True, seed=5)
    b = DataLoader((x, y), 3, shuffle=True, seed=5)
    first_a = np.concatenate([t[1].numpy() for t in a])
    assert sorted(first_a) == list(range(10)) and not np.array_equal(first_a, y)
    np.testing.assert_array_equal(first_a, np.concatenate([t[1].numpy() for t in b]))
    second_a = np.concatenate([t[1].numpy() for t in a])
    assert not np.array_equal(first_a, second_a)  # a new order each epoch
    b.set_epoch(1)
    np.testing.assert_array_equal(second_a, np.concatenate([t[1].numpy() for t in b]))
    tc.manual_seed(0)
    c = DataLoader((x, y), 3, shuffle=True)
    tc.manual_seed(0)
    d = DataLoader((x, y), 3, shuffle=True)
    assert c.seed == d.seed
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader((x, y), bad)
    with pytest.raises(ValueError, match="different lengths"):
        TensorDataset(x, y[:3])


def test_random_split_is_a_partition():
    ds = TensorDataset(np.arange(20))
    a, b = random_split(ds, [15, 5], seed=1)
    got = sorted(np.concatenate([a.get_batch(np.arange(15))[0], b.get_batch(np.arange(5))[0]]))
    assert got == list(range(20))
    with pytest.raises(ValueError, match=r"lengths \[10, 5\] do not add up to 20"):
        random_split(ds, [10, 5])
    # fractions, as PyTorch: floor of each share, the remainder dealt one by one in order
    assert [len(s) for s in random_split(TensorDataset(np.arange(1438)), [0.8, 0.2])] == [1151, 287]
    assert [len(s) for s in random_split(ds, [0.5, 0.25, 0.25])] == [10, 5, 5]
    with pytest.raises(ValueError, match="neither counts adding up to 20 nor fractions adding up to 1"):
        random_split(ds, [0.5, 0.2])
    with pytest.raises(TypeError, match="counts or fractions"):
        random_split(ds, ["15", "5"])


# ------------------------------------------------------------ transforms
def test_flip_crop_and_normalize_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.random((6, 2, 5, 7)).astype(np.float32)
    flipped = transforms.RandomHorizontalFlip(p=1.0)(x, rng)
    np.testing.assert_array_equal(flipped, x[..., ::-1])
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(p=0.0)(x, rng), x)

    crop = transforms.RandomCrop((5, 7), padding=2)
    out = crop(x, np.random.default_rng(3))
    draws = np.random.default_rng(3)
    tops, lefts = draws.integers(0, 5, size=6), draws.integers(0, 5, size=6)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(6):
        np.testing.assert_array_equal(out[i], padded[i, :, tops[i] : tops[i] + 5, lefts[i] : lefts[i] + 7])

    norm = transforms.Normalize([0.5, 0.25], [2.0, 0.5])(x)
    np.testing.assert_allclose(norm[:, 1], (x[:, 1] - 0.25) / 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="std"):
        transforms.Normalize(0.0, 0.0)
    with pytest.raises(ValueError, match="batch"):
        transforms.RandomHorizontalFlip()(x[0])


def test_affine_identity_integer_shift_and_rotation():
    rng = np.random.default_rng(1)
    x = rng.random((3, 1, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(transforms.RandomAffine(0, 0)(x, rng), x, atol=1e-6)
    # a shift of exactly one pixel down
    shifted = transforms.affine(x, 0.0, 1.0, 0.0)
    np.testing.assert_allclose(shifted[:, :, 1:], x[:, :, :-1], atol=1e-6)
    np.testing.assert_array_equal(shifted[:, :, 0], 0)
    # a quarter turn about the centre is a 90-degree array rotation
    turned = transforms.affine(x, np.pi / 2, 0.0, 0.0)
    np.testing.assert_allclose(turned, np.rot90(x, k=-1, axes=(2, 3)), atol=1e-5)
    rotated = transforms.Compose([transforms.RandomRotation(15), transforms.RandomShift(0.1)])(x, rng)
    assert rotated.shape == x.shape and np.isfinite(rotated).all()


# ---------------------------------------------------------- image folder
@pytest.fixture
def photo_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, colour in (("paper", 0), ("rock", 1), ("scissors", 2)):
        (tmp_path / cls).mkdir()
        for i in range(4):
            pixels = (rng.random((20, 30, 3)) * 60).astype(np.uint8)
            pixels[..., colour] = 250
            ext = "png" if i % 2 else "jpg"
            Image.fromarray(pixels).save(tmp_path / cls / f"img{i}.{ext}")
    (tmp_path / "rock" / "notes.txt").write_text("not an image")
    return tmp_path


def test_image_folder_reads_resizes_and_labels(photo_folder):
    ds = ImageFolder(photo_folder, image_size=(16, 12))
    assert ds.classes == ["paper", "rock", "scissors"] and len(ds) == 12
    image, label = ds[5]
    assert image.shape == (3, 16, 12) and image.dtype == np.float32 and label == 1
    assert image[1].mean() > 0.9 > image[0].mean()  # the rock images are green
    gray = ImageFolder(photo_folder, 8, color_mode="grayscale")
    assert gray[0][0].shape == (1, 8, 8)
    loader = flow_from_directory(photo_folder, (16, 16), batch_size=5, seed=0,
                                 transform=transforms.RandomHorizontalFlip())
    shapes = [(x.shape, y.shape) for x, y in loader]
    assert shapes[0] == ((5, 3, 16, 16), (5,)) and sum(s[1][0] for s in shapes) == 12
    assert loader.class_indices == {"paper": 0, "rock": 1, "scissors": 2}
    train = flow_from_directory(photo_folder, 8, validation_split=0.25, subset="training", seed=1)
    val = flow_from_directory(photo_folder, 8, validation_split=0.25, subset="validation", seed=1)
    assert len(train.dataset) == 9 and len(val.dataset) == 3
    assert not set(train.dataset.indices) & set(val.dataset.indices)


def test_image_folder_bad_input(photo_folder, tmp_path):
    (photo_folder / "rock" / "broken.png").write_bytes(b"\x89PNG not really")
    ds = ImageFolder(photo_folder, 8)
    broken = [i for i, (p, _) in enumerate(ds.samples) if p.name == "broken.png"][0]
    with pytest.raises(ValueError, match="broken.png"):
        ds[broken]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        ImageFolder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="sub-folders"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(ValueError, match="color_mode"):
        ImageFolder(photo_folder, 8, color_mode="cmyk")
