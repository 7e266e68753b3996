# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Drivers of the direct SIMD convolution (direct_conv.h): layouts and shares.

Each share takes a contiguous part of the batch and, per sample, makes the zero-padded
copy the inner loops read (channels-last, or planes for the pixel layout), runs them,
and puts the result back in NCHW. Buffers are the share's own (allocated once per call,
sized for one sample, so they stay in cache; the pixel layout's weight gradient pads a few
small samples at a time, see STACK_PIXELS). Every function computes the shares either
all at once on OpenMP threads (``share=-1``: the Cython backend's way) or one share,
``share`` of ``shares``, on the calling thread with the GIL released (the Numba
backend's share pool calls it from its own threads: two thread pools spinning on the
same cores would slow each other down). Shapes and arguments were checked by the caller
(kernels/simd/conv.py, from a ConvGeometry).
"""

from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.string cimport memset


cdef extern from *:
    """
    #ifdef _OPENMP
    #define TG_OPENMP 1
    #else
    #define TG_OPENMP 0
    #endif
    """
    int TG_OPENMP


cdef extern from "direct_conv.h" nogil:
    int TG_VEC
    int TG_CB
    const char *TG_ISA
    int tg_forward_pixels(int K, int OW)
    void tg_direct_forward(const float *xp, int Wp, int C, int Cp, const float *w, int KH, int KW, int K,
                           float *y, int OH, int OWp, int PB, int sh, int sw, int dh, int dw)
    void tg_direct_weight_grad(const float *xp, int Wp, int Cp, const float *gy, int OH, int OW, int K,
                               float *gw, int KH, int KW, int sh, int sw, int dh, int dw)
    void tg_pad_channels_last(const float *planes, int C, int H, int W, float *xp, int Hp, int Wp, int Cp,
                              int top, int left)
    void tg_unpack_channels_last(const float *yt, int OH, int OWp, int K, float *y, int OW)
    void tg_transpose(const float *g, int K, int P, float *gt)
    void tg_pixel_forward(const float *xq, int C, int Hq, int Wq, const float *w, int K, int KH, int KW,
                          int dh, int dw, float *y, int OH, int OW)
    void tg_pixel_weight_grad(const float *xq, int C, int Hq, int Wq, const float *gy, int S, int K, int OH,
                              int OW, int KH, int KW, int dh, int dw, float *part)
    void tg_pad_planes(const float *planes, int C, int H, int W, float *xq, int Hq, int Wq, int top, int left)
    void tg_sum_lanes(const float *lanes, size_t count, float *sums)


# The pixel layout's weight gradient pads samples of up to this many output pixels in all at
# a time, so that its blocks sum over all their rows (see tg_pixel_weight_grad) while a
# block's 4 channels of grad_y (16 KiB) stay in L1 for the blocks that read them again; and
# no more padded input than STACK_BYTES (a small output of a large, dilated input is one
# sample at a time)
cdef enum:
    STACK_PIXELS = 1024
    STACK_BYTES = 1 << 20

VEC = TG_VEC          # floats per vector register: output channels come in multiples of it
CHANNEL_BLOCK = TG_CB  # input channels are padded to a multiple of it
ISA = TG_ISA.decode()
OPENMP = bool(TG_OPENMP)


def forward_pixels(int K, int OW):
    """Output pixels per forward block for K output channels and rows of OW pixels (rows are
    padded to a multiple)."""
    return tg_forward_pixels(K, OW)


# ------------------------------------------------------------------ channels layout
cdef void _forward_share(const float *x, int N, int C, int H, int W, const float *w, int KH, int KW, int Cp,
                         int K, float *y, int OH, int OW, int top, int left, int sh, int sw, int dh, int dw,
                         int t, int T) noexcept nogil:
    cdef int PB = tg_forward_pixels(K, OW)
    cdef int OWp = (OW + PB - 1) // PB * PB
    cdef int Hp = (OH - 1) * sh + (KH - 1) * dh + 1
    cdef int Wp = (OWp - 1) * sw + (KW - 1) * dw + 1
    cdef float *xp = <float *> malloc(<size_t>Hp * Wp * Cp * sizeof(float))
    cdef float *yt = <float *> malloc(<size_t>OH * OWp * K * sizeof(float))
    cdef int n
    for n in range(t * N // T, (t + 1) * N // T):
        tg_pad_channels_last(x + <size_t>n * C * H * W, C, H, W, xp, Hp, Wp, Cp, top, left)
        tg_direct_forward(xp, Wp, C, Cp, w, KH, KW, K, yt, OH, OWp, PB, sh, sw, dh, dw)
        tg_unpack_channels_last(yt, OH, OWp, K, y + <size_t>n * K * OH * OW, OW)
    free(xp)
    free(yt)


def forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, float[:, :, :, ::1] y,
            int top, int left, int sh, int sw, int dh, int dw, int shares, int share=-1):
    """y (N, K, OH, OW) = the convolution of x (N, C, H, W), zero-padded by (top, left) and
    as much as the output needs at the bottom and right, with the packed filters w
    (KH, KW, Cp, K) (zero for channels c >= C)."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int KH = w.shape[0], KW = w.shape[1], Cp = w.shape[2], K = w.shape[3]
    cdef int OH = y.shape[2], OW = y.shape[3]
    cdef int t
    if share >= 0:
        with nogil:
            _forward_share(&x[0, 0, 0, 0], N, C, H, W, &w[0, 0, 0, 0], KH, KW, Cp, K, &y[0, 0, 0, 0], OH, OW,
                           top, left, sh, sw, dh, dw, share, shares)
        return
    for t in prange(shares, nogil=True, schedule="static", chunksize=1, num_threads=shares):
        _forward_share(&x[0, 0, 0, 0], N, C, H, W, &w[0, 0, 0, 0], KH, KW, Cp, K, &y[0, 0, 0, 0], OH, OW,
                       top, left, sh, sw, dh, dw, t, shares)


cdef void _weight_share(const float *gy, const float *x, int N, int C, int H, int W, float *part, int KH,
                        int KW, int Cp, int K, int OH, int OW, int top, int left, int sh, int sw, int dh, int dw,
                        int t, int T) noexcept nogil:
    cdef int Hp = (OH - 1) * sh + (KH - 1) * dh + 1
    cdef int Wp = (OW - 1) * sw + (KW - 1) * dw + 1
    cdef float *xp = <float *> malloc(<size_t>Hp * Wp * Cp * sizeof(float))
    cdef float *gyt = <float *> malloc(<size_t>OH * OW * K * sizeof(float))
    cdef int n
    memset(part, 0, <size_t>KH * KW * Cp * K * sizeof(float))
    for n in range(t * N // T, (t + 1) * N // T):
        tg_pad_channels_last(x + <size_t>n * C * H * W, C, H, W, xp, Hp, Wp, Cp, top, left)
        tg_transpose(gy + <size_t>n * K * OH * OW, K, OH * OW, gyt)  # (K, OH*OW) -> (OH*OW, K)
        tg_direct_weight_grad(xp, Wp, Cp, gyt, OH, OW, K, part, KH, KW, sh, sw, dh, dw)
    free(xp)
    free(gyt)


def weight_grad(const float[:, :, :, ::1] grad_y, const float[:, :, :, ::1] x, float[:, :, :, :, ::1] partial,
                int top, int left, int sh, int sw, int dh, int dw, int shares, int share=-1):
    """partial[t] (KH, KW, Cp, K) = sum over share t's samples and output pixels of
    x_padded[pixel * stride + tap * dilation, c] * grad_y[pixel, k] (partial holds ``shares``
    of them); the caller sums the shares."""
    if partial.shape[0] != shares:
        raise ValueError(f"weight_grad: partial holds {partial.shape[0]} shares, not {shares}")
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int KH = partial.shape[1], KW = partial.shape[2], Cp = partial.shape[3], K = partial.shape[4]
    cdef int OH = grad_y.shape[2], OW = grad_y.shape[3]
    cdef int t
    if share >= 0:
        with nogil:
            _weight_share(&grad_y[0, 0, 0, 0], &x[0, 0, 0, 0], N, C, H, W, &partial[share, 0, 0, 0, 0], KH, KW,
                          Cp, K, OH, OW, top, left, sh, sw, dh, dw, share, shares)
        return
    for t in prange(shares, nogil=True, schedule="static", chunksize=1, num_threads=shares):
        _weight_share(&grad_y[0, 0, 0, 0], &x[0, 0, 0, 0], N, C, H, W, &partial[t, 0, 0, 0, 0], KH, KW, Cp,
                      K, OH, OW, top, left, sh, sw, dh, dw, t, shares)


# ------------------------------------------------------------------ pixel layout (NCHW, stride 1)
cdef void _pixel_forward_share(const float *x, int N, int C, int H, int W, const float *w, int K, int KH,
                               int KW, float *y, int OH, int OW, int top, int left, int dh, int dw,
                               int t, int T) noexcept nogil:
    cdef int vectors = (OW + TG_VEC - 1) // TG_VEC
    cdef int Hq = OH + (KH - 1) * dh
    cdef int Wq = vectors * TG_VEC + (KW - 1) * dw
    cdef float *xq = <float *> malloc(<size_t>C * Hq * Wq * sizeof(float))
    cdef int n
    for n in range(t * N // T, (t + 1) * N // T):
        tg_pad_planes(x + <size_t>n * C * H * W, C, H, W, xq, Hq, Wq, top, left)
        tg_pixel_forward(xq, C, Hq, Wq, w, K, KH, KW, dh, dw, y + <size_t>n * K * OH * OW, OH, OW)
    free(xq)


def pixel_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, float[:, :, :, ::1] y,
                  int top, int left, int dh, int dw, int shares, int share=-1):
    """y (N, K, OH, OW) = the stride-1 convolution of x (N, C, H, W), zero-padded by (top, left)
    and as much as the output needs at the bottom and right, with w (K, C, KH, KW)."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = w.shape[0], KH = w.shape[2], KW = w.shape[3]
    cdef int OH = y.shape[2], OW = y.shape[3]
    cdef int t
    if share >= 0:
        with nogil:
            _pixel_forward_share(&x[0, 0, 0, 0], N, C, H, W, &w[0, 0, 0, 0], K, KH, KW, &y[0, 0, 0, 0], OH, OW,
                                 top, left, dh, dw, share, shares)
        return
    for t in prange(shares, nogil=True, schedule="static", chunksize=1, num_threads=shares):
        _pixel_forward_share(&x[0, 0, 0, 0], N, C, H, W, &w[0, 0, 0, 0], K, KH, KW, &y[0, 0, 0, 0], OH, OW,
                             top, left, dh, dw, t, shares)


cdef void _pixel_weight_share(const float *gy, const float *x, int N, int C, int H, int W, float *part, int K,
                              int KH, int KW, int OH, int OW, int top, int left, int dh, int dw,
                              int t, int T) noexcept nogil:
    cdef int vectors = (OW + TG_VEC - 1) // TG_VEC
    cdef int Hq = OH + (KH - 1) * dh
    cdef int Wq = vectors * TG_VEC + (KW - 1) * dw
    cdef size_t padded = <size_t>C * Hq * Wq
    cdef int first = t * N // T, last = (t + 1) * N // T
    cdef int S = max(1, min(last - first, STACK_PIXELS // (OH * OW),  # samples padded at once
                            <int>(STACK_BYTES // (padded * sizeof(float)))))
    cdef float *xq = <float *> malloc(S * padded * sizeof(float))
    cdef size_t sums = <size_t>K * C * KH * KW
    cdef float *lanes = <float *> malloc(sums * TG_VEC * sizeof(float))  # a sum per vector lane
    cdef int n, s, count
    memset(lanes, 0, sums * TG_VEC * sizeof(float))
    n = first
    while n < last:
        count = min(S, last - n)
        for s in range(count):
            tg_pad_planes(x + <size_t>(n + s) * C * H * W, C, H, W, xq + s * padded, Hq, Wq, top, left)
        tg_pixel_weight_grad(xq, C, Hq, Wq, gy + <size_t>n * K * OH * OW, count, K, OH, OW, KH, KW, dh, dw, lanes)
        n += count
    tg_sum_lanes(lanes, sums, part)
    free(lanes)
    free(xq)


def pixel_weight_grad(const float[:, :, :, ::1] grad_y, const float[:, :, :, ::1] x,
                      float[:, :, :, :, ::1] partial, int top, int left, int dh, int dw, int shares,
                      int share=-1):
    """partial[t] (K, C, KH, KW) = the sum over share t's samples and output pixels of
    x_padded[c, pixel + tap * dilation] * grad_y[k, pixel] (partial holds ``shares`` of them;
    the caller sums the shares). The loops keep a sum per vector lane; each share adds its
    lanes up at the end (numpy's sum over a 16-long last axis took 0.48 ms at 32 channels)."""
    if partial.shape[0] != shares:
        raise ValueError(f"pixel_weight_grad: partial holds {partial.shape[0]} shares, not {shares}")
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = partial.shape[1], KH = partial.shape[3], KW = partial.shape[4]
    cdef int OH = grad_y.shape[2], OW = grad_y.shape[3]
    cdef int t
    if share >= 0:
        with nogil:
            _pixel_weight_share(&grad_y[0, 0, 0, 0], &x[0, 0, 0, 0], N, C, H, W, &partial[share, 0, 0, 0, 0],
                                K, KH, KW, OH, OW, top, left, dh, dw, share, shares)
        return
    for t in prange(shares, nogil=True, schedule="static", chunksize=1, num_threads=shares):
        _pixel_weight_share(&grad_y[0, 0, 0, 0], &x[0, 0, 0, 0], N, C, H, W, &partial[t, 0, 0, 0, 0],
                            K, KH, KW, OH, OW, top, left, dh, dw, t, shares)
