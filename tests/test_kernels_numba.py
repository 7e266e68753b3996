"""The Numba kernels equal the reference kernels (the oracle), function by function.

Every function of the kernel interface (docs/ARCHITECTURE.md) is compared with
``tinygrad_cnn.kernels.reference`` over drawn shapes (non-square images and kernels),
strides, paddings, dilations, groups, ceil_mode and both dtypes; the convolution is run
through each of its five strategies (direct, Winograd F(2x2, 3x3), channels-last
patches+GEMM, batched im2col+GEMM, im2col+BLAS) whatever the rule would pick (Winograd on
the layers it covers, drawn separately, and its channels-last fallback elsewhere), with
the batch split among 1-3 (sequentially run) thread shares and 1-3 samples stacked per
GEMM. Then finite differences check the gradients of the public functions running on the
compiled kernels. Shapes stay small: compile time dominates the run time.
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import hypothesis.strategies as st
import numpy as np
import pytest
import tinygrad_cnn.kernels.numba.batchnorm as nb_bn
import tinygrad_cnn.kernels.numba.conv as nb_conv
import tinygrad_cnn.kernels.numba.pool as nb_pool
import tinygrad_cnn.kernels.numba.residual as nb_res
import tinygrad_cnn.kernels.reference.batchnorm as ref_bn
import tinygrad_cnn.kernels.reference.conv as ref_conv
import tinygrad_cnn.kernels.reference.pool as ref_pool
import tinygrad_cnn.kernels.reference.residual as ref_res
from hypothesis import given
from tinygrad_cnn.kernels import use_backend

DTYPES = (np.float32, np.float64)
RTOL = {np.float32: 1e-5, np.float64: 1e-10}


def assert_close(actual, expected, dtype, scale: float = 1.0) -> None:
    """rtol per dtype; atol relative to the largest magnitude involved (sums of many terms
    of both signs can cancel to values far below their parts' rounding error)."""
    rtol = RTOL[dtype]
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def data(seed: int, shape, dtype) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------- conv
@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pointwise = draw(st.integers(0, 4)) == 0  # 1x1, stride 1, no padding: the no-im2col path
    if pointwise:
        kh = kw = sh = sw = dh = dw = 1
        padding = (0, 0, 0, 0)
    else:
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    top, bottom, left, right = padding
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - top - bottom), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - left - right), 9))
    n = draw(st.integers(1, 3))
    return dict(x_shape=(n, groups * cg, h, w), w_shape=(groups * kg, cg, kh, kw), stride=(sh, sw),
                padding=padding, dilation=(dh, dw), groups=groups,
                dtype=draw(st.sampled_from(DTYPES)), how=draw(st.sampled_from(STRATEGIES)),
                threads=draw(st.integers(1, 3)), stacked=draw(st.integers(1, 3)),
                seed=draw(st.integers(0, 2**16)))


STRATEGIES = ["direct", "winograd", "channels_last", "batched", "blas"]


def forced(how: str):
    """Run the numba conv wrappers with the given strategy, whatever the shape rule says."""
    return mock.patch.object(nb_conv, "strategy", lambda *args: how)


@contextmanager
def thread_shares(threads: int, stacked: int):
    """Split the batch into ``threads`` shares as T threads would (the kernels' prange over
    the shares then runs them one after another on this worker's single thread), and stack
    ``stacked`` samples per channels-last GEMM, so partial last chunks are exercised."""
    with mock.patch.object(nb_conv, "num_threads", lambda: threads), \
            mock.patch.object(nb_conv, "_stacked_samples", lambda rows: stacked):
        yield


