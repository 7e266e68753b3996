"""1x1, depthwise, separable and locally connected convolutions, and the layers' parameters.

Oracles: numpy einsum (1x1 = a matrix product over channels), scipy.signal.correlate2d
per channel (depthwise), loops (locally connected), the course's parameter formula.
"""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tests.strategies import DTYPES
from tests.test_conv_definition import tolerance
from tinygrad_cnn import Tensor, nn


@st.composite
def images(draw, max_channels=4):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, max_channels))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    dtype = draw(DTYPES)
    x = np.random.default_rng(draw(st.integers(0, 2**16))).uniform(-2, 2, (n, c, h, w)).astype(dtype)
    return x


@given(x=images(), k=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_1x1_convolution_is_a_matrix_product_over_channels(x, k, seed):
    w = np.random.default_rng(seed).uniform(-2, 2, (k, x.shape[1], 1, 1)).astype(x.dtype)
    y = F.conv2d(Tensor(x), Tensor(w)).numpy()
    expected = np.einsum("kc,nchw->nkhw", w[:, :, 0, 0].astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(y, expected, **tolerance(x.dtype))


@given(x=images(), kh=st.integers(1, 3), kw=st.integers(1, 3), multiplier=st.integers(1, 2),
       padding=st.sampled_from(["valid", "full"]), seed=st.integers(0, 2**16))
def test_depthwise_equals_per_channel_convolutions(x, kh, kw, multiplier, padding, seed):
    """groups == C: output channel c m + r is input channel c correlated with its own kernel."""
    if padding == "valid" and (kh > x.shape[2] or kw > x.shape[3]):
        kh, kw = min(kh, x.shape[2]), min(kw, x.shape[3])
    c = x.shape[1]
    w = np.random.default_rng(seed).uniform(-2, 2, (c * multiplier, 1, kh, kw)).astype(x.dtype)
    y = F.conv2d(Tensor(x), Tensor(w), padding=padding, groups=c).numpy()
    for b in range(x.shape[0]):
        for out in range(c * multiplier):
            expected = scipy.signal.correlate2d(x[b, out // multiplier].astype(np.float64),
                                                w[out, 0].astype(np.float64), padding)
            np.testing.assert_allclose(y[b, out], expected, **tolerance(x.dtype))


@given(x=images(), out_channels=st.integers(1, 3), multiplier=st.integers(1, 2), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_separable_is_depthwise_then_pointwise(x, out_channels, multiplier, bias, seed):
    tc.manual_seed(seed)
    c = x.shape[1]
    layer = nn.SeparableConv2d(c, out_channels, 3, padding="same", depth_multiplier=multiplier, bias=bias,
                               dtype=x.dtype)
    y = layer(Tensor(x)).numpy()
    depthwise = layer.depthwise.weight.numpy().astype(np.float64)
    pointwise = layer.pointwise.weight.numpy()[:, :, 0, 0].astype(np.float64)
    spatial = np.stack([
        np.stack([scipy.signal.correlate2d(x[b, j // multiplier].astype(np.float64), depthwise[j, 0], "same")
                  for j in range(c * multiplier)])
        for b in range(x.shape[0])
    ])
    expected = np.einsum("kj,njhw->nkhw", pointwise, spatial)
    if bias:
        expected += layer.pointwise.bias.numpy()[None, :, None, None]
    np.testing.assert_allclose(y, expected, **tolerance(x.dtype))
    assert layer.depthwise.bias is None
    expected_count = c * multiplier * 9 + c * multiplier * out_channels + (out_channels if bias else 0)
    assert layer.num_parameters() == expected_count


@st.composite
def locally_connected_cases(draw):
    x = draw(images(max_channels=3))
    kh, kw = draw(st.integers(1, x.shape[2])), draw(st.integers(1, x.shape[3]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return x, (kh, kw), stride, draw(st.integers(1, 3)), draw(st.integers(0, 2**16))


@given(case=locally_connected_cases())
def test_locally_connected_equals_its_definition(case):
    x, (kh, kw), (sh, sw), k, seed = case
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    rng = np.random.default_rng(seed)
    weight = rng.uniform(-1, 1, (oh, ow, k, c, kh, kw)).astype(x.dtype)
    bias = rng.uniform(-1, 1, (k, oh, ow)).astype(x.dtype)
    y = F.locally_connected2d(Tensor(x), Tensor(weight), Tensor(bias), (sh, sw)).numpy()
    expected = np.zeros((n, k, oh, ow))
    for b in range(n):
        for o in range(k):
            for i in range(oh):
                for j in range(ow):
                    window = x[b, :, sh * i : sh * i + kh, sw * j : sw * j + kw].astype(np.float64)
                    expected[b, o, i, j] = (window * weight[i, j, o]).sum() + bias[o, i, j]
    np.testing.assert_allclose(y, expected, **tolerance(x.dtype))


@given(case=locally_connected_cases())
def test_locally_connected_with_one_shared_kernel_is_conv2d(case):
    x, kernel, stride, k, seed = case
    rng = np.random.default_rng(seed)
    shared = rng.uniform(-1, 1, (k, x.shape[1], *kernel)).astype(x.dtype)
    oh = (x.shape[2] - kernel[0]) // stride[0] + 1
    ow = (x.shape[3] - kernel[1]) // stride[1] + 1
    tied = np.broadcast_to(shared, (oh, ow, *shared.shape)).copy()
    bias = rng.uniform(-1, 1, k).astype(x.dtype)
    untied_bias = np.broadcast_to(bias[:, None, None], (k, oh, ow)).copy()
    local = F.locally_connected2d(Tensor(x), Tensor(tied), Tensor(untied_bias), stride).numpy()
    conv = F.conv2d(Tensor(x), Tensor(shared), Tensor(bias), stride=stride).numpy()
    np.testing.assert_allclose(local, conv, **tolerance(x.dtype))


def test_locally_connected_argument_errors():
    x = Tensor(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"weight must be 6-D"):
        F.locally_connected2d(x, Tensor(np.zeros((2, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"is for a 2x2 output.*gives 3x3"):
        F.locally_connected2d(x, Tensor(np.zeros((2, 2, 1, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"kernel size 6 .*height 5"):
        F.locally_connected2d(x, Tensor(np.zeros((1, 1, 1, 2, 6, 6))))


# -------------------------------------------------------------------------- layers
@pytest.mark.parametrize("layer, expected", [
    (lambda: nn.Conv2d(3, 16, 5), 3 * 5 * 5 * 16 + 16),  # the course's 1216
    (lambda: nn.Conv2d(3, 2, 3), 56),  # 3 input maps, two 3x3 kernels
    (lambda: nn.Conv2d(3, 2, 3, bias=False), 54),
    (lambda: nn.Conv2d(4, 6, (3, 2), groups=2), 2 * 3 * 2 * 6 + 6),
    (lambda: nn.Conv1d(3, 4, 5), 3 * 5 * 4 + 4),
    (lambda: nn.ConvTranspose2d(4, 6, 2, stride=2), 4 * 6 * 4 + 6),
    (lambda: nn.ConvTranspose1d(4, 6, 3, groups=2), 4 * 3 * 3 + 6),
    (lambda: nn.DepthwiseConv2d(8, 3, depth_multiplier=2), 8 * 2 * 9 + 16),
    (lambda: nn.SeparableConv2d(32, 64, 3), 32 * 9 + 32 * 64 + 64),
    (lambda: nn.LocallyConnected2d(3, 4, (6, 5), 3), (4 * 3) * (3 * 9 * 4 + 4)),
])
def test_parameter_counts_follow_the_course_formula(layer, expected):
    module = layer()
    assert module.num_parameters() == expected
    assert tc.theory.count_parameters(module) == expected


def test_layer_shapes_init_and_repr_follow_pytorch():
    tc.manual_seed(0)
    conv = nn.Conv2d(3, 16, (5, 3), stride=2, padding=1, dilation=(1, 2), bias=True)
    assert conv.weight.shape == (16, 3, 5, 3) and conv.bias.shape == (16,)
    bound = 1 / np.sqrt(3 * 5 * 3)  # kaiming_uniform_(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.bias.numpy()).max() <= bound
    assert np.abs(conv.weight.numpy()).max() > 0.8 * bound  # really spread over the interval
    assert repr(conv) == "Conv2d(3, 16, kernel_size=(5, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 2))"
    up = nn.ConvTranspose2d(4, 2, 2, stride=2, output_padding=1, bias=False)
    assert up.weight.shape == (4, 2, 2, 2)
    assert repr(up) == ("ConvTranspose2d(4, 2, kernel_size=(2, 2), stride=(2, 2), output_padding=(1, 1), "
                        "bias=False)")
    same = nn.Conv1d(2, 2, 4, padding="same", padding_mode="reflect", groups=2)
    assert repr(same) == ("Conv1d(2, 2, kernel_size=(4,), stride=(1,), padding=same, groups=2, "
                          "padding_mode=reflect)")
    assert same(Tensor(np.ones((1, 2, 7), dtype=np.float32))).shape == (1, 2, 7)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_pad_with_f_pad_then_convolve(mode):
    """Non-zero padding modes: the layer equals F.pad in that mode followed by an unpadded conv."""
    tc.manual_seed(1)
    layer = nn.Conv2d(2, 3, (3, 2), padding=((1, 2), 1), padding_mode=mode, dtype="float64")
    x = Tensor(np.random.default_rng(0).standard_normal((2, 2, 4, 5)))
    expected = F.conv2d(F.pad(x, (1, 1, 1, 2), mode=mode), layer.weight, layer.bias)
    np.testing.assert_allclose(layer(x).numpy(), expected.numpy(), rtol=1e-12)
    edge = layer(Tensor(np.ones((1, 2, 4, 5)))).numpy()  # a constant image stays constant:
    np.testing.assert_allclose(edge, edge[:, :, :1, :1] * np.ones_like(edge), rtol=1e-12)  # no zeros seen


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Conv2d(3, 4, 3, groups=2), r"in_channels 3 and out_channels 4 .* groups 2"),
    (lambda: nn.Conv2d(3, 4, 0), r"kernel_size must be positive, got 0"),
    (lambda: nn.Conv2d(0, 4, 3), r"in_channels must be a positive int, got 0"),
    (lambda: nn.Conv2d(3, 4, 3, padding_mode="mirror"), r"padding_mode must be one of .*'mirror'"),
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), r"'same' needs stride 1"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect"), r"only padding_mode='zeros'"),
    (lambda: nn.LocallyConnected2d(3, 4, (2, 5), 3), r"kernel_size \(3, 3\) is larger than input_size"),
])
def test_layer_argument_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_small_cnn_trains():
    """Conv -> ReLU -> Conv -> Flatten -> Linear learns to tell vertical from horizontal bars."""
    tc.manual_seed(0)
    rng = np.random.default_rng(0)
    images, labels = [], []
    for _ in range(32):
        image, label = np.zeros((6, 6)), rng.integers(2)
        where = rng.integers(6)
        if label:
            image[:, where] = 1.0
        else:
            image[where, :] = 1.0
        images.append(image + 0.1 * rng.standard_normal((6, 6)))
        labels.append(label)
    x, y = Tensor(np.array(images)[:, None].astype(np.float32)), Tensor(np.array(labels))
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding="same"), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2),
                          nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    optimizer = tc.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first
