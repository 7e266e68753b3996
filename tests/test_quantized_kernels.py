"""The int8 kernels (the ``quantized`` family): definition loops in Python integers, the numpy
reference and the Numba version must give exactly the same integers.

The oracle here shares no code with either kernel: plain loops over every output and every
tap, with Python's unbounded ints, the rounding shift written as floor division, and the
int32 wrap-around written as arithmetic modulo 2^32. Geometry (strides, paddings, dilations,
groups, non-square kernels) and the integers are drawn by Hypothesis.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tinygrad_cnn.kernels.numba import quantized as nb
from tinygrad_cnn.kernels.reference import quantized as ref

from tinygrad_cnn import kernels
from tinygrad_cnn.nn.functional.geometry import ConvGeometry, PoolGeometry
from tinygrad_cnn.quantization.qparams import quantize_multiplier


def wrap32(value: int) -> int:
    """value modulo 2^32 as a signed int32 (what int32 hardware keeps of a sum)."""
    return (value + 2**31) % 2**32 - 2**31


def requant(acc: int, multiplier: int, shift: int, zero_point: int, qmin: int, qmax: int) -> int:
    """floor((acc * multiplier + 2^(shift - 1)) / 2^shift) + z, clamped: round(acc * M) half up."""
    return min(max((acc * multiplier + 2 ** (shift - 1)) // 2**shift + zero_point, qmin), qmax)


def conv_loops(x, xz, w, b, mult, shift, yz, qmin, qmax, stride, padding, dilation, groups):
    n_batch, channels, height, width = x.shape
    out_channels, group_channels, kh, kw = w.shape
    top, bottom, left, right = padding
    oh = (height + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (width + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n_batch, out_channels, oh, ow), dtype=np.int64)
    per_group = out_channels // groups
    for n in range(n_batch):
        for k in range(out_channels):
            g = k // per_group
            for i in range(oh):
                for j in range(ow):
                    acc = int(b[k])
                    for c in range(group_channels):
                        for m in range(kh):
                            for q in range(kw):
                                r = i * stride[0] + m * dilation[0] - top
                                s = j * stride[1] + q * dilation[1] - left
                                if 0 <= r < height and 0 <= s < width:
                                    acc += (int(x[n, g * group_channels + c, r, s]) - xz) * int(w[k, c, m, q])
                    y[n, k, i, j] = requant(wrap32(acc), int(mult[k]), int(shift[k]), yz, qmin, qmax)
    return y.astype(np.int8)


def int8(rng, shape, low=-128, high=127):
    return rng.integers(low, high + 1, shape).astype(np.int8)


def requant_args(rng, channels):
    """Per-channel fixed-point multipliers of M in [1e-4, 1e-2] and a zero point."""
    mult, shift = quantize_multiplier(10.0 ** rng.uniform(-4, -2, channels))
    return mult, shift, int(rng.integers(-20, 20))


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    height = draw(st.integers(max(1, dilation[0] * (kernel[0] - 1) + 1 - padding[0] - padding[1]), 6))
    width = draw(st.integers(max(1, dilation[1] * (kernel[1] - 1) + 1 - padding[2] - padding[3]), 6))
    return (draw(st.integers(1, 2)), channels, out_channels, groups, kernel, stride, dilation, padding,
            height, width, draw(st.integers(0, 2**16)))


@given(conv_cases())
def test_conv2d_reference_and_numba_equal_the_definition(case):
    n, c, k, groups, kernel, stride, dilation, padding, h, w, seed = case
    rng = np.random.default_rng(seed)
    x, weight = int8(rng, (n, c, h, w)), int8(rng, (k, c // groups, *kernel), -127)
    bias = rng.integers(-5000, 5000, k).astype(np.int32)
    mult, shift, yz = requant_args(rng, k)
    relu_floor = yz if seed % 2 else -128  # a fused ReLU clamps at the zero point
    args = (x, int(rng.integers(-30, 30)), weight, bias, mult, shift, yz, relu_floor, 127)
    expected = conv_loops(*args, stride, padding, dilation, groups)
    g = ConvGeometry(x.shape, kernel, stride, padding, dilation, out_channels=k, groups=groups)
    got_ref, got_nb = ref.conv2d(*args, g), nb.conv2d(*args, g)
    assert got_ref.dtype == got_nb.dtype == np.int8
    np.testing.assert_array_equal(got_ref, expected)
    np.testing.assert_array_equal(got_nb, expected)


@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 5), st.integers(2, 8), st.integers(0, 2**16))
def test_linear_and_requantize_equal_the_definition(n, features, out, bits, seed):
    rng = np.random.default_rng(seed)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1  # 2- to 8-bit ranges in int8
    x, weight = int8(rng, (n, features), qmin, qmax), int8(rng, (out, features), -qmax, qmax)
    bias = rng.integers(-3000, 3000, out).astype(np.int32)
    mult, shift, yz = requant_args(rng, out)
    yz = int(np.clip(yz, qmin, qmax))
    xz = int(rng.integers(qmin, qmax + 1))
    args = (x, xz, weight, bias, mult, shift, yz, qmin, qmax)
    expected = np.array([[requant(wrap32(int(bias[k]) + sum((int(x[i, f]) - xz) * int(weight[k, f])
                                                            for f in range(features))),
                                  int(mult[k]), int(shift[k]), yz, qmin, qmax) for k in range(out)]
                         for i in range(n)], dtype=np.int8)
    np.testing.assert_array_equal(ref.linear(*args), expected)
    np.testing.assert_array_equal(nb.linear(*args), expected)
    acc = rng.integers(-2**31, 2**31, (n, out, 3)).astype(np.int32)
    loops = np.array([[[requant(int(acc[i, k, j]), int(mult[k]), int(shift[k]), yz, qmin, qmax)
                        for j in range(3)] for k in range(out)] for i in range(n)], dtype=np.int8)
    np.testing.assert_array_equal(ref.requantize(acc, mult, shift, yz, qmin, qmax), loops)
    np.testing.assert_array_equal(nb.requantize(acc, mult, shift, yz, qmin, qmax), loops)


def test_int32_sums_wrap_alike_in_both_backends():
    # 70,000 products of 255 * 127 exceed 2^31: both kernels must keep the sum modulo 2^32, as
    # int32 hardware does (a Numba loop left to its default int64 arithmetic would not)
    features = 70_000
    x = np.full((1, features), 127, dtype=np.int8)
    weight = np.full((1, features), 127, dtype=np.int8)
    exact = features * 255 * 127
    assert exact > 2**31
    mult, shift = np.array([2**30], dtype=np.int32), np.array([31], dtype=np.int8)  # M = 1/2
    args = (x, -128, weight, np.zeros(1, np.int32), mult, shift, 0, -128, 127)
    expected = requant(wrap32(exact), 2**30, 31, 0, -128, 127)
    assert ref.linear(*args)[0, 0] == nb.linear(*args)[0, 0] == expected


@given(st.integers(1, 2), st.integers(1, 3), st.integers(2, 7), st.integers(2, 7), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 3), st.integers(0, 1), st.integers(0, 2**16))
def test_pools_equal_the_definition(n, c, h, w, kernel_h, kernel_w, stride, pad, seed):
    rng = np.random.default_rng(seed)
    if kernel_h > h + 2 * pad or kernel_w > w + 2 * pad or 2 * pad > min(kernel_h, kernel_w):
        return
    x = int8(rng, (n, c, h, w))
    xz = int(rng.integers(-128, 128))
    mult, shift = quantize_multiplier(rng.uniform(0.05, 1.0))
    yz = int(rng.integers(-20, 20))
    oh, ow = (h + 2 * pad - kernel_h) // stride + 1, (w + 2 * pad - kernel_w) // stride + 1
    sums = np.zeros((n, c, oh, ow), dtype=np.int64)
    largest = np.full((n, c, oh, ow), -128, dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            for m in range(kernel_h):
                for q in range(kernel_w):
                    r, s = i * stride + m - pad, j * stride + q - pad
                    if 0 <= r < h and 0 <= s < w:
                        sums[:, :, i, j] += x[:, :, r, s].astype(np.int64) - xz
                        largest[:, :, i, j] = np.maximum(largest[:, :, i, j], x[:, :, r, s])
    average = np.vectorize(lambda a: requant(int(a), int(mult[0]), int(shift[0]), yz, -128, 127))(sums)
    g = PoolGeometry(x.shape, (kernel_h, kernel_w), (stride, stride), (pad, pad))
    args = (x, xz, mult, shift, yz, -128, 127, g)
    np.testing.assert_array_equal(ref.avg_pool2d(*args), average.astype(np.int8))
    np.testing.assert_array_equal(nb.avg_pool2d(*args), average.astype(np.int8))
    np.testing.assert_array_equal(ref.max_pool2d(x, g), largest.astype(np.int8))
    np.testing.assert_array_equal(nb.max_pool2d(x, g), largest.astype(np.int8))


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_dilation_ceil_mode_and_windows_of_padding_only(ceil_mode):
    rng = np.random.default_rng(1)
    x = int8(rng, (2, 3, 5, 6))
    for args in [((3, 2), (2, 2), (1, 1), (2, 3), ceil_mode), ((2, 2), (3, 3), (1, 1), (3, 3), ceil_mode)]:
        g = PoolGeometry(x.shape, *args)
        np.testing.assert_array_equal(ref.max_pool2d(x, g), nb.max_pool2d(x, g))
    # 1x1 image, dilation 2, padding 1: the window's taps land on padding only -> -128
    one = np.full((1, 1, 1, 1), 5, dtype=np.int8)
    g = PoolGeometry(one.shape, (2, 2), (1, 1), (1, 1), (2, 2), ceil_mode)
    expected = ref.max_pool2d(one, g)
    assert (expected == -128).any()
    np.testing.assert_array_equal(nb.max_pool2d(one, g), expected)


@given(st.floats(1e-9, 2.0**29, allow_nan=False))
def test_fixed_point_multiplier_represents_the_real_multiplier(real):
    multiplier, shift = quantize_multiplier(real)
    m, s = int(multiplier[0]), int(shift[0])
    assert 1 <= s <= 62 and multiplier.dtype == np.int32 and shift.dtype == np.int8
    assert 2**30 <= m < 2**31
    assert abs(m / 2.0**s - real) <= real * 2.0**-30


def test_fixed_point_multiplier_bad_and_tiny_values():
    multiplier, shift = quantize_multiplier(1e-12)  # below 2^-32: acc * M rounds to 0 for every int32
    largest = np.array([[2**31 - 1]], np.int32)
    assert multiplier[0] == 0 and ref.requantize(largest, multiplier, shift, 0, -128, 127)[0, 0] == 0
    for bad in (0.0, -1.0, np.nan, 2.0**31):
        with pytest.raises(ValueError, match="multiplier"):
            quantize_multiplier(bad)


@pytest.mark.parametrize("backend", ["reference", "numba", "cython"])
def test_every_backend_loads_the_quantized_family(backend):
    try:
        with kernels.use_backend(backend):
            module = kernels.kernel_module("quantized")
    except RuntimeError as error:  # the Cython extensions are not built here
        pytest.skip(str(error))
    x = int8(np.random.default_rng(0), (1, 2, 4, 4))
    weight = int8(np.random.default_rng(1), (3, 2, 3, 3), -127)
    mult, shift = quantize_multiplier(np.full(3, 0.003))
    g = ConvGeometry(x.shape, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), out_channels=3)
    args = (x, 3, weight, np.zeros(3, np.int32), mult, shift, 0, -128, 127, g)
    np.testing.assert_array_equal(module.conv2d(*args), ref.conv2d(*args))


@pytest.mark.parametrize("size, kernel", [(20, 3), (5, 5), (3, 3)])  # 324, 1 and 1 output pixels
def test_conv2d_row_and_dot_forms_agree_with_the_reference(size, kernel):
    # the Numba kernel accumulates whole rows of pixels from COLUMN_MIN_PIXELS output pixels on,
    # one dot product per output below: both must give the reference's integers
    rng = np.random.default_rng(size)
    x, weight = int8(rng, (3, 5, size, size)), int8(rng, (9, 5, kernel, kernel), -127)
    bias = rng.integers(-5000, 5000, 9).astype(np.int32)
    mult, shift, yz = requant_args(rng, 9)
    pixels = (size - kernel + 1) ** 2
    assert (pixels >= nb.COLUMN_MIN_PIXELS) == (size == 20)
    g = ConvGeometry(x.shape, (kernel, kernel), out_channels=9)
    args = (x, 7, weight, bias, mult, shift, yz, -128, 127, g)
    np.testing.assert_array_equal(nb.conv2d(*args), ref.conv2d(*args))