@given(conv_cases())
def test_conv_kernels_equal_reference(case):
    dtype, seed = case["dtype"], case["seed"]
    x, weight = data(seed, case["x_shape"], dtype), data(seed + 1, case["w_shape"], dtype)
    args = (case["stride"], case["padding"], case["dilation"], case["groups"])
    expected = ref_conv.conv2d_forward(x, weight, *args)
    grad_y = data(seed + 2, expected.shape, dtype)
    with forced(case["how"]), thread_shares(case["threads"], case["stacked"]):
        y = nb_conv.conv2d_forward(x, weight, *args)
        grad_x = nb_conv.conv2d_backward_input(grad_y, weight, x.shape, *args)
        grad_w = nb_conv.conv2d_backward_weight(grad_y, x, weight.shape, *args)
    scale = 10.0 * np.sqrt(weight[0].size * max(1, expected[:, 0].size))
    assert_close(y, expected, dtype, scale)
    assert_close(grad_x, ref_conv.conv2d_backward_input(grad_y, weight, x.shape, *args), dtype, scale)
    assert_close(grad_w, ref_conv.conv2d_backward_weight(grad_y, x, weight.shape, *args), dtype, scale)


@given(conv_cases())
def test_im2col_col2im_equal_reference(case):
    dtype, seed = case["dtype"], case["seed"]
    x = data(seed, case["x_shape"], dtype)
    geometry = (case["w_shape"][2:], case["stride"], case["padding"], case["dilation"])
    cols = nb_conv.im2col(x, *geometry)
    np.testing.assert_array_equal(cols, ref_conv.im2col(x, *geometry))  # pure copies: exact
    back = data(seed + 1, cols.shape, dtype)
    assert_close(nb_conv.col2im(back, x.shape, *geometry), ref_conv.col2im(back, x.shape, *geometry), dtype,
                 scale=10.0)


def test_conv_strategy_rule():
    """Depthwise layers go direct; a single image uses BLAS; the rest use per-thread GEMMs:
    Winograd for 3x3 stride-1 layers, channels-last patches for small output planes and
    im2col rows for large ones."""
    threads = nb_conv.num_threads()
    one, same, none = (1, 1), (1, 1, 1, 1), (0, 0, 0, 0)

    def rule(x_shape, w_shape, stride=one, padding=same, dilation=one, groups=1):
        return nb_conv.strategy(x_shape, w_shape, stride, padding, dilation, groups)

    assert rule((8, 32, 8, 8), (32, 1, 3, 3), groups=32) == "direct"  # depthwise
    assert rule((64, 1, 28, 28), (6, 1, 5, 5), padding=(2, 2, 2, 2)) == "batched"  # LeNet conv1
    assert rule((64, 6, 14, 14), (16, 6, 5, 5), padding=none) == "channels_last"  # LeNet conv2
    assert rule((threads, 32, 16, 16), (32, 32, 3, 3)) == "winograd"  # ResNet 3x3 layers
    assert rule((threads, 64, 8, 8), (64, 64, 3, 3)) == "winograd"
    assert rule((threads, 16, 32, 32), (16, 16, 3, 3)) == "batched"  # too few channels
    assert rule((threads, 16, 16, 16), (32, 16, 3, 3)) == "channels_last"
    assert rule((threads, 16, 32, 32), (32, 16, 3, 3), stride=(2, 2)) == "channels_last"  # 16x16 out
    assert rule((threads, 16, 32, 32), (32, 16, 3, 3), dilation=(2, 2)) == "batched"  # 28x28 out
    assert rule((threads, 16, 32, 32), (32, 16, 3, 3), padding=(3, 3, 3, 3)) == "batched"
    assert rule((threads, 64, 8, 8), (64, 32, 3, 3), groups=2) == "channels_last"
    single = rule((1, 32, 32, 32), (32, 32, 3, 3))
    assert single == ("winograd" if threads == 1 else "blas")


@st.composite
def winograd_cases(draw):
    """The layers Winograd covers: 3x3, stride 1, no dilation, one group, padding 0-2 per side."""
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    top, bottom, left, right = padding
    h = draw(st.integers(max(1, 3 - top - bottom), 9))
    w = draw(st.integers(max(1, 3 - left - right), 9))
    c, k, n = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    return dict(x_shape=(n, c, h, w), w_shape=(k, c, 3, 3), stride=(1, 1), padding=padding,
                dilation=(1, 1), groups=1, dtype=draw(st.sampled_from(DTYPES)), how="winograd",
                threads=draw(st.integers(1, 3)), stacked=draw(st.integers(1, 3)),
                seed=draw(st.integers(0, 2**16)))


