"""2-D convolution kernels compiled with Numba: im2col (or its transpose) + BLAS GEMM, or direct loops.

Same functions and arguments as ``kernels/reference/conv.py`` (docs/ARCHITECTURE.md):
x (N, C, H, W), weight (K, C/groups, KH, KW), y (N, K, OH, OW), cross-correlation

    y[n, k, oh, ow] = sum_{c in group(k), kh, kw} weight[k, c, kh, kw]
                      * x[n, c, oh*sh + kh*dh - top, ow*sw + kw*dw - left]   (0 outside x)

Five strategies; :func:`strategy` picks one (the rule is measured, see benchmarks/RESULTS.md):

* ``"direct"``: loops over output planes; each (c, kh, kw) tap adds ``w * shifted input row``
  to a plane that stays in L1. Used when each group has a single output channel (depthwise
  convs): the GEMM would be a matrix-vector product. Measured (2 threads, fwd+bwd, 32x32x16x16
  depthwise 3x3): direct 1.85 ms vs im2col+GEMM 1.98 ms. Everything else is faster as GEMMs,
  even LeNet's 1-channel 5x5 first layer (1.31 ms vs 4.97 ms direct) and ResNet's 16-channel
  3x3 layers (11 ms vs 45 ms direct).
* ``"winograd"`` (N >= Numba threads; 3x3, stride 1, no dilation, one group, padding <= 2,
  at least 32 input and output channels): Winograd's F(2x2, 3x3) in ``winograd.py``, which
  does the GEMM work of a 3x3 convolution in 4 instead of 9 multiply-adds per output and
  channel pair; its docstring derives the algorithm and both gradients.
* ``"channels_last"`` (N >= Numba threads, output planes of at most 256 pixels): ``prange``
  over the threads; each thread takes a contiguous share of the batch and, per sample,
  transposes x[n] to channels-last pixel rows (H*W, C) and builds the *patch matrix*: one
  row per output pixel holding its receptive field in (kh, kw, c) order, i.e. im2col
  transposed, (OH*OW, KH*KW*C/groups). Each tap is then a contiguous run of C values (a
  whole kernel row, KW*C values, when dw == 1), where im2col's rows of a small plane are runs
  of only OW values. Small images stack several samples' patch rows into one GEMM
  ``Y^T = patches @ W^T`` (about 256 rows), whose result is transposed back into y.
* ``"batched"`` (N >= Numba threads, larger output planes): the same thread split; per
  sample, im2col columns go into the thread's own buffer (cache-resident, allocated once
  per call) and single-threaded BLAS computes ``y[n, group] = W[group] @ cols[group]``
  straight into y (no transpose, no per-sample allocation). 1x1 stride-1 unpadded convs skip
  im2col: x[n] viewed as (C, H*W) *is* the column matrix.
* ``"blas"`` (N < threads, e.g. a single image): im2col of the whole batch in parallel over
  (n, c) planes, then one numpy ``matmul`` batched over groups (on the BLAS threads that
  :func:`._threads.claim_cores` leaves: one unless ``TINYGRAD_CNN_BLAS_THREADS`` says more).

Backward: grad_input = col2im(W^T @ grad_y) (channels-last: the adjoint of the patch
matrix, scattered back to pixel rows; direct: each tap scattered back); grad_weight =
sum_n grad_y[n] @ cols[n]^T with per-thread partial sums, formed as its transpose cols[n] @
grad_y[n]^T with 16+ filters per group, the faster GEMM (channels-last: patches^T @
grad_y^T; direct: one dot product per weight). The forward columns (or patches) are
recomputed rather than stored: a thread's buffer stays in cache and memory use stays that
of the arrays themselves.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba import uint64 as _u
from tinygrad_cnn.kernels.numba import winograd
from tinygrad_cnn.kernels.numba._threads import num_threads, numba_blas_single_thread

Pair = tuple[int, int]
Quad = tuple[int, int, int, int]

# ------------------------------------------------------------------ compiled helpers
@njit(cache=True, inline="always")
def _valid_range(offset: int, stride: int, size: int, out_size: int) -> tuple[int, int]:
    """[lo, hi): the outputs o with 0 <= o*stride + offset < size, clipped to [0, out_size).

    Computing the range once per kernel tap keeps the innermost loops free of bounds
    checks (so LLVM vectorises them) and guarantees no read or write outside the arrays.
    """
    lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
    last = size - 1 - offset  # o*stride <= last
    hi = 0 if last < 0 else last // stride + 1
    hi = min(hi, out_size)
    return min(lo, hi), hi


# Numba's on-disk cache re-validates a kernel against its own source file only, not against
# the files of the compiled functions it calls: a kernel calling a function from another
# module keeps running the old machine code after that module is edited. So each kernel
# module defines the small helpers it calls (winograd.py has its own copy of this one).
@njit(cache=True)
def _transpose_into(src, dst):
    """dst (B, A) = src (A, B) transposed, both C-contiguous. Converts one sample between
    channel planes (C, H*W) and channels-last pixel rows (H*W, C). 8x8 tiles keep both
    sides' cache lines in L1; flat ``uint64`` indices (no negative-index wrap-around code)
    make it 1.5x faster than 2-D indexing (measured)."""
    A, B = src.shape
    s = src.reshape(A * B)
    d = dst.reshape(A * B)
    for a0 in range(0, A, 8):
        a1 = min(a0 + 8, A)
        for b0 in range(0, B, 8):
            b1 = min(b0 + 8, B)
            for b in range(b0, b1):
                for a in range(a0, a1):
                    d[_u(b * A + a)] = s[_u(a * B + b)]


@njit(cache=True)
def _im2col_channel(x, n, c, cols, row0, KH, KW, sh, sw, top, left, dh, dw, OH, OW):
    """Rows row0 .. row0+KH*KW-1 of cols get channel c of sample n:
    cols[row0 + kh*KW + kw, oh*OW + ow] = x[n, c, oh*sh + kh*dh - top, ow*sw + kw*dw - left],
    zero where that position is padding (reference ``im2col`` for one (n, c)).

    Indexing is done on flat views with ``uint64`` indices: Numba then emits no negative-index
    wrap-around, the index is affine in the loop variable and LLVM vectorises the copy (5x
    faster than 2-D indexing). With stride 1 and OW == W (a "same" convolution) each tap's
    row is one long contiguous copy of the plane shifted by (kh*dh - top, kw*dw - left);
    the few entries that wrapped around a row edge are zeroed afterwards.
    """
    H = x.shape[2]
    W = x.shape[3]
    L = OH * OW
    src = x[n, c].reshape(H * W)
    for kh in range(KH):
        for kw in range(KW):
            out = cols[row0 + kh * KW + kw]
            off_w = kw * dw - left
            lo, hi = _valid_range(off_w, sw, W, OW)
            off_h = kh * dh - top
            if sh == 1 and sw == 1 and OW == W:
                hlo, hhi = _valid_range(off_h, 1, H, OH)
                a = hlo * OW + lo
                b = (hhi - 1) * OW + hi if hhi > hlo and hi > lo else a
                for j in range(a):
                    out[_u(j)] = 0
                shift = off_h * W + off_w  # src index = output index + shift, >= 0 on [a, b)
                for j in range(a, b):
                    out[_u(j)] = src[_u(j + shift)]
                for j in range(b, L):
                    out[_u(j)] = 0
                if lo > 0 or hi < OW:  # entries that wrapped into the neighbouring row
                    for oh in range(hlo, hhi):
                        for ow in range(lo):
                            out[_u(oh * OW + ow)] = 0
                        for ow in range(hi, OW):
                            out[_u(oh * OW + ow)] = 0
                continue
            for oh in range(OH):
                ih = oh * sh + off_h
                o = oh * OW
                if ih < 0 or ih >= H:
                    for j in range(OW):
                        out[_u(o + j)] = 0
                    continue
                for j in range(lo):
                    out[_u(o + j)] = 0
                s = ih * W + off_w
                if sw == 1:
                    for j in range(lo, hi):
                        out[_u(o + j)] = src[_u(s + j)]
                else:
                    for j in range(lo, hi):
                        out[_u(o + j)] = src[_u(s + j * sw)]
                for j in range(hi, OW):
                    out[_u(o + j)] = 0


@njit(cache=True)
def _col2im_channel(cols, row0, gx, n, c, KH, KW, sh, sw, top, left, dh, dw, OH, OW):
    """Adjoint of :func:`_im2col_channel`: gx[n, c] = sum of the column entries that were
    copied from each position (padding entries are dropped); reference ``col2im`` for one
    (n, c). Overwrites the plane (zeroes it first). Same flat ``uint64`` indexing."""
    H = gx.shape[2]
    W = gx.shape[3]
    dst = gx[n, c].reshape(H * W)
    for j in range(H * W):
        dst[_u(j)] = 0
    for kh in range(KH):
        for kw in range(KW):
            src = cols[row0 + kh * KW + kw]
            off_w = kw * dw - left
            lo, hi = _valid_range(off_w, sw, W, OW)
            for oh in range(OH):
                ih = oh * sh + kh * dh - top
                if ih < 0 or ih >= H:
                    continue
                o = oh * OW
                d = ih * W + off_w
                if sw == 1:
                    for j in range(lo, hi):
                        dst[_u(d + j)] += src[_u(o + j)]
                else:
                    for j in range(lo, hi):
                        dst[_u(d + j * sw)] += src[_u(o + j)]


@njit(cache=True, parallel=True)
def _im2col_all(x, cols, KH, KW, sh, sw, top, left, dh, dw, OH, OW):
    """cols (N, C*KH*KW, OH*OW) = reference ``im2col(x)``; parallel over (n, c) planes."""
    N, C = x.shape[0], x.shape[1]
    KK = KH * KW
    for p in prange(N * C):
        n, c = p // C, p % C
        _im2col_channel(x, n, c, cols[n], c * KK, KH, KW, sh, sw, top, left, dh, dw, OH, OW)


@njit(cache=True, parallel=True)
def _col2im_all(cols, gx, KH, KW, sh, sw, top, left, dh, dw, OH, OW):
    """gx (N, C, H, W) = reference ``col2im(cols)``; parallel over (n, c) planes, which are
    disjoint outputs, so no two threads write the same element."""
    N, C = gx.shape[0], gx.shape[1]
    KK = KH * KW
    for p in prange(N * C):
        n, c = p // C, p % C
        _col2im_channel(cols[n], c * KK, gx, n, c, KH, KW, sh, sw, top, left, dh, dw, OH, OW)


# ------------------------------------------------------------------ batched im2col + GEMM
@njit(cache=True, parallel=True, nogil=True)
def _forward_batched(x, w2, y, groups, KH, KW, sh, sw, top, left, dh, dw, OH, OW, T, pointwise):
    """y (N, K, OH*OW): y[n, group g] = w2[g rows] (Kg, Cg*KH*KW) @ im2col(x[n])[g rows].

    Equal to reference ``conv2d_forward``. Thread t handles samples [t*N//T, (t+1)*N//T);
    ``pointwise`` (1x1, stride 1, no padding) uses x[n] as (C, H*W) with no im2col.
    """
    N, C = x.shape[0], x.shape[1]
    K = w2.shape[0]
    L = OH * OW
    Cg, Kg = C // groups, K // groups
    KK = KH * KW
    rows = Cg * KK
    for t in prange(T):
        cols = np.empty((1 if pointwise else C * KK, 1 if pointwise else L), dtype=x.dtype)
        for n in range(t * N // T, (t + 1) * N // T):
            if pointwise:
                src = x[n].reshape((C, L))
            else:
                for c in range(C):
                    _im2col_channel(x, n, c, cols, c * KK, KH, KW, sh, sw, top, left, dh, dw, OH, OW)
                src = cols
            for g in range(groups):
                np.dot(w2[g * Kg:(g + 1) * Kg], src[g * rows:(g + 1) * rows], y[n, g * Kg:(g + 1) * Kg])


@njit(cache=True, parallel=True, nogil=True)
def _backward_input_batched(gy, wt, gx, groups, KH, KW, sh, sw, top, left, dh, dw, OH, OW, T,
                            pointwise):
    """gx[n] = col2im(W^T @ gy[n]) per group, wt[g] = W[g]^T (Cg*KH*KW, Kg).

    Equal to reference ``conv2d_backward_input``: the adjoint of the forward map in x.
    ``pointwise`` writes W^T @ gy[n] straight into gx[n] viewed as (C, H*W).
    """
    N, C = gx.shape[0], gx.shape[1]
    Kg = wt.shape[2]
    rows = wt.shape[1]
    L = OH * OW
    KK = KH * KW
    for t in prange(T):
        cols = np.empty((1 if pointwise else C * KK, L), dtype=gy.dtype)
        for n in range(t * N // T, (t + 1) * N // T):
            dst = gx[n].reshape((C, L)) if pointwise else cols
            for g in range(groups):
                np.dot(wt[g], gy[n, g * Kg:(g + 1) * Kg], dst[g * rows:(g + 1) * rows])
            if not pointwise:
                for c in range(C):
                    _col2im_channel(cols, c * KK, gx, n, c, KH, KW, sh, sw, top, left, dh, dw, OH, OW)


@njit(cache=True, parallel=True, nogil=True)
def _backward_weight_batched(gy, x, partial, groups, KH, KW, sh, sw, top, left, dh, dw, OH, OW, T,
                             pointwise):
    """partial[t, g] (Cg*KH*KW, Kg) = sum over thread t's samples of im2col(x[n])[g] @ gy[n, g]^T.

    Summed over t and transposed (by the caller) this equals reference
    ``conv2d_backward_weight``; per-thread partial sums avoid any write shared between
    threads. With 16 or more filters per group, gy[n, g] is first transposed into a
    contiguous (L, Kg) buffer: OpenBLAS runs ``cols @ gy^T`` 1.8-2.1x faster than
    ``gy @ cols^T`` at the 16- and 32-channel ResNet shapes (measured single-threaded; the
    16-channel layer's weight gradient went from 14.4 to 11.1 ms at batch 128). With fewer
    (LeNet's first layer: 6) the narrow product is slower that way round (0.34 -> 0.58 ms),
    so ``gy @ cols^T`` is kept there and added in transposed.
    """
    N, C = x.shape[0], x.shape[1]
    K = gy.shape[1]
    Kg = K // groups
    rows = partial.shape[2]
    L = OH * OW
    KK = KH * KW
    by_columns = Kg >= 16
    for t in prange(T):
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
                    _im2col_channel(x, n, c, cols, c * KK, KH, KW, sh, sw, top, left, dh, dw, OH, OW)
                src = cols
            for g in range(groups):
                if by_columns:
                    _transpose_into(gy[n, g * Kg:(g + 1) * Kg], gyt)
                    np.dot(src[g * rows:(g + 1) * rows], gyt, tmp)
                    for i in range(rows):
                        for k in range(Kg):
                            acc[g, i, k] += tmp[i, k]
                else:
                    np.dot(gy[n, g * Kg:(g + 1) * Kg], src[g * rows:(g + 1) * rows].T, tmp_t)
                    for i in range(rows):
                        for k in range(Kg):
                            acc[g, i, k] += tmp_t[k, i]


# ------------------------------------------------------------------ channels-last im2col + GEMM
@njit(cache=True)
def _patches(xt, H, W, patches, row0, KH, KW, sh, sw, top, left, dh, dw, OH, OW):
    """The receptive field of every output pixel as one row (im2col, transposed):

        patches[g, row0 + oh*OW + ow, (kh*KW + kw)*Cg + cl]
            = x[c = g*Cg + cl, oh*sh + kh*dh - top, ow*sw + kw*dw - left]   (0 in the padding)

    from the channels-last sample xt (H*W, C). Every tap copies Cg contiguous channels; with
    one group and dw == 1 a whole kernel row (KW*C values) is one contiguous copy. Same
    entries as ``im2col``, in (pixel, tap, channel) order.
    """
    G = patches.shape[0]
    C = xt.shape[1]
    Cg = C // G
    src = xt.reshape(H * W * C)
    for g in range(G):
        for oh in range(OH):
            for ow in range(OW):
                row = patches[g, row0 + oh * OW + ow]
                iw0 = ow * sw - left
                whole_row = G == 1 and dw == 1 and iw0 >= 0 and iw0 + KW - 1 < W
                for kh in range(KH):
                    ih = oh * sh + kh * dh - top
                    o = kh * KW * Cg
                    if ih < 0 or ih >= H:
                        for j in range(KW * Cg):
                            row[_u(o + j)] = 0
                    elif whole_row:
                        s = (ih * W + iw0) * C
                        for j in range(KW * C):
                            row[_u(o + j)] = src[_u(s + j)]
                    else:
                        for kw in range(KW):
                            iw = iw0 + kw * dw
                            d = o + kw * Cg
                            if iw < 0 or iw >= W:
                                for j in range(Cg):
                                    row[_u(d + j)] = 0
                            else:
                                s = (ih * W + iw) * C + g * Cg
                                for j in range(Cg):
                                    row[_u(d + j)] = src[_u(s + j)]


@njit(cache=True)
def _patches_adjoint(patches, row0, H, W, gxt, KH, KW, sh, sw, top, left, dh, dw, OH, OW):
    """gxt (H*W, C) = the adjoint of :func:`_patches`: every patch entry is added back to the
    channels-last position it was copied from (padding entries dropped). Overwrites gxt.
    Same contiguous runs as :func:`_patches`."""
    G = patches.shape[0]
    C = gxt.shape[1]
    Cg = C // G
    dst = gxt.reshape(H * W * C)
    for j in range(H * W * C):
        dst[_u(j)] = 0
    for g in range(G):
        for oh in range(OH):
            for ow in range(OW):
                row = patches[g, row0 + oh * OW + ow]
                iw0 = ow * sw - left
                whole_row = G == 1 and dw == 1 and iw0 >= 0 and iw0 + KW - 1 < W
                for kh in range(KH):
                    ih = oh * sh + kh * dh - top
                    if ih < 0 or ih >= H:
                        continue
                    o = kh * KW * Cg
                    if whole_row:
                        d = (ih * W + iw0) * C
                        for j in range(KW * C):
                            dst[_u(d + j)] += row[_u(o + j)]
                        continue
                    for kw in range(KW):
                        iw = iw0 + kw * dw
                        if iw < 0 or iw >= W:
                            continue
                        s = o + kw * Cg
                        d = (ih * W + iw) * C + g * Cg
                        for j in range(Cg):
                            dst[_u(d + j)] += row[_u(s + j)]


@njit(cache=True, parallel=True, nogil=True)
def _forward_channels_last(x, wt, y, KH, KW, sh, sw, top, left, dh, dw, OH, OW, T, S):
    """y[n, group g] = (patches[g] (L, KH*KW*Cg) @ wt[g] (KH*KW*Cg, Kg))^T, with wt[g] the
    group's weights in (kh, kw, c) x k order: reference ``conv2d_forward``.

    Thread t takes samples [t*N//T, (t+1)*N//T) in chunks of S, whose patch rows are
    stacked into one (S*L, KH*KW*Cg) matrix: small images make short GEMMs, and stacking
    them to about 256 rows runs 1.15-1.25x faster (measured at 8x8). The product is formed
    pixel-major, (S*L, Kg), and transposed into y: OpenBLAS runs this orientation 1.2-1.9x
    faster than W @ patches^T (measured single-threaded at the ResNet-20 layer shapes). The
    buffers stay in the thread's cache.
    """
    N, C, H, W = x.shape
    groups, R, Kg = wt.shape
    L = OH * OW
    for t in prange(T):
        xt = np.empty((H * W, C), dtype=x.dtype)
        patches = np.empty((groups, S * L, R), dtype=x.dtype)
        yt = np.empty((S * L, Kg), dtype=x.dtype)
        for n0 in range(t * N // T, (t + 1) * N // T, S):
            m = min(S, (t + 1) * N // T - n0)
            for j in range(m):
                _transpose_into(x[n0 + j].reshape((C, H * W)), xt)
                _patches(xt, H, W, patches, j * L, KH, KW, sh, sw, top, left, dh, dw, OH, OW)
            for g in range(groups):
                np.dot(patches[g, :m * L], wt[g], yt[:m * L])
                for j in range(m):
                    _transpose_into(yt[j * L:(j + 1) * L], y[n0 + j, g * Kg:(g + 1) * Kg])


@njit(cache=True, parallel=True, nogil=True)
def _backward_input_channels_last(gy, wp, gx, KH, KW, sh, sw, top, left, dh, dw, OH, OW, T, S):
    """gx[n] = patches-adjoint(gy[n, g]^T (L, Kg) @ wp[g] (Kg, KH*KW*Cg)) per group, back to
    channel planes: reference ``conv2d_backward_input``. wp[g] is the group's weights in
    k x (kh, kw, c) order; gy[n, g] is transposed into a contiguous pixel-major buffer
    first (the faster GEMM orientation), S samples stacked as in the forward."""
    N, C, H, W = gx.shape
    groups, Kg, R = wp.shape
    L = OH * OW
    for t in prange(T):
        gxt = np.empty((H * W, C), dtype=gy.dtype)
        gyt = np.empty((S * L, Kg), dtype=gy.dtype)
        patches = np.empty((groups, S * L, R), dtype=gy.dtype)
        for n0 in range(t * N // T, (t + 1) * N // T, S):
            m = min(S, (t + 1) * N // T - n0)
            for g in range(groups):
                for j in range(m):
                    _transpose_into(gy[n0 + j, g * Kg:(g + 1) * Kg], gyt[j * L:(j + 1) * L])
                np.dot(gyt[:m * L], wp[g], patches[g, :m * L])
            for j in range(m):
                _patches_adjoint(patches, j * L, H, W, gxt, KH, KW, sh, sw, top, left, dh, dw, OH, OW)
                _transpose_into(gxt, gx[n0 + j].reshape((C, H * W)))


@njit(cache=True, parallel=True, nogil=True)
def _backward_weight_channels_last(gy, x, partial, KH, KW, sh, sw, top, left, dh, dw, OH, OW, T, S):
    """partial[t, g] (KH*KW*Cg, Kg) = sum over thread t's samples of patches[g]^T @ gy[n, g]^T:
    the weight gradient in (kh, kw, c) x k order, S samples per GEMM as in the forward.
    Summed over t and permuted by the caller it equals reference ``conv2d_backward_weight``;
    per-thread sums share no writes."""
    N, C, H, W = x.shape
    groups, R, Kg = partial.shape[1], partial.shape[2], partial.shape[3]
    L = OH * OW
    for t in prange(T):
        xt = np.empty((H * W, C), dtype=x.dtype)
        patches = np.empty((groups, S * L, R), dtype=x.dtype)
        gyt = np.empty((S * L, Kg), dtype=x.dtype)
        tmp = np.empty((R, Kg), dtype=x.dtype)
        acc = partial[t]
        for g in range(groups):
            for i in range(R):
                for k in range(Kg):
                    acc[g, i, k] = 0
        for n0 in range(t * N // T, (t + 1) * N // T, S):
            m = min(S, (t + 1) * N // T - n0)
            for j in range(m):
                _transpose_into(x[n0 + j].reshape((C, H * W)), xt)
                _patches(xt, H, W, patches, j * L, KH, KW, sh, sw, top, left, dh, dw, OH, OW)
            for g in range(groups):
                for j in range(m):
                    _transpose_into(gy[n0 + j, g * Kg:(g + 1) * Kg], gyt[j * L:(j + 1) * L])
                np.dot(patches[g, :m * L].T, gyt[:m * L], tmp)
                for i in range(R):
                    for k in range(Kg):
                        acc[g, i, k] += tmp[i, k]


# ------------------------------------------------------------------ direct kernels
@njit(cache=True, parallel=True, nogil=True)
def _forward_direct(x, w, y, groups, sh, sw, top, left, dh, dw):
    """y[n, k] = sum_{c, kh, kw} w[k, c, kh, kw] * shifted x[n, group c]: reference
    ``conv2d_forward`` computed tap by tap; parallel over the N*K output planes (each one
    written by one thread, and small enough to stay in L1 while the taps accumulate)."""
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    K, Cg, KH, KW = w.shape
    OH, OW = y.shape[2], y.shape[3]
    Kg = K // groups
    for p in prange(N * K):
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
                    lo, hi = _valid_range(off_w, sw, W, OW)
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


@njit(cache=True, parallel=True, nogil=True)
def _backward_input_direct(gy, w, gx, groups, sh, sw, top, left, dh, dw):
    """gx[n, c] = sum_{k in group(c), kh, kw} w[k, c, kh, kw] * (gy[n, k] scattered back to the
    positions it read): reference ``conv2d_backward_input``; parallel over the N*C input
    planes, each written by one thread only."""
    N, C, H = gx.shape[0], gx.shape[1], gx.shape[2]
    W = gx.shape[3]
    K, Cg, KH, KW = w.shape
    OH, OW = gy.shape[2], gy.shape[3]
    Kg = K // groups
    for p in prange(N * C):
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
                    lo, hi = _valid_range(off_w, sw, W, OW)
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


@njit(cache=True, parallel=True, nogil=True, fastmath={"reassoc", "contract"})
def _backward_weight_direct(gy, x, gw, groups, sh, sw, top, left, dh, dw):
    """gw[k, c, kh, kw] = sum_{n, oh, ow} gy[n, k, oh, ow] * x[n, c', oh*sh+kh*dh-top, ...]:
    reference ``conv2d_backward_weight``, one float64-accumulated dot product per weight
    (``reassoc`` lets LLVM vectorise that sum); parallel over the K*Cg filters."""
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    K, Cg, KH, KW = gw.shape
    OH, OW = gy.shape[2], gy.shape[3]
    Kg = K // groups
    for p in prange(K * Cg):
        k, cl = p // Cg, p % Cg
        c = (k // Kg) * Cg + cl
        for kh in range(KH):
            for kw in range(KW):
                off_w = kw * dw - left
                lo, hi = _valid_range(off_w, sw, W, OW)
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


# ------------------------------------------------------------------ Python interface
def _geometry(input_shape, kernel_size: Pair, stride: Pair, padding, dilation: Pair):
    """Output size and the (top, left) offsets, ints only (the compiled code gets int64)."""
    H, W = input_shape[2], input_shape[3]
    KH, KW = kernel_size
    sh, sw = stride
    top, bottom, left, right = _quad(padding)
    dh, dw = dilation
    OH = (H + top + bottom - dh * (KH - 1) - 1) // sh + 1
    OW = (W + left + right - dw * (KW - 1) - 1) // sw + 1
    return (int(KH), int(KW), int(sh), int(sw), int(top), int(left), int(dh), int(dw),
            int(OH), int(OW))


def _quad(padding) -> Quad:
    """Padding as (top, bottom, left, right); a pair (ph, pw) means symmetric padding."""
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    return padding  # type: ignore[return-value]


CHANNELS_LAST_MAX_PIXELS = 256
WINOGRAD_MIN_CHANNELS = 32


def strategy(input_shape, weight_shape, stride: Pair, padding: Quad, dilation: Pair, groups: int) -> str:
    """Which kernel runs: ``"direct"``, ``"winograd"``, ``"channels_last"``, ``"batched"`` or
    ``"blas"``.

    * direct: every group has one output channel (depthwise: a GEMM would be a
      matrix-vector product);
    * a single image (fewer samples than Numba threads): im2col + numpy's BLAS (``"blas"``);
    * 3x3, stride 1, undilated, ungrouped, padding <= 2 (ResNet's and VGG's main layers)
      with at least ``WINOGRAD_MIN_CHANNELS`` input and output channels: ``"winograd"``,
      F(2x2, 3x3) in ``winograd.py``, 4 instead of 9 multiply-adds per output and input
      channel. Measured fwd+bwd time relative to ``"channels_last"`` (2 threads, median of
      25 interleaved rounds, batch 128 / 32): 128ch 16x16 0.73 (b32), 32ch 16x16 0.81 / 0.84,
      64ch 8x8 0.90 / 1.04; with 16 channels its 16 small GEMMs (inner dimension 16) lose:
      16ch 32x32 1.09 / 1.12;
    * output planes of at most ``CHANNELS_LAST_MAX_PIXELS`` pixels: ``"channels_last"``,
      whose patch rows are built from runs of C channels where im2col's plane rows would be
      a few values long. Measured fwd+bwd time relative to ``"batched"`` (2 threads, median
      of 25 interleaved rounds): ResNet 64ch 8x8 0.73-0.75, LeNet conv2 (6->16, 10x10 out)
      0.70-0.72, ResNet 32ch 16x16 0.94-0.95, 128ch 16x16 1.01-1.07 (equal within noise);
    * otherwise ``"batched"``: im2col rows are long runs of the input plane (ResNet 16ch
      32x32: channels-last takes 0.99-1.03x the time, LeNet conv1 has a single channel).
    """
    K = weight_shape[0]
    if K // groups == 1:
        return "direct"
    if input_shape[0] < num_threads():
        return "blas"
    if (winograd.applies(weight_shape[2:], stride, _quad(padding), dilation, groups)
            and min(weight_shape[0], weight_shape[1]) >= WINOGRAD_MIN_CHANNELS):
        return "winograd"
    *_, OH, OW = _geometry(input_shape, weight_shape[2:], stride, padding, dilation)
    return "channels_last" if OH * OW <= CHANNELS_LAST_MAX_PIXELS else "batched"


def _chosen(how: str, weight_shape, stride: Pair, padding: Quad, dilation: Pair, groups: int) -> str:
    """``how``, except that Winograd on a layer it does not cover (when a test forces it)
    runs as channels-last."""
    if how == "winograd" and not winograd.applies(weight_shape[2:], stride, _quad(padding), dilation,
                                                  groups):
        return "channels_last"
    return how


def _winograd_split(output_height: int, output_width: int) -> tuple[int, int]:
    """(threads, samples stacked per GEMM) for the Winograd kernels."""
    tiles = ((output_height + 1) // 2) * ((output_width + 1) // 2)
    return num_threads(), _stacked_samples(tiles)


STACKED_ROWS = 256


def _stacked_samples(rows_per_sample: int) -> int:
    """How many samples the channels-last and Winograd kernels stack into one GEMM: about
    ``STACKED_ROWS`` rows (channels-last, a row per output pixel: 8x8 outputs stack 4
    samples, 16x16 and larger 1; Winograd, a row per 4x4 tile: 8x8 outputs stack 16)."""
    return max(1, STACKED_ROWS // max(1, rows_per_sample))


def _weight_channels_last(weight: np.ndarray, groups: int) -> np.ndarray:
    """weight (K, Cg, KH, KW) as (groups, K/groups, KH*KW*Cg): each filter flattened in the
    (kh, kw, c) order of a channels-last patch row (a small copy)."""
    K, Cg, KH, KW = weight.shape
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(groups, K // groups, KH * KW * Cg)


def _pointwise(KH: int, KW: int, sh: int, sw: int, top: int, bottom: int, left: int, right: int) -> bool:
    return KH == KW == 1 and sh == sw == 1 and top == bottom == left == right == 0


def conv2d_forward(x: np.ndarray, weight: np.ndarray, stride: Pair, padding: Quad, dilation: Pair,
                   groups: int) -> np.ndarray:
    """y = cross-correlation of x with weight (no bias): (N, C, H, W) -> (N, K, OH, OW)."""
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight)
    N = x.shape[0]
    K = weight.shape[0]
    groups = int(groups)
    KH, KW, sh, sw, top, left, dh, dw, OH, OW = _geometry(x.shape, weight.shape[2:], stride,
                                                           padding, dilation)
    how = _chosen(strategy(x.shape, weight.shape, stride, padding, dilation, groups), weight.shape,
                  stride, padding, dilation, groups)
    if how == "direct":
        y = np.empty((N, K, OH, OW), dtype=x.dtype)
        _forward_direct(x, weight, y, groups, sh, sw, top, left, dh, dw)
        return y
    if how == "winograd":
        y = np.empty((N, K, OH, OW), dtype=x.dtype)
        with numba_blas_single_thread:
            winograd.forward(x, winograd.transformed_weight(weight), y, top, left, *_winograd_split(OH, OW))
        return y
    rows = weight.shape[1] * KH * KW
    if how == "channels_last":
        y = np.empty((N, K, OH * OW), dtype=x.dtype)
        with numba_blas_single_thread:
            _forward_channels_last(x, _weight_channels_last(weight, groups).transpose(0, 2, 1).copy(), y,
                                   KH, KW, sh, sw, top, left, dh, dw, OH, OW, num_threads(),
                                   _stacked_samples(OH * OW))
        return y.reshape(N, K, OH, OW)
    if how == "batched":
        y = np.empty((N, K, OH * OW), dtype=x.dtype)
        T = num_threads()
        pw = _pointwise(KH, KW, sh, sw, *_quad(padding))
        with numba_blas_single_thread:
            _forward_batched(x, weight.reshape(K, rows), y, groups, KH, KW, sh, sw, top, left,
                             dh, dw, OH, OW, T, pw)
        return y.reshape(N, K, OH, OW)
    cols = im2col(x, (KH, KW), stride, padding, dilation).reshape(N, groups, rows, OH * OW)
    y = np.matmul(weight.reshape(groups, K // groups, rows), cols)
    return y.reshape(N, K, OH, OW)


def conv2d_backward_input(grad_y: np.ndarray, weight: np.ndarray, input_shape, stride: Pair,
                          padding: Quad, dilation: Pair, groups: int) -> np.ndarray:
    """grad_x = the adjoint of the forward map applied to grad_y, shape ``input_shape``."""
    grad_y = np.ascontiguousarray(grad_y)
    weight = np.ascontiguousarray(weight)
    input_shape = tuple(int(s) for s in input_shape)
    N, C = input_shape[0], input_shape[1]
    K, Cg = weight.shape[0], weight.shape[1]
    groups = int(groups)
    KH, KW, sh, sw, top, left, dh, dw, OH, OW = _geometry(input_shape, weight.shape[2:], stride,
                                                           padding, dilation)
    how = _chosen(strategy(input_shape, weight.shape, stride, padding, dilation, groups), weight.shape,
                  stride, padding, dilation, groups)
    gx = np.empty(input_shape, dtype=grad_y.dtype)
    if how == "direct":
        _backward_input_direct(grad_y, weight, gx, groups, sh, sw, top, left, dh, dw)
        return gx
    if how == "winograd":
        # The stride-1 correlation of grad_y padded by 2 - padding with the flipped filters,
        # input and output channels swapped (winograd.py).
        with numba_blas_single_thread:
            winograd.forward(grad_y, winograd.transformed_weight(weight, flipped=True), gx, 2 - top, 2 - left,
                             *_winograd_split(input_shape[2], input_shape[3]))
        return gx
    if how == "channels_last":
        with numba_blas_single_thread:
            _backward_input_channels_last(grad_y.reshape(N, K, OH * OW),
                                          _weight_channels_last(weight, groups), gx, KH, KW, sh, sw,
                                          top, left, dh, dw, OH, OW, num_threads(),
                                          _stacked_samples(OH * OW))
        return gx
    rows = Cg * KH * KW
    # W^T per group, (groups, Cg*KH*KW, K/groups), contiguous for BLAS: a small copy.
    wt = np.ascontiguousarray(weight.reshape(groups, K // groups, rows).transpose(0, 2, 1))
    if how == "batched":
        T = num_threads()
        pw = _pointwise(KH, KW, sh, sw, *_quad(padding))
        with numba_blas_single_thread:
            _backward_input_batched(grad_y.reshape(N, K, OH * OW), wt, gx, groups, KH, KW, sh, sw,
                                    top, left, dh, dw, OH, OW, T, pw)
        return gx
    cols = np.matmul(wt, grad_y.reshape(N, groups, K // groups, OH * OW))
    _col2im_all(np.ascontiguousarray(cols.reshape(N, C * KH * KW, OH * OW)), gx, KH, KW, sh, sw,
                top, left, dh, dw, OH, OW)
    return gx


def conv2d_backward_weight(grad_y: np.ndarray, x: np.ndarray, weight_shape, stride: Pair,
                           padding: Quad, dilation: Pair, groups: int) -> np.ndarray:
    """grad_w[k, c, kh, kw] = sum_{n, oh, ow} grad_y[n, k, oh, ow] * (the x entry it multiplied)."""
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x)
    weight_shape = tuple(int(s) for s in weight_shape)
    N = x.shape[0]
    K, Cg = weight_shape[0], weight_shape[1]
    groups = int(groups)
    KH, KW, sh, sw, top, left, dh, dw, OH, OW = _geometry(x.shape, weight_shape[2:], stride,
                                                           padding, dilation)
    how = _chosen(strategy(x.shape, weight_shape, stride, padding, dilation, groups), weight_shape,
                  stride, padding, dilation, groups)
    if how == "direct":
        gw = np.empty(weight_shape, dtype=x.dtype)
        _backward_weight_direct(grad_y, x, gw, groups, sh, sw, top, left, dh, dw)
        return gw
    if how == "winograd":
        T, S = _winograd_split(OH, OW)
        partial = np.empty((T, 16, Cg, K), dtype=x.dtype)
        with numba_blas_single_thread:
            winograd.backward_weight(grad_y, x, partial, top, left, T, S)
        return winograd.transformed_weight_adjoint(partial.sum(axis=0), weight_shape)
    rows = Cg * KH * KW
    if how == "channels_last":
        T = num_threads()
        partial = np.empty((T, groups, rows, K // groups), dtype=x.dtype)
        with numba_blas_single_thread:
            _backward_weight_channels_last(grad_y.reshape(N, K, OH * OW), x, partial, KH, KW, sh, sw, top,
                                           left, dh, dw, OH, OW, T, _stacked_samples(OH * OW))
        # (groups, kh, kw, c, k) -> (groups, k, c, kh, kw) = (K, Cg, KH, KW)
        gw = partial.sum(axis=0).reshape(groups, KH, KW, Cg, K // groups).transpose(0, 4, 3, 1, 2)
        return np.ascontiguousarray(gw).reshape(weight_shape)
    if how == "batched":
        T = num_threads()
        partial = np.empty((T, groups, rows, K // groups), dtype=x.dtype)
        pw = _pointwise(KH, KW, sh, sw, *_quad(padding))
        with numba_blas_single_thread:
            _backward_weight_batched(grad_y.reshape(N, K, OH * OW), x, partial, groups, KH, KW, sh, sw,
                                     top, left, dh, dw, OH, OW, T, pw)
        # (groups, c kh kw, k) -> (groups, k, c kh kw) = (K, Cg, KH, KW)
        return np.ascontiguousarray(partial.sum(axis=0).transpose(0, 2, 1)).reshape(weight_shape)
    cols = im2col(x, (KH, KW), stride, padding, dilation).reshape(N, groups, rows, OH * OW)
    gy = grad_y.reshape(N, groups, K // groups, OH * OW)
    gw = np.matmul(gy, cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return gw.reshape(weight_shape)


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Quad, dilation: Pair) -> np.ndarray:
    """cols (N, C*KH*KW, OH*OW): cols[n, (c*KH + kh)*KW + kw, oh*OW + ow] is the input entry
    that weight tap (c, kh, kw) multiplies for output (oh, ow) (0 in the padding)."""
    x = np.ascontiguousarray(x)
    N, C = x.shape[0], x.shape[1]
    KH, KW, sh, sw, top, left, dh, dw, OH, OW = _geometry(x.shape, kernel_size, stride, padding,
                                                           dilation)
    cols = np.empty((N, C * KH * KW, OH * OW), dtype=x.dtype)
    _im2col_all(x, cols, KH, KW, sh, sw, top, left, dh, dw, OH, OW)
    return cols


def col2im(cols: np.ndarray, input_shape, kernel_size: Pair, stride: Pair, padding: Quad,
           dilation: Pair) -> np.ndarray:
    """The adjoint of :func:`im2col`: every column entry is added back to the input position it
    was copied from (overlapping windows sum; padding entries are dropped)."""
    cols = np.ascontiguousarray(cols)
    input_shape = tuple(int(s) for s in input_shape)
    KH, KW, sh, sw, top, left, dh, dw, OH, OW = _geometry(input_shape, kernel_size, stride, padding,
                                                           dilation)
    gx = np.empty(input_shape, dtype=cols.dtype)
    _col2im_all(cols, gx, KH, KW, sh, sw, top, left, dh, dw, OH, OW)
    return gx
