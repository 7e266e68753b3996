"""Datasets bundled or read from local files: nothing here needs the network."""

from __future__ import annotations

import numpy as np


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
