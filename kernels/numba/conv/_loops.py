"""Compiled loops that several convolution strategies share.

* :func:`valid_range`: which outputs a kernel tap can reach, so inner loops need no bounds tests;
* :func:`transpose_into`: one sample between channel planes (C, H*W) and channels-last pixel
  rows (H*W, C);
* :func:`im2col_channel` / :func:`col2im_channel`: one channel's columns of the im2col matrix
  and their adjoint.

Indexing is done on flat views with ``uint64`` indices: Numba then emits no negative-index
wrap-around code, the index is affine in the loop variable, and LLVM vectorises the copies.
(Calling these from the strategy files is safe with Numba's disk cache because the backend
keys its cache by a digest of every source file: see ``kernels/numba/__init__.py``.)
"""

from __future__ import annotations

from numba import njit
from numba import uint64 as _u


@njit(cache=True, inline="always")
def valid_range(offset: int, stride: int, size: int, out_size: int) -> tuple[int, int]:
    """[lo, hi): the outputs o with 0 <= o*stride + offset < size, clipped to [0, out_size).

    Computing the range once per kernel tap keeps the innermost loops free of bounds
    checks (so LLVM vectorises them) and guarantees no read or write outside the arrays.
    """
    lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
    last = size - 1 - offset  # o*stride <= last
    hi = 0 if last < 0 else last // stride + 1
    hi = min(hi, out_size)
    return min(lo, hi), hi


@njit(cache=True)
def transpose_into(src, dst):
    """dst (B, A) = src (A, B) transposed, both C-contiguous. Converts one sample between
    channel planes (C, H*W) and channels-last pixel rows (H*W, C). 8x8 tiles keep both
    sides' cache lines in L1."""
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
def im2col_channel(x, n, c, cols, row0, KH, KW, sh, sw, top, left, dh, dw, OH, OW):
    """Rows row0 .. row0+KH*KW-1 of cols get channel c of sample n:
    cols[row0 + kh*KW + kw, oh*OW + ow] = x[n, c, oh*sh + kh*dh - top, ow*sw + kw*dw - left],
    zero where that position is padding (reference ``im2col`` for one (n, c)).

    With stride 1 and OW == W (a "same" convolution) each tap's row is one long contiguous
    copy of the plane shifted by (kh*dh - top, kw*dw - left); the few entries that wrapped
    around a row edge are zeroed afterwards.
    """
    H = x.shape[2]
    W = x.shape[3]
    L = OH * OW
    src = x[n, c].reshape(H * W)
    for kh in range(KH):
        for kw in range(KW):
            out = cols[row0 + kh * KW + kw]
            off_w = kw * dw - left
            lo, hi = valid_range(off_w, sw, W, OW)
            off_h = kh * dh - top
            if sh == 1 and sw == 1 and OW == W:
                hlo, hhi = valid_range(off_h, 1, H, OH)
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
def col2im_channel(cols, row0, gx, n, c, KH, KW, sh, sw, top, left, dh, dw, OH, OW):
    """Adjoint of :func:`im2col_channel`: gx[n, c] = sum of the column entries that were
    copied from each position (padding entries are dropped); reference ``col2im`` for one
    (n, c). Overwrites the plane (zeroes it first)."""
    H = gx.shape[2]
    W = gx.shape[3]
    dst = gx[n, c].reshape(H * W)
    for j in range(H * W):
        dst[_u(j)] = 0
    for kh in range(KH):
        for kw in range(KW):
            src = cols[row0 + kh * KW + kw]
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
                        dst[_u(d + j)] += src[_u(o + j)]
                else:
                    for j in range(lo, hi):
                        dst[_u(d + j * sw)] += src[_u(o + j)]
