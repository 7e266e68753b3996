"""Max and average pooling kernels compiled with Numba.

Same functions and arguments as ``kernels/reference/pool.py`` (docs/ARCHITECTURE.md);
layout NCHW, symmetric ``padding=(ph, pw)``. Output position (oh, ow) and window offset
(i, j) read input row ``oh*sh - ph + i*dh`` and column ``ow*sw - pw + j*dw``; positions
outside the input are padding. Every kernel runs ``prange`` over the N*C planes, so each
output plane (and, backwards, each input plane) is written by exactly one thread, and
walks the window directly instead of padding a copy of x. Planes are indexed through flat
views with ``uint64`` indices (no negative-index wrap-around code in the loops).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba import uint64 as _u
from tinygrad_cnn.kernels.reference.pool import pool_output_size

Pair = tuple[int, int]


@njit(cache=True, parallel=True, nogil=True)
def _max_forward(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw):
    """y = max over each window, idx = its argmax as ih*W + iw (reference
    ``max_pool2d_forward``): padding never wins; ties keep the first maximum in row-major
    window order (only a strictly larger value replaces it); a window with no input element
    gets -inf and index -1."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n, c = p // C, p % C
        src = x[n, c].reshape(H * W)
        out = y[n, c].reshape(OH * OW)
        arg = idx[n, c].reshape(OH * OW)
        for oh in range(OH):
            for ow in range(OW):
                best = -np.inf
                where = -1
                for i in range(KH):
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(KW):
                        iw = ow * sw - pw + j * dw
                        if iw < 0 or iw >= W:
                            continue
                        v = src[_u(ih * W + iw)]
                        if where < 0 or v > best:
                            best = v
                            where = ih * W + iw
                out[_u(oh * OW + ow)] = best
                arg[_u(oh * OW + ow)] = where


@njit(cache=True, parallel=True, nogil=True)
def _max_backward(gy, idx, gx):
    """gx[n, c, idx] += gy[n, c]: each output's gradient goes to its argmax (reference
    ``max_pool2d_backward``). Indices outside [0, H*W) (-1: an all-padding window) are
    skipped, so no index can write out of bounds."""
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    HW = H * W
    for p in prange(N * C):
        n, c = p // C, p % C
        dst = gx[n, c].reshape(HW)
        g = gy[n, c].reshape(OH * OW)
        arg = idx[n, c].reshape(OH * OW)
        for j in range(HW):
            dst[_u(j)] = 0
        for j in range(OH * OW):
            k = arg[_u(j)]
            if 0 <= k < HW:
                dst[_u(k)] += g[_u(j)]


@njit(cache=True, inline="always")
def _extent(o, stride, pad, kernel, size, count_include_pad):
    """Window of output o along one axis: (first, end) input positions clipped to the input,
    and the divisor length (PyTorch's rule: clipped to [-pad, size + pad) with
    count_include_pad, else to [0, size))."""
    start = o * stride - pad
    end = min(start + kernel, size + pad)
    length = end - start
    start = max(start, 0)
    end = min(end, size)
    if not count_include_pad:
        length = end - start
    return start, end, length


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _avg_forward(x, y, KH, KW, sh, sw, ph, pw, count_include_pad):
    """y = (sum of the window's input elements) / (div_h * div_w) (reference
    ``avg_pool2d_forward``; padding adds 0, the divisor follows count_include_pad)."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n, c = p // C, p % C
        src = x[n, c].reshape(H * W)
        out = y[n, c].reshape(OH * OW)
        for oh in range(OH):
            h0, h1, div_h = _extent(oh, sh, ph, KH, H, count_include_pad)
            for ow in range(OW):
                w0, w1, div_w = _extent(ow, sw, pw, KW, W, count_include_pad)
                total = 0.0  # float64 accumulator: a few terms, rounded once on store
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        total += src[_u(ih * W + iw)]
                out[_u(oh * OW + ow)] = total / (div_h * div_w)


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _avg_backward(gy, gx, KH, KW, sh, sw, ph, pw, count_include_pad):
    """gx[window] += gy / divisor for every window (reference ``avg_pool2d_backward``,
    the adjoint of the forward pass)."""
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    for p in prange(N * C):
        n, c = p // C, p % C
        dst = gx[n, c].reshape(H * W)
        g = gy[n, c].reshape(OH * OW)
        for j in range(H * W):
            dst[_u(j)] = 0
        for oh in range(OH):
            h0, h1, div_h = _extent(oh, sh, ph, KH, H, count_include_pad)
            for ow in range(OW):
                w0, w1, div_w = _extent(ow, sw, pw, KW, W, count_include_pad)
                share = g[_u(oh * OW + ow)] / (div_h * div_w)
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        dst[_u(ih * W + iw)] += share


def _ints(pair) -> tuple[int, int]:
    return int(pair[0]), int(pair[1])


def max_pool2d_forward(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
                       ceil_mode: bool) -> tuple[np.ndarray, np.ndarray]:
    """(y, indices): window maxima and their flat positions ih*W + iw in each input plane."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = map(_ints, (kernel_size, stride, padding, dilation))
    OH = pool_output_size(H, KH, sh, ph, dh, bool(ceil_mode))
    OW = pool_output_size(W, KW, sw, pw, dw, bool(ceil_mode))
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    indices = np.empty((N, C, OH, OW), dtype=np.int64)
    _max_forward(x, y, indices, KH, KW, sh, sw, ph, pw, dh, dw)
    return y, indices


def max_pool2d_backward(grad_y: np.ndarray, indices: np.ndarray, input_shape) -> np.ndarray:
    """grad_x: every output's gradient added at its argmax position."""
    grad_y = np.ascontiguousarray(grad_y)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    grad_x = np.empty(tuple(int(s) for s in input_shape), dtype=grad_y.dtype)
    _max_backward(grad_y, indices, grad_x)
    return grad_x


def avg_pool2d_forward(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, ceil_mode: bool,
                       count_include_pad: bool) -> np.ndarray:
    """y = window sums / window sizes (PyTorch's divisor rule)."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw) = map(_ints, (kernel_size, stride, padding))
    OH = pool_output_size(H, KH, sh, ph, 1, bool(ceil_mode))
    OW = pool_output_size(W, KW, sw, pw, 1, bool(ceil_mode))
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    _avg_forward(x, y, KH, KW, sh, sw, ph, pw, bool(count_include_pad))
    return y


def avg_pool2d_backward(grad_y: np.ndarray, input_shape, kernel_size: Pair, stride: Pair, padding: Pair,
                        ceil_mode: bool, count_include_pad: bool) -> np.ndarray:
    """grad_x: each output's gradient spread evenly (1/divisor) over its window."""
    grad_y = np.ascontiguousarray(grad_y)
    (KH, KW), (sh, sw), (ph, pw) = map(_ints, (kernel_size, stride, padding))
    grad_x = np.empty(tuple(int(s) for s in input_shape), dtype=grad_y.dtype)
    _avg_backward(grad_y, grad_x, KH, KW, sh, sw, ph, pw, bool(count_include_pad))
    return grad_x
