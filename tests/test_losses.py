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


# ------------------------------------------------ PyTorch's options, against the formulas as loops
def loop_weighted_cross_entropy(logits, target, weight, ignore_index, smoothing, reduction):
    """The formula of the docstring, one target at a time."""
    n, c = logits.shape[:2]
    scores = np.moveaxis(logits, 1, -1).reshape(-1, c)
    labels = target.reshape(-1)
    losses, weights = [], []
    for s, y in zip(scores, labels):
        log_p = s - s.max() - np.log(np.exp(s - s.max()).sum())
        if y == ignore_index:
            losses.append(0.0)
            weights.append(0.0)
            continue
        nll = -weight[y] * log_p[y]
        smooth = -(weight * log_p).sum() / c
        losses.append((1 - smoothing) * nll + smoothing * smooth)
        weights.append(weight[y])
    losses = np.array(losses)
    if reduction == "none":
        return losses.reshape(target.shape)
    return losses.sum() if reduction == "sum" else losses.sum() / np.sum(weights)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_with_class_weights_and_ignored_targets(reduction, smoothing):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 4, 2, 2))
    target = rng.integers(0, 4, (3, 2, 2))
    target[0, 0, 0] = target[2, 1, 1] = 255  # unlabelled pixels of a segmentation mask
    weight = np.array([0.5, 2.0, 1.0, 3.0])
    out = F.cross_entropy(Tensor(logits), target, Tensor(weight), ignore_index=255,
                          reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(out.numpy(), loop_weighted_cross_entropy(logits, target, weight, 255,
                                                                        smoothing, reduction), rtol=1e-12)
    gradcheck(lambda t: F.cross_entropy(t, target, Tensor(weight), ignore_index=255, reduction=reduction,
                                        label_smoothing=smoothing), [Tensor(logits, requires_grad=True)])
    module = nn.CrossEntropyLoss(Tensor(weight), ignore_index=255, reduction=reduction,
                                 label_smoothing=smoothing)
    np.testing.assert_allclose(module(Tensor(logits), target).numpy(), out.numpy())


def test_nll_loss_with_weights_and_ignore_index_and_the_default_minus_100():
    rng = np.random.default_rng(1)
    log_probs = rng.standard_normal((5, 3))
    target = np.array([0, -100, 2, 1, 2])
    weight = np.array([1.0, 0.5, 4.0])
    kept, labels = [0, 2, 3, 4], [0, 2, 1, 2]
    expected = -(weight[labels] * log_probs[kept, labels]).sum() / weight[labels].sum()
    assert F.nll_loss(Tensor(log_probs), target, Tensor(weight)).item() == pytest.approx(expected, rel=1e-12)
    assert nn.NLLLoss(Tensor(weight))(Tensor(log_probs), target).item() == pytest.approx(expected, rel=1e-12)
    every_one_ignored = F.nll_loss(Tensor(log_probs), np.full(5, 7), ignore_index=7)
    assert np.isnan(every_one_ignored.item())  # 0 / 0, as PyTorch


def test_cross_entropy_with_class_probabilities():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 3, 2))
    probs = rng.uniform(0, 1, (4, 3, 2))
    probs /= probs.sum(1, keepdims=True)
    weight = np.array([1.0, 2.0, 0.5])
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    for smoothing in (0.0, 0.3):
        soft = probs * (1 - smoothing) + smoothing / 3
        expected = -(weight[None, :, None] * soft * log_p).sum(1).mean()  # mean over the 8 samples
        out = F.cross_entropy(Tensor(logits), Tensor(probs), Tensor(weight), label_smoothing=smoothing)
        assert out.item() == pytest.approx(expected, rel=1e-12)
    # one-hot probabilities are the class indices
    one_hot = np.eye(3)[[0, 2, 1, 1]]
    indices = F.cross_entropy(Tensor(logits[:, :, 0]), np.array([0, 2, 1, 1])).item()
    soft = F.cross_entropy(Tensor(logits[:, :, 0]), Tensor(one_hot)).item()
    assert soft == pytest.approx(indices, rel=1e-12)
    gradcheck(lambda t, y: F.cross_entropy(t, y, reduction="sum"),
              [Tensor(logits, requires_grad=True), Tensor(probs, requires_grad=True)])


