"""The ``"direct"`` strategy: the convolution sum tap by tap, for depthwise convolutions.

When every group has a single output channel (a depthwise convolution, MobileNet's), a
GEMM would be a matrix-vector product: loops win. Each (c, kh, kw) tap adds
``w * shifted input row`` to an output plane that stays in L1; the shares (one per
thread) split the N*K output planes (N*C input planes backwards, K*Cg filters for the weight
gradient), so each plane is written by one thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba import uint64 as _u
from tinygrad_cnn.kernels.numba.conv._loops import valid_range
from tinygrad_cnn.kernels.numba.shares import run, shares_for


def applies(geometry) -> bool:
    return True  # correct for every convolution; fast for depthwise ones


@njit(cache=True, nogil=True)
def _forward_direct(x, w, y, groups, sh, sw, top, left, dh, dw, t, T):
    """y[n, k] = sum_{c, kh, kw} w[k, c, kh, kw] * shifted x[n, group c]: reference
    ``conv2d_forward`` computed tap by tap; parallel over the N*K output planes (each one
    written by one thread, and small enough to stay in L1 while the taps accumulate)."""
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    K, Cg, KH, KW = w.shape
    OH, OW = y.shape[2], y.shape[3]
    Kg = K // groups
    for p in range(t * (N * K) // T, (t + 1) * (N * K) // T):
        n, k = p // K, p % K
        c0 = (k // Kg) * Cg
        out = y[n, k].reshape(OH * OW)
        for j in range(OH * OW):
            out[_u(j)] = 0
        for cl in range(Cg):
            src = x[n, c0 + cl].reshape(H * W)
            for kh in range(KH):
                for kw in range(KW):
                    wv = w[k, cl, kh, kw]
                    off_w = kw * dw - left
                    lo, hi = valid_range(off_w, sw, W, OW)
                    for oh in range(OH):
                        ih = oh * sh + kh * dh - top
                        if ih < 0 or ih >= H:
                            continue
                        o = oh * OW
                        s = ih * W + off_w
                        if sw == 1:
                            for j in range(lo, hi):
                                out[_u(o + j)] += wv * src[_u(s + j)]
                        else:
                            for j in range(lo, hi):
                                out[_u(o + j)] += wv * src[_u(s + j * sw)]


@njit(cache=True, nogil=True)
def _backward_input_direct(gy, w, gx, groups, sh, sw, top, left, dh, dw, t, T):
    """gx[n, c] = sum_{k in group(c), kh, kw} w[k, c, kh, kw] * (gy[n, k] scattered back to the
    positions it read): reference ``conv2d_backward_input``; parallel over the N*C input
    planes, each written by one thread only."""
    N, C, H = gx.shape[0], gx.shape[1], gx.shape[2]
    W = gx.shape[3]
    K, Cg, KH, KW = w.shape
    OH, OW = gy.shape[2], gy.shape[3]
    Kg = K // groups
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
        n, c = p // C, p % C
        g, cl = c // Cg, c % Cg
        dst = gx[n, c].reshape(H * W)
        for j in range(H * W):
            dst[_u(j)] = 0
        for k in range(g * Kg, (g + 1) * Kg):
            src = gy[n, k].reshape(OH * OW)
            for kh in range(KH):
                for kw in range(KW):
                    wv = w[k, cl, kh, kw]
                    off_w = kw * dw - left
                    lo, hi = valid_range(off_w, sw, W, OW)
                    for oh in range(OH):
                        ih = oh * sh + kh * dh - top
                        if ih < 0 or ih >= H:
                            continue
                        o = oh * OW
                        d = ih * W + off_w
                        if sw == 1:
                            for j in range(lo, hi):
                                dst[_u(d + j)] += wv * src[_u(o + j)]
                        else:
                            for j in range(lo, hi):
                                dst[_u(d + j * sw)] += wv * src[_u(o + j)]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _backward_weight_direct(gy, x, gw, groups, sh, sw, top, left, dh, dw, t, T):
    """gw[k, c, kh, kw] = sum_{n, oh, ow} gy[n, k, oh, ow] * x[n, c', oh*sh+kh*dh-top, ...]:
    reference ``conv2d_backward_weight``, one float64-accumulated dot product per weight
    (``reassoc`` lets LLVM vectorise that sum); parallel over the K*Cg filters."""
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    K, Cg, KH, KW = gw.shape
    OH, OW = gy.shape[2], gy.shape[3]
    Kg = K // groups
    for p in range(t * (K * Cg) // T, (t + 1) * (K * Cg) // T):
        k, cl = p // Cg, p % Cg
        c = (k // Kg) * Cg + cl
        for kh in range(KH):
            for kw in range(KW):
                off_w = kw * dw - left
                lo, hi = valid_range(off_w, sw, W, OW)
                acc = 0.0
                for n in range(N):
                    src = x[n, c].reshape(H * W)
                    g = gy[n, k].reshape(OH * OW)
                    for oh in range(OH):
                        ih = oh * sh + kh * dh - top
                        if ih < 0 or ih >= H:
                            continue
                        o = oh * OW
                        s = ih * W + off_w
                        if sw == 1:
                            for j in range(lo, hi):
                                acc += g[_u(o + j)] * src[_u(s + j)]
                        else:
                            for j in range(lo, hi):
                                acc += g[_u(o + j)] * src[_u(s + j * sw)]
                gw[k, cl, kh, kw] = acc


# ------------------------------------------------------------------ the strategy's interface
# Direct loops split the work by planes (or filters), not by samples: as many shares as
# the work is worth, whatever ``shares`` says.
def _window(g) -> tuple[int, ...]:
    return g.groups, g.stride[0], g.stride[1], g.padding[0], g.padding[2], g.dilation[0], g.dilation[1]


def _shares(work: int, planes: int) -> int:
    return shares_for(work, planes)


def forward(x, weight, g, shares: int = 1, stacked: int | None = None) -> np.ndarray:
    y = np.empty(g.output_shape, dtype=x.dtype)
    run(_forward_direct, _shares(y.size * weight[0].size, y.shape[0] * y.shape[1]), x, weight, y, *_window(g))
    return y


def backward_input(grad_y, weight, g, shares: int = 1, stacked: int | None = None) -> np.ndarray:
    grad_x = np.empty(g.input_shape, dtype=grad_y.dtype)
    run(_backward_input_direct, _shares(grad_y.size * weight[0].size, grad_x.shape[0] * grad_x.shape[1]),
        grad_y, weight, grad_x, *_window(g))
    return grad_x


def backward_weight(grad_y, x, g, shares: int = 1, stacked: int | None = None) -> np.ndarray:
    grad_w = np.empty(g.weight_shape, dtype=x.dtype)
    run(_backward_weight_direct, _shares(grad_y.size * grad_w[0].size, grad_w.shape[0] * grad_w.shape[1]),
        grad_y, x, grad_w, *_window(g))
    return grad_w
