"""Max and average pooling kernels compiled with Numba.

Same functions and arguments as ``kernels/reference/pool.py`` (docs/ARCHITECTURE.md), on
a checked ``PoolGeometry``; layout NCHW, symmetric ``padding=(ph, pw)``. Output position
(oh, ow) and window offset (i, j) read input row ``oh*sh - ph + i*dh`` and column
``ow*sw - pw + j*dw``; positions outside the input are padding. Every kernel splits the
N*C planes into shares, one per thread (``shares.py``), so each output plane (and,
backwards, each input plane) is written by exactly one thread, and walks the window
directly instead of padding a copy of x. The window loops run over the offsets that land inside the input only
(:func:`_taps`), so the time depends on the image, not on a huge kernel mostly made of
padding. Planes are indexed through flat views with ``uint64`` indices (no
negative-index wrap-around code in the loops).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba import uint64 as _u
from tinygrad_cnn.kernels.numba.shares import run, shares_for


@njit(cache=True, inline="always")
def _taps(o, stride, pad, kernel, dilation, size):
    """[lo, hi): the window offsets i < kernel whose input position o*stride - pad + i*dilation
    lies in [0, size)."""
    start = o * stride - pad
    lo = 0 if start >= 0 else (-start + dilation - 1) // dilation
    last = size - 1 - start  # i*dilation <= last
    hi = 0 if last < 0 else min(kernel, last // dilation + 1)
    return min(lo, hi), hi


@njit(cache=True, nogil=True)
def _max_forward(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw, t, T):
    """y = max over each window, idx = its argmax as ih*W + iw (reference
    ``max_pool2d_forward``): padding never wins; ties keep the first maximum in row-major
    window order (only a strictly larger value replaces it); a NaN replaces anything (the
    last NaN of a window wins, as in PyTorch); a window with no input element gets -inf
    and index -1."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
        n, c = p // C, p % C
        src = x[n, c].reshape(H * W)
        out = y[n, c].reshape(OH * OW)
        arg = idx[n, c].reshape(OH * OW)
        for oh in range(OH):
            i_lo, i_hi = _taps(oh, sh, ph, KH, dh, H)
            for ow in range(OW):
                j_lo, j_hi = _taps(ow, sw, pw, KW, dw, W)
                best = -np.inf
                where = -1
                for i in range(i_lo, i_hi):
                    ih = oh * sh - ph + i * dh
                    for j in range(j_lo, j_hi):
                        iw = ow * sw - pw + j * dw
                        v = src[_u(ih * W + iw)]
                        if where < 0 or v > best or v != v:  # v != v: v is NaN
                            best = v
                            where = ih * W + iw
                out[_u(oh * OW + ow)] = best
                arg[_u(oh * OW + ow)] = where


@njit(cache=True, nogil=True)
def _max_backward(gy, idx, gx, t, T):
    """gx[n, c, idx] += gy[n, c]: each output's gradient goes to its argmax (reference
    ``max_pool2d_backward``). Indices outside [0, H*W) (-1: an all-padding window) are
    skipped, so no index can write out of bounds."""
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    HW = H * W
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
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


@njit(cache=True, nogil=True, error_model="numpy")
def _avg_forward(x, y, KH, KW, sh, sw, ph, pw, count_include_pad, divisor, t, T):
    """y = (sum of the window's input elements) / (div_h * div_w) (reference
    ``avg_pool2d_forward``; padding adds 0, the divisor follows count_include_pad, or is
    ``divisor`` when that is positive)."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
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
                out[_u(oh * OW + ow)] = total / (divisor if divisor > 0 else div_h * div_w)


@njit(cache=True, nogil=True, error_model="numpy")
def _avg_backward(gy, gx, KH, KW, sh, sw, ph, pw, count_include_pad, divisor, t, T):
    """gx[window] += gy / divisor for every window (reference ``avg_pool2d_backward``,
    the adjoint of the forward pass)."""
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
        n, c = p // C, p % C
        dst = gx[n, c].reshape(H * W)
        g = gy[n, c].reshape(OH * OW)
        for j in range(H * W):
            dst[_u(j)] = 0
        for oh in range(OH):
            h0, h1, div_h = _extent(oh, sh, ph, KH, H, count_include_pad)
            for ow in range(OW):
                w0, w1, div_w = _extent(ow, sw, pw, KW, W, count_include_pad)
                share = g[_u(oh * OW + ow)] / (divisor if divisor > 0 else div_h * div_w)
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        dst[_u(ih * W + iw)] += share


# ------------------------------------------------------------------ 2x2 windows, stride 2
# LeNet's, VGG's and U-Net's pooling: windows of 2x2 at stride 2, no padding, each inside
# the input. The general loops above pay for their clipping (two calls of _taps or _extent
# and variable-length window loops per output); with the window fixed the four reads are
# straight-line code. Same results, bit for bit: the same comparisons and the same order of
# additions. Forward + backward, float32, 2 threads (benchmarks/run.py, run 8 -> run 10):
# 64x6x28x28 max 1.59 -> 0.69 ms, average 1.98 -> 0.63 ms; 128x16x32x32 max 10.4 -> 3.1 ms,
# average 12.5 -> 2.7 ms.
@njit(cache=True, nogil=True)
def _max_forward_2x2(x, y, idx, t, T):
    """:func:`_max_forward` for 2x2 windows at stride 2 inside the input."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
        n, c = p // C, p % C
        src = x[n, c].reshape(H * W)
        out = y[n, c].reshape(OH * OW)
        arg = idx[n, c].reshape(OH * OW)
        for oh in range(OH):
            for ow in range(OW):
                first = 2 * oh * W + 2 * ow
                best = src[_u(first)]
                where = first
                for k in (first + 1, first + W, first + W + 1):  # row-major window order
                    v = src[_u(k)]
                    if v > best or v != v:
                        best = v
                        where = k
                out[_u(oh * OW + ow)] = best
                arg[_u(oh * OW + ow)] = where


