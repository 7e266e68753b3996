"""``tinygrad_cnn.keras.utils``: ``to_categorical`` (one-hot labels for categorical_crossentropy)."""

from __future__ import annotations

import numpy as np


def to_categorical(y, num_classes: int | None = None, dtype="float32") -> np.ndarray:
    """Class indices (any shape) -> one-hot rows: ``to_categorical([0, 2]) = [[1, 0, 0], [0, 0, 1]]``."""
    labels = np.asarray(y)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
        raise ValueError("to_categorical: labels must be whole numbers (class indices)")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {labels.min()}")
    count = int(labels.max()) + 1 if num_classes is None and labels.size else int(num_classes or 0)
    if labels.size and labels.max() >= count:
        raise ValueError(f"to_categorical: label {labels.max()} does not fit num_classes={num_classes}")
    return np.eye(count, dtype=dtype)[labels]
