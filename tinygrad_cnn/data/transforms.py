"""Data augmentation as array operations on a whole batch (N, C, H, W).

Augmentation enlarges the training set with label-preserving changes (the course's
``ImageDataGenerator(rotation_range=..., width_shift_range=..., horizontal_flip=True)``): the
network sees a slightly different image every epoch, which reduces over-fitting. Each
transform is ``t(x, rng) -> x`` on numpy arrays, drawing one random choice *per image* from
``rng`` (a ``numpy.random.Generator``; the DataLoader passes its seeded one), so a run is
repeatable. Apply them to training data only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tinygrad_cnn.random import generator


def _check_batch(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name}: expects a batch (N, C, H, W), got shape {x.shape}")
    return x


class Transform:
    """Base class: ``__call__(x, rng=None)``; ``rng=None`` uses the library's generator."""

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.apply(_check_batch(type(self).__name__, x), rng if rng is not None else generator())

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms one after another."""

    def __init__(self, transforms: Sequence) -> None:
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")
        self.transforms = list(transforms)

    def apply(self, x, rng):
        for t in self.transforms:
            x = t(x, rng)
        return x


class Normalize(Transform):
    """(x - mean) / std per channel (a scalar or one value per channel), as torchvision."""

    def __init__(self, mean, std) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {std}")
        if self.mean.size != self.std.size:
            raise ValueError(f"Normalize: mean {mean} and std {std} differ in length")

    def apply(self, x, rng):
        if self.mean.size not in (1, x.shape[1]):
            raise ValueError(f"Normalize: {self.mean.size} means for {x.shape[1]} channels")
        shape = (1, -1, 1, 1)
        return ((x - self.mean.reshape(shape)) / self.std.reshape(shape)).astype(np.float32)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability p (not for digits: a mirrored 3 is no 3)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def apply(self, x, rng):
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out


class RandomCrop(Transform):
    """Zero-pad by ``padding`` on each side, then cut a random ``size`` window per image
    (the CIFAR augmentation of He et al.: pad 4, crop 32)."""

    def __init__(self, size: int | tuple[int, int], padding: int = 0) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if padding < 0 or min(self.size) <= 0:
            raise ValueError(f"RandomCrop: size {size} must be positive and padding {padding} >= 0")
        self.padding = padding

    def apply(self, x, rng):
        p, (h, w) = self.padding, self.size
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        ph, pw = padded.shape[2:]
        if h > ph or w > pw:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image {(ph, pw)}")
        tops = rng.integers(0, ph - h + 1, size=len(x))
        lefts = rng.integers(0, pw - w + 1, size=len(x))
        return np.stack([padded[i, :, t : t + h, l : l + w] for i, (t, l) in enumerate(zip(tops, lefts))])


def _sample_bilinear(x: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample each image of x (N, C, H, W) at per-image coordinates ys, xs (N, H, W);
    outside the image is 0."""
    n, c, h, w = x.shape
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    wy, wx = (ys - y0)[:, None], (xs - x0)[:, None]
    batch = np.arange(n)[:, None, None]

    def at(yi, xi):
        valid = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        values = x[batch, :, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]  # (N, H, W, C)
        return np.moveaxis(values, -1, 1) * valid[:, None]

    top = at(y0, x0) * (1 - wx) + at(y0, x0 + 1) * wx
    bottom = at(y0 + 1, x0) * (1 - wx) + at(y0 + 1, x0 + 1) * wx
    return (top * (1 - wy) + bottom * wy).astype(x.dtype)


class RandomAffine(Transform):
    """A small random rotation (degrees in [-degrees, degrees]) and shift (a fraction of the
    size in [-translate, translate]) per image, about the centre, with bilinear sampling and
    zero fill: Keras's ``rotation_range`` and ``width/height_shift_range``."""

    def __init__(self, degrees: float = 0.0, translate: tuple[float, float] | float = 0.0) -> None:
        translate = (translate, translate) if isinstance(translate, (int, float)) else tuple(translate)
        if degrees < 0 or any(not 0 <= t < 1 for t in translate):
            raise ValueError(f"RandomAffine: degrees {degrees} must be >= 0, translate {translate} in [0, 1)")
        self.degrees, self.translate = float(degrees), translate

    def apply(self, x, rng):
        n, _, h, w = x.shape
        angle = np.deg2rad(rng.uniform(-self.degrees, self.degrees, size=n))
        ty = rng.uniform(-self.translate[0], self.translate[0], size=n) * h
        tx = rng.uniform(-self.translate[1], self.translate[1], size=n) * w
        return affine(x, angle, ty, tx)


def affine(x: np.ndarray, angle, shift_y, shift_x) -> np.ndarray:
    """Rotate every image of x (N, C, H, W) by ``angle`` radians about its centre, then shift it
    by (shift_y, shift_x) pixels (scalars or one value per image); bilinear, zero fill.

    Each output pixel p is read from the input at R(angle) (p - c - t) + c (the inverse map,
    so no output pixel is left empty); a quarter turn is ``np.rot90(x, -1, axes=(2, 3))``.
    """
    x = _check_batch("affine", x)
    n, _, h, w = x.shape
    angle, ty, tx = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))
                     for v in (angle, shift_y, shift_x))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    dy, dx = yy[None] - cy - ty[:, None, None], xx[None] - cx - tx[:, None, None]
    src_y = cos * dy - sin * dx + cy
    src_x = sin * dy + cos * dx + cx
    return _sample_bilinear(x, src_y, src_x)


class RandomRotation(RandomAffine):
    """Rotate each image by a random angle in [-degrees, degrees]."""

    def __init__(self, degrees: float) -> None:
        super().__init__(degrees=degrees)


class RandomShift(RandomAffine):
    """Shift each image by up to ``fraction`` of its height and width."""

    def __init__(self, fraction: float) -> None:
        super().__init__(translate=fraction)


def standard_augmentation(dataset: str) -> Compose | None:
    """The usual training augmentation for a dataset name: digits/MNIST get small rotations
    and shifts (no flips), CIFAR-10 pad-4 random crops and flips, photos flips and shifts."""
    if dataset in ("digits", "mnist", "fashion-mnist"):
        return Compose([RandomAffine(degrees=10, translate=0.1)])
    if dataset == "cifar10":
        return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])
    if dataset in ("shapes", "folder"):
        return Compose([RandomHorizontalFlip(), RandomAffine(degrees=10, translate=0.1)])
    return None
