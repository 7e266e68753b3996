"""Loss functions: how far the predictions are from the targets, as one number.

``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"``, as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import xp_of
from tinygrad_cnn.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")


def _class_targets(name: str, scores: Tensor, target) -> np.ndarray:
    """Check integer class targets of shape (N, d1, ...) against scores (N, C, d1, ...)."""
    if not isinstance(scores, Tensor):
        raise TypeError(f"{name}: input must be a Tensor of scores, got {type(scores).__name__}")
    if scores.dtype.kind != "f":
        raise TypeError(f"{name}: input must be float32 or float64 scores, got {scores.dtype}")
    target = target.data if isinstance(target, Tensor) else np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{name}: targets must be integer class indices, got dtype {target.dtype}")
    if scores.ndim < 2:
        raise ValueError(f"{name}: input must be (N, C, ...), got shape {scores.shape}")
    expected = scores.shape[:1] + scores.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{name}: target shape {target.shape} does not match input shape {scores.shape} "
            f"(expected {expected})"
        )
    n_classes = scores.shape[1]
    if target.size and (int(target.min()) < 0 or int(target.max()) >= n_classes):
        raise ValueError(
            f"{name}: target values must be in [0, {n_classes - 1}], "
            f"got min {int(target.min())} and max {int(target.max())}"
        )
    return target


def nll_loss(log_probs: Tensor, target, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -log_probs[n, target[n]] for log-probabilities (N, C, ...)."""
    target = _class_targets("nll_loss", log_probs, target)
    picked = log_probs.gather(1, np.expand_dims(target, 1)).squeeze(1)
    return _reduce(-picked, reduction)


def cross_entropy(
    logits: Tensor, target, reduction: str = "mean", label_smoothing: float = 0.0
) -> Tensor:
    """Softmax cross-entropy from raw scores (N, C, ...) and class indices (N, ...).

    loss_n = -(1 - eps) log p[n, y_n] - eps * mean_c log p[n, c],  p = softmax(logits),
    with eps = ``label_smoothing`` (0 gives the plain loss), as PyTorch.
    """
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    target = _class_targets("cross_entropy", logits, target)
    log_probs = logits.log_softmax(1)
    loss = -log_probs.gather(1, np.expand_dims(target, 1)).squeeze(1)
    if label_smoothing:
        uniform = -log_probs.mean(1)
        loss = loss * (1.0 - label_smoothing) + uniform * label_smoothing
    return _reduce(loss, reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error (input - target)^2."""
    target = target if isinstance(target, Tensor) else Tensor(target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} != target shape {target.shape}")
    diff = input - target
    return _reduce(diff * diff, reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    """-[y log p + (1 - y) log(1 - p)] for probabilities p in [0, 1]; logs clamped at -100
    as PyTorch does, so p = 0 or 1 gives a large finite loss instead of infinity."""
    target = target if isinstance(target, Tensor) else Tensor(target)
    if input.shape != target.shape:
        raise ValueError(
            f"binary_cross_entropy: input shape {input.shape} != target shape {target.shape}"
        )
    p = input.data
    if p.size and (float(p.min()) < 0 or float(p.max()) > 1):
        raise ValueError("binary_cross_entropy: input must be probabilities in [0, 1]")
    with np.errstate(divide="ignore"):  # log(0) = -inf is clamped on the next line
        log_p = input.log().clamp(min=-100.0)
        log_1mp = (1 - input).log().clamp(min=-100.0)
    return _reduce(-(target * log_p + (1 - target) * log_1mp), reduction)


def binary_cross_entropy_with_logits(
    input: Tensor, target: Tensor, reduction: str = "mean"  # noqa: A002
) -> Tensor:
    """BCE of sigmoid(x) computed stably: max(x, 0) - x y + log(1 + e^-|x|)."""
    target = target if isinstance(target, Tensor) else Tensor(target)
    if input.shape != target.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: input shape {input.shape} != "
            f"target shape {target.shape}"
        )
    return _reduce(BinaryCrossEntropyWithLogits.apply(input, target), reduction)


class BinaryCrossEntropyWithLogits(Function):
    """l = max(x, 0) - x y + log(1 + e^-|x|)  (= BCE(sigmoid(x), y) without overflow);
    dl/dx = sigmoid(x) - y,  dl/dy = -x.

    One Function rather than relu/abs pieces: those are not differentiable at
    x = 0, although their sum is, and autograd would pick the wrong slope there.
    """

    def forward(self, x, y):
        xp = xp_of(x)
        self.x, self.y = x, y
        return xp.maximum(x, 0) - x * y + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, g):
        xp = xp_of(g)
        e = xp.exp(-xp.abs(self.x))
        sigmoid = xp.where(self.x >= 0, 1 / (1 + e), e / (1 + e))
        return g * (sigmoid - self.y), g * -self.x
