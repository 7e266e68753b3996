"""Binarized layers: sign forward, straight-through estimator with clipping backward, latent
weights clipped to [-1, 1], packed one-bit weights; and the binarized LeNet-style model.

Oracles: numpy formulas (the sign, the hand-derived STE gradients), definition loops for the
binary convolution, finite differences where a true gradient exists (after the last sign).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, models, nn
from tinygrad_cnn.testing import gradcheck


def sign(a: np.ndarray) -> np.ndarray:
    return np.where(a >= 0, 1.0, -1.0)


def test_binarize_forward_and_clipped_straight_through_gradient():
    u = Tensor(np.array([-2.0, -1.0, -0.3, 0.0, 0.7, 1.0, 1.5]), requires_grad=True)
    b = nn.binarize(u)
    np.testing.assert_array_equal(b.numpy(), [-1, -1, -1, 1, 1, 1, 1])  # sign(0) = +1
    b.backward(np.arange(7.0))
    np.testing.assert_array_equal(u.grad.numpy(), [0, 1, 2, 3, 4, 5, 0])  # passes where |u| <= 1
    with pytest.raises(TypeError, match="binarize: input must be a Tensor"):
        nn.binarize(np.ones(3))
    u = Tensor(np.array([np.nan, -0.0, 2.0]), requires_grad=True)  # NaN stays NaN (torch.sign)
    b = nn.binarize(u)
    np.testing.assert_array_equal(b.numpy(), [np.nan, 1, 1])
    b.backward(np.ones(3))
    np.testing.assert_array_equal(u.grad.numpy(), [0, 1, 0])


def test_binarized_linear_forward_and_gradients_by_hand():
    rng = np.random.default_rng(0)
    layer = nn.BinarizedLinear(5, 3).double()
    layer.weight.data[...] = rng.uniform(-1.5, 1.5, (3, 5))  # some latent weights outside [-1, 1]
    x = rng.uniform(-2, 2, (4, 5))
    w = layer.weight.numpy().copy()
    layer.eval()  # no clipping in evaluation: the gradient mask below sees |w| > 1 too
    xt = Tensor(x, requires_grad=True)
    y = layer(xt)
    np.testing.assert_allclose(y.numpy(), sign(x) @ sign(w).T + layer.bias.numpy(), rtol=1e-12)
    g = rng.normal(size=(4, 3))
    y.backward(g)
    np.testing.assert_allclose(layer.weight.grad.numpy(), (g.T @ sign(x)) * (np.abs(w) <= 1), rtol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), (g @ sign(w)) * (np.abs(x) <= 1), rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.numpy(), g.sum(0), rtol=1e-12)


def test_training_forward_clips_the_latent_weights():
    layer = nn.BinarizedLinear(4, 2)
    layer.weight.data[...] = np.array([[3.0, -0.5, 0.2, -7.0], [0.1, 1.0, -1.0, 2.0]])
    layer.eval()
    layer(Tensor(np.ones((1, 4), np.float32)))
    assert layer.weight.numpy()[0, 0] == 3.0  # evaluation leaves the weights alone
    layer.train()
    y = layer(Tensor(np.ones((1, 4), np.float32)))
    expected = np.array([[1.0, -0.5, 0.2, -1.0], [0.1, 1.0, -1.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(layer.weight.numpy(), expected)
    np.testing.assert_allclose(y.numpy(), np.array([[0.0, 2.0]]) + layer.bias.numpy())  # signs unchanged


def test_binarized_conv2d_against_loops():
    rng = np.random.default_rng(1)
    layer = nn.BinarizedConv2d(2, 3, (2, 3), stride=(1, 2), padding=1, bias=False).double()
    x = rng.normal(size=(2, 2, 4, 5))
    y = layer(Tensor(x)).numpy()
    xb = np.pad(sign(x), ((0, 0), (0, 0), (1, 1), (1, 1)))  # zero padding of the binary input
    wb = sign(layer.weight.numpy())
    expected = np.zeros_like(y)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            window = xb[:, :, i:i + 2, 2 * j:2 * j + 3]
            expected[:, :, i, j] = np.einsum("nchw,kchw->nk", window, wb)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    assert set(np.unique(y)) <= set(range(-12, 13))  # sums of +-1 products (and padding zeros)
    first = nn.BinarizedConv2d(1, 2, 3, binarize_input=False).double()  # the first layer sees real pixels
    pixels = rng.random((1, 1, 3, 3))
    np.testing.assert_allclose(first(Tensor(pixels)).numpy().reshape(2),
                               (sign(first.weight.numpy()) * pixels).sum((1, 2, 3)) + first.bias.numpy())


def test_latent_weights_have_no_true_gradient_so_the_estimator_is_needed():
    # the loss is piecewise constant in a weight in front of a sign: finite differences give 0,
    # the straight-through estimator gives the slope of the clipped identity
    tc.manual_seed(0)
    layer = nn.BinarizedLinear(6, 2, bias=False).double()
    x = Tensor(np.random.default_rng(2).normal(size=(3, 6)))

    def loss() -> float:
        return float((layer(x) * Tensor(np.array([1.0, -2.0]))).sum().item())

    base = loss()
    layer.weight.data[0, 0] += 1e-6
    assert loss() == base
    layer.weight.data[0, 0] -= 1e-6
    (layer(x) * Tensor(np.array([1.0, -2.0]))).sum().backward()
    assert np.abs(layer.weight.grad.numpy()).sum() > 0


def test_packed_weights_are_32_times_smaller():
    layer = nn.BinarizedLinear(64, 32, bias=False)
    packed = nn.packed_weight(layer)
    assert packed.dtype == np.uint8 and packed.nbytes == 64 * 32 // 8
    assert layer.weight.data.nbytes / packed.nbytes == 32
    bits = np.unpackbits(packed).reshape(32, 64).astype(int)
    np.testing.assert_array_equal(bits * 2 - 1, layer.binary_weight())
    model = nn.Sequential(nn.BinarizedLinear(64, 32, bias=False), nn.BatchNorm1d(32), nn.Linear(32, 2))
    # 256 bytes of bits + batch norm (2 * 32 floats, 2 * 32 statistics, one int64 counter) + the real layer
    assert nn.binarized_size_bytes(model) == 256 + 4 * 64 + 4 * 64 + 8 + 4 * (32 * 2 + 2)
    with pytest.raises(TypeError, match="BinarizedConv2d or BinarizedLinear"):
        nn.packed_weight(nn.Linear(2, 2))


def test_binarized_lenet_counts_and_gradient_after_the_last_sign():
    model = models.binarized_lenet()
    binary = [m for m in model.modules() if isinstance(m, (nn.BinarizedConv2d, nn.BinarizedLinear))]
    assert [m.weight.numel() for m in binary] == [400, 12_800, 102_400, 1_280]
    assert sum(m.weight.numel() for m in binary) == 116_880
    assert sum(nn.packed_weight(m).nbytes for m in binary) == 14_610  # 116,880 / 8
    assert not binary[0].binarize_input and all(m.binarize_input for m in binary[1:])
    y = model(Tensor(np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32)))
    assert y.shape == (3, 10)
    with pytest.raises(ValueError, match="28, 28"):
        model(Tensor(np.zeros((1, 1, 32, 32), np.float32)))
    # finite differences where a true gradient exists: the batch norm after the last sign (training
    # mode, so through the batch statistics), on the reference kernels in float64
    tc.manual_seed(1)
    small = models.BinarizedLeNet(num_classes=3, channels=(2, 3), hidden=4).double().train()
    x = Tensor(np.random.default_rng(3).random((4, 1, 28, 28)))
    last = small.classifier[-1]
    with tc.use_backend("reference"):
        assert gradcheck(lambda w, b: small(x), [last.weight, last.bias])
        (small(x) * Tensor(np.random.default_rng(4).normal(size=(4, 3)))).sum().backward()
    assert all(np.abs(m.weight.grad.numpy()).sum() > 0 for m in small.modules()
               if isinstance(m, (nn.BinarizedConv2d, nn.BinarizedLinear)))  # the STE reaches every layer
