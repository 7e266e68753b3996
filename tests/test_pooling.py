"""Pooling: every function against loops written here from the definition, gradients
against finite differences, and PyTorch's argument checks.

Oracles never call library code: output sizes, windows, divisors, bins and Gaussian
weights are recomputed below from the formulas in PyTorch's documentation.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.nn as nn
import tinygrad_cnn.nn.functional as F
from tests.strategies import DTYPES
from tinygrad_cnn import Tensor
from tinygrad_cnn.testing import gradcheck


# ------------------------------------------------------------------ oracles
def out_size(n, k, s, p, d, ceil_mode):
    """PyTorch docs: floor((n + 2p - d(k-1) - 1)/s + 1), ceil with ceil_mode, and the last
    window must start inside the input or the left padding."""
    numerator = n + 2 * p - d * (k - 1) - 1
    out = (math.ceil(numerator / s) if ceil_mode else numerator // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def window(o, k, s, p, d):
    """Input coordinates read by output position o (some may lie in the padding)."""
    return [o * s - p + t * d for t in range(k)]


def max_pool_oracle(x, k, s, p, d, ceil_mode):
    n, c, h, w = x.shape
    oh, ow = out_size(h, k[0], s[0], p[0], d[0], ceil_mode), out_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    y = np.full((n, c, oh, ow), -np.inf)
    idx = np.full((n, c, oh, ow), -1)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    for r in window(i, k[0], s[0], p[0], d[0]):  # row-major order
                        for q in window(j, k[1], s[1], p[1], d[1]):
                            if not (0 <= r < h and 0 <= q < w):
                                continue  # padding never wins
                            if idx[b, ch, i, j] < 0 or x[b, ch, r, q] > y[b, ch, i, j]:  # strictly larger
                                y[b, ch, i, j], idx[b, ch, i, j] = x[b, ch, r, q], r * w + q
    return y, idx


def max_pool_grad_oracle(x_shape, idx, g):
    n, c, h, w = x_shape
    gx = np.zeros(x_shape)
    for (b, ch, i, j), flat in np.ndenumerate(idx):
        if flat >= 0:
            gx[b, ch, flat // w, flat % w] += g[b, ch, i, j]
    return gx


def avg_pool_oracle(x, k, s, p, ceil_mode, count_include_pad):
    n, c, h, w = x.shape
    oh, ow = out_size(h, k[0], s[0], p[0], 1, ceil_mode), out_size(w, k[1], s[1], p[1], 1, ceil_mode)
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            area_with_pad = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            divisor = area_with_pad if count_include_pad else (h1 - h0) * (w1 - w0)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / divisor
    return y


def t64(a, device="cpu"):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=True, device=device)


# --------------------------------------------------------------- strategies
@st.composite
def windows(draw, max_dilation=2, dims=2):
    """kernel, stride, padding, dilation, ceil_mode and an input shape with output >= 1."""
    k = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    s = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    d = tuple(draw(st.integers(1, max_dilation)) for _ in range(dims))
    # smallest input that holds one (dilated) window inside the padded input
    sizes = tuple(max(1, di * (ki - 1) + 1 - 2 * pi) + draw(st.integers(0, 4)) for ki, pi, di in zip(k, p, d))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    return k, s, p, d, draw(st.booleans()), (n, c) + sizes


def distinct_values(draw, shape):
    """Tie-free values: a shuffled 0.1-spaced grid (max pooling's derivative jumps at ties)."""
    size = math.prod(shape)
    perm = draw(st.permutations(range(size)))
    return (np.array(perm, dtype=np.float64).reshape(shape) - size / 2) * 0.1


# ---------------------------------------------------------------- max pool
@given(data=st.data(), win=windows(), dtype=DTYPES, return_indices=st.booleans())
def test_max_pool2d_matches_loops_and_gradcheck(data, win, dtype, return_indices, device):
    k, s, p, d, ceil_mode, shape = win
    x = distinct_values(data.draw, shape)
    expected, expected_idx = max_pool_oracle(x, k, s, p, d, ceil_mode)
    out = F.max_pool2d(Tensor(x.astype(dtype), device=device), k, s, p, d, ceil_mode, return_indices=True)
    y, idx = out
    assert y.dtype == dtype and y.shape == expected.shape and idx.dtype == np.int64
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(idx.numpy(), expected_idx)
    layer = nn.MaxPool2d(k, s, p, d, return_indices=return_indices, ceil_mode=ceil_mode)
    layer_out = layer(Tensor(x.astype(dtype), device=device))
    np.testing.assert_allclose((layer_out[0] if return_indices else layer_out).numpy(), expected, rtol=1e-6)

    xt = t64(x, device)
    g = np.arange(expected.size, dtype=np.float64).reshape(expected.shape) + 1
    F.max_pool2d(xt, k, s, p, d, ceil_mode).backward(g)
    np.testing.assert_allclose(xt.grad.numpy(), max_pool_grad_oracle(x.shape, expected_idx, g))
    if np.isfinite(expected).all():  # a window of pure padding (dilation) gives -inf
        gradcheck(lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode), [t64(x, device)])


