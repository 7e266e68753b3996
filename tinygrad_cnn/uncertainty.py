"""How sure is a classifier? Monte Carlo dropout and calibration (course: *uncertainty*).

A softmax output looks like a probability, but a network trained to minimise cross-entropy
is often *over-confident*, and it gives a confident answer even for an input unlike anything
it has seen (a noise image, a digit turned on its side). Two tools from the course:

* **Monte Carlo dropout** (Gal and Ghahramani, 2016): keep dropout switched on at test time
  and run the same input T times. Each pass samples a thinned network, so the T softmax
  vectors p_t differ where the network is unsure. With p̄ = (1/T) Σ_t p_t the predictive mean,

      predictive entropy   H[p̄] = -Σ_c p̄_c log p̄_c                 (total uncertainty)
      expected entropy     E_t H[p_t] = (1/T) Σ_t H[p_t]             (aleatoric part)
      mutual information   I = H[p̄] - E_t H[p_t] >= 0                (epistemic part: the
                                                                      passes disagree)

  all in nats (natural logarithm); H is at most log C for C classes. Everything else in the
  model stays in evaluation mode: batch norm uses its running statistics (a batch's statistics
  would make one image's prediction depend on its neighbours, and training-mode batch norm
  would also overwrite the running averages).

* **Calibration**: of the predictions made with confidence 0.8 (the largest probability),
  about 80% should be right. Sort the N predictions by confidence into M equal bins
  B_m = ((m - 1)/M, m/M]; the *reliability diagram* plots each bin's accuracy acc(B_m) against
  its mean confidence conf(B_m) (a calibrated model lies on the diagonal), and the
  **expected calibration error** (Guo et al., 2017) is the gap averaged over the predictions:

      ECE = Σ_m (|B_m| / N) |acc(B_m) - conf(B_m)|

Models here return logits (as for ``F.cross_entropy``); the functions apply the softmax.
Probability arrays are numpy: (N, C) for one prediction per input, (T, N, C) for T passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.nn.functional.checks import positive_int
from tinygrad_cnn.nn.layers import Dropout
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.tensor import Tensor

__all__ = [
    "DROPOUT_LAYERS", "mc_dropout", "predict_probabilities", "mc_dropout_predict", "entropy",
    "predictive_mean", "predictive_entropy", "expected_entropy", "mutual_information",
    "ReliabilityDiagram", "reliability_diagram", "expected_calibration_error",
]

# the layers mc_dropout switches back on (add yours to this tuple if you write another kind)
DROPOUT_LAYERS: tuple[type[Module], ...] = (Dropout,)


# ------------------------------------------------------------------ Monte Carlo dropout
@contextmanager
def _modes_restored(fn: str, model: Module) -> Iterator[list[Module]]:
    """Yield the model's sub-modules; on leaving, give each back the training flag it had."""
    if not isinstance(model, Module):
        raise TypeError(f"{fn}: model must be an nn.Module, got {type(model).__name__}")
    modules = list(model.modules())
    flags = [m.training for m in modules]
    try:
        yield modules
    finally:
        for m, flag in zip(modules, flags):
            object.__setattr__(m, "training", flag)


@contextmanager
def mc_dropout(model: Module) -> Iterator[Module]:
    """``with mc_dropout(model): ...`` runs ``model`` in evaluation mode except for its dropout
    layers, which keep dropping (a new random mask on every call); on leaving, every sub-module
    gets back the training flag it had. Raises ValueError for a model without dropout layers
    (its "Monte Carlo" passes would all be the same)."""
    with _modes_restored("mc_dropout", model) as modules:
        dropouts = [m for m in modules if isinstance(m, DROPOUT_LAYERS)]
        if not dropouts:
            names = ", ".join(t.__name__ for t in DROPOUT_LAYERS)
            raise ValueError(f"mc_dropout: {type(model).__name__} has no dropout layer ({names}); "
                             "every pass would be the same")
        model.eval()
        for m in dropouts:
            m.train()
        yield model


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def _as_inputs(fn: str, x) -> np.ndarray:
    array = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(f"{fn}: x must be a batch (N, ...) with N >= 1, got shape {array.shape}")
    return array


