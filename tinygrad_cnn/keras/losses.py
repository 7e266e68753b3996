"""Keras's losses, ``loss(y_true, y_pred) -> scalar Tensor``, on tinygrad_cnn's ops.

Keras's conventions, which differ from PyTorch's: the class axis is the LAST one, and the
cross-entropies take probabilities (a softmax or sigmoid output layer) unless
``from_logits=True``. Probabilities are first clipped to [eps, 1 - eps] (eps = 1e-7) so that
log never sees 0, exactly as Keras computes them:

* ``sparse_categorical_crossentropy``: integer labels, -log p[label]   (``F.nll_loss`` of log p);
* ``categorical_crossentropy``: one-hot (or soft) labels, -sum_c y_c log p_c;
* ``binary_crossentropy``: -[y log p + (1 - y) log(1 - p)];
* ``mean_squared_error`` (``mse``) and ``mean_absolute_error`` (``mae``).

Each is averaged over the batch (and any other axes), as Keras's default reduction.
With ``from_logits=True`` the stable forms are used: ``F.cross_entropy`` (log-softmax) and
``F.binary_cross_entropy_with_logits``.
"""

from __future__ import annotations

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.keras import backend
from tinygrad_cnn.tensor import Tensor


def _target(y_true, like: Tensor) -> Tensor:
    """y_true as a float Tensor of y_pred's shape ((N,) and (N, 1) are the same target)."""
    array = y_true.numpy() if isinstance(y_true, Tensor) else np.asarray(y_true)
    if array.size != like.numel():
        raise ValueError(f"targets of shape {array.shape} do not match predictions of shape {like.shape}")
    return Tensor(array.reshape(like.shape).astype(like.dtype))


def _class_axis_second(x: Tensor) -> Tensor:
    """(N, ..., C) -> (N, C, ...), the layout of F.nll_loss and F.cross_entropy."""
    return x if x.ndim == 2 else x.permute(0, x.ndim - 1, *range(1, x.ndim - 1))


def _clipped(p: Tensor) -> Tensor:
    eps = backend.epsilon()
    return p.clamp(eps, 1.0 - eps)


class Loss:
    """Base of the loss classes: ``loss(y_true, y_pred)``; ``name`` is Keras's."""

    name = "loss"

    def __call__(self, y_true, y_pred: Tensor) -> Tensor:
        return self.call(y_true, y_pred)

    def call(self, y_true, y_pred: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class SparseCategoricalCrossentropy(Loss):
    """Integer class labels (N, ...) (or (N, ..., 1)) against class probabilities (N, ..., C)."""

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        labels = y_true.numpy() if isinstance(y_true, Tensor) else np.asarray(y_true)
        if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
            labels = labels[..., 0]
        if labels.shape == tuple(y_pred.shape) and y_pred.shape[-1] > 1:
            raise ValueError(f"sparse_categorical_crossentropy: labels must be class indices (N, ...), got "
                             f"labels of the predictions' shape {labels.shape} (one-hot labels need "
                             "loss='categorical_crossentropy')")
        if labels.dtype.kind == "f":
            if not np.all(labels == np.round(labels)):
                raise ValueError("sparse_categorical_crossentropy: labels must be class indices, got "
                                 "fractions (one-hot labels need categorical_crossentropy)")
            labels = labels.astype(np.int64)
        scores = _class_axis_second(y_pred)
        if self.from_logits:
            return F.cross_entropy(scores, labels)
        probabilities = scores / scores.sum(1, keepdim=True)
        return F.nll_loss(_clipped(probabilities).log(), labels)


class CategoricalCrossentropy(Loss):
    """One-hot (or soft) labels (N, ..., C) against class probabilities (N, ..., C);
    ``label_smoothing`` e moves the labels to y (1 - e) + e / C."""

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CategoricalCrossentropy: label_smoothing must be in [0, 1], "
                             f"got {label_smoothing}")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)

    def call(self, y_true, y_pred):
        target = _target(y_true, y_pred)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        if self.from_logits:
            log_p = y_pred.log_softmax(-1)
        else:
            log_p = _clipped(y_pred / y_pred.sum(-1, keepdim=True)).log()
        return -(target * log_p).sum(-1).mean()


class BinaryCrossentropy(Loss):
    """0/1 (or soft) labels against probabilities of the same shape (a sigmoid output)."""

    name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"BinaryCrossentropy: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)

    def call(self, y_true, y_pred):
        target = _target(y_true, y_pred)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            return F.binary_cross_entropy_with_logits(y_pred, target)
        p = _clipped(y_pred)
        return -(target * p.log() + (1.0 - target) * (1.0 - p).log()).mean()


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def call(self, y_true, y_pred):
        return F.mse_loss(y_pred, _target(y_true, y_pred))


class MeanAbsoluteError(Loss):
    name = "mean_absolute_error"

    def call(self, y_true, y_pred):
        return (y_pred - _target(y_true, y_pred)).abs().mean()


class _Function(Loss):
    """A user's ``loss(y_true, y_pred)`` on Tensors; a per-sample result is averaged."""

    def __init__(self, function) -> None:
        self.function, self.name = function, getattr(function, "__name__", "loss")

    def call(self, y_true, y_pred):
        target = y_true if isinstance(y_true, Tensor) else Tensor(np.asarray(y_true))
        loss = self.function(target, y_pred)
        if not isinstance(loss, Tensor):
            raise TypeError(f"loss function {self.name} must return a Tensor, got {type(loss).__name__}")
        return loss if loss.ndim == 0 else loss.mean()


LOSSES = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
}


def get(identifier) -> Loss:
    """A Loss from a name in LOSSES, a Loss instance or class, or a function (y_true, y_pred)."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        key = backend.snake_case(identifier)
        if key in LOSSES:
            return LOSSES[key]()
        raise ValueError(f"unknown loss {identifier!r}; expected one of {sorted(LOSSES)}, a Loss or "
                         "a function")
    if callable(identifier):
        return _Function(identifier)
    raise TypeError(f"loss must be a name, a Loss or a function, got {identifier!r}")


sparse_categorical_crossentropy = SparseCategoricalCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
binary_crossentropy = BinaryCrossentropy()
mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()