@given(data=st.data(), win=windows(dims=1), dtype=DTYPES)
def test_max_pool1d_matches_loops(data, win, dtype):
    k, s, p, d, ceil_mode, shape = win
    x = distinct_values(data.draw, shape)
    expected, expected_idx = max_pool_oracle(x[:, :, None, :], (1,) + k, (1,) + s, (0,) + p, (1,) + d,
                                             ceil_mode)
    y, idx = F.max_pool1d(Tensor(x.astype(dtype)), k[0], s[0], p[0], d[0], ceil_mode, return_indices=True)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), expected[:, :, 0], rtol=1e-6)
    np.testing.assert_array_equal(idx.numpy(), expected_idx[:, :, 0])
    np.testing.assert_allclose(nn.MaxPool1d(k[0], s[0], p[0], d[0], ceil_mode=ceil_mode)(Tensor(x)).numpy(),
                               expected[:, :, 0])
    if np.isfinite(expected).all():
        gradcheck(lambda t: F.max_pool1d(t, k[0], s[0], p[0], d[0], ceil_mode), [t64(x)])


def test_max_pool_ties_go_to_the_first_maximum_in_row_major_order():
    x = t64(np.zeros((1, 1, 3, 4)))  # every window is one big tie
    y, idx = F.max_pool2d(x, 2, stride=1, return_indices=True)
    # window (i, j) starts at row i, column j: its first element is i * 4 + j
    np.testing.assert_array_equal(idx.numpy()[0, 0], [[0, 1, 2], [4, 5, 6]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]])

    x = t64([[[[1.0, 5.0, 5.0], [5.0, 2.0, 5.0]]]])  # three tied maxima in one window
    y, idx = F.max_pool2d(x, (2, 3), return_indices=True)
    assert y.item() == 5.0 and idx.item() == 1
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[0, 1, 0], [0, 0, 0]])


def test_max_pool_overlapping_windows_sum_gradients_and_padding_never_wins():
    x = t64([[[[-5.0, -1.0, -7.0], [-3.0, -4.0, -6.0]]]])
    y = F.max_pool2d(x, 2, stride=1, padding=1)  # padding is -inf, so all-negative inputs win
    assert np.isfinite(y.numpy()).all()
    y.sum().backward()
    # each input's gradient counts the windows whose maximum it is
    counts = np.zeros((2, 3))
    padded = np.pad(x.numpy()[0, 0], 1, constant_values=-np.inf)
    for i in range(3):
        for j in range(4):
            r, q = np.unravel_index(np.argmax(padded[i:i + 2, j:j + 2]), (2, 2))
            counts[i + r - 1, j + q - 1] += 1
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], counts)


# ---------------------------------------------------------------- avg pool
@given(win=windows(max_dilation=1), count_include_pad=st.booleans(), dtype=DTYPES, data=st.data())
def test_avg_pool2d_matches_loops_and_gradcheck(win, count_include_pad, dtype, data, device):
    k, s, p, _, ceil_mode, shape = win
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).uniform(-2, 2, shape)
    expected = avg_pool_oracle(x, k, s, p, ceil_mode, count_include_pad)
    y = F.avg_pool2d(Tensor(x.astype(dtype), device=device), k, s, p, ceil_mode, count_include_pad)
    assert y.dtype == dtype and y.shape == expected.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.numpy(), expected, rtol=tol, atol=tol)
    layer = nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    np.testing.assert_allclose(layer(Tensor(x, device=device)).numpy(), expected, rtol=1e-12, atol=1e-12)
    gradcheck(lambda t: F.avg_pool2d(t, k, s, p, ceil_mode, count_include_pad), [t64(x, device)])


