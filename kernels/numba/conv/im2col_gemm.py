"""The ``"im2col"`` strategy: per sample, im2col columns and one GEMM per group.

The textbook fast convolution (course: *convolution as a matrix product*). For sample n,
the columns cols (C*KH*KW, OH*OW) hold every receptive field as a column, in the row
order of ``weight.reshape(K, C*KH*KW)``, so per group g

    forward          y[n, g]        = W[g] (Kg, Cg*KH*KW) @ cols[g]
    backward input   grad_x[n]      = col2im(W[g]^T @ grad_y[n, g])        (the adjoint)
    backward weight  grad_W[g]     += cols[g] @ grad_y[n, g]^T, summed over samples

The batch is split into ``shares`` contiguous shares, one per thread (``shares.py``); each
share builds one sample's columns at a time in its own buffer, which stays in cache, and
calls single-threaded BLAS on it right away. Weight gradients are
summed per share (no write is shared between threads) and the shares added at the end.
A 1x1, stride-1, unpadded ("pointwise") convolution needs no im2col: x[n] viewed as
(C, H*W) *is* its column matrix.

Also here: :func:`im2col` and :func:`col2im` of a whole batch, parallel over (n, c) planes
(``F.unfold``/``F.fold`` and the locally connected layer use them).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from tinygrad_cnn.kernels.numba.conv._loops import col2im_channel, im2col_channel, transpose_into
from tinygrad_cnn.kernels.numba.shares import run, shares_for


def applies(geometry) -> bool:
    return True  # every convolution has an im2col form


# With this many filters per group or more, the weight gradient is formed as cols @ grad_y^T
# (grad_y transposed into a buffer first), the GEMM orientation OpenBLAS runs faster there;
# below it, grad_y @ cols^T (benchmarks/RESULTS.md has the measurements).
BY_COLUMNS_MIN_FILTERS = 16


@njit(cache=True, nogil=True)
def _forward(x, w2, y, groups, KH, KW, sh, sw, top, left, dh, dw, OH, OW, pointwise, t, T):
    """y (N, K, OH*OW): y[n, group g] = w2[g rows] (Kg, Cg*KH*KW) @ im2col(x[n])[g rows]
    (reference ``conv2d_forward``). Share t handles samples [t*N//T, (t+1)*N//T)."""
    N, C = x.shape[0], x.shape[1]
    K = w2.shape[0]
    L = OH * OW
    Kg = K // groups
    KK = KH * KW
    rows = (C // groups) * KK
    cols = np.empty((1 if pointwise else C * KK, 1 if pointwise else L), dtype=x.dtype)
    for n in range(t * N // T, (t + 1) * N // T):
        if pointwise:
            src = x[n].reshape((C, L))
        else:
            for c in range(C):
                im2col_channel(x, n, c, cols, c * KK, KH, KW, sh, sw, top, left, dh, dw, OH, OW)
            src = cols
        for g in range(groups):
            np.dot(w2[g * Kg:(g + 1) * Kg], src[g * rows:(g + 1) * rows], y[n, g * Kg:(g + 1) * Kg])


@njit(cache=True, nogil=True)
def _backward_input(gy, wt, gx, groups, KH, KW, sh, sw, top, left, dh, dw, OH, OW, pointwise, t, T):
    """gx[n] = col2im(W^T @ gy[n]) per group, wt[g] = W[g]^T (Cg*KH*KW, Kg): reference
    ``conv2d_backward_input``. ``pointwise`` writes W^T @ gy[n] straight into gx[n]."""
    N, C = gx.shape[0], gx.shape[1]
    Kg = wt.shape[2]
    rows = wt.shape[1]
    L = OH * OW
    KK = KH * KW
    cols = np.empty((1 if pointwise else C * KK, L), dtype=gy.dtype)
    for n in range(t * N // T, (t + 1) * N // T):
        dst = gx[n].reshape((C, L)) if pointwise else cols
        for g in range(groups):
            np.dot(wt[g], gy[n, g * Kg:(g + 1) * Kg], dst[g * rows:(g + 1) * rows])
        if not pointwise:
            for c in range(C):
                col2im_channel(cols, c * KK, gx, n, c, KH, KW, sh, sw, top, left, dh, dw, OH, OW)


@njit(cache=True, nogil=True)
def _backward_weight(gy, x, partial, groups, KH, KW, sh, sw, top, left, dh, dw, OH, OW, pointwise,
                     by_columns, t, T):
    """partial[t, g] (Cg*KH*KW, Kg) = sum over share t's samples of im2col(x[n])[g] @ gy[n, g]^T;
    summed over t and transposed (by the caller) it is reference ``conv2d_backward_weight``.
    ``by_columns``: gy[n, g] is first transposed into a contiguous (L, Kg) buffer and the
    product formed as cols @ gy^T; else gy @ cols^T, added in transposed."""
    N, C = x.shape[0], x.shape[1]
    K = gy.shape[1]
    Kg = K // groups
    rows = partial.shape[2]
    L = OH * OW
    KK = KH * KW
    cols = np.empty((1 if pointwise else C * KK, 1 if pointwise else L), dtype=x.dtype)
    gyt = np.empty((L if by_columns else 1, Kg), dtype=x.dtype)
    tmp = np.empty((rows, Kg), dtype=x.dtype)
    tmp_t = np.empty((Kg, rows), dtype=x.dtype)
    acc = partial[t]
    for g in range(groups):
        for i in range(rows):
            for k in range(Kg):
                acc[g, i, k] = 0
    for n in range(t * N // T, (t + 1) * N // T):
        if pointwise:
            src = x[n].reshape((C, L))
        else:
            for c in range(C):
                im2col_channel(x, n, c, cols, c * KK, KH, KW, sh, sw, top, left, dh, dw, OH, OW)
            src = cols
        for g in range(groups):
            if by_columns:
                transpose_into(gy[n, g * Kg:(g + 1) * Kg], gyt)
                np.dot(src[g * rows:(g + 1) * rows], gyt, tmp)
                for i in range(rows):
                    for k in range(Kg):
                        acc[g, i, k] += tmp[i, k]
            else:
                np.dot(gy[n, g * Kg:(g + 1) * Kg], src[g * rows:(g + 1) * rows].T, tmp_t)
                for i in range(rows):
                    for k in range(Kg):
                        acc[g, i, k] += tmp_t[k, i]


@njit(cache=True, nogil=True)
def _im2col_all(x, cols, KH, KW, sh, sw, top, left, dh, dw, OH, OW, t, T):
    """cols (N, C*KH*KW, OH*OW) = reference ``im2col(x)``; parallel over (n, c) planes."""
    N, C = x.shape[0], x.shape[1]
    KK = KH * KW
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
        n, c = p // C, p % C
        im2col_channel(x, n, c, cols[n], c * KK, KH, KW, sh, sw, top, left, dh, dw, OH, OW)


@njit(cache=True, nogil=True)
def _col2im_all(cols, gx, KH, KW, sh, sw, top, left, dh, dw, OH, OW, t, T):
    """gx (N, C, H, W) = reference ``col2im(cols)``; parallel over (n, c) planes, which are
    disjoint outputs, so no two threads write the same element."""
    N, C = gx.shape[0], gx.shape[1]
    KK = KH * KW
    for p in range(t * (N * C) // T, (t + 1) * (N * C) // T):
        n, c = p // C, p % C
        col2im_channel(cols[n], c * KK, gx, n, c, KH, KW, sh, sw, top, left, dh, dw, OH, OW)


# ------------------------------------------------------------------ the strategy's interface
def _pointwise(g) -> bool:
    return g.kernel == (1, 1) and g.stride == (1, 1) and g.padding == (0, 0, 0, 0)


def forward(x, weight, g, shares: int, stacked: int | None = None) -> np.ndarray:
    N, K = x.shape[0], weight.shape[0]
    y = np.empty((N, K, g.out_height * g.out_width), dtype=x.dtype)
    run(_forward, shares, x, weight.reshape(K, -1), y, g.groups, *g.flat(), _pointwise(g))
    return y.reshape(g.output_shape)


def backward_input(grad_y, weight, g, shares: int, stacked: int | None = None) -> np.ndarray:
    N, K, OH, OW = grad_y.shape
    groups = g.groups
    # W^T per group, (groups, Cg*KH*KW, K/groups), contiguous for BLAS: a small copy.
    wt = np.ascontiguousarray(weight.reshape(groups, K // groups, -1).transpose(0, 2, 1))
    grad_x = np.empty(g.input_shape, dtype=grad_y.dtype)
    run(_backward_input, shares, grad_y.reshape(N, K, OH * OW), wt, grad_x, groups, *g.flat(), _pointwise(g))
    return grad_x


def backward_weight(grad_y, x, g, shares: int, stacked: int | None = None) -> np.ndarray:
    N, K, OH, OW = grad_y.shape
    groups, weight_shape = g.groups, g.weight_shape
    rows = weight_shape[1] * weight_shape[2] * weight_shape[3]
    partial = np.empty((shares, groups, rows, K // groups), dtype=x.dtype)
    run(_backward_weight, shares, grad_y.reshape(N, K, OH * OW), x, partial, groups, *g.flat(), _pointwise(g),
        K // groups >= BY_COLUMNS_MIN_FILTERS)
    # (groups, c kh kw, k) -> (groups, k, c kh kw) = (K, Cg, KH, KW)
    return np.ascontiguousarray(partial.sum(axis=0).transpose(0, 2, 1)).reshape(weight_shape)


def im2col(x, g) -> np.ndarray:
    cols = np.empty(g.columns_shape, dtype=x.dtype)
    run(_im2col_all, shares_for(cols.size, cols.shape[0] * x.shape[1]), x, cols, *g.flat())
    return cols


def col2im(cols, g) -> np.ndarray:
    grad_x = np.empty(g.input_shape, dtype=cols.dtype)
    run(_col2im_all, shares_for(cols.size, grad_x.shape[0] * grad_x.shape[1]), cols, grad_x, *g.flat())
    return grad_x