@given(winograd_cases())
def test_winograd_kernels_equal_reference(case):
    test_conv_kernels_equal_reference.hypothesis.inner_test(case)


@pytest.mark.parametrize("how", ["winograd", "channels_last", "batched"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_channel_counts_past_the_kernels_blocks(how, dtype):
    """Channel counts that end in partial blocks of the 8x8 transposes, the 16-filter weight
    transform blocks and the 8-channel padding copy (17 in, 33 out; 16+ filters also take the
    batched weight gradient's transposed GEMM), odd sizes, asymmetric padding and a batch
    split into uneven shares with a partial stacked chunk."""
    case = dict(x_shape=(7, 17, 7, 9), w_shape=(33, 17, 3, 3), stride=(1, 1), padding=(2, 0, 1, 2),
                dilation=(1, 1), groups=1, dtype=dtype, how=how, threads=3, stacked=2, seed=5)
    test_conv_kernels_equal_reference.hypothesis.inner_test(case)


@pytest.mark.parametrize("how", ["channels_last", "batched"])
def test_grouped_conv_with_many_filters_per_group(how):
    """Two groups of 17 filters, strided and dilated: the per-group GEMMs of both paths."""
    case = dict(x_shape=(5, 6, 11, 10), w_shape=(34, 3, 3, 2), stride=(2, 1), padding=(1, 0, 2, 1),
                dilation=(1, 2), groups=2, dtype=np.float64, how=how, threads=2, stacked=3, seed=9)
    test_conv_kernels_equal_reference.hypothesis.inner_test(case)


# ----------------------------------------------------------------------------- pool
@st.composite
def pool_cases(draw, dilated: bool):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))  # PyTorch: pad <= k/2
    dh, dw = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 9))
    return dict(shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w), kernel=(kh, kw),
                stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), ceil_mode=draw(st.booleans()),
                dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**16)))


@given(pool_cases(dilated=True))
def test_max_pool_equals_reference(case):
    """Tie-free input (a permutation of distinct values): values and indices must match exactly."""
    dtype, shape = case["dtype"], case["shape"]
    rng = np.random.default_rng(case["seed"])
    x = (rng.permutation(int(np.prod(shape))) - 7.5).reshape(shape).astype(dtype)
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    y, indices = nb_pool.max_pool2d_forward(x, *args)
    y_ref, indices_ref = ref_pool.max_pool2d_forward(x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(indices, indices_ref)
    assert indices.dtype == np.int64
    grad_y = data(case["seed"], y.shape, dtype)
    assert_close(nb_pool.max_pool2d_backward(grad_y, indices, shape),
                 ref_pool.max_pool2d_backward(grad_y, indices_ref, shape), dtype, scale=10.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_pick_first_maximum(dtype):
    """Constant 2x2 blocks and overlapping windows (stride 1): every window is full of ties."""
    x = np.repeat(np.repeat(np.arange(12.0).reshape(1, 2, 2, 3) % 4, 2, axis=2), 2, axis=3).astype(dtype)
    x[0, 1] = 5.0  # a fully constant plane
    for args in [((2, 2), (2, 2), (0, 0), (1, 1), False), ((3, 2), (1, 1), (1, 1), (1, 1), True),
                 ((2, 3), (1, 2), (1, 1), (2, 1), True)]:
        y, indices = nb_pool.max_pool2d_forward(x, *args)
        y_ref, indices_ref = ref_pool.max_pool2d_forward(x, *args)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(indices, indices_ref)


@given(pool_cases(dilated=False), st.booleans())
def test_avg_pool_equals_reference(case, count_include_pad):
    dtype, shape = case["dtype"], case["shape"]
    x = data(case["seed"], shape, dtype)
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"], count_include_pad)
    y = nb_pool.avg_pool2d_forward(x, *args)
    assert_close(y, ref_pool.avg_pool2d_forward(x, *args), dtype, scale=10.0)
    grad_y = data(case["seed"] + 1, y.shape, dtype)
    assert_close(nb_pool.avg_pool2d_backward(grad_y, shape, *args),
                 ref_pool.avg_pool2d_backward(grad_y, shape, *args), dtype, scale=10.0)


# ----------------------------------------------------------------------------- batch norm
@given(st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 20)), st.sampled_from(DTYPES),
       st.floats(-3, 3), st.floats(0.1, 10), st.integers(0, 2**16))