def _one_pass(fn: str, model: Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Softmax of the model's logits for every input, ``batch_size`` inputs at a time, in the
    dtype and on the device of the model's parameters."""
    first = next(model.parameters(), None)
    if first is not None and x.dtype.kind == "f":
        x = x.astype(first.dtype, copy=False)
    outputs = []
    with no_grad():
        for start in range(0, len(x), batch_size):
            batch = Tensor(x[start:start + batch_size])
            logits = model(batch if first is None else batch.to(first.device)).numpy()
            if logits.ndim != 2:
                raise ValueError(f"{fn}: the model must return logits (N, C), got shape {logits.shape}")
            outputs.append(_softmax(logits.astype(np.float64)))
    return np.concatenate(outputs)


def predict_probabilities(model: Module, x, batch_size: int = 256) -> np.ndarray:
    """The usual, deterministic prediction: softmax of the logits in evaluation mode, (N, C)
    float64 (the model's training flags are restored afterwards)."""
    x = _as_inputs("predict_probabilities", x)
    batch_size = positive_int("predict_probabilities", "batch_size", batch_size)
    with _modes_restored("predict_probabilities", model):
        model.eval()
        return _one_pass("predict_probabilities", model, x, batch_size)


def mc_dropout_predict(model: Module, x, passes: int = 30, batch_size: int = 256) -> np.ndarray:
    """Monte Carlo dropout: ``passes`` forward passes of x (N, ...) with dropout on and
    everything else in evaluation mode (:func:`mc_dropout`); returns the softmax
    probabilities of every pass, (passes, N, C) float64. Seed with
    ``tinygrad_cnn.manual_seed`` for repeatable masks."""
    x = _as_inputs("mc_dropout_predict", x)
    passes = positive_int("mc_dropout_predict", "passes", passes)
    batch_size = positive_int("mc_dropout_predict", "batch_size", batch_size)
    with mc_dropout(model):
        return np.stack([_one_pass("mc_dropout_predict", model, x, batch_size) for _ in range(passes)])


# ------------------------------------------------------------- summaries of the passes
def _probabilities(fn: str, p, ndim: int) -> np.ndarray:
    """Probability vectors along the last axis: finite, non-negative, summing to 1."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != ndim or p.shape[-1] < 1 or p.size == 0:
        shape = {1: "(C,)", 2: "(N, C)", 3: "(T, N, C)"}.get(ndim, f"{ndim} dims")
        raise ValueError(f"{fn}: expected probabilities of shape {shape}, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"{fn}: probabilities must be finite and non-negative")
    sums = p.sum(axis=-1)
    if np.abs(sums - 1).max() > 1e-4:
        raise ValueError(f"{fn}: probabilities must sum to 1 along the last axis (softmax outputs), "
                         f"got sums between {sums.min():.6g} and {sums.max():.6g}")
    return p


def _entropy(p: np.ndarray) -> np.ndarray:
    """-Σ p log p along the last axis, with 0 log 0 = 0 (the limit)."""
    safe = np.where(p > 0, p, 1.0)
    return -(p * np.log(safe)).sum(axis=-1)


def entropy(p) -> np.ndarray:
    """Shannon entropy H[p] = -Σ_c p_c log p_c in nats of probability vectors along the last
    axis (any leading shape), with 0 log 0 = 0: 0 for a one-hot vector, log C for uniform."""
    p = np.asarray(p, dtype=np.float64)
    return _entropy(_probabilities("entropy", p, max(p.ndim, 1)))


def predictive_mean(probs) -> np.ndarray:
    """p̄ = (1/T) Σ_t p_t of Monte Carlo passes (T, N, C): the MC dropout prediction, (N, C)."""
    return _probabilities("predictive_mean", probs, 3).mean(axis=0)


def predictive_entropy(probs) -> np.ndarray:
    """H[p̄] of Monte Carlo passes (T, N, C), per input (N,): the total uncertainty."""
    return _entropy(_probabilities("predictive_entropy", probs, 3).mean(axis=0))


def expected_entropy(probs) -> np.ndarray:
    """E_t H[p_t] of Monte Carlo passes (T, N, C), per input (N,): how unsure each pass is on
    its own (the aleatoric part)."""
    return _entropy(_probabilities("expected_entropy", probs, 3)).mean(axis=0)


def mutual_information(probs) -> np.ndarray:
    """I = H[p̄] - E_t H[p_t] of Monte Carlo passes (T, N, C), per input (N,): how much the
    passes disagree (the epistemic part, BALD's score). Non-negative because entropy is concave
    (Jensen); clipped at 0 against rounding."""
    probs = _probabilities("mutual_information", probs, 3)
    return np.maximum(_entropy(probs.mean(axis=0)) - _entropy(probs).mean(axis=0), 0.0)


# --------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class ReliabilityDiagram:
    """The data of a reliability diagram, M equal confidence bins ((m - 1)/M, m/M].

    ``bin_edges`` (M + 1,); per bin: ``counts`` (predictions in it), ``confidence`` (their
    mean confidence) and ``accuracy`` (the fraction right), NaN for empty bins; ``ece`` the
    expected calibration error and ``mce`` the maximum calibration error (the largest gap
    over non-empty bins)."""

    bin_edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    ece: float
    mce: float

    @property
    def gaps(self) -> np.ndarray:
        """accuracy - confidence per bin: negative where the model is over-confident."""
        return self.accuracy - self.confidence


def _labels(fn: str, labels, n: int, classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(f"{fn}: labels must be {n} integer class indices, got shape {labels.shape} "
                         f"and dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"{fn}: labels must be in [0, {classes}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


def reliability_diagram(probs, labels, n_bins: int = 10) -> ReliabilityDiagram:
    """Bin the predictions of ``probs`` (N, C) by confidence (the largest probability) into
    ``n_bins`` equal bins ((m - 1)/M, m/M] and compare each bin's accuracy on ``labels`` (N,)
    with its mean confidence. Returns a :class:`ReliabilityDiagram` (its ``ece`` is
    :func:`expected_calibration_error`)."""
    fn = "reliability_diagram"
    probs = _probabilities(fn, probs, 2)
    labels = _labels(fn, labels, len(probs), probs.shape[1])
    n_bins = positive_int(fn, "n_bins", n_bins)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") - 1 puts c in the bin with edges[m] < c <= edges[m + 1]
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / counts
    gaps = np.abs(accuracy - mean_confidence)
    filled = counts > 0
    ece = float((counts[filled] / len(probs) * gaps[filled]).sum())
    return ReliabilityDiagram(edges, counts, mean_confidence, accuracy, ece, float(gaps[filled].max()))


def expected_calibration_error(probs, labels, n_bins: int = 10) -> float:
    """ECE = Σ_m (|B_m| / N) |acc(B_m) - conf(B_m)| over ``n_bins`` equal confidence bins, for
    predictions ``probs`` (N, C) and true ``labels`` (N,): 0 for a perfectly calibrated model."""
    return reliability_diagram(probs, labels, n_bins).ece