@njit(cache=True, nogil=True, error_model="numpy")
def _avg_forward_2x2(x, y, divisor, t, T):
    """:func:`_avg_forward` for 2x2 windows at stride 2 inside the input."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
        n, c = p // C, p % C
        src = x[n, c].reshape(H * W)
        out = y[n, c].reshape(OH * OW)
        for oh in range(OH):
            for ow in range(OW):
                first = 2 * oh * W + 2 * ow
                total = 0.0
                total += src[_u(first)]
                total += src[_u(first + 1)]
                total += src[_u(first + W)]
                total += src[_u(first + W + 1)]
                out[_u(oh * OW + ow)] = total / divisor


@njit(cache=True, nogil=True, error_model="numpy")
def _avg_backward_2x2(gy, gx, divisor, t, T):
    """:func:`_avg_backward` for 2x2 windows at stride 2 inside the input: the windows do not
    overlap, so each input element gets one share (and a last odd row or column none)."""
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
        n, c = p // C, p % C
        dst = gx[n, c].reshape(H * W)
        g = gy[n, c].reshape(OH * OW)
        if 2 * OH < H or 2 * OW < W:
            for j in range(H * W):
                dst[_u(j)] = 0
        for oh in range(OH):
            for ow in range(OW):
                first = 2 * oh * W + 2 * ow
                share = g[_u(oh * OW + ow)] / divisor
                dst[_u(first)] = share
                dst[_u(first + 1)] = share
                dst[_u(first + W)] = share
                dst[_u(first + W + 1)] = share


def _is_2x2_inside(g) -> bool:
    """2x2 windows at stride 2, no padding or dilation, every window inside the input."""
    KH, KW, sh, sw, ph, pw, dh, dw, OH, OW = g.flat()
    H, W = g.input_shape[2], g.input_shape[3]
    return (KH, KW, sh, sw, ph, pw, dh, dw) == (2, 2, 2, 2, 0, 0, 1, 1) and 2 * OH <= H and 2 * OW <= W


# ------------------------------------------------------------------ the kernel interface
def _shares(a: np.ndarray) -> int:
    """Shares of the (n, c) planes of ``a``: one per thread for large arrays."""
    return shares_for(a.size, a.shape[0] * a.shape[1])


def max_pool2d_forward(x: np.ndarray, g) -> tuple[np.ndarray, np.ndarray]:
    """(y, indices): window maxima and their flat positions ih*W + iw in each input plane."""
    KH, KW, sh, sw, ph, pw, dh, dw, OH, OW = g.flat()
    y = np.empty(g.output_shape, dtype=x.dtype)
    indices = np.empty(g.output_shape, dtype=np.int64)
    if _is_2x2_inside(g):
        run(_max_forward_2x2, _shares(x), x, y, indices)
    else:
        run(_max_forward, _shares(x), x, y, indices, KH, KW, sh, sw, ph, pw, dh, dw)
    return y, indices


def max_pool2d_backward(grad_y: np.ndarray, indices: np.ndarray, g) -> np.ndarray:
    """grad_x: every output's gradient added at its argmax position."""
    grad_x = np.empty(g.input_shape, dtype=grad_y.dtype)
    run(_max_backward, _shares(grad_x), grad_y, indices, grad_x)
    return grad_x


def _avg_args(g):
    KH, KW, sh, sw, ph, pw, *_ = g.flat()
    return KH, KW, sh, sw, ph, pw, g.count_include_pad, g.divisor_override or 0


def _divisor_2x2(g) -> float:
    """A full 2x2 window's divisor: 4, or ``divisor_override``."""
    return float(g.divisor_override or 4)


def avg_pool2d_forward(x: np.ndarray, g) -> np.ndarray:
    """y = window sums / window sizes (PyTorch's divisor rule, or ``divisor_override``)."""
    y = np.empty(g.output_shape, dtype=x.dtype)
    if _is_2x2_inside(g):
        run(_avg_forward_2x2, _shares(x), x, y, _divisor_2x2(g))
    else:
        run(_avg_forward, _shares(x), x, y, *_avg_args(g))
    return y


def avg_pool2d_backward(grad_y: np.ndarray, g) -> np.ndarray:
    """grad_x: each output's gradient spread evenly (1/divisor) over its window."""
    grad_x = np.empty(g.input_shape, dtype=grad_y.dtype)
    if _is_2x2_inside(g):
        run(_avg_backward_2x2, _shares(grad_x), grad_y, grad_x, _divisor_2x2(g))
    else:
        run(_avg_backward, _shares(grad_x), grad_y, grad_x, *_avg_args(g))
    return grad_x
