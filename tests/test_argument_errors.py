"""Regressions from a review: bad arguments give clear errors at the Python boundary, and a
rejected call changes no state."""

import numpy as np
import pytest

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, nn


def ones(*shape):
    return Tensor(np.ones(shape, np.float32))


@pytest.mark.parametrize("call,match", [
    (lambda: F.conv2d(ones(1, 1, 3, 3), ones(1, 1, 2, 2), stride=2**70), "stride .* too large"),
    (lambda: F.conv1d(ones(1, 1, 3), ones(1, 1, 2), dilation=2**64), "dilation .* too large"),
    (lambda: F.conv_transpose2d(ones(1, 1, 3, 3), ones(1, 1, 2, 2), stride=2**70), "stride .* too large"),
    (lambda: F.conv2d(ones(1, 1, 2, 2), ones(1, 1, 1, 1), padding=2**40), "padding .* too large"),
    (lambda: F.conv2d(ones(1, 1, 2, 2), ones(1, 1, 1, 1), padding=10**6),
     r"output would have shape \(1, 1, 2000002"),
    (lambda: F.unfold(ones(1, 1, 4, 4), 2, padding=10**6), "output would have shape"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, stride=2**70), "stride .* too large"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, stride=np.uint64(2**63)), "stride .* too large"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2.0), "kernel_size must be an int or a tuple of 2 ints, got 2"),
    (lambda: F.avg_pool2d(ones(1, 1, 4, 4), None), "kernel_size must be an int or a tuple of 2 ints, got No"),
    (lambda: F.batch_norm(Tensor(np.zeros((2, 0), np.float32)), None, None, training=True),
     r"input of shape \(2, 0\) is empty"),
    (lambda: F.batch_norm(ones(2, 3), None, None, training=True, eps=float("inf")), "eps"),
    (lambda: F.cross_entropy(Tensor(np.zeros((3, 4))), np.array([0, 1, 2]), label_smoothing="a"),
     "label_smoothing"),
])
def test_bad_arguments_raise_value_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cross_entropy_needs_float_tensor_scores():
    with pytest.raises(TypeError, match="must be a Tensor of scores, got ndarray"):
        F.cross_entropy(np.zeros((3, 4)), [0, 1, 2])
    with pytest.raises(TypeError, match="float32 or float64 scores, got int64"):
        F.cross_entropy(Tensor(np.zeros((3, 4), dtype=np.int64)), np.array([0, 1, 2]))


def test_rejected_batch_leaves_batch_norm_counter_unchanged():
    bn = nn.BatchNorm2d(3, momentum=None).train()
    with pytest.raises(ValueError):
        bn(ones(1, 3, 1, 1))  # one value per channel: no variance
    assert bn.num_batches_tracked.item() == 0
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32))
    bn(x)
    bn(x * 3)
    assert bn.num_batches_tracked.item() == 2
    # momentum=None: running_mean is the plain average of the two batch means
    expected = (x.numpy().mean(axis=(0, 2, 3)) + (3 * x.numpy()).mean(axis=(0, 2, 3))) / 2
    np.testing.assert_allclose(bn.running_mean.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_leaf_gradients_do_not_share_memory():
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0], requires_grad=True)
    (a + b).backward(Tensor([1.0, 1.0]))
    a.grad.data *= 0
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])


def test_batch_norm_refuses_mixed_dtypes_in_train_and_eval():
    """One rule for every layer (as PyTorch): the input and the layer share one dtype."""
    bn = nn.BatchNorm2d(3).double()
    x = Tensor(np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32),
               requires_grad=True)
    for mode in (bn.train, bn.eval):
        with pytest.raises(TypeError, match="batch_norm: all tensors must share one dtype, got input float"):
            mode()(x)
    assert bn.eval()(x.double()).dtype == np.float64


@pytest.mark.parametrize("call, name", [
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, ceil_mode="False"), "ceil_mode"),
    (lambda: F.avg_pool2d(ones(1, 1, 4, 4), 2, count_include_pad=1), "count_include_pad"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, return_indices="yes"), "return_indices"),
    (lambda: F.batch_norm(ones(2, 3), None, None, training="True"), "training"),
    (lambda: ones(2, 3).sum(0, keepdim="no"), "keepdim"),
    (lambda: ones(2, 3).max(1, keepdim=1), "keepdim"),
    (lambda: nn.Conv2d(1, 2, 3, bias="False"), "bias"),
    (lambda: nn.Linear(2, 3, bias=0), "bias"),
    (lambda: nn.BatchNorm2d(3, affine="no"), "affine"),
    (lambda: nn.Linear(2, 3).train("False"), "mode"),
    (lambda: setattr(ones(2), "requires_grad", "yes"), "requires_grad"),
])
def test_flags_must_be_bools(call, name):
    """A truthy string or number where a bool belongs is refused (issue 22: ceil_mode='False'
    turned ceil mode on); numpy bools are accepted."""
    with pytest.raises(TypeError, match=f"{name} must be True or False"):
        call()
    assert F.max_pool2d(ones(1, 1, 5, 5), 2, ceil_mode=np.bool_(True)).shape == (1, 1, 3, 3)


def test_an_nhwc_batch_gets_the_layout_hint():
    """Issue 13: an NHWC batch given to an NCHW layer says how to convert it."""
    layer = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"expects 3 input channels.*has 28; tinygrad_cnn uses NCHW.*"
                                         r"x\.permute\(0, 3, 1, 2\)"):
        layer(Tensor(np.zeros((4, 28, 28, 3), np.float32)))
    with pytest.raises(ValueError) as plain:  # no hint where the last dimension is not the channels
        layer(Tensor(np.zeros((4, 5, 28, 28), np.float32)))
    assert "NCHW" not in str(plain.value)
