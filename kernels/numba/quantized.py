"""Integer (int8) inference kernels compiled with Numba: int32 accumulation, fixed-point requantization.

Same functions and arguments as ``kernels/reference/quantized.py`` (its docstring derives the
arithmetic), and the same integers out: the tests compare the two exactly.

How the loops are written:

* **int32 arithmetic on purpose.** Numba widens integer arithmetic to int64 by default; every
  multiply-add here is written ``acc = int32(acc + int32(a) * int32(b))``, which LLVM compiles
  to 32-bit vector instructions (``vpmaddwd``-style multiply-adds of 16-bit lanes): measured on
  a 400-long dot product, 0.10 ns per multiply-add against 0.45 ns for the widened int64 code,
  as fast as a float32 dot product. It also wraps modulo 2^32 exactly as the reference's numpy
  int32 sums do, so both agree even on a sum that overflowed.
* **Columns.** A convolution first writes each sample once as ``x - z_x`` (int16: at most 255
  in magnitude) inside a frame of zeros, which is the real zero after the zero point is
  subtracted, so padding needs no test. Then im2col: row r = (c, kh, kw) of ``cols`` holds,
  for every output pixel, the input value that weight ``w[:, c, kh, kw]`` meets there (the
  order of ``weight.reshape(K, -1)``). With at least ``COLUMN_MIN_PIXELS`` output pixels the
  sums are built a row at a time, ``acc[k, :] += w[k, r] * cols[r, :]``, for four filters at
  once (each column row read once for four filters; vectorized along the pixels); with fewer
  (a layer that has shrunk the map to a few pixels, as LeNet-5's C5) each output is one dot
  product over r. Measured on LeNet-5's first convolution (batch 256, one thread), the row
  form was 2.5x faster than per-pixel dot products; on its 1x1-output C5, 100x slower.
* **Threads.** Convolution and dense layers split the batch into contiguous shares, one per
  thread (``shares.py``; below ``PARALLEL_MIN_WORK`` multiply-adds one thread does
  everything). Pooling and requantization are single passes over memory with a few
  operations per element; they stay on one thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba import uint64 as _u
from tinygrad_cnn.kernels.numba.shares import run, threads

# Below this many multiply-adds one thread does it all: waking the pool costs more than it saves.
PARALLEL_MIN_WORK = 1 << 16
# Convolutions with at least this many output pixels accumulate whole rows of pixels at once.
COLUMN_MIN_PIXELS = 16


@njit(cache=True, inline="always")
def _requantize_one(acc, multiplier, shift, zero_point, qmin, qmax):
    """clamp(round(acc * multiplier / 2^shift) + zero_point, qmin, qmax), rounding half up
    (reference ``requantize`` for one value)."""
    product = np.int64(acc) * np.int64(multiplier)
    rounded = (product + (np.int64(1) << (shift - 1))) >> shift
    value = rounded + zero_point
    if value < qmin:
        return qmin
    if value > qmax:
        return qmax
    return value


@njit(cache=True)
def _requantize(acc, multiplier, shift, zero_point, qmin, qmax, y):
    """y[n, k, l] = requantized acc[n, k, l] with channel k's multiplier and shift."""
    n_batch, channels, length = acc.shape
    for n in range(n_batch):
        for k in range(channels):
            for i in range(length):
                y[n, k, i] = _requantize_one(acc[n, k, i], multiplier[k], shift[k], zero_point, qmin, qmax)


