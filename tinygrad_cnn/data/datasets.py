"""Datasets bundled or read from local files: nothing here needs the network.

* :func:`load_digits`: scikit-learn's bundled 8x8 digits (offline, the main job's default).
* :func:`load_mnist` / :func:`load_fashion_mnist`: the IDX files (``.gz`` or raw) from a local
  folder, with an optional download that verifies MD5 checksums.
* :func:`load_cifar10`: CIFAR-10's binary batches (``data_batch_1.bin`` ... ``test_batch.bin``),
  read without pickle.
* :func:`make_shapes`: a synthetic dataset of drawn circles, squares and triangles, for
  classification or per-pixel segmentation (U-Net).

Every loader returns float32 images (N, C, H, W) scaled to [0, 1] and int64 labels, the NCHW
layout of PyTorch (Keras uses NHWC; the course's ``x.reshape(-1, 28, 28, 1)`` becomes
``(-1, 1, 28, 28)`` here).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

# ------------------------------------------------------------------ digits


def load_digits(test_fraction: float = 0.2, seed: int = 0, image_size: int = 8):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes).

    Returns ``(x_train, y_train, x_test, y_test)``: images as float32 arrays of
    shape (N, 1, image_size, image_size) scaled to [0, 1], labels as int64. The
    split is a seeded shuffle, so it is the same on every machine.
    ``image_size`` other than 8 resizes by bilinear interpolation (e.g. 28 for LeNet-5).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction}")
    if not isinstance(image_size, (int, np.integer)) or image_size <= 0:
        raise ValueError(f"load_digits: image_size must be a positive int, got {image_size!r}")
    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    if image_size != 8:
        images = resize_bilinear(images, image_size, image_size)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


def resize_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (N, C, H, W) images with bilinear interpolation (pixel centres aligned)."""
    n, c, h, w = images.shape
    ys = np.clip((np.arange(height) + 0.5) * h / height - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * w / width - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = images[:, :, y0][:, :, :, x0] * (1 - wx) + images[:, :, y0][:, :, :, x1] * wx
    bottom = images[:, :, y1][:, :, :, x0] * (1 - wx) + images[:, :, y1][:, :, :, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(images.dtype)


# -------------------------------------------------------------- IDX (MNIST)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzip-compressed or raw.

    Layout: two zero bytes, a type code (0x08 = uint8), the number of dimensions d, then d
    big-endian uint32 sizes and the data in row-major order. A truncated or malformed file
    raises ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_idx: no such file: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise ValueError(f"read_idx: {path} is not a readable IDX file ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {path} is truncated (header needs {header} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"read_idx: {path} has {len(raw)} bytes, but its header (shape {shape}, {dtype}) "
            f"says {expected}: the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


# name -> (mirrors, {file name: md5}) ; the checksums are those published with the datasets
# (and used by torchvision).
_IDX_DATASETS = {
    "mnist": (
        ["https://ossci-datasets.s3.amazonaws.com/mnist/",
         "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    ),
    "fashion-mnist": (
        ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    ),
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The MD5 hex digest of a file (read in chunks)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download_file(urls: list[str] | str, path: str | os.PathLike, md5: str | None = None,
                  timeout: float = 30.0) -> Path:
    """Download ``path`` from the first mirror that answers, check its MD5, then move it into
    place (a failed or corrupt download leaves nothing behind). Offline, it raises
    ``ConnectionError`` saying where to put the file by hand."""
    path = Path(path)
    urls = [urls] if isinstance(urls, str) else list(urls)
    path.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".download-")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out)
            if md5 is not None and (got := md5sum(tmp)) != md5:
                raise ValueError(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
            os.replace(tmp, path)
            return path
        except (urllib.error.URLError, OSError, ValueError) as error:
            errors.append(f"{url}: {error}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise ConnectionError(
        f"could not download {path.name} (offline?): {'; '.join(errors)}. "
        f"Download it yourself and put it at {path}"
    )


def _find(root: Path, name: str) -> Path | None:
    """``name`` or its uncompressed form in ``root``."""
    for candidate in (root / name, root / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_dataset(kind: str, root, split: str, download: bool):
    if split not in ("train", "test"):
        raise ValueError(f"load_{kind.replace('-', '_')}: split must be 'train' or 'test', got {split!r}")
    root = Path(os.path.expanduser(os.fspath(root)))
    mirrors, checksums = _IDX_DATASETS[kind]
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for part in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"):
        name = f"{prefix}-{part}"
        path = _find(root, name)
        if path is None and download:
            path = download_file([m + name for m in mirrors], root / name, checksums[name])
        if path is None:
            raise FileNotFoundError(
                f"{kind}: {name} (or {name.removesuffix('.gz')}) not found in {root}; "
                f"pass download=True (--download) or copy the file there"
            )
        arrays.append(read_idx(path))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{kind} {split}: images of shape {images.shape} and labels of shape {labels.shape} "
            f"do not belong together (expected (N, 28, 28) and (N,))"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{kind} {split}: labels outside 0..9 in {root}")
    return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)


def load_mnist(root: str | os.PathLike, split: str = "train", download: bool = False):
    """MNIST (LeCun et al.) from the IDX files in ``root``: ``(images, labels)``.

    ``split="train"`` reads ``train-images-idx3-ubyte[.gz]`` (60,000 images), ``"test"`` the
    ``t10k`` files (10,000). Images are float32 (N, 1, 28, 28) in [0, 1], labels int64.
    ``download=True`` fetches missing files and verifies their MD5 checksums.
    """
    return _load_idx_dataset("mnist", root, split, download)


def load_fashion_mnist(root: str | os.PathLike, split: str = "train", download: bool = False):
    """Fashion-MNIST (Zalando; same format and sizes as MNIST, 10 kinds of clothing:
    ``FASHION_MNIST_CLASSES``) from the IDX files in ``root``: ``(images, labels)``."""
    return _load_idx_dataset("fashion-mnist", root, split, download)


# ------------------------------------------------------------------ CIFAR-10

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
_CIFAR_RECORD = 1 + 3 * 32 * 32


def load_cifar10(root: str | os.PathLike, split: str = "train", download: bool = False):
    """CIFAR-10 (Krizhevsky 2009) from its *binary* batches: ``(images, labels)``.

    Each record of ``data_batch_1.bin`` ... ``data_batch_5.bin`` (train, 50,000 images) and
    ``test_batch.bin`` (10,000) is one label byte followed by 3072 bytes: the red, green and
    blue 32x32 planes, which is already NCHW. ``root`` may hold the files or the
    ``cifar-10-batches-bin`` folder. No pickle is read. Images float32 (N, 3, 32, 32) in [0, 1].
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    root = Path(os.path.expanduser(os.fspath(root)))
    folder = root / "cifar-10-batches-bin" if (root / "cifar-10-batches-bin").is_dir() else root
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    if download and not all((folder / n).is_file() for n in names):
        archive = download_file(CIFAR10_URL, root / "cifar-10-binary.tar.gz", CIFAR10_MD5)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
        folder = root / "cifar-10-batches-bin"
    images, labels = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(
                f"cifar10: {name} not found in {folder}; pass download=True or copy the binary "
                f"batches (cifar-10-binary.tar.gz) there"
            )
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % _CIFAR_RECORD:
            raise ValueError(
                f"cifar10: {path} has {raw.size} bytes, not a multiple of the {_CIFAR_RECORD}-byte "
                f"record: truncated or not a CIFAR-10 binary batch"
            )
        records = raw.reshape(-1, _CIFAR_RECORD)
        if records[:, 0].max() > 9:
            raise ValueError(f"cifar10: {path} has labels above 9: not a CIFAR-10 binary batch")
        labels.append(records[:, 0].astype(np.int64))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(images).astype(np.float32) / 255.0, np.concatenate(labels)


# ------------------------------------------------------------------ shapes

SHAPE_CLASSES = ("circle", "square", "triangle")


def make_shapes(n: int = 1000, image_size: int = 32, task: str = "classification", seed: int = 0,
                channels: int = 1, noise: float = 0.1):
    """A synthetic dataset: one shape per image (circle, square or triangle: ``SHAPE_CLASSES``)
    of random size and position on a noisy background, drawn with numpy.

    ``task="classification"`` returns ``(images, labels)`` with labels in {0, 1, 2};
    ``task="segmentation"`` returns ``(images, masks)`` where ``masks`` (N, H, W) holds 0 for
    background and 1 + class for the shape's pixels (4 classes per pixel), the target of a
    U-Net. Images are float32 (N, channels, H, W); the same seed gives the same data.
    """
    if task not in ("classification", "segmentation"):
        raise ValueError(f"make_shapes: task must be 'classification' or 'segmentation', got {task!r}")
    if not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"make_shapes: n must be a positive int, got {n!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"make_shapes: image_size must be an int >= 8, got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"make_shapes: channels must be 1 or 3, got {channels!r}")
    rng = np.random.default_rng(seed)
    s = image_size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    labels = rng.integers(0, len(SHAPE_CLASSES), size=n)
    images = rng.normal(0.0, noise, size=(n, channels, s, s)).astype(np.float32) + 0.2
    masks = np.zeros((n, s, s), dtype=np.int64)
    for i, label in enumerate(labels):
        r = rng.uniform(0.18, 0.32) * s
        cy, cx = rng.uniform(r + 1, s - r - 1, size=2)
        if label == 0:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif label == 1:
            half = r * 0.85
            inside = (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)
        else:  # upward triangle: below the apex, above the base, between the two sides
            top, bottom = cy - r, cy + r
            width = (yy - top) / (2 * r) * r * 1.1
            inside = (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= width)
        colour = rng.uniform(0.6, 1.0, size=(channels, 1, 1)).astype(np.float32)
        images[i] = np.where(inside[None], colour + images[i] - 0.2, images[i])
        masks[i][inside] = label + 1
    images = np.clip(images, 0.0, 1.0)
    if task == "segmentation":
        return images, masks
    return images, labels.astype(np.int64)
