"""Loss functions: how far the predictions are from the targets, as one number.

PyTorch's names, arguments and semantics. ``reduction`` is ``"mean"`` (default), ``"sum"``
or ``"none"`` (per element); it and the other options after ``weight`` are keyword-only.

* ``nll_loss`` / ``cross_entropy`` with class indices (N, d1, ...) for scores (N, C, d1, ...)
  (or one sample: scores (C,) and a 0-d index):
  ``weight`` (C,) rescales each class and ``ignore_index`` drops the targets of one value
  (the "unlabelled" pixels of a segmentation mask, often 255): the mean is the weighted
  mean, sum_n w[y_n] l_n / sum_n w[y_n] over the targets kept;
* ``cross_entropy`` with class probabilities (a float target of the input's shape): soft
  labels, l_n = -sum_c w_c y_nc log p_nc, the mean over the N d1 ... samples;
* ``binary_cross_entropy(_with_logits)``: ``weight`` rescales each element (broadcast), and
  ``pos_weight`` (with logits) each class's positive examples (recall against precision).

Class weights, ``weight`` and ``pos_weight`` are constants: no gradient reaches them (as in
PyTorch). Tensors are checked by ``checks``: Tensors of the input's dtype (class indices may
also be numpy arrays or lists of ints).
"""

from __future__ import annotations

import numpy as np

from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import xp_of
from tinygrad_cnn.nn.functional.checks import check_float_tensors, is_int
from tinygrad_cnn.tensor import Tensor, _is_real_number

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(fn: str, reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: unknown reduction {reduction!r}; expected one of {REDUCTIONS}")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _divide(total: Tensor, count: float) -> Tensor:
    """total / count; NaN when nothing was counted (every target ignored), as PyTorch's
    empty mean, with a zero gradient (as PyTorch's), so such a batch leaves the weights
    as they were instead of filling them with NaN."""
    if count == 0:
        return total * 0.0 + float("nan")
    return total / count


def _check_weight(fn: str, scores: Tensor, weight) -> np.ndarray | None:
    """Class weights: None or a Tensor (C,) of the scores' dtype; returns its array."""
    if weight is None:
        return None
    if isinstance(weight, str):
        raise TypeError(f"{fn}: weight must be a Tensor of class weights, got {weight!r} "
                        f"(reduction is a keyword argument: reduction={weight!r})")
    check_float_tensors(fn, input=scores, weight=weight)
    if weight.shape != (scores.shape[1],):
        raise ValueError(f"{fn}: weight has shape {weight.shape}, expected ({scores.shape[1]},): "
                         f"one weight per class of the input of shape {scores.shape}")
    return weight.data


def _class_targets(fn: str, scores: Tensor, target, ignore_index) -> np.ndarray:
    """Check integer class targets of shape (N, d1, ...) against scores (N, C, d1, ...);
    targets equal to ``ignore_index`` may lie outside [0, C)."""
    target = target.data if isinstance(target, Tensor) else np.asarray(target)
    if target.dtype.kind not in "iu":
        hint = " (class probabilities: a float Tensor of the input's shape)" if fn == "cross_entropy" else ""
        raise TypeError(f"{fn}: targets must be integer class indices, got dtype {target.dtype}{hint}")
    if not is_int(ignore_index):
        raise TypeError(f"{fn}: ignore_index must be an int, got {ignore_index!r}")
    expected = scores.shape[:1] + scores.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{fn}: target shape {target.shape} does not match input shape {scores.shape} "
            f"(expected {expected})"
        )
    n_classes = scores.shape[1]
    labelled = target[target != ignore_index]
    if labelled.size and (int(labelled.min()) < 0 or int(labelled.max()) >= n_classes):
        raise ValueError(
            f"{fn}: target values must be in [0, {n_classes - 1}] (or ignore_index {ignore_index}), "
            f"got min {int(labelled.min())} and max {int(labelled.max())}"
        )
    return target