@njit(cache=True, nogil=True)
def _conv2d(x, x_zero_point, weight_rows, bias, multiplier, shift, y_zero_point, qmin, qmax,
            kernel_h, kernel_w, sh, sw, top, left, dh, dw, groups, padded_h, padded_w, columns, y, t, chunks):
    """y[n, k, p] = bias[k] + the sum over group(k)'s receptive field of output pixel p of
    (x - z_x) w[k], requantized (reference ``conv2d``); ``columns`` picks the inner loops."""
    n_batch, channels, height, width = x.shape
    out_channels, rows = weight_rows.shape
    out_h, out_w = y.shape[2], y.shape[3]
    group_channels = channels // groups
    group_out = out_channels // groups
    pixels = out_h * out_w
    centred = np.zeros((channels, padded_h, padded_w), dtype=np.int16)  # the border stays 0
    flat = centred.reshape(channels * padded_h * padded_w)
    cols = np.empty((rows, pixels), dtype=np.int16)
    acc = np.empty((4, pixels), dtype=np.int32)
    for n in range(t * n_batch // chunks, (t + 1) * n_batch // chunks):
        for c in range(channels):  # x - z_x once per input value, inside the zero frame
            for i in range(height):
                for j in range(width):
                    centred[c, top + i, left + j] = np.int16(x[n, c, i, j]) - x_zero_point
        for g in range(groups):
            # cols[r, p]: row r = (c, kh, kw) of the group, column p = output pixel
            r = 0
            for c in range(g * group_channels, (g + 1) * group_channels):
                for kh in range(kernel_h):
                    for kw in range(kernel_w):
                        col = cols[r]
                        for oh in range(out_h):
                            start = (c * padded_h + oh * sh + kh * dh) * padded_w + kw * dw
                            for ow in range(out_w):
                                col[oh * out_w + ow] = flat[_u(start + ow * sw)]
                        r += 1
            if columns:  # many pixels: acc[k, :] += w[k, r] * cols[r, :], 4 filters at a time
                for k0 in range(g * group_out, (g + 1) * group_out, 4):
                    block = min(4, (g + 1) * group_out - k0)
                    for b in range(block):
                        acc[b, :] = bias[k0 + b]
                    for r in range(rows):
                        col = cols[r]
                        for b in range(block):
                            w = np.int32(weight_rows[k0 + b, r])
                            row = acc[b]
                            for p in range(pixels):
                                row[p] = row[p] + w * np.int32(col[p])
                    for b in range(block):
                        k = k0 + b
                        for p in range(pixels):
                            y[n, k, p // out_w, p % out_w] = _requantize_one(
                                acc[b, p], multiplier[k], shift[k], y_zero_point, qmin, qmax)
            else:  # few pixels: one int32 dot product of a column and a weight row per output
                for k in range(g * group_out, (g + 1) * group_out):
                    weights = weight_rows[k]
                    for p in range(pixels):
                        total = np.int32(bias[k])
                        for r in range(rows):
                            total = np.int32(total + np.int32(cols[r, p]) * np.int32(weights[r]))
                        y[n, k, p // out_w, p % out_w] = _requantize_one(
                            total, multiplier[k], shift[k], y_zero_point, qmin, qmax)


@njit(cache=True, nogil=True)
def _linear(x, x_zero_point, weight_rows, bias, multiplier, shift, y_zero_point, qmin, qmax, y, t, chunks):
    """y[n, k] = requantized bias[k] + sum_f (x[n, f] - z_x) w[k, f] (reference ``linear``)."""
    n_batch, features = x.shape
    out_features = weight_rows.shape[0]
    row = np.empty(features, dtype=np.int16)
    for n in range(t * n_batch // chunks, (t + 1) * n_batch // chunks):
        for f in range(features):
            row[f] = np.int16(x[n, f]) - x_zero_point
        for k in range(out_features):
            weights = weight_rows[k]
            acc = np.int32(bias[k])
            for f in range(features):
                acc = np.int32(acc + np.int32(row[f]) * np.int32(weights[f]))
            y[n, k] = _requantize_one(acc, multiplier[k], shift[k], y_zero_point, qmin, qmax)


@njit(cache=True)
def _avg_pool2d(x, x_zero_point, kernel_h, kernel_w, sh, sw, ph, pw, multiplier, shift, y_zero_point,
                qmin, qmax, y):
    """y = requantized int32 sum of (x - z_x) over each window; padding adds 0 (reference ``avg_pool2d``)."""
    planes, height, width = x.shape
    out_h, out_w = y.shape[1], y.shape[2]
    for plane in range(planes):
        for oh in range(out_h):
            for ow in range(out_w):
                acc = np.int32(0)
                for kh in range(kernel_h):
                    ih = oh * sh + kh - ph
                    if ih < 0 or ih >= height:
                        continue
                    for kw in range(kernel_w):
                        iw = ow * sw + kw - pw
                        if iw >= 0 and iw < width:
                            acc = np.int32(acc + (np.int32(x[plane, ih, iw]) - np.int32(x_zero_point)))
                y[plane, oh, ow] = _requantize_one(acc, multiplier, shift, y_zero_point, qmin, qmax)


@njit(cache=True)
def _max_pool2d(x, kernel_h, kernel_w, sh, sw, ph, pw, dh, dw, y):
    """y = the largest integer of each window, padding skipped; -128 if the window holds no
    input element (reference ``max_pool2d``)."""
    planes, height, width = x.shape
    out_h, out_w = y.shape[1], y.shape[2]
    for plane in range(planes):
        for oh in range(out_h):
            for ow in range(out_w):
                best = -128
                for kh in range(kernel_h):
                    ih = oh * sh + kh * dh - ph
                    if ih < 0 or ih >= height:
                        continue
                    for kw in range(kernel_w):
                        iw = ow * sw + kw * dw - pw
                        if iw >= 0 and iw < width and x[plane, ih, iw] > best:
                            best = x[plane, ih, iw]
                y[plane, oh, ow] = best


def _chunks(n: int, work: int) -> int:
    """Threads for ``n`` independent items of ``work`` multiply-adds in all."""
    return max(1, min(threads(), n)) if work >= PARALLEL_MIN_WORK else 1


def _int64(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int64)


def requantize(acc, multiplier, shift, zero_point, qmin, qmax):
    """acc int32 (N, K, ...) -> int8 in the output scale, channel k by (multiplier[k], shift[k])."""
    acc3 = np.ascontiguousarray(acc, dtype=np.int32).reshape(acc.shape[0], acc.shape[1], -1)
    y = np.empty(acc3.shape, dtype=np.int8)
    _requantize(acc3, _int64(multiplier), _int64(shift), int(zero_point), int(qmin), int(qmax), y)
    return y.reshape(acc.shape)


def conv2d(x, x_zero_point, weight, bias, multiplier, shift, y_zero_point, qmin, qmax, geometry):
    """int8 x (N, C, H, W), weight (K, C/groups, KH, KW) -> int8 y (N, K, OH, OW) of a
    ConvGeometry; see the reference."""
    g = geometry
    n, _, h, w = x.shape
    k, group_channels, kh, kw = weight.shape
    top, bottom, left, right = g.padding
    oh, ow = g.out_height, g.out_width
    y = np.empty((n, k, oh, ow), dtype=np.int8)
    rows = np.ascontiguousarray(weight.reshape(k, -1), dtype=np.int16)
    work = n * k * oh * ow * group_channels * kh * kw
    run(_conv2d, _chunks(n, work), np.ascontiguousarray(x), int(x_zero_point), rows,
        np.ascontiguousarray(bias, dtype=np.int32), _int64(multiplier), _int64(shift), int(y_zero_point),
        int(qmin), int(qmax), kh, kw, *g.stride, top, left, *g.dilation, g.groups, h + top + bottom,
        w + left + right, oh * ow >= COLUMN_MIN_PIXELS, y)
    return y


def linear(x, x_zero_point, weight, bias, multiplier, shift, y_zero_point, qmin, qmax):
    """int8 x (N, F), weight (K, F) -> int8 y (N, K); see the reference."""
    y = np.empty((x.shape[0], weight.shape[0]), dtype=np.int8)
    rows = np.ascontiguousarray(weight, dtype=np.int16)
    run(_linear, _chunks(x.shape[0], x.size * weight.shape[0]), np.ascontiguousarray(x), int(x_zero_point),
        rows, np.ascontiguousarray(bias, dtype=np.int32), _int64(multiplier), _int64(shift),
        int(y_zero_point), int(qmin), int(qmax), y)
    return y


def avg_pool2d(x, x_zero_point, multiplier, shift, y_zero_point, qmin, qmax, geometry):
    """int8 (N, C, H, W) -> int8 (N, C, OH, OW) of a PoolGeometry, window sums requantized by
    one (multiplier, shift)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = geometry.kernel, geometry.stride, geometry.padding
    oh, ow = geometry.out_height, geometry.out_width
    y = np.empty((n * c, oh, ow), dtype=np.int8)
    _avg_pool2d(np.ascontiguousarray(x).reshape(n * c, h, w), int(x_zero_point), kh, kw, sh, sw, ph, pw,
                int(multiplier[0]), int(shift[0]), int(y_zero_point), int(qmin), int(qmax), y)
    return y.reshape(n, c, oh, ow)


def max_pool2d(x, geometry):
    """int8 (N, C, H, W) -> int8 (N, C, OH, OW) of a PoolGeometry: the largest integer of each window."""
    n, c, h, w = x.shape
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = geometry.flat()
    y = np.empty((n * c, oh, ow), dtype=np.int8)
    _max_pool2d(np.ascontiguousarray(x).reshape(n * c, h, w), kh, kw, sh, sw, ph, pw, dh, dw, y)
    return y.reshape(n, c, oh, ow)