def test_binary_cross_entropy_with_weight_and_pos_weight():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3)) * 3
    y = rng.uniform(0, 1, (4, 3))
    weight = rng.uniform(0.5, 2.0, (4, 1))
    pos_weight = np.array([0.5, 1.0, 4.0])
    p = 1 / (1 + np.exp(-x))
    expected = -(weight * (pos_weight * y * np.log(p) + (1 - y) * np.log(1 - p))).mean()
    got = F.binary_cross_entropy_with_logits(Tensor(x), Tensor(y), Tensor(weight),
                                             pos_weight=Tensor(pos_weight))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    module = nn.BCEWithLogitsLoss(Tensor(weight), pos_weight=Tensor(pos_weight))
    assert module(Tensor(x), Tensor(y)).item() == pytest.approx(expected, rel=1e-12)
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, Tensor(weight), reduction="sum",
                                                              pos_weight=Tensor(pos_weight)),
              [Tensor(x, requires_grad=True), Tensor(y, requires_grad=True)])
    plain = -(weight * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum()
    assert F.binary_cross_entropy(Tensor(p), Tensor(y), Tensor(weight), reduction="sum").item() == \
        pytest.approx(plain, rel=1e-12)
    module = nn.BCELoss(Tensor(weight), reduction="sum")
    assert module(Tensor(p), Tensor(y)).item() == pytest.approx(plain, rel=1e-12)
    gradcheck(lambda a, b: F.binary_cross_entropy(a, b, Tensor(weight)),
              [Tensor(p, requires_grad=True), Tensor(y, requires_grad=True)])


def test_binary_cross_entropy_gradient_at_saturated_probabilities():
    # sigmoid(20) is exactly 1.0 in float32: a correct saturated prediction must not poison training
    p = Tensor(np.array([0.0, 1.0, 0.0, 1.0], np.float32), requires_grad=True)
    y = Tensor(np.array([0.0, 1.0, 1.0, 0.0], np.float32))
    F.binary_cross_entropy(p, y, reduction="sum").backward()
    grad = p.grad.numpy()
    assert np.isfinite(grad).all()
    assert grad[0] == 0.0 and grad[1] == 0.0               # right: no push
    assert grad[2] < -1e11 and grad[3] > 1e11              # wrong: (p - y) / 1e-12, as PyTorch
    logits = Tensor(np.array([20.0, -20.0], np.float32), requires_grad=True)
    F.binary_cross_entropy(logits.sigmoid(), Tensor(np.array([1.0, 0.0], np.float32))).backward()
    assert np.isfinite(logits.grad.numpy()).all()


def test_loss_option_errors_name_the_argument():
    scores = Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"weight has shape \(2,\), expected \(3,\)"):
        F.cross_entropy(scores, np.array([0, 1]), Tensor(np.ones(2)))
    with pytest.raises(TypeError, match="reduction is a keyword argument: reduction='sum'"):
        F.cross_entropy(scores, np.array([0, 1]), "sum")
    with pytest.raises(TypeError, match="share one dtype"):
        F.nll_loss(scores, np.array([0, 1]), Tensor(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match=r"target values must be in \[0, 2\] \(or ignore_index 255\)"):
        F.cross_entropy(scores, np.array([0, 3]), ignore_index=255)
    with pytest.raises(ValueError, match="ignore_index is not supported for class-probability targets"):
        F.cross_entropy(scores, Tensor(np.ones((2, 3)) / 3), ignore_index=1)
    with pytest.raises(ValueError, match="float targets are class probabilities and must have the input's"):
        F.cross_entropy(scores, Tensor(np.ones((2, 2))))
    with pytest.raises(ValueError, match="these look like class indices: give them as integers"):
        F.cross_entropy(scores.float(), Tensor([0, 2]))  # Python ints make a float32 Tensor
    with pytest.raises(ValueError, match="pos_weight of shape"):
        F.binary_cross_entropy_with_logits(scores, Tensor(np.zeros((2, 3))), pos_weight=Tensor(np.ones(4)))
    with pytest.raises(TypeError, match="must be a Tensor, got ndarray"):
        F.mse_loss(scores, np.zeros((2, 3)))


def test_losses_of_one_unbatched_sample():
    scores = np.array([0.5, -1.0, 2.0])
    log_p = scores - np.log(np.exp(scores).sum())
    assert F.cross_entropy(Tensor(scores), np.array(1)).item() == pytest.approx(-log_p[1], rel=1e-12)
    assert F.nll_loss(Tensor(log_p), 2, reduction="none").shape == ()
    probs = np.array([0.2, 0.3, 0.5])
    soft = F.cross_entropy(Tensor(scores), Tensor(probs)).item()
    assert soft == pytest.approx(-(probs * log_p).sum(), rel=1e-12)
    with pytest.raises(ValueError, match="one class index"):
        F.cross_entropy(Tensor(scores), np.array([1]))


def test_a_batch_whose_targets_are_all_ignored_has_a_nan_loss_and_zero_gradients():
    """PyTorch's convention: the mean over no targets is NaN, and nothing flows back (a
    segmentation crop of only ignored pixels must not fill the weights with NaN)."""
    logits = Tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    loss = F.cross_entropy(logits, np.full(5, -100))
    loss.backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(logits.grad.numpy(), np.zeros((5, 3)))
