# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled loops of Winograd's F(2x2, 3x3) convolution (the ``"winograd"`` strategy of winograd.py).

For a 4x4 tile d of the zero-padded input (tiles overlap by 2, one per 2x2 block of outputs)
and a 3x3 filter g, the 2x2 outputs are Y = A^T [(G g G^T) * (B^T d B)] A, and summed over
input channels the 16 elementwise products are 16 matrix products, one per tile position xi:

    M[xi] (tiles, K) = V[xi] (tiles, C) @ U[xi] (C, K)     V = B^T d B, U = G g G^T

    B^T d:  rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3)      A^T m:  rows (m0 + m1 + m2, m1 - m2 - m3)
    A dY:   rows (y0, y0 + y1, y0 - y1, -y1)                (the adjoint of A^T, for grad_weight)

and each applied a second time along the other axis. grad_input is this same forward kernel
with other weights (winograd.py); grad_weight is dU[xi] (C, K) = sum over tiles of V[xi]^T @
dM[xi] with dM = A dY A^T, mapped back to the 3x3 filters by winograd.py.

Layout. Each sample is copied to channels-last rows inside a zero frame, xp (2TH + 2, 2TW + 2,
C) for TH x TW tiles, so every transform step is elementwise over a contiguous run of
channels (gcc vectorises it) and tile reads need no bounds tests. The first 1-D step of the
input transform runs down the image once per row of tiles, over whole rows of xp (one long
loop, not four short ones per tile: neighbouring tiles share two columns, so per tile it
would be done twice); the second runs across each tile. The output transforms do the same
the other way round. Outputs go to a (2TH, 2TW, K) buffer, so an odd-sized output only
drops the last row or column when the buffer is copied back to NCHW; the gradient of such
a tile reads zeros there (the buffer's frame is zeroed once per thread and never written).

Threads: each OpenMP thread takes a contiguous share of the batch and its own slice of
``work`` (layout: :func:`_slices`), stacks the tiles of ``stacked`` samples into its 16 GEMMs
and calls single-threaded BLAS (SciPy's sgemm/dgemm, _gemm.pxi) on them; backward_weight
keeps one partial dU per thread, summed by the caller. No thread writes what another reads.
Every 1-D step is one loop per output vector (a store and two or three loads): gcc vectorises
those after one runtime alias check, where a loop storing all four outputs needs many.

The caller (kernels/cython/winograd.py) has checked shapes, dtypes and the geometry, and
handles non-finite inputs (the transforms would turn Inf - Inf into NaN) elsewhere.
"""

from cython cimport floating
from cython.parallel cimport prange

include "_gemm.pxi"

cdef enum:
    ALIGN = 16  # work slices start on multiples of 16 elements (64 bytes: one cache line)
    BLOCK = 16  # channels per block of the NCHW <-> channels-last copies


cdef inline Py_ssize_t _aligned(Py_ssize_t n) noexcept nogil:
    return (n + ALIGN - 1) // ALIGN * ALIGN


cdef inline Py_ssize_t _plane(Py_ssize_t n) noexcept nogil:
    """The distance between two of the 16 matrices V[xi] (or M[xi]) of n values: one cache line
    more than n, so that the 4 vectors a transform step writes (or reads) land in different
    L1 sets."""
    return _aligned(n) + ALIGN


# ------------------------------------------------------------------ 1-D transform steps
# Each maps 4 (or 2) vectors of n values, s[0], s[ss], s[2 ss], s[3 ss] (+ 0 .. n), to 4 (or 2)
# vectors o[0], o[os], ... (+ 0 .. n).
cdef inline void _input_step(const floating* s, Py_ssize_t ss, floating* o, Py_ssize_t os,
                             Py_ssize_t n) noexcept nogil:
    """B^T on 4 vectors: (s0 - s2, s1 + s2, s2 - s1, s1 - s3)."""
    cdef Py_ssize_t c
    for c in range(n):
        o[c] = s[c] - s[2 * ss + c]
    for c in range(n):
        o[os + c] = s[ss + c] + s[2 * ss + c]
    for c in range(n):
        o[2 * os + c] = s[2 * ss + c] - s[ss + c]
    for c in range(n):
        o[3 * os + c] = s[ss + c] - s[3 * ss + c]


cdef inline void _output_step(const floating* s, Py_ssize_t ss, floating* o, Py_ssize_t os,
                              Py_ssize_t n) noexcept nogil:
    """A^T on 4 vectors: (s0 + s1 + s2, s1 - s2 - s3)."""
    cdef Py_ssize_t c
    for c in range(n):
        o[c] = s[c] + s[ss + c] + s[2 * ss + c]
    for c in range(n):
        o[os + c] = s[ss + c] - s[2 * ss + c] - s[3 * ss + c]


cdef inline void _adjoint_step(const floating* s, Py_ssize_t ss, floating* o, Py_ssize_t os,
                               Py_ssize_t n) noexcept nogil:
    """A on 2 vectors (the adjoint of _output_step): (s0, s0 + s1, s0 - s1, -s1)."""
    cdef Py_ssize_t c
    for c in range(n):
        o[c] = s[c]
    for c in range(n):
        o[os + c] = s[c] + s[ss + c]
    for c in range(n):
        o[2 * os + c] = s[c] - s[ss + c]
    for c in range(n):
        o[3 * os + c] = -s[ss + c]


# ------------------------------------------------------------------ layout copies
cdef void _to_channels_last(const floating* planes, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                            floating* dst, Py_ssize_t pitch) noexcept nogil:
    """dst[h*pitch + w*C + c] = planes[(c*H + h)*W + w]: NCHW planes (C, H, W) to channels-last
    rows ``pitch`` elements apart. BLOCK planes at a time, so their lines stay in L1."""
    cdef Py_ssize_t c0, c1, c, h, w
    cdef const floating* src
    cdef floating* out
    c0 = 0
    while c0 < C:
        c1 = min(c0 + BLOCK, C)
        for h in range(H):
            src = planes + h * W
            out = dst + h * pitch
            for w in range(W):
                for c in range(c0, c1):
                    out[w * C + c] = src[c * H * W + w]
        c0 = c1


cdef void _from_channels_last(const floating* src, Py_ssize_t pitch, Py_ssize_t K, Py_ssize_t OH,
                              Py_ssize_t OW, floating* planes) noexcept nogil:
    """planes[(k*OH + oh)*OW + ow] = src[oh*pitch + ow*K + k]: the top-left OH x OW pixels of
    channels-last rows back to NCHW planes, BLOCK channels at a time."""
    cdef Py_ssize_t k0, k1, k, oh, ow
    cdef const floating* row
    cdef floating* out
    k0 = 0
    while k0 < K:
        k1 = min(k0 + BLOCK, K)
        for oh in range(OH):
            row = src + oh * pitch
            for k in range(k0, k1):
                out = planes + (k * OH + oh) * OW
                for ow in range(OW):
                    out[ow] = row[ow * K + k]
        k0 = k1


cdef inline void _zero(floating* a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t e
    for e in range(n):
        a[e] = 0


# ------------------------------------------------------------------ the transforms of one sample
cdef void _input_transform(const floating* xp, Py_ssize_t TH, Py_ssize_t TW, Py_ssize_t C,
                           floating* V, Py_ssize_t plane, Py_ssize_t t0, floating* half) noexcept nogil:
    """V[xi*plane + (t0 + th*TW + tw)*C + c] = (B^T d B)[xi] for the tile d at (2th, 2tw) of
    xp (2TH + 2, 2TW + 2, C). ``half`` (4 rows of xp) holds B^T applied down a row of tiles."""
    cdef Py_ssize_t row = (2 * TW + 2) * C, th, tw, i
    cdef floating* out
    for th in range(TH):
        _input_step(xp + 2 * th * row, row, half, row, row)   # B^T d: 4 image rows -> 4 rows
        for i in range(4):                                    # (B^T d) B: across each tile
            out = V + 4 * i * plane + (t0 + th * TW) * C
            for tw in range(TW):
                _input_step(half + i * row + 2 * tw * C, C, out + tw * C, plane, C)


cdef void _output_transform(const floating* M, Py_ssize_t plane, Py_ssize_t t0, Py_ssize_t TH,
                            Py_ssize_t TW, Py_ssize_t K, floating* yt, floating* half) noexcept nogil:
    """yt[(2th + a)*2TW*K + (2tw + b)*K + k] = (A^T m A)[a, b] for each tile's 16 products
    m = M[xi*plane + (t0 + th*TW + tw)*K + k]. ``half`` (2 x 4 runs of TW*K) holds A^T m."""
    cdef Py_ssize_t run = TW * K, th, tw, a, j
    cdef const floating* tiles
    cdef floating* out
    for th in range(TH):
        tiles = M + (t0 + th * TW) * K     # a row of tiles: TW*K contiguous values per xi
        for j in range(4):                 # A^T m, down column j of every tile at once
            _output_step(tiles + j * plane, 4 * plane, half + j * run, 4 * run, run)
        for a in range(2):                 # (A^T m) A: across each tile, 4 columns -> 2
            out = yt + (2 * th + a) * 2 * run
            for tw in range(TW):
                _output_step(half + 4 * a * run + tw * K, run, out + 2 * tw * K, K, K)


cdef void _output_adjoint(const floating* gyt, Py_ssize_t TH, Py_ssize_t TW, Py_ssize_t K,
                          floating* dM, Py_ssize_t plane, Py_ssize_t t0, floating* half) noexcept nogil:
    """dM[xi*plane + (t0 + th*TW + tw)*K + k] = (A dY A^T)[xi] for the 2x2 output gradients
    dY of each tile in gyt (2TH, 2TW, K), the adjoint of _output_transform. ``half`` (4 rows
    of gyt) holds A dY for a row of tiles."""
    cdef Py_ssize_t row = 2 * TW * K, th, tw, i
    cdef floating* out
    for th in range(TH):
        _adjoint_step(gyt + 2 * th * row, row, half, row, row)   # A dY: 2 rows -> 4
        for i in range(4):                                       # (A dY) A^T: 2 columns -> 4
            out = dM + 4 * i * plane + (t0 + th * TW) * K
            for tw in range(TW):
                _adjoint_step(half + i * row + 2 * tw * K, K, out + tw * K, plane, K)


# ------------------------------------------------------------------ per-thread work
cdef struct Slices:
    Py_ssize_t frame     # xp (2TH + 2, 2TW + 2, C): the samples in a zero frame
    Py_ssize_t tiles     # V (16, stacked*P, C)
    Py_ssize_t products  # M or dM (16, stacked*P, K)
    Py_ssize_t out       # yt, or grad_weight's gyt (2TH, 2TW, K)
    Py_ssize_t half      # the first 1-D step of a row of tiles
    Py_ssize_t total


cdef Slices _slices(Py_ssize_t C, Py_ssize_t K, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t stacked) noexcept nogil:
    """Offsets of one thread's buffers in its row of ``work`` (each ALIGN-aligned)."""
    cdef Py_ssize_t TH = (OH + 1) // 2, TW = (OW + 1) // 2, P = TH * TW
    cdef Slices s
    s.frame = 0
    s.tiles = _aligned((2 * TH + 2) * (2 * TW + 2) * C)
    s.products = s.tiles + 16 * _plane(stacked * P * C)
    s.out = s.products + 16 * _plane(stacked * P * K)
    s.half = s.out + _aligned(4 * TH * TW * K)
    s.total = s.half + _aligned(max(4 * (2 * TW + 2) * C, 8 * TW * K))
    return s


def work_size(Py_ssize_t C, Py_ssize_t K, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t stacked):
    """Elements of ``work`` one thread needs: C input and K output channels, OH x OW outputs."""
    return _slices(C, K, OH, OW, stacked).total


cdef void _forward_share(const floating* x, Py_ssize_t first, Py_ssize_t last, Py_ssize_t C,
                         Py_ssize_t H, Py_ssize_t W, const floating* U, floating* y, Py_ssize_t K,
                         Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t top, Py_ssize_t left,
                         Py_ssize_t stacked, floating* buf) noexcept nogil:
    """y[n] for the samples first <= n < last, ``stacked`` samples per GEMM."""
    cdef Py_ssize_t TH = (OH + 1) // 2, TW = (OW + 1) // 2, P = TH * TW
    cdef Py_ssize_t row = (2 * TW + 2) * C, plane_v = _plane(stacked * P * C), plane_m = _plane(stacked * P * K)
    cdef Py_ssize_t n0, m, j, xi
    cdef Slices s = _slices(C, K, OH, OW, stacked)
    cdef floating* xp = buf + s.frame
    cdef floating* V = buf + s.tiles
    cdef floating* M = buf + s.products
    cdef floating* yt = buf + s.out
    cdef floating* half = buf + s.half
    _zero(xp, (2 * TH + 2) * row)      # the frame; the samples only overwrite its inside
    n0 = first
    while n0 < last:
        m = min(stacked, last - n0)
        for j in range(m):
            _to_channels_last(x + (n0 + j) * C * H * W, C, H, W, xp + top * row + left * C, row)
            _input_transform(xp, TH, TW, C, V, plane_v, j * P, half)
        for xi in range(16):
            # row-major M[xi] (m*P, K) = V[xi] (m*P, C) @ U[xi] (C, K)
            gemm_rows(c'N', c'N', <int>K, <int>(m * P), <int>C, U + xi * C * K, <int>K,
                      V + xi * plane_v, <int>C, 0, M + xi * plane_m, <int>K)
        for j in range(m):
            _output_transform(M, plane_m, j * P, TH, TW, K, yt, half)
            _from_channels_last(yt, 2 * TW * K, K, OH, OW, y + (n0 + j) * K * OH * OW)
        n0 = n0 + m


cdef void _backward_weight_share(const floating* gy, const floating* x, Py_ssize_t first,
                                 Py_ssize_t last, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                                 Py_ssize_t K, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t top,
                                 Py_ssize_t left, Py_ssize_t stacked, floating* dU,
                                 floating* buf) noexcept nogil:
    """dU (16, C, K, zeroed) += V[xi]^T @ dM[xi] over the samples first <= n < last."""
    cdef Py_ssize_t TH = (OH + 1) // 2, TW = (OW + 1) // 2, P = TH * TW
    cdef Py_ssize_t row = (2 * TW + 2) * C, plane_v = _plane(stacked * P * C), plane_m = _plane(stacked * P * K)
    cdef Py_ssize_t n0, m, j, xi
    cdef Slices s = _slices(C, K, OH, OW, stacked)
    cdef floating* xp = buf + s.frame
    cdef floating* V = buf + s.tiles
    cdef floating* dM = buf + s.products
    cdef floating* gyt = buf + s.out
    cdef floating* half = buf + s.half
    _zero(xp, (2 * TH + 2) * row)
    _zero(gyt, 4 * TH * TW * K)        # past an odd-sized output the gradient stays 0
    n0 = first
    while n0 < last:
        m = min(stacked, last - n0)
        for j in range(m):
            _to_channels_last(x + (n0 + j) * C * H * W, C, H, W, xp + top * row + left * C, row)
            _input_transform(xp, TH, TW, C, V, plane_v, j * P, half)
            _to_channels_last(gy + (n0 + j) * K * OH * OW, K, OH, OW, gyt, 2 * TW * K)
            _output_adjoint(gyt, TH, TW, K, dM, plane_m, j * P, half)
        for xi in range(16):
            # row-major dU[xi] (C, K) += V[xi]^T (C, m*P) @ dM[xi] (m*P, K)
            gemm_rows(c'N', c'T', <int>K, <int>C, <int>(m * P), dM + xi * plane_m, <int>K,
                      V + xi * plane_v, <int>C, 1, dU + xi * C * K, <int>K)
        n0 = n0 + m


# ------------------------------------------------------------------ the Inf/NaN test
cdef enum:
    LANES = 16          # independent accumulators: an elementwise loop gcc vectorises
    FINITE_BLOCK = 16384  # elements per parallel iteration of all_finite


cdef floating _block_residue(const floating* a, Py_ssize_t n) noexcept nogil:
    """The sum of a[i] - a[i]: 0 if every value is finite, NaN if one is Inf or NaN (without
    -ffast-math the compiler keeps x - x). LANES accumulators, as _batchnorm.pyx's sums."""
    cdef floating acc[LANES]
    cdef floating total = 0
    cdef Py_ssize_t i = 0
    cdef int j
    for j in range(LANES):
        acc[j] = 0
    while i + LANES <= n:
        for j in range(LANES):
            acc[j] = acc[j] + (a[i + j] - a[i + j])
        i = i + LANES
    while i < n:
        total = total + (a[i] - a[i])
        i = i + 1
    for j in range(LANES):
        total = total + acc[j]
    return total


def all_finite(const floating[::1] a, int num_threads):
    """Whether every value of a (a flat view of a C-contiguous array) is finite: one pass,
    in parallel blocks (np.isfinite(a).all() writes and reads a boolean array as well)."""
    cdef Py_ssize_t n = a.shape[0], blocks = (n + FINITE_BLOCK - 1) // FINITE_BLOCK, b
    cdef double residue = 0
    if n == 0:
        return True
    for b in prange(blocks, nogil=True, schedule="static", num_threads=num_threads):
        residue += _block_residue(&a[b * FINITE_BLOCK], min(FINITE_BLOCK, n - b * FINITE_BLOCK))
    return residue == 0


# ------------------------------------------------------------------ the kernels
def forward(const floating[:, :, :, ::1] x, const floating[:, :, ::1] U, floating[:, :, :, ::1] y,
            floating[:, ::1] work, Py_ssize_t top, Py_ssize_t left, Py_ssize_t stacked):
    """y (N, K, OH, OW) = the stride-1 3x3 correlation of x (N, C, H, W), zero-padded by top and
    left (and at the bottom and right by what OH and OW imply), with the filters whose
    transform is U (16, C, K); work is (threads, work_size(C, K, OH, OW, stacked))."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = y.shape[1], OH = y.shape[2], OW = y.shape[3]
    cdef Py_ssize_t threads = work.shape[0], t
    if U.shape[0] != 16 or U.shape[1] != C or U.shape[2] != K or y.shape[0] != N:
        raise ValueError("U must be (16, C, K) and y (N, K, OH, OW) for x (N, C, H, W)")
    if work.shape[1] < work_size(C, K, OH, OW, stacked) or (2 * ((OH + 1) // 2) + 2 < top + H
                                                           or 2 * ((OW + 1) // 2) + 2 < left + W):
        raise ValueError("work is too small, or the input does not fit the tiles of the output")
    if not have_blas():
        raise RuntimeError("set_blas was not called")
    for t in prange(threads, nogil=True, schedule="static", chunksize=1, num_threads=threads):
        _forward_share(&x[0, 0, 0, 0], t * N // threads, (t + 1) * N // threads, C, H, W,
                       &U[0, 0, 0], &y[0, 0, 0, 0], K, OH, OW, top, left, stacked, &work[t, 0])


def backward_weight(const floating[:, :, :, ::1] grad_y, const floating[:, :, :, ::1] x,
                    floating[:, :, :, ::1] partial, floating[:, ::1] work, Py_ssize_t top,
                    Py_ssize_t left, Py_ssize_t stacked):
    """partial[t] (16, C, K, zeroed by the caller) += sum of V[xi]^T @ dM[xi] over thread t's
    samples and tiles: the gradient of U. Summed over t and mapped back by G^T . G it is
    grad_weight."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = grad_y.shape[1], OH = grad_y.shape[2], OW = grad_y.shape[3]
    cdef Py_ssize_t threads = work.shape[0], t
    if (partial.shape[0] != threads or partial.shape[1] != 16 or partial.shape[2] != C
            or partial.shape[3] != K or grad_y.shape[0] != N):
        raise ValueError("partial must be (threads, 16, C, K) for x (N, C, H, W), grad_y (N, K, OH, OW)")
    if work.shape[1] < work_size(C, K, OH, OW, stacked) or (2 * ((OH + 1) // 2) + 2 < top + H
                                                           or 2 * ((OW + 1) // 2) + 2 < left + W):
        raise ValueError("work is too small, or the input does not fit the tiles of the output")
    if not have_blas():
        raise RuntimeError("set_blas was not called")
    for t in prange(threads, nogil=True, schedule="static", chunksize=1, num_threads=threads):
        _backward_weight_share(&grad_y[0, 0, 0, 0], &x[0, 0, 0, 0], t * N // threads,
                               (t + 1) * N // threads, C, H, W, K, OH, OW, top, left, stacked,
                               &partial[t, 0, 0, 0], &work[t, 0])
