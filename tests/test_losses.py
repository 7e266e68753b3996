"""Losses against formulas written out with numpy, and their gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.nn.functional as F
from tests.strategies import finite_arrays
from tinygrad_cnn import Tensor, nn
from tinygrad_cnn.testing import gradcheck


def numpy_cross_entropy(logits, target, smoothing=0.0):
    logits = np.moveaxis(logits, 1, -1).reshape(-1, logits.shape[1])
    target = target.reshape(-1)
    log_p = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - logits.max(1, keepdims=True)
    nll = -log_p[np.arange(len(target)), target]
    return ((1 - smoothing) * nll - smoothing * log_p.mean(1)).mean()


@given(n=st.integers(1, 5), c=st.integers(2, 5), spatial=st.sampled_from([(), (3,), (2, 2)]),
       smoothing=st.sampled_from([0.0, 0.1]), data=st.data())
def test_cross_entropy(n, c, spatial, smoothing, data):
    logits = data.draw(finite_arrays((n, c) + spatial))
    target = data.draw(st.lists(st.integers(0, c - 1), min_size=n * int(np.prod(spatial)),
                                max_size=n * int(np.prod(spatial))))
    target = np.array(target, dtype=np.int64).reshape((n,) + spatial)
    out = F.cross_entropy(Tensor(logits), target, label_smoothing=smoothing)
    assert out.item() == pytest.approx(numpy_cross_entropy(logits, target, smoothing), rel=1e-6)
    gradcheck(lambda t: F.cross_entropy(t, target, label_smoothing=smoothing),
              [Tensor(logits, requires_grad=True)])
    nll = F.nll_loss(Tensor(logits).log_softmax(1), target)
    if not smoothing:
        assert nll.item() == pytest.approx(out.item(), rel=1e-9)


def test_cross_entropy_reductions_and_module():
    logits = Tensor(np.array([[2.0, 0.0], [0.0, 3.0]]))
    target = np.array([0, 0])
    per_sample = F.cross_entropy(logits, target, reduction="none").numpy()
    assert per_sample.shape == (2,)
    assert F.cross_entropy(logits, target, reduction="sum").item() == pytest.approx(per_sample.sum())
    assert nn.CrossEntropyLoss()(logits, target).item() == pytest.approx(per_sample.mean())


def test_cross_entropy_errors():
    with pytest.raises(ValueError, match=r"target values must be in \[0, 2\]"):
        F.cross_entropy(Tensor.ones(2, 3), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"target shape \(3,\).*\(2, 3\)"):
        F.cross_entropy(Tensor.ones(2, 3), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(Tensor.ones(2, 3), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="unknown reduction"):
        F.cross_entropy(Tensor.ones(2, 3), np.array([0, 1]), reduction="avg")


@given(x=finite_arrays((3, 4)), y=finite_arrays((3, 4)))
def test_mse(x, y):
    assert F.mse_loss(Tensor(x), Tensor(y)).item() == pytest.approx(((x - y) ** 2).mean(), abs=1e-12)
    gradcheck(lambda a: F.mse_loss(a, Tensor(y)), [Tensor(x, requires_grad=True)])


@given(x=finite_arrays((6,), low=-8, high=8), y=finite_arrays((6,), low=0, high=1))
def test_binary_cross_entropy_with_and_without_logits(x, y):
    p = 1 / (1 + np.exp(-x))
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    with_logits = F.binary_cross_entropy_with_logits(Tensor(x), Tensor(y)).item()
    assert with_logits == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert F.binary_cross_entropy(Tensor(p), Tensor(y)).item() == pytest.approx(expected, rel=1e-5)
    gradcheck(lambda t, u: F.binary_cross_entropy_with_logits(t, u),
              [Tensor(x, requires_grad=True), Tensor(y, requires_grad=True)])
    p_inner = np.clip(p, 0.05, 0.95)
    gradcheck(lambda t: F.binary_cross_entropy(t, Tensor(y)),
              [Tensor(p_inner, requires_grad=True)])


def test_binary_cross_entropy_clamps_log_and_checks_range():
    loss = F.binary_cross_entropy(Tensor([0.0, 1.0]), Tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        F.binary_cross_entropy(Tensor([1.5]), Tensor([1.0]))
    huge = F.binary_cross_entropy_with_logits(Tensor([1000.0, -1000.0]), Tensor([0.0, 1.0]))
    assert huge.item() == pytest.approx(1000.0)