@given(win=windows(max_dilation=1, dims=1), count_include_pad=st.booleans(), data=st.data())
def test_avg_pool1d_matches_loops_and_gradcheck(win, count_include_pad, data):
    k, s, p, _, ceil_mode, shape = win
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).uniform(-2, 2, shape)
    expected = avg_pool_oracle(x[:, :, None, :], (1,) + k, (1,) + s, (0,) + p, ceil_mode, count_include_pad)
    y = F.avg_pool1d(Tensor(x), k[0], s[0], p[0], ceil_mode, count_include_pad)
    np.testing.assert_allclose(y.numpy(), expected[:, :, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nn.AvgPool1d(k, s, p, ceil_mode, count_include_pad)(Tensor(x)).numpy(),
                               expected[:, :, 0], rtol=1e-12, atol=1e-12)
    gradcheck(lambda t: F.avg_pool1d(t, k[0], s[0], p[0], ceil_mode, count_include_pad), [t64(x)])


def test_avg_pool_divisor_with_and_without_padding():
    x = Tensor(np.ones((1, 1, 2, 2)))
    # corner windows of a 3x3 kernel with padding 1 hold 4 real ones among 9 positions
    np.testing.assert_allclose(F.avg_pool2d(x, 3, 1, 1).numpy()[0, 0], np.full((2, 2), 4 / 9))
    np.testing.assert_allclose(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False).numpy()[0, 0],
                               np.ones((2, 2)))


# ------------------------------------------------------- unbatched and stride
@pytest.mark.parametrize("fn", [
    lambda t: F.max_pool2d(t, 2), lambda t: F.avg_pool2d(t, (2, 1), 1, (1, 0)),
    lambda t: F.lp_pool2d(t, 2, 2), lambda t: F.adaptive_avg_pool2d(t, (2, 3)),
    lambda t: F.gaussian_avg_pool2d(t, 3, 1, 1, sigma=0.7), lambda t: nn.GlobalAvgPool2d()(t),
])
def test_unbatched_input_equals_a_batch_of_one(fn):
    x = np.random.default_rng(0).uniform(0.5, 2.0, (3, 4, 5))
    np.testing.assert_allclose(fn(Tensor(x)).numpy(), fn(Tensor(x[None])).numpy()[0])


def test_stride_defaults_to_kernel_size():
    x = Tensor(np.arange(36.0).reshape(1, 1, 6, 6))
    assert F.max_pool2d(x, 3).shape == (1, 1, 2, 2)
    assert nn.AvgPool2d((2, 3)).stride == (2, 3)
    np.testing.assert_array_equal(F.max_pool2d(x, 3).numpy()[0, 0], [[14, 17], [32, 35]])


# ------------------------------------------------------------------ Lp pool
@given(data=st.data(), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       s=st.none() | st.tuples(st.integers(1, 2), st.integers(1, 2)), dtype=DTYPES)
def test_l2_pooling_is_sqrt_of_sum_of_squares(data, k, s, dtype):
    shape = (data.draw(st.integers(1, 2)), 2, k[0] + data.draw(st.integers(0, 3)),
             k[1] + data.draw(st.integers(0, 3)))
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).uniform(-2, 2, shape)
    stride = k if s is None else s
    oh, ow = (shape[2] - k[0]) // stride[0] + 1, (shape[3] - k[1]) // stride[1] + 1
    expected = np.zeros(shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride[0]:i * stride[0] + k[0], j * stride[1]:j * stride[1] + k[1]]
            expected[:, :, i, j] = np.sqrt((patch**2).sum(axis=(2, 3)))
    y = F.lp_pool2d(Tensor(x.astype(dtype)), 2, k, s)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(nn.LPPool2d(2, k, s)(Tensor(x)).numpy(), expected, rtol=1e-12)
    x_away_from_zero = np.where(np.abs(x) < 0.3, 0.5, x)  # sqrt is not differentiable at 0
    gradcheck(lambda t: F.lp_pool2d(t, 2, k, s), [t64(x_away_from_zero)])


