"""Residual connections: the fused add + ReLU, and ResNet's BasicBlock and Bottleneck
(shapes, torchvision parameter names and counts, gradients, whole small ResNets)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tinygrad_cnn.kernels import use_backend

import tinygrad_cnn.nn as nn
import tinygrad_cnn.nn.functional as F
from tests.strategies import DTYPES, finite_arrays
from tinygrad_cnn import Tensor
from tinygrad_cnn.testing import gradcheck


def t64(a, device="cpu"):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=True, device=device)


# ------------------------------------------------------------------ add_relu
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), dtype=DTYPES)
def test_add_relu_forward_and_backward(data, shape, dtype, device):
    a = data.draw(finite_arrays(shape))
    b = data.draw(finite_arrays(shape))
    b = np.where(np.abs(a + b) < 1e-2, b + 0.1, b)  # keep away from the kink at 0
    y = F.add_relu(Tensor(a.astype(dtype), device=device), Tensor(b.astype(dtype), device=device))
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y.numpy(), np.maximum(a.astype(dtype) + b.astype(dtype), 0), rtol=1e-6)

    ta, tb = t64(a, device), t64(b, device)
    g = data.draw(finite_arrays(shape))
    F.add_relu(ta, tb).backward(g)
    expected = g * (a + b > 0)  # the same gradient reaches both inputs
    np.testing.assert_allclose(ta.grad.numpy(), expected)
    np.testing.assert_allclose(tb.grad.numpy(), expected)
    assert ta.grad.data is not tb.grad.data
    gradcheck(F.add_relu, [t64(a, device), t64(b, device)])


@pytest.mark.parametrize("backend", ["reference", "numba", "cython"])
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), dtype=DTYPES,
       transposed=st.booleans())
def test_relu_kernels_agree_with_the_definition(backend, data, shape, dtype, transposed):
    """F.relu (the residual kernels) against max(x, 0) and the mask "not x <= 0", on 0-d,
    empty and transposed (non-contiguous) inputs, with NaN, 0 and -0 among the values."""
    x = data.draw(hnp.arrays(dtype, shape, elements=st.sampled_from([np.nan, 0.0, -0.0, -1.5, 2.0, 3e-3])))
    x = x.T if transposed else x
    g = data.draw(finite_arrays(x.shape)).astype(dtype)
    with use_backend(backend):
        t = Tensor(x, requires_grad=True)
        y = F.relu(t)
        y.backward(Tensor(g))
    assert y.shape == x.shape and y.dtype == dtype and t.grad.shape == x.shape
    np.testing.assert_array_equal(y.numpy(), np.maximum(x, 0))
    np.testing.assert_array_equal(t.grad.numpy(), g * ~(x <= 0))  # a NaN passes its gradient


def test_add_relu_of_0d_tensors():
    a, b = t64(1.5), t64(-0.5)
    y = F.add_relu(a, b)
    y.backward()
    assert y.shape == () and a.grad.shape == () and float(a.grad.numpy()) == float(b.grad.numpy()) == 1.0


def test_add_relu_with_one_input_constant_and_reused():
    a = t64([[-1.0, 2.0], [0.5, -3.0]])
    y = F.add_relu(a, Tensor(np.ones((2, 2))))
    np.testing.assert_array_equal(y.numpy(), [[0.0, 3.0], [1.5, 0.0]])
    (F.add_relu(y, a)).sum().backward()  # a feeds both the shortcut and the residual path
    # d/da relu(relu(a + 1) + a): where both ReLUs are active the derivative is 2
    np.testing.assert_array_equal(a.grad.numpy(), [[0.0, 2.0], [2.0, 0.0]])


@pytest.mark.parametrize("a_shape, b_shape, error, match", [
    ((2, 3), (3, 2), ValueError, r"shapes \(2, 3\) and \(3, 2\) must be equal"),
    ((2, 3), (1, 3), ValueError, r"shapes \(2, 3\) and \(1, 3\) must be equal"),
])
def test_add_relu_rejects_mismatched_shapes(a_shape, b_shape, error, match):
    with pytest.raises(error, match=match):
        F.add_relu(Tensor(np.zeros(a_shape)), Tensor(np.zeros(b_shape)))


# -------------------------------------------------------------------- blocks
def conv_params(c_in, c_out, k):
    return c_in * c_out * k * k  # bias-free, as in ResNet


def test_basic_block_parameter_count_and_names():
    block = nn.BasicBlock(64, 64)
    # two 3x3 convolutions 64 -> 64 (2 * 36,864) and two batch norms (2 * 2 * 64)
    assert 2 * 64 * 64 * 9 == 73_728
    assert block.num_parameters() == 73_728 + 256 == 73_984
    assert block.downsample is None
    assert list(block.state_dict()) == [
        "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
        "bn1.num_batches_tracked", "conv2.weight", "bn2.weight", "bn2.bias", "bn2.running_mean",
        "bn2.running_var", "bn2.num_batches_tracked",
    ]


def test_projection_shortcut_when_the_shape_changes():
    block = nn.BasicBlock(64, 128, stride=2)
    expected = conv_params(64, 128, 3) + conv_params(128, 128, 3) + 2 * 2 * 128 \
        + conv_params(64, 128, 1) + 2 * 128
    assert block.num_parameters() == expected == 230_144
    names = list(block.state_dict())
    assert names[-6:] == ["downsample.0.weight", "downsample.1.weight", "downsample.1.bias",
                          "downsample.1.running_mean", "downsample.1.running_var",
                          "downsample.1.num_batches_tracked"]
    assert block.downsample[0].weight.shape == (128, 64, 1, 1)
    # a stride alone also needs the projection; a given module is used as is
    assert nn.BasicBlock(8, 8, stride=2).downsample is not None
    custom = nn.Sequential(nn.AvgPool2d(1, 2))
    assert nn.BasicBlock(8, 8, stride=2, downsample=custom).downsample is custom


def test_bottleneck_parameter_counts_as_torchvision():
    first = nn.Bottleneck(64, 64)  # ResNet-50 layer1[0]: 64 -> 256 channels, projection shortcut
    inner = conv_params(64, 64, 1) + conv_params(64, 64, 3) + conv_params(64, 256, 1) + 2 * (64 + 64 + 256)
    assert first.num_parameters() == inner + conv_params(64, 256, 1) + 2 * 256 == 75_008
    rest = nn.Bottleneck(256, 64)  # layer1[1], layer1[2]: identity shortcut
    assert rest.downsample is None
    assert rest.num_parameters() == conv_params(256, 64, 1) + conv_params(64, 64, 3) \
        + conv_params(64, 256, 1) + 2 * (64 + 64 + 256) == 70_400
    assert first.num_parameters() + 2 * rest.num_parameters() == 215_808  # torchvision resnet50.layer1
    assert nn.Bottleneck.expansion == 4 and nn.BasicBlock.expansion == 1
    assert [k for k in first.state_dict() if k.endswith("weight")] == [
        "conv1.weight", "bn1.weight", "conv2.weight", "bn2.weight", "conv3.weight", "bn3.weight",
        "downsample.0.weight", "downsample.1.weight",
    ]
    assert first.conv2.weight.shape == (64, 64, 3, 3) and first.conv3.weight.shape == (256, 64, 1, 1)


@pytest.mark.parametrize("block, in_shape, out_shape", [
    (lambda: nn.BasicBlock(3, 3), (2, 3, 5, 6), (2, 3, 5, 6)),
    (lambda: nn.BasicBlock(3, 5, stride=2), (2, 3, 5, 6), (2, 5, 3, 3)),
    (lambda: nn.BasicBlock(4, 4, stride=3), (1, 4, 7, 4), (1, 4, 3, 2)),
    (lambda: nn.Bottleneck(8, 2), (2, 8, 4, 5), (2, 8, 4, 5)),
    (lambda: nn.Bottleneck(3, 2, stride=2), (1, 3, 5, 4), (1, 8, 3, 2)),
])
def test_block_output_shapes_and_relu_output(block, in_shape, out_shape):
    x = Tensor(np.random.default_rng(0).normal(size=in_shape).astype(np.float32))
    y = block()(x)
    assert y.shape == out_shape and y.dtype == np.float32
    assert (y.numpy() >= 0).all()  # the block ends with the ReLU of the join


def test_identity_block_computes_relu_of_residual_plus_input():
    block = nn.BasicBlock(2, 2).double()
    x = np.random.default_rng(1).normal(size=(2, 2, 4, 3))
    y = block(Tensor(x)).numpy()
    residual = block.bn2(block.conv2(block.bn1(block.conv1(Tensor(x))).relu())).numpy()
    np.testing.assert_allclose(y, np.maximum(residual + x, 0), rtol=1e-12)
    for p in block.parameters():  # with the residual path zeroed the block is ReLU(x)
        p.data = np.zeros_like(p.data)
    np.testing.assert_allclose(block(Tensor(x)).numpy(), np.maximum(x, 0))


@pytest.mark.parametrize("make", [lambda: nn.BasicBlock(2, 3, stride=2), lambda: nn.Bottleneck(2, 1)])
def test_block_gradients_match_finite_differences(make):
    block = make().double()
    rng = np.random.default_rng(2)
    for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.weight.data, bn.bias.data = rng.uniform(0.5, 1.5, bn.weight.shape), rng.normal(size=bn.bias.shape)
    x = t64(rng.normal(size=(2, 2, 4, 3)))
    weight = block.conv1.weight
    gradcheck(lambda a, w: block(a), [x, weight], n_directions=6, atol=1e-6)
    block.eval()
    gradcheck(lambda a, w: block(a), [x, weight], n_directions=6, atol=1e-6)


def test_blocks_reject_invalid_sizes():
    with pytest.raises(ValueError, match=r"BasicBlock: out_channels must be a positive int, got 0"):
        nn.BasicBlock(3, 0)
    with pytest.raises(ValueError, match=r"Bottleneck: stride must be a positive int, got -1"):
        nn.Bottleneck(3, 2, stride=-1)


# ------------------------------------------------------------ whole networks
def resnet(block, layers, num_classes, cifar):
    """ResNet assembled as torchvision does (ImageNet stem) or as He et al.'s CIFAR variant."""
    widths = (16, 32, 64) if cifar else (64, 128, 256, 512)
    if cifar:
        stem = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    else:
        stem = [nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                nn.MaxPool2d(3, 2, 1)]
    modules, channels = list(stem), widths[0]
    for stage, (width, count) in enumerate(zip(widths, layers)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            modules.append(block(channels, width, stride))
            channels = width * block.expansion
    modules += [nn.GlobalAvgPool2d(flatten=True), nn.Linear(channels, num_classes)]
    return nn.Sequential(*modules)


def test_cifar_resnet20_trains_a_step():
    model = resnet(nn.BasicBlock, [3, 3, 3], 10, cifar=True)
    # He et al. report 0.27M parameters (269,722 with parameter-free option-A shortcuts);
    # our option-B projections add a 1x1 conv + BN at the two widening blocks
    assert model.num_parameters() == 269_722 + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64) == 272_474
    x = Tensor(np.random.default_rng(3).normal(size=(2, 3, 8, 8)).astype(np.float32))
    logits = model(x)
    assert logits.shape == (2, 10)
    F.cross_entropy(logits, Tensor(np.array([1, 7]))).backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in model.parameters())
    model.eval()
    assert model(x).shape == (2, 10)


def test_imagenet_resnet_parameter_counts_match_torchvision():
    assert resnet(nn.BasicBlock, [2, 2, 2, 2], 1000, cifar=False).num_parameters() == 11_689_512  # resnet18
    assert resnet(nn.BasicBlock, [3, 4, 6, 3], 1000, cifar=False).num_parameters() == 21_797_672  # resnet34
    assert resnet(nn.Bottleneck, [3, 4, 6, 3], 1000, cifar=False).num_parameters() == 25_557_032  # resnet50