def _unbatched(fn: str, scores) -> bool:
    """Scores of one sample (C,), with a 0-d class index (or (C,) probabilities), as PyTorch."""
    return isinstance(scores, Tensor) and scores.ndim == 1


def _labels(target) -> np.ndarray:
    labels = target.data if isinstance(target, Tensor) else np.asarray(target)
    if labels.ndim:
        raise ValueError(f"the target of unbatched scores (C,) must be one class index (0-d), "
                         f"got shape {labels.shape}")
    return labels


def _check_scores(fn: str, scores) -> Tensor:
    if not isinstance(scores, Tensor):
        hint = " (wrap arrays with Tensor(...))" if isinstance(scores, (np.ndarray, list)) else ""
        raise TypeError(f"{fn}: input must be a Tensor of scores, got {type(scores).__name__}{hint}")
    if scores.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be float32 or float64 scores, got {scores.dtype}")
    if scores.ndim < 2:
        raise ValueError(f"{fn}: input must be (N, C, ...), got shape {scores.shape}")
    return scores


def _channel_vector(values: np.ndarray, ndim: int) -> np.ndarray:
    """A per-class vector (C,) shaped to broadcast along dim 1 of an (N, C, ...) tensor."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def _weighted_nll(log_probs: Tensor, target: np.ndarray, weight, ignore_index: int):
    """Per-target losses -w[y] log_probs[n, y] (0 where ignored), and the weight w[y] of each
    target (0 where ignored): the denominator of the weighted mean."""
    kept = target != ignore_index
    safe = np.where(kept, target, 0)  # ignored targets may be out of range: gather class 0
    picked = log_probs.gather(1, np.expand_dims(safe, 1)).squeeze(1)
    xp = xp_of(log_probs.data)
    w = kept.astype(log_probs.dtype) if weight is None else xp.asarray(weight)[safe] * kept
    return -picked * Tensor._wrap(xp.asarray(w, dtype=log_probs.dtype)), w


def nll_loss(log_probs: Tensor, target, weight: Tensor | None = None, *, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood l_n = -w[y_n] log_probs[n, y_n] of log-probabilities (N, C, ...)
    and class indices (N, ...); ``mean`` divides by sum_n w[y_n] over the targets kept."""
    fn = "nll_loss"
    _check_reduction(fn, reduction)
    if _unbatched(fn, log_probs):
        loss = nll_loss(log_probs.unsqueeze(0), np.reshape(_labels(target), (1,)), weight,
                        ignore_index=ignore_index, reduction=reduction)
        return loss.squeeze(0) if reduction == "none" else loss
    _check_scores(fn, log_probs)
    weight = _check_weight(fn, log_probs, weight)
    target = _class_targets(fn, log_probs, target, ignore_index)
    loss, w = _weighted_nll(log_probs, target, weight, ignore_index)
    if reduction == "mean":
        return _divide(loss.sum(), float(w.sum()))
    return _reduce(loss, reduction)


