"""Winograd's minimal filtering F(2x2, 3x3): a 3x3 stride-1 convolution in 2.25x fewer multiplications.

The course's fast-convolution idea (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016). Cut the (zero-padded) input into 4x4 tiles that overlap by 2, one tile per
2x2 block of outputs. For one tile d (4x4) and one filter g (3x3) the 2x2 outputs are

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, on 4x4 matrices)

    B^T = [[1, 0, -1, 0],   G = [[1,    0,   0],   A^T = [[1, 1,  1,  0],
           [0, 1,  1, 0],        [1/2, 1/2, 1/2],         [0, 1, -1, -1]]
           [0, -1, 1, 0],        [1/2, -1/2, 1/2],
           [0, 1,  0, -1]]       [0,    0,   1]]

16 multiplications instead of 2*2*9 = 36. Summed over input channels, the 16 elementwise
products become 16 independent matrix products, one per position xi of the 4x4 tile:

    M[xi] (tiles, K) = V[xi] (tiles, C) @ U[xi] (C, K),   V = B^T d B per tile and channel,
                                                           U = G g G^T per channel pair,

so the GEMM work of a 3x3 convolution drops from 9 to 4 multiply-adds per output and input
channel. The transforms are additions only. Float32 results differ from the direct sum by a
few units in the last place of the largest terms (the transforms add and subtract
neighbouring inputs before multiplying).

The gradients reuse the same pieces, because everything above is linear:

* grad_input of a stride-1 3x3 convolution is the stride-1 3x3 correlation of grad_y, padded by
  2 - padding on each side, with each filter flipped and the channel axes swapped: the same
  forward kernel with other weights;
* grad_weight: dM = A dY A^T per tile (the adjoint of the output transform), dU[xi] =
  V[xi]^T @ dM[xi] summed over tiles and samples, and dg = G^T dU G (the adjoint of the
  weight transform).

Layout: samples are converted to channels-last pixel rows (as in the ``"channels_last"``
strategy of ``channels_last.py``), so every transform step is a loop over a contiguous run of channels
that LLVM vectorises; each share (one per Numba thread) stacks the tiles of several
samples (about ``STACKED_ROWS`` rows, fewer for narrow layers: :func:`_split`) into its 16 GEMMs.

Infinities: the transforms subtract neighbouring inputs, and Inf - Inf is NaN, so an
input (or output gradient) that is not finite would turn outputs that other algorithms
give as +-Inf into NaN. Such calls run on the ``"channels_last"`` strategy instead (one
``isfinite`` pass over the array decides).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba import uint64 as _u
from tinygrad_cnn.kernels.numba.conv import channels_last
from tinygrad_cnn.kernels.numba.conv._loops import transpose_into
from tinygrad_cnn.kernels.numba.shares import run

# The transform matrices of F(2x2, 3x3) (exact in binary floating point). The kernels below
# apply them as the additions they amount to (``_input_step``, ``_output_step``,
# ``_g_times``); tutorial 6 computes a tile with the matrices themselves.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def applies(geometry) -> bool:
    """F(2x2, 3x3) here covers 3x3 kernels, stride 1, no dilation, one group, and padding of at
    most 2 per side (so that grad_input's padding 2 - p is not negative)."""
    g = geometry
    return (g.kernel == (3, 3) and g.stride == (1, 1) and g.dilation == (1, 1) and g.groups == 1
            and all(0 <= p <= 2 for p in g.padding))


def transformed_weight(weight: np.ndarray, flipped: bool = False) -> np.ndarray:
    """U (16, C, K): U[4i + j, c, k] = (G weight[k, c] G^T)[i, j], in the weight's dtype.

    ``flipped``: the filters of grad_input's convolution instead, weight[c, k] rotated by
    180 degrees, with C and K swapped: U (16, K, C)."""
    K, C = weight.shape[0], weight.shape[1]
    U = np.empty((16, K, C) if flipped else (16, C, K), dtype=weight.dtype)
    _weight_transform(weight, U, flipped)
    return U


def transformed_weight_adjoint(dU: np.ndarray, weight_shape) -> np.ndarray:
    """grad_weight (K, C, 3, 3) = G^T dU[:, c, k] G per (c, k): the adjoint of
    :func:`transformed_weight`."""
    gw = np.empty(tuple(int(s) for s in weight_shape), dtype=dU.dtype)
    _weight_transform_adjoint(dU, gw)
    return gw


@njit(cache=True, inline="always")
def _g_times(v0, v1, v2):
    """G applied to 3 values: (v0, (v0 + v1 + v2)/2, (v0 - v1 + v2)/2, v2)."""
    return v0, 0.5 * (v0 + v1 + v2), 0.5 * (v0 - v1 + v2), v2


@njit(cache=True, inline="always")
def _store_row(block, i0, j, v0, v1, v2):
    """block[i0 .. i0 + 3, j] = G applied to (v0, v1, v2)."""
    u0, u1, u2, u3 = _g_times(v0, v1, v2)
    block[i0, j] = u0
    block[i0 + 1, j] = u1
    block[i0 + 2, j] = u2
    block[i0 + 3, j] = u3


@njit(cache=True)
def _weight_transform(w, U, flipped):
    """U[4i + j, c, k] = (G g G^T)[i, j] with g = w[k, c] (or, flipped, U[4i + j, k, c] with
    g = w[k, c] rotated 180 degrees).

    The 16 values of a filter land 16 planes apart in U; written one filter at a time, those
    16 streams, a multiple of 4 KiB apart, fight over the same L1 sets (0.43 ms for 64x64
    filters). So 16 neighbouring filters are collected in ``block`` and each plane gets a
    contiguous run of 16 (0.12 ms)."""
    K, C = w.shape[0], w.shape[1]
    outer_n, inner_n = (K, C) if flipped else (C, K)
    dst = U.reshape(16, outer_n * inner_n)
    g = np.empty(9, dtype=w.dtype)
    block = np.empty((16, 16), dtype=w.dtype)
    for outer in range(outer_n):
        for inner0 in range(0, inner_n, 16):
            inner1 = min(inner0 + 16, inner_n)
            for inner in range(inner0, inner1):
                k, c = (outer, inner) if flipped else (inner, outer)
                for e in range(9):
                    g[e] = w[k, c, (8 - e) // 3, (8 - e) % 3] if flipped else w[k, c, e // 3, e % 3]
                # G g: 4 rows, each a combination of g's 3 rows (column by column)
                r00, r10, r20, r30 = _g_times(g[0], g[3], g[6])
                r01, r11, r21, r31 = _g_times(g[1], g[4], g[7])
                r02, r12, r22, r32 = _g_times(g[2], g[5], g[8])
                # (G g) G^T: row i's 3 values become U[4i .. 4i + 3]
                j = inner - inner0
                _store_row(block, 0, j, r00, r01, r02)
                _store_row(block, 4, j, r10, r11, r12)
                _store_row(block, 8, j, r20, r21, r22)
                _store_row(block, 12, j, r30, r31, r32)
            for xi in range(16):
                row = dst[xi]
                for j in range(inner1 - inner0):
                    row[outer * inner_n + inner0 + j] = block[xi, j]


@njit(cache=True)
def _weight_transform_adjoint(dU, gw):
    """gw[k, c] = G^T d G with d[i, j] = dU[4i + j, c, k]: each G^T combination spreads a
    value back to the rows (columns) it was made from. Reads 16 filters' values per plane
    at a time, for the reason given in :func:`_weight_transform`."""
    K, C = gw.shape[0], gw.shape[1]
    src = dU.reshape(16, C * K)
    block = np.empty((16, 16), dtype=gw.dtype)
    h = np.empty((4, 3), dtype=gw.dtype)
    for c in range(C):
        for k0 in range(0, K, 16):
            k1 = min(k0 + 16, K)
            for xi in range(16):
                row = src[xi]
                for j in range(k1 - k0):
                    block[xi, j] = row[c * K + k0 + j]
            for k in range(k0, k1):
                j = k - k0
                for i in range(4):  # d G: columns 4 -> 3
                    d0, d1 = block[4 * i, j], block[4 * i + 1, j]
                    d2, d3 = block[4 * i + 2, j], block[4 * i + 3, j]
                    h[i, 0] = d0 + 0.5 * (d1 + d2)
                    h[i, 1] = 0.5 * (d1 - d2)
                    h[i, 2] = 0.5 * (d1 + d2) + d3
                for b in range(3):  # G^T (d G): rows 4 -> 3
                    gw[k, c, 0, b] = h[0, b] + 0.5 * (h[1, b] + h[2, b])
                    gw[k, c, 1, b] = 0.5 * (h[1, b] - h[2, b])
                    gw[k, c, 2, b] = 0.5 * (h[1, b] + h[2, b]) + h[3, b]


# ------------------------------------------------------------------ 1-D transform steps
# Each step maps 4 (or 2) vectors of n values, src[s0 + i*ss : ... + n], to 4 (or 2) vectors
# dst[d0 + i*ds : ... + n]. One loop per output vector keeps each loop to a store and two or
# three loads, so LLVM vectorises it (one loop for all outputs needs too many runtime alias
# checks, and then stays scalar: 15x slower, measured).
@njit(cache=True)
def _input_step(src, s0, ss, dst, d0, ds, n):
    """B^T applied to 4 vectors: (d0 - d2, d1 + d2, d2 - d1, d1 - d3)."""
    for c in range(n):
        dst[_u(d0 + c)] = src[_u(s0 + c)] - src[_u(s0 + 2 * ss + c)]
    for c in range(n):
        dst[_u(d0 + ds + c)] = src[_u(s0 + ss + c)] + src[_u(s0 + 2 * ss + c)]
    for c in range(n):
        dst[_u(d0 + 2 * ds + c)] = src[_u(s0 + 2 * ss + c)] - src[_u(s0 + ss + c)]
    for c in range(n):
        dst[_u(d0 + 3 * ds + c)] = src[_u(s0 + ss + c)] - src[_u(s0 + 3 * ss + c)]


@njit(cache=True)
def _output_step(src, s0, ss, dst, d0, ds, n, two):
    """A^T applied to 4 vectors: (m0 + m1 + m2, m1 - m2 - m3); the second only if ``two``
    (a tile that sticks out of an odd-sized output)."""
    for c in range(n):
        dst[_u(d0 + c)] = src[_u(s0 + c)] + src[_u(s0 + ss + c)] + src[_u(s0 + 2 * ss + c)]
    if two:
        for c in range(n):
            dst[_u(d0 + ds + c)] = (src[_u(s0 + ss + c)] - src[_u(s0 + 2 * ss + c)]
                                    - src[_u(s0 + 3 * ss + c)])


@njit(cache=True)
def _output_step_adjoint(src, s0, ss, dst, d0, ds, n, two):
    """A applied to 2 vectors (the adjoint of :func:`_output_step`): (y0, y0 + y1, y0 - y1, -y1),
    with y1 = 0 unless ``two``."""
    if two:
        for c in range(n):
            dst[_u(d0 + c)] = src[_u(s0 + c)]
        for c in range(n):
            dst[_u(d0 + ds + c)] = src[_u(s0 + c)] + src[_u(s0 + ss + c)]
        for c in range(n):
            dst[_u(d0 + 2 * ds + c)] = src[_u(s0 + c)] - src[_u(s0 + ss + c)]
        for c in range(n):
            dst[_u(d0 + 3 * ds + c)] = -src[_u(s0 + ss + c)]
    else:
        for c in range(n):
            dst[_u(d0 + c)] = src[_u(s0 + c)]
        for c in range(n):
            dst[_u(d0 + ds + c)] = src[_u(s0 + c)]
        for c in range(n):
            dst[_u(d0 + 2 * ds + c)] = src[_u(s0 + c)]
        for c in range(n):
            dst[_u(d0 + 3 * ds + c)] = 0


# ------------------------------------------------------------------ per-sample steps
@njit(cache=True)
def _padded_channels_last(planes, H, W, xp, top, left):
    """xp (Hp, Wp, C) = the sample planes (C, H*W) moved to channels-last pixel rows at
    offset (top, left) of a zero frame: tile reads then need no bounds tests."""
    Hp, Wp, C = xp.shape
    flat = xp.reshape(Hp * Wp * C)
    src = planes.reshape(C * H * W)
    for j in range(Hp * Wp * C):
        flat[_u(j)] = 0
    for c0 in range(0, C, 8):  # 8 planes at a time: their lines stay in L1
        c1 = min(c0 + 8, C)
        for h in range(H):
            d = ((h + top) * Wp + left) * C
            for w in range(W):
                for c in range(c0, c1):
                    flat[_u(d + w * C + c)] = src[_u((c * H + h) * W + w)]


@njit(cache=True)
def _input_transform(xp, V, t0, TH, TW, work):
    """V[xi, t0 + th*TW + tw, :] = (B^T d B)[xi] for the 4x4 tile d at (2th, 2tw) of xp,
    vectorised over the channels. The first step (B^T d, down the columns) runs once per
    row of tiles over the 4 whole rows of xp into ``work`` (4 Wp C values): one long loop
    instead of four short ones per tile, and neighbouring tiles, which share two columns,
    do not repeat it (one thread, fwd + both gradients, b32, 32 channels: 32x32 19.4-19.6 ->
    16.5-17.9 ms, 16x16 4.6-4.8 -> 4.5-4.6 ms); the second (. B, along the rows) runs per
    tile."""
    Hp, Wp, C = xp.shape
    P = V.shape[1]
    src = xp.reshape(Hp * Wp * C)
    dst = V.reshape(16 * P * C)
    row = Wp * C
    half = work[:4 * row]
    s = P * C
    for th in range(TH):
        _input_step(src, 2 * th * row, row, half, 0, row, row)  # B^T d: 4 rows -> 4 rows
        for tw in range(TW):
            t = t0 + th * TW + tw
            for i in range(4):  # (B^T d) B: along each row of the tile
                _input_step(half, i * row + 2 * tw * C, C, dst, 4 * i * s + t * C, s, C)


@njit(cache=True)
def _output_transform(M, t0, TH, TW, yt, OH, OW, work):
    """yt[(2th + a)*OW + 2tw + b, :] = (A^T m A)[a, b] for each tile's 16 products m (rows
    and columns past an odd-sized output are dropped)."""
    P, K = M.shape[1], M.shape[2]
    src = M.reshape(16 * P * K)
    dst = yt.reshape(OH * OW * K)
    half = work[:8 * K]
    s = P * K
    for th in range(TH):
        for tw in range(TW):
            t = t0 + th * TW + tw
            oh, ow = 2 * th, 2 * tw
            for j in range(4):  # A^T m: down each column, 4 rows -> 2
                _output_step(src, j * s + t * K, 4 * s, half, j * K, 4 * K, K, True)
            two_cols = ow + 1 < OW
            _output_step(half, 0, K, dst, (oh * OW + ow) * K, K, K, two_cols)
            if oh + 1 < OH:
                _output_step(half, 4 * K, K, dst, ((oh + 1) * OW + ow) * K, K, K, two_cols)


@njit(cache=True)
def _output_transform_adjoint(gyt, OH, OW, dM, t0, TH, TW, work):
    """dM[xi, t0 + th*TW + tw, :] = (A dY A^T)[xi] for the tile's 2x2 output gradients dY
    (zero past an odd-sized output): the adjoint of :func:`_output_transform`."""
    P, K = dM.shape[1], dM.shape[2]
    src = gyt.reshape(OH * OW * K)
    dst = dM.reshape(16 * P * K)
    half = work[:8 * K]
    s = P * K
    for th in range(TH):
        for tw in range(TW):
            t = t0 + th * TW + tw
            oh, ow = 2 * th, 2 * tw
            two_rows = oh + 1 < OH
            two_cols = ow + 1 < OW
            for b in range(2):  # A dY: down each of the 2 columns, 2 rows -> 4
                if b == 0 or two_cols:
                    _output_step_adjoint(src, (oh * OW + ow + b) * K, OW * K, half, b * K, 2 * K, K,
                                         two_rows)
            for i in range(4):  # (A dY) A^T: along each row, 2 columns -> 4
                _output_step_adjoint(half, 2 * i * K, K, dst, 4 * i * s + t * K, s, K, two_cols)


# ------------------------------------------------------------------ the kernels
# The 16 matrices V[xi] (and M[xi]) lie S*P*C values apart, often a multiple of 4 KiB (32
# channels, 64 tiles, 4 samples: 32 KiB); a transform step writes 4 of them at once, and
# addresses 4 KiB apart share L1 sets (and the CPU's store-to-load alias checks), so the
# step stalled. One spare row per matrix (C values: 128 bytes at 32 channels) moves them
# apart (the Cython kernels pad their planes by a cache line for the same reason).
_SPARE = 1


@njit(cache=True, nogil=True)
def _forward_share(x, U, y, top, left, S, t, T):
    """y (N, K, OH, OW) = the stride-1 3x3 correlation of x (N, C, H, W) zero-padded by
    (top, left, and whatever the output size implies at the bottom and right) with the
    filters whose transform is U (16, C, K), for share t of T of the samples, S at a time."""
    N = x.shape[0]
    first, last = t * N // T, (t + 1) * N // T
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    K, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    P = TH * TW
    xp = np.empty((2 * TH + 2, 2 * TW + 2, C), dtype=x.dtype)
    # one spare row per matrix (see _SPARE)
    V = np.empty((16, S * P + _SPARE, C), dtype=x.dtype)
    M = np.empty((16, S * P + _SPARE, K), dtype=x.dtype)
    yt = np.empty((OH * OW, K), dtype=x.dtype)
    work = np.empty(max(16 * max(C, K), 4 * (2 * TW + 2) * C), dtype=x.dtype)
    for n0 in range(first, last, S):
        m = min(S, last - n0)
        for j in range(m):
            _padded_channels_last(x[n0 + j], H, W, xp, top, left)
            _input_transform(xp, V, j * P, TH, TW, work)
        for xi in range(16):
            np.dot(V[xi, :m * P], U[xi], M[xi, :m * P])
        for j in range(m):
            _output_transform(M, j * P, TH, TW, yt, OH, OW, work)
            transpose_into(yt, y[n0 + j].reshape((K, OH * OW)))


@njit(cache=True, nogil=True)
def _backward_weight_share(gy, x, partial, top, left, S, t, T):
    """partial[t] (16, C, K) = the sum of V[xi]^T @ dM[xi] over share t of T of the samples
    and their tiles, S samples at a time: the gradient of U. Summed over t and mapped back
    by :func:`transformed_weight_adjoint` it is grad_weight."""
    N = x.shape[0]
    first, last = t * N // T, (t + 1) * N // T
    acc = partial[t]
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    K, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    P = TH * TW
    xp = np.empty((2 * TH + 2, 2 * TW + 2, C), dtype=x.dtype)
    V = np.empty((16, S * P + _SPARE, C), dtype=x.dtype)
    dM = np.empty((16, S * P + _SPARE, K), dtype=x.dtype)
    gyt = np.empty((OH * OW, K), dtype=x.dtype)
    work = np.empty(max(16 * max(C, K), 4 * (2 * TW + 2) * C), dtype=x.dtype)
    tmp = np.empty((C, K), dtype=x.dtype)
    flat = acc.reshape(16 * C * K)
    for j in range(16 * C * K):
        flat[_u(j)] = 0
    for n0 in range(first, last, S):
        m = min(S, last - n0)
        for j in range(m):
            _padded_channels_last(x[n0 + j], H, W, xp, top, left)
            _input_transform(xp, V, j * P, TH, TW, work)
            transpose_into(gy[n0 + j].reshape((K, OH * OW)), gyt)
            _output_transform_adjoint(gyt, OH, OW, dM, j * P, TH, TW, work)
        for xi in range(16):
            np.dot(V[xi, :m * P].T, dM[xi, :m * P], tmp)
            dst = acc[xi]
            for c in range(C):
                for k in range(K):
                    dst[c, k] += tmp[c, k]


# ------------------------------------------------------------------ the strategy's interface
STACKED_ROWS = 256  # tiles per GEMM (one row per 4x4 tile)
# For layers of at most NARROW_CHANNELS input and output channels, the rows are halved until a
# stack's float32 V and M (16 x rows x (C + K) values) fit in STACK_BYTES, half this machine's
# L2: fwd + both gradients, 2 threads, 64 channels 8x8 b128 took 12.9-13.4 ms with 256 rows
# and 10.0 with 128 (b32 4.8 vs 4.0; 64 channels 16x16 b32 14.0-18.0 vs 11.9-12.5), while 32
# channels keep their 256 (16x16 b128 18.5-19.1 vs 19.6-21.7 with 128). Wider layers are
# GEMM-bound and want the long GEMMs (128 channels 16x16 b32: 38.5-48.0 ms with 256 rows,
# 48.9-51.8 with 128). (The Cython kernels, measured on their own, stack 128 rows for every
# layer of at most 64 channels: kernels/cython/winograd.py.)
NARROW_CHANNELS = 64
STACK_BYTES = 1 << 20


def _split(c_in: int, k_out: int, out_height: int, out_width: int, stacked: int | None) -> int:
    """Samples stacked per GEMM (at least one): about STACKED_ROWS tiles (8x8 outputs: 16
    tiles, 16 samples), fewer for narrow layers (see STACK_BYTES); ``stacked`` overrides."""
    rows = STACKED_ROWS
    if max(c_in, k_out) <= NARROW_CHANNELS:
        while rows > 16 and 16 * rows * (c_in + k_out) * 4 > STACK_BYTES:
            rows //= 2
    tiles = ((out_height + 1) // 2) * ((out_width + 1) // 2)
    return stacked or max(1, rows // tiles)


def _finite(*arrays) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def forward(x, weight, g, shares: int, stacked: int | None = None) -> np.ndarray:
    if not _finite(x, weight):
        return channels_last.forward(x, weight, g, shares, stacked)
    y = np.empty(g.output_shape, dtype=x.dtype)
    run(_forward_share, shares, x, transformed_weight(weight), y, g.padding[0], g.padding[2],
        _split(g.input_shape[1], g.out_channels, g.out_height, g.out_width, stacked))
    return y


def backward_input(grad_y, weight, g, shares: int, stacked: int | None = None) -> np.ndarray:
    if not _finite(grad_y, weight):
        return channels_last.backward_input(grad_y, weight, g, shares, stacked)
    # The stride-1 correlation of grad_y padded by 2 - padding with the flipped filters,
    # input and output channels swapped (see the module docstring).
    grad_x = np.empty(g.input_shape, dtype=grad_y.dtype)
    samples = _split(g.out_channels, g.input_shape[1], g.input_shape[2], g.input_shape[3], stacked)
    run(_forward_share, shares, grad_y, transformed_weight(weight, flipped=True), grad_x, 2 - g.padding[0],
        2 - g.padding[2], samples)
    return grad_x


def backward_weight(grad_y, x, g, shares: int, stacked: int | None = None) -> np.ndarray:
    if not _finite(grad_y, x):
        return channels_last.backward_weight(grad_y, x, g, shares, stacked)
    K, C = g.weight_shape[:2]
    partial = np.empty((shares, 16, C, K), dtype=x.dtype)
    run(_backward_weight_share, shares, grad_y, x, partial, g.padding[0], g.padding[2],
        _split(C, K, g.out_height, g.out_width, stacked))
    return transformed_weight_adjoint(partial.sum(axis=0), g.weight_shape)