@pytest.mark.parametrize("p", [1, 3, 1.5])
def test_lp_pooling_general_p(p):
    x = np.random.default_rng(1).uniform(0.2, 2.0, (2, 3, 4, 6))
    expected = ((x**p).reshape(2, 3, 2, 2, 3, 2).sum(axis=(3, 5))) ** (1 / p)
    np.testing.assert_allclose(F.lp_pool2d(Tensor(x), p, (2, 2)).numpy(), expected, rtol=1e-12)
    expected_1d = ((x[:, :, 0] ** p).reshape(2, 3, 2, 3).sum(axis=3)) ** (1 / p)
    np.testing.assert_allclose(nn.LPPool1d(p, 3)(Tensor(x[:, :, 0])).numpy(), expected_1d, rtol=1e-12)
    gradcheck(lambda t: F.lp_pool2d(t, p, 2), [t64(x)])


# ------------------------------------------------------------ adaptive pool
@given(data=st.data(), dtype=DTYPES)
def test_adaptive_avg_pool2d_equals_the_bin_formula(data, dtype, device):
    h, w = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))
    oh, ow = data.draw(st.integers(1, h + 2)), data.draw(st.integers(1, w + 2))
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).uniform(-2, 2, (2, 3, h, w))
    expected = np.zeros((2, 3, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
            w0, w1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            expected[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    y = F.adaptive_avg_pool2d(Tensor(x.astype(dtype), device=device), (oh, ow))
    assert y.dtype == dtype and y.shape == (2, 3, oh, ow)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d((oh, ow))(Tensor(x, device=device)).numpy(), expected,
                               rtol=1e-12)
    gradcheck(lambda t: F.adaptive_avg_pool2d(t, (oh, ow)), [t64(x[:1, :1], device)])
    # 1-d: the same bins along the last axis
    expected_1d = np.stack([x[:, :, 0, math.floor(j * w / ow):math.ceil((j + 1) * w / ow)].mean(axis=-1)
                            for j in range(ow)], axis=-1)
    np.testing.assert_allclose(F.adaptive_avg_pool1d(Tensor(x[:, :, 0], device=device), ow).numpy(),
                               expected_1d, rtol=1e-12)


def test_adaptive_output_size_none_keeps_the_input_size():
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 6))
    y = F.adaptive_avg_pool2d(Tensor(x), (2, None))
    np.testing.assert_allclose(y.numpy(), x.reshape(1, 2, 2, 2, 6).mean(axis=3), rtol=1e-12)


@given(data=st.data(), flatten=st.booleans())
def test_global_avg_pool_is_the_mean_over_h_and_w(data, flatten):
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)),
             data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)))
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).standard_normal(shape)
    y = nn.GlobalAvgPool2d(flatten=flatten)(Tensor(x))
    expected = x.mean(axis=(2, 3))
    np.testing.assert_allclose(y.numpy(), expected if flatten else expected[:, :, None, None], rtol=1e-12)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(Tensor(x)).numpy(), expected[:, :, None, None],
                               rtol=1e-12)
    gradcheck(lambda t: nn.GlobalAvgPool2d(flatten)(t), [t64(x)])


