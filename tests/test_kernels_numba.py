"""What is particular to the Numba backend: its strategy rule, its disk cache, and finite
differences through each strategy. (That every strategy equals the reference is the kernel
contract: tests/test_kernel_contract_*.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from tinygrad_cnn.kernels import use_backend

from tests.kernel_backends import compiled
from tinygrad_cnn import Tensor
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.nn.functional.conv import Conv2dFunction
from tinygrad_cnn.nn.functional.geometry import ConvGeometry, conv_geometry
from tinygrad_cnn.testing import gradcheck

nb_conv = compiled("numba", "conv")


def test_conv_strategy_rule():
    """Depthwise layers go direct; 3x3 stride-1 layers with 32+ channels Winograd, except
    32-channel ones on planes a vector wide, which the SIMD loops' 3x3 blocks (AVX-512) do
    faster; other 16-64-channel layers SIMD (where it was built), and so are stride-1 layers
    with 16-64 output channels and fewer input channels; small output planes
    channels-last; large ones im2col; the batch splits into min(threads, N)."""
    one, same, none = (1, 1), (1, 1, 1, 1), (0, 0, 0, 0)

    def rule(x_shape, w_shape, stride=one, padding=same, dilation=one, groups=1, threads=2):
        g = ConvGeometry(x_shape, w_shape[2:], stride, padding, dilation, out_channels=w_shape[0],
                         groups=groups)
        plan = nb_conv.choose(g, threads)
        return plan.strategy, plan.shares

    assert rule((8, 32, 8, 8), (32, 1, 3, 3), groups=32) == ("direct", 2)  # depthwise
    assert rule((64, 1, 28, 28), (6, 1, 5, 5), padding=(2, 2, 2, 2)) == ("im2col", 2)  # LeNet conv1
    simd = "simd" in nb_conv.STRATEGIES  # setup.py built kernels/simd
    small, large = ("simd", "simd") if simd else ("channels_last", "im2col")
    assert rule((64, 6, 14, 14), (16, 6, 5, 5), padding=none) == (small, 2)  # LeNet conv2
    assert rule((32, 3, 32, 32), (16, 3, 3, 3)) == (large, 2)  # ResNet-20's stem
    assert rule((32, 3, 32, 32), (32, 3, 3, 3), stride=(2, 2)) == ("channels_last", 2)  # strided
    assert rule((64, 6, 12, 12), (8, 6, 3, 3)) == ("channels_last", 2)  # too few outputs
    assert rule((64, 16, 5, 5), (120, 16, 5, 5), padding=none) == ("fully_connected", 1)  # LeNet's C5
    assert rule((64, 16, 5, 5), (120, 16, 5, 5)) == ("channels_last", 2)  # padded: 3x3 out
    blocks3x3 = simd and nb_conv.simd.simd.vector_width() == 16  # AVX-512's 3x3 blocks
    assert rule((2, 32, 16, 16), (32, 32, 3, 3)) == ("simd" if blocks3x3 else "winograd", 2)  # ResNet-20
    assert rule((2, 32, 8, 8), (32, 32, 3, 3)) == ("winograd", 2)  # a plane narrower than a vector
    assert rule((2, 32, 14, 14), (32, 32, 3, 3), padding=(2, 2, 2, 2)) == ("winograd", 2)  # its adjoint too
    assert rule((2, 48, 16, 16), (48, 48, 3, 3)) == ("winograd", 2)  # more than 32 channels
    assert rule((2, 64, 8, 8), (64, 64, 3, 3)) == ("winograd", 2)
    assert rule((2, 16, 32, 32), (16, 16, 3, 3)) == (large, 2)  # too few channels for Winograd
    assert rule((2, 16, 16, 16), (32, 16, 3, 3)) == (small, 2)
    assert rule((2, 16, 32, 32), (32, 16, 3, 3), stride=(2, 2)) == (small, 2)  # 16x16 out
    assert rule((2, 16, 32, 32), (32, 16, 3, 3), dilation=(2, 2)) == (large, 2)  # 28x28 out
    assert rule((2, 16, 32, 32), (32, 16, 3, 3), padding=(3, 3, 3, 3)) == (large, 2)
    assert rule((2, 128, 32, 32), (128, 128, 3, 3), stride=(2, 2)) == ("channels_last", 2)  # 128 > 64
    assert rule((2, 128, 64, 64), (128, 128, 5, 5)) == ("im2col", 2)
    assert rule((2, 64, 8, 8), (64, 32, 3, 3), groups=2) == ("channels_last", 2)
    assert rule((1, 64, 32, 32), (64, 64, 3, 3)) == ("winograd", 1)  # one image: one share
    assert rule((128, 64, 16, 16), (64, 64, 3, 3), threads=16) == ("winograd", 16)


def test_plans_are_checked():
    with pytest.raises(ValueError, match="unknown numba conv strategy 'fast'"):
        nb_conv.Plan("fast")
    with pytest.raises(ValueError, match="shares >= 1"):
        nb_conv.Plan("im2col", 0)


def test_the_cache_is_keyed_by_every_source_file(tmp_path):
    """Numba re-validates a cached kernel against its own file only, so the backend puts
    its cache in a folder named by a digest of all its sources: editing any file (a shared
    helper too) starts a fresh cache instead of running stale machine code."""
    import tinygrad_cnn.kernels.numba as backend

    for name in ("a.py", "sub/b.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    first = backend.source_digest(tmp_path)
    (tmp_path / "sub/b.py").write_text("x = 2\n")
    assert backend.source_digest(tmp_path) != first
    assert backend.CACHE_DIR.name == f"tinygrad_cnn-{backend.source_digest()}"
    kernel = nb_conv.channels_last._forward_channels_last  # a compiled kernel of a strategy file
    assert str(backend.CACHE_DIR) in kernel._cache._impl.locator.get_cache_path()


def leaf(seed: int, shape) -> Tensor:
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def conv_with_plan(plan, stride=1, padding=0, dilation=1, groups=1):
    """conv2d on the Numba kernels with a chosen plan (Conv2dFunction takes one)."""
    def conv(x, w, b):
        g = conv_geometry("conv2d", 2, x.shape, w.shape, b.shape, stride, padding, dilation, groups)
        return Conv2dFunction.apply(x, w, b, geometry=g, plan=plan)
    return conv


@pytest.mark.parametrize("strategy", list(nb_conv.STRATEGIES))
def test_conv2d_gradcheck_on_each_numba_strategy(strategy):
    x, w, b = leaf(0, (2, 4, 5, 6)), leaf(1, (6, 2, 3, 2)), leaf(2, (6,))
    conv = conv_with_plan(nb_conv.Plan(strategy, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    with use_backend("numba"):
        assert gradcheck(conv, [x, w, b], n_directions=6)


def test_fully_connected_conv2d_gradcheck():
    """A window that is the whole input (LeNet-5's C5 shape), on its one-GEMM strategy."""
    x, w, b = leaf(10, (3, 4, 3, 2)), leaf(11, (5, 4, 3, 2)), leaf(12, (5,))
    with use_backend("numba"):
        conv = conv_with_plan(nb_conv.Plan("fully_connected"), stride=2, padding=0)
        assert conv(x, w, b).shape == (3, 5, 1, 1)
        assert gradcheck(conv, [x, w, b], n_directions=6)


@pytest.mark.parametrize("padding", [1, (0, 2), "same"])
def test_winograd_conv2d_gradcheck(padding):
    x, w, b = leaf(7, (3, 3, 5, 6)), leaf(8, (4, 3, 3, 3)), leaf(9, (4,))
    with use_backend("numba"):
        assert gradcheck(conv_with_plan(nb_conv.Plan("winograd", 2), padding=padding), [x, w, b],
                         n_directions=6)


def test_pool_batch_norm_add_relu_gradcheck_on_numba():
    rng = np.random.default_rng(3)
    x = Tensor(rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0, requires_grad=True)
    weight, bias = leaf(4, (3,)), leaf(5, (3,))
    other = leaf(6, (2, 3, 7, 6))
    with use_backend("numba"):
        assert gradcheck(lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), [x])
        assert gradcheck(lambda x: F.avg_pool2d(x, (3, 2), stride=(2, 1), padding=1, ceil_mode=True,
                                                count_include_pad=False), [x])
        assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                         [x, weight, bias], n_directions=6)
        assert gradcheck(lambda x, o: F.add_relu(x, o), [x, other], n_directions=6)