def cross_entropy(logits: Tensor, target, weight: Tensor | None = None, *, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy from raw scores (N, C, ...) and class indices (N, ...) or class
    probabilities (N, C, ...), p = softmax(logits) along dim 1.

    Class indices: l_n = (1 - eps) w[y_n] (-log p[n, y_n]) + (eps / C) sum_c w_c (-log p[n, c]),
    eps = ``label_smoothing``; ``mean`` = sum_n l_n / sum_n w[y_n] over the targets that are
    not ``ignore_index``. Probabilities y (rows summing to 1, smoothed to (1 - eps) y + eps / C):
    l_n = -sum_c w_c y_nc log p_nc; ``mean`` divides by the number of samples N d1 ...
    """
    fn = "cross_entropy"
    _check_reduction(fn, reduction)
    if _unbatched(fn, logits):
        soft = isinstance(target, Tensor) and target.dtype.kind == "f"
        batched = target.unsqueeze(0) if soft else np.reshape(_labels(target), (1,))
        loss = cross_entropy(logits.unsqueeze(0), batched, weight, ignore_index=ignore_index,
                             reduction=reduction, label_smoothing=label_smoothing)
        return loss.squeeze(0) if reduction == "none" else loss
    _check_scores(fn, logits)
    if not _is_real_number(label_smoothing) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    weight = _check_weight(fn, logits, weight)
    log_probs = logits.log_softmax(1)
    n_classes = logits.shape[1]
    if isinstance(target, Tensor) and target.dtype.kind == "f":
        return _soft_cross_entropy(log_probs, target, weight, ignore_index, reduction, label_smoothing)
    target = _class_targets(fn, logits, target, ignore_index)
    loss, w = _weighted_nll(log_probs, target, weight, ignore_index)
    count = float(w.sum())
    if label_smoothing:
        classes = log_probs if weight is None else log_probs * Tensor._wrap(
            _channel_vector(weight, logits.ndim).astype(logits.dtype))
        kept = Tensor._wrap((target != ignore_index).astype(logits.dtype))
        smooth = -classes.sum(1) * kept
        loss = loss * (1.0 - label_smoothing) + smooth * (label_smoothing / n_classes)
    if reduction == "mean":
        return _divide(loss.sum(), count)
    return _reduce(loss, reduction)


def _soft_cross_entropy(log_probs, target, weight, ignore_index, reduction, label_smoothing):
    fn = "cross_entropy"
    check_float_tensors(fn, input=log_probs, target=target)
    if target.shape != log_probs.shape:
        hint = ""
        if target.shape == log_probs.shape[:1] + log_probs.shape[2:]:  # the shape of class indices
            hint = (" (these look like class indices: give them as integers, e.g. np.array([...]) or "
                    "Tensor(..., dtype='int64'); Tensor([0, 3]) of Python ints is float32)")
        raise ValueError(f"{fn}: float targets are class probabilities and must have the input's shape "
                         f"{log_probs.shape}, got {target.shape}{hint}")
    if is_int(ignore_index) and ignore_index >= 0:
        raise ValueError(f"{fn}: ignore_index is not supported for class-probability targets")
    n_classes = log_probs.shape[1]
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / n_classes
    products = log_probs * target
    if weight is not None:
        products = products * Tensor._wrap(_channel_vector(weight, log_probs.ndim).astype(log_probs.dtype))
    loss = -products.sum(1)
    if reduction == "mean":
        return _divide(loss.sum(), float(loss.numel()))
    return _reduce(loss, reduction)


def _same_shape(fn: str, input: Tensor, target: Tensor) -> None:  # noqa: A002
    check_float_tensors(fn, input=input, target=target)
    if input.shape != target.shape:
        raise ValueError(f"{fn}: input shape {input.shape} != target shape {target.shape}")


def _elementwise_weight(fn: str, name: str, input: Tensor, weight) -> np.ndarray | None:  # noqa: A002
    """An optional constant that broadcasts to the input's shape; its array."""
    if weight is None:
        return None
    check_float_tensors(fn, input=input, **{name: weight})
    try:
        fits = np.broadcast_shapes(weight.shape, input.shape) == input.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{fn}: {name} of shape {weight.shape} does not broadcast to the input's shape "
                         f"{input.shape}")
    return weight.data


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error (input - target)^2."""
    _same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, _check_reduction("mse_loss", reduction))


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *,  # noqa: A002
                         reduction: str = "mean") -> Tensor:
    """l = -w [y log p + (1 - y) log(1 - p)] for probabilities p in [0, 1], logs clamped at
    -100 as PyTorch does: p = 0 or 1 gives a large finite loss instead of infinity, and the
    gradient stays finite (0 for a correct saturated prediction, see BinaryCrossEntropy)."""
    fn = "binary_cross_entropy"
    _same_shape(fn, input, target)
    _check_reduction(fn, reduction)
    weight = _elementwise_weight(fn, "weight", input, weight)
    p = input.data
    if p.size and not (float(p.min()) >= 0 and float(p.max()) <= 1):
        raise ValueError(f"{fn}: input must be probabilities in [0, 1], got values in "
                         f"[{float(p.min())}, {float(p.max())}]")
    return _reduce(BinaryCrossEntropy.apply(input, target, weight=weight), reduction)


class BinaryCrossEntropy(Function):
    """l = -w [y max(log p, -100) + (1 - y) max(log(1 - p), -100)];
    dl/dp = w (p - y) / max(p (1 - p), 1e-12),  dl/dy = w (log(1 - p) - log p) (PyTorch's
    formulas: at p = y = 0 or 1 the gradient is 0, not 0/0)."""

    EPSILON = float(np.float32(1e-12))  # PyTorch's 1e-12, a float32 constant in float64 too
    LOG_FLOOR = -100.0

    def forward(self, p, y, weight=None):
        xp = xp_of(p)
        self.p, self.y, self.weight = p, y, weight
        with np.errstate(divide="ignore"):
            log_p = xp.maximum(xp.log(p), self.LOG_FLOOR)
            log_1mp = xp.maximum(xp.log(1 - p), self.LOG_FLOOR)
        loss = -(y * log_p + (1 - y) * log_1mp)
        return loss if weight is None else loss * weight

    def backward(self, g):
        xp = xp_of(g)
        p, y = self.p, self.y
        if self.weight is not None:
            g = g * self.weight
        gp = g * (p - y) / xp.maximum(p * (1 - p), self.EPSILON) if self.needs_input_grad[0] else None
        gy = None
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gy = g * (xp.log(1 - p) - xp.log(p))
        return gp, gy


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,  # noqa: A002
                                     *, reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """BCE of sigmoid(x), computed stably: l = w [(1 - y) x + (1 + (q - 1) y) softplus(-x)],
    softplus(-x) = log(1 + e^-x) = max(-x, 0) + log(1 + e^-|x|), with q = ``pos_weight``
    (broadcast along the classes, the last dim) weighting the positive term y log sigmoid(x)."""
    fn = "binary_cross_entropy_with_logits"
    _same_shape(fn, input, target)
    _check_reduction(fn, reduction)
    weight = _elementwise_weight(fn, "weight", input, weight)
    pos_weight = _elementwise_weight(fn, "pos_weight", input, pos_weight)
    loss = BinaryCrossEntropyWithLogits.apply(input, target, weight=weight, pos_weight=pos_weight)
    return _reduce(loss, reduction)


class BinaryCrossEntropyWithLogits(Function):
    """l = w [(1 - y) x + m softplus(-x)], m = 1 + (q - 1) y  (= BCE(sigmoid(x), y), q = 1);
    dl/dx = w [(1 - y) + m (sigmoid(x) - 1)]  (= w (sigmoid(x) - y) for q = 1),
    dl/dy = w [-x + (q - 1) softplus(-x)].

    One Function rather than relu/abs pieces: those are not differentiable at
    x = 0, although their sum is, and autograd would pick the wrong slope there.
    """

    def forward(self, x, y, weight=None, pos_weight=None):
        xp = xp_of(x)
        self.x, self.y, self.weight, self.pos_weight = x, y, weight, pos_weight
        self.softplus = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))  # log(1 + e^-x)
        m = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
        loss = (1 - y) * x + m * self.softplus
        return loss if weight is None else loss * weight

    def backward(self, g):
        xp = xp_of(g)
        x, y, q = self.x, self.y, self.pos_weight
        if self.weight is not None:
            g = g * self.weight
        e = xp.exp(-xp.abs(x))
        sigmoid = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        if q is None:
            gx, gy = g * (sigmoid - y), g * -x
        else:
            gx = g * ((1 - y) + (1 + (q - 1) * y) * (sigmoid - 1))
            gy = g * (-x + (q - 1) * self.softplus)
        return gx, gy