# ------------------------------------------------------------ Gaussian pool
@given(win=windows(max_dilation=1), sigma=st.floats(0.3, 3.0), data=st.data(), dtype=DTYPES)
def test_gaussian_avg_pool_is_a_distance_weighted_average(win, sigma, data, dtype, device):
    k, s, p, _, _, shape = win
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).uniform(-2, 2, shape)
    # the formula in the docstring: normalized exp(-distance^2 / (2 sigma^2)) to the window centre
    weights = np.array([[math.exp(-((i - (k[0] - 1) / 2) ** 2 + (j - (k[1] - 1) / 2) ** 2) / (2 * sigma**2))
                         for j in range(k[1])] for i in range(k[0])])
    weights /= weights.sum()
    padded = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    oh, ow = (shape[2] + 2 * p[0] - k[0]) // s[0] + 1, (shape[3] + 2 * p[1] - k[1]) // s[1] + 1
    expected = np.zeros(shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = padded[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
            expected[:, :, i, j] = (patch * weights).sum(axis=(2, 3))
    y = F.gaussian_avg_pool2d(Tensor(x.astype(dtype), device=device), k, s, p, sigma=sigma)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    np.testing.assert_allclose(nn.GaussianAvgPool2d(k, s, p, sigma)(Tensor(x, device=device)).numpy(),
                               expected, rtol=1e-12, atol=1e-12)
    gradcheck(lambda t: F.gaussian_avg_pool2d(t, k, s, p, sigma=sigma), [t64(x, device)])


def test_gaussian_pool_limits():
    x = Tensor(np.random.default_rng(3).standard_normal((1, 2, 6, 6)))
    wide = F.gaussian_avg_pool2d(x, 3, 1, 1, sigma=1e4)  # flat weights: plain average pooling
    np.testing.assert_allclose(wide.numpy(), F.avg_pool2d(x, 3, 1, 1).numpy(), rtol=1e-6)
    narrow = F.gaussian_avg_pool2d(x, 3, 1, 1, sigma=0.05)  # only the centre pixel counts
    np.testing.assert_allclose(narrow.numpy(), x.numpy(), atol=1e-12)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("call, match", [
    (lambda x: F.max_pool2d(x, 0), r"kernel_size must be positive, got 0"),
    (lambda x: F.max_pool2d(x, 2, stride=0), r"stride must be positive, got 0"),
    (lambda x: F.max_pool2d(x, 2, dilation=(1, 0)), r"dilation must be positive, got \(1, 0\)"),
    (lambda x: F.max_pool2d(x, 3, padding=2), r"padding=\(2, 2\) and kernel_size=\(3, 3\)"),
    (lambda x: F.avg_pool2d(x, (2, 2), padding=(0, 2)), r"at most half of kernel size.*padding=\(0, 2\)"),
    (lambda x: F.avg_pool2d(x, 2, padding=-1), r"padding must be non-negative, got -1"),
    (lambda x: F.max_pool2d(x, (4, 2)), r"spatial size \(3, 5\) is too small.*output size \(0, 2\)"),
    (lambda x: F.max_pool2d(x, 2, dilation=3), r"output size \(0, 1\)"),
    (lambda x: F.max_pool2d(x[0, 0], 2), r"\(N, C, H, W\) or \(C, H, W\), got shape \(3, 5\)"),
    (lambda x: F.max_pool1d(x, 2), r"\(N, C, L\) or \(C, L\), got shape \(2, 2, 3, 5\)"),
    (lambda x: F.max_pool2d(x, (2, 2, 2)), r"an int or a tuple of 2 ints, got \(2, 2, 2\)"),
    (lambda x: F.lp_pool2d(x, 0, 2), r"norm_type must be a positive finite number, got 0"),
    (lambda x: F.adaptive_avg_pool2d(x, (0, 2)), r"output_size must hold positive ints, got \(0, 2\)"),
    (lambda x: F.gaussian_avg_pool2d(x, 3, 1, 1, sigma=0.0),
     r"sigma must be a positive finite number, got 0.0"),
    (lambda x: nn.MaxPool2d(3, padding=2), r"MaxPool2d: pad should be at most half of kernel size"),
    (lambda x: nn.AvgPool1d(0), r"AvgPool1d: kernel_size must be positive, got 0"),
    (lambda x: nn.LPPool2d(-1, 2), r"LPPool2d: norm_type must be a positive finite number, got -1"),
    (lambda x: nn.AdaptiveAvgPool2d(-3), r"output_size must hold positive ints, got -3"),
])
def test_invalid_arguments_raise_value_error_naming_the_values(call, match):
    x = Tensor(np.zeros((2, 2, 3, 5)))
    with pytest.raises(ValueError, match=match):
        call(x)


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        F.max_pool2d(Tensor(np.zeros((1, 1, 2, 2), dtype=np.int64)), 2)
