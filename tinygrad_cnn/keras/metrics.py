"""Keras's metrics by name, computed on numpy arrays: ``metric(y_true, y_pred) -> values``.

``'accuracy'`` (or ``'acc'``) means what Keras makes of it from the shapes:

* predictions with one value per sample (a sigmoid output): binary accuracy, p > 0.5;
* labels with fewer axes than the predictions (class indices): sparse categorical
  accuracy, argmax(p) == label;
* otherwise (one-hot labels): categorical accuracy, argmax(p) == argmax(y).

The value is logged under the name given (``accuracy``, ``val_accuracy``; ``acc``, ``val_acc``).
A metric returns one value per sample (or per pixel); ``fit`` averages them over the epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _labels(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true)
    return y[..., 0] if y.ndim == y_pred.ndim and y.shape[-1] == 1 else y


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    return (np.asarray(y_true).reshape(y_pred.shape) == (y_pred > threshold)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    return (_labels(y_true, y_pred) == y_pred.argmax(-1)).astype(np.float64)


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    return (np.asarray(y_true).argmax(-1) == np.asarray(y_pred).argmax(-1)).astype(np.float64)


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    return (np.asarray(y_true).reshape(y_pred.shape) - y_pred) ** 2


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    return np.abs(np.asarray(y_true).reshape(y_pred.shape) - y_pred)


def accuracy(y_true, y_pred) -> np.ndarray:
    """Keras's 'accuracy', chosen from the shapes (see the module docstring)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
        return binary_accuracy(y_true, y_pred)
    if y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
        return sparse_categorical_accuracy(y_true, y_pred)
    return categorical_accuracy(y_true, y_pred)


METRICS: dict[str, Callable] = {
    "accuracy": accuracy, "acc": accuracy, "binary_accuracy": binary_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy, "categorical_accuracy": categorical_accuracy,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
}


def get(identifier) -> tuple[str, Callable]:
    """(the name to log, the function) for a name in METRICS or a function (y_true, y_pred)."""
    if isinstance(identifier, str):
        if identifier not in METRICS:
            raise ValueError(f"unknown metric {identifier!r}; expected one of {sorted(METRICS)} "
                             "or a function")
        return identifier, METRICS[identifier]
    if callable(identifier):
        return getattr(identifier, "__name__", "metric"), identifier
    raise TypeError(f"metric must be a name or a function (y_true, y_pred), got {identifier!r}")