def test_batch_norm_equals_reference(shape, dtype, offset, spread, seed):
    if shape[0] * shape[2] < 2:
        shape = (2, shape[1], shape[2])  # one value per channel: variance 0, nothing to compare
    x = (offset + spread * data(seed, shape, np.float64)).astype(dtype)
    weight, bias = data(seed + 1, shape[1], dtype), data(seed + 2, shape[1], dtype)
    y, mean, inv_std = nb_bn.batch_norm_forward_train(x, weight, bias, 1e-5)
    y_ref, mean_ref, inv_std_ref = ref_bn.batch_norm_forward_train(x, weight, bias, 1e-5)
    assert_close(mean, mean_ref, dtype, scale=10 * (abs(offset) + spread))
    assert_close(inv_std, inv_std_ref, dtype, scale=10 / spread)
    assert_close(y, y_ref, dtype, scale=100.0)
    grad_y = data(seed + 3, shape, dtype)
    grads = nb_bn.batch_norm_backward(grad_y, x, mean_ref, inv_std_ref, weight)
    grads_ref = ref_bn.batch_norm_backward(grad_y, x, mean_ref, inv_std_ref, weight)
    scales = (100 / spread, 100 * np.sqrt(x.size), 10 * np.sqrt(x.size))
    for got, want, scale in zip(grads, grads_ref, scales):
        # float32 grad_x subtracts sums of M terms: its error grows with M (and the tests' M is small)
        assert_close(got, want, dtype, scale=scale * (1 if dtype == np.float64 else 10))


def test_batch_norm_keeps_image_shape():
    x = data(0, (3, 2, 4, 5), np.float64)
    y, _, _ = nb_bn.batch_norm_forward_train(x, np.ones(2), np.zeros(2), 1e-5)
    y_ref, _, _ = ref_bn.batch_norm_forward_train(x.reshape(3, 2, 20), np.ones(2), np.zeros(2), 1e-5)
    assert y.shape == x.shape
    assert_close(y.reshape(3, 2, 20), y_ref, np.float64, scale=10.0)


# ----------------------------------------------------------------------------- residual
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3,), (2, 3, 4, 5), (4, 16, 32, 32)])  # the last one runs in parallel
def test_add_relu_equals_reference(shape, dtype):
    a, b, g = data(0, shape, dtype), data(1, shape, dtype), data(2, shape, dtype)
    y = nb_res.add_relu_forward(a, b)
    np.testing.assert_array_equal(y, ref_res.add_relu_forward(a, b))
    np.testing.assert_array_equal(nb_res.add_relu_backward(g, y), ref_res.add_relu_backward(g, y))


# ----------------------------------------------------------------------------- gradients end to end
F = pytest.importorskip("tinygrad_cnn.nn.functional")
Tensor = pytest.importorskip("tinygrad_cnn.tensor").Tensor
gradcheck = pytest.importorskip("tinygrad_cnn.testing").gradcheck


def leaf(seed: int, shape) -> Tensor:
    return Tensor(data(seed, shape, np.float64), requires_grad=True)


@pytest.mark.parametrize("how", STRATEGIES)
def test_conv2d_gradcheck_on_numba(how):
    x, w, b = leaf(0, (2, 4, 5, 6)), leaf(1, (6, 2, 3, 2)), leaf(2, (6,))
    with use_backend("numba"), forced(how):
        def conv(x, w, b):
            return F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)

        assert gradcheck(conv, [x, w, b], n_directions=6)


@pytest.mark.parametrize("padding", [1, (0, 2), "same"])
def test_winograd_conv2d_gradcheck_on_numba(padding):
    x, w, b = leaf(7, (3, 3, 5, 6)), leaf(8, (4, 3, 3, 3)), leaf(9, (4,))
    with use_backend("numba"), forced("winograd"):
        assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=padding), [x, w, b], n_directions=6)


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
