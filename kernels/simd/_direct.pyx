# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Drivers of the direct SIMD convolution (direct_conv.h): layouts, shares and threads.

Each share (one per thread, OpenMP ``prange``) takes a contiguous part of the batch and,
per sample, converts it to the zero-padded channels-last block the inner loops read,
runs them, and converts the result back to NCHW. Buffers are the share's own (allocated
once per call, sized for one sample, so they stay in cache). Shapes and arguments were
checked by the caller (kernels/simd/conv.py, from a ConvGeometry).
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
    int tg_forward_pixels(int K)
    void tg_direct_forward(const float *xp, int Wp, int Cp, const float *w, int KH, int KW, int K,
                           float *y, int OH, int OWp, int sh, int sw, int dh, int dw)
    void tg_direct_weight_grad(const float *xp, int Wp, int Cp, const float *gy, int OH, int OW, int K,
                               float *gw, int KH, int KW, int sh, int sw, int dh, int dw)
    void tg_pad_channels_last(const float *planes, int C, int H, int W, float *xp, int Hp, int Wp, int Cp,
                              int top, int left)
    void tg_unpack_channels_last(const float *yt, int OH, int OWp, int K, float *y, int OW)
    void tg_transpose(const float *g, int K, int P, float *gt)


VEC = TG_VEC          # floats per vector register: output channels come in multiples of it
CHANNEL_BLOCK = TG_CB  # input channels are padded to a multiple of it
ISA = TG_ISA.decode()
OPENMP = bool(TG_OPENMP)


def forward_pixels(int K):
    """Output pixels per forward block for K output channels (rows are padded to a multiple)."""
    return tg_forward_pixels(K)


def forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, float[:, :, :, ::1] y,
            int top, int left, int sh, int sw, int dh, int dw, int shares):
    """y (N, K, OH, OW) = the convolution of x (N, C, H, W), zero-padded by (top, left) and
    as much as the output needs at the bottom and right, with the packed filters w
    (KH, KW, Cp, K) (zero for channels c >= C)."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int KH = w.shape[0], KW = w.shape[1], Cp = w.shape[2], K = w.shape[3]
    cdef int OH = y.shape[2], OW = y.shape[3]
    cdef int PB = tg_forward_pixels(K)
    cdef int OWp = (OW + PB - 1) // PB * PB
    cdef int Hp = (OH - 1) * sh + (KH - 1) * dh + 1
    cdef int Wp = (OWp - 1) * sw + (KW - 1) * dw + 1
    cdef int t, n
    cdef float *xp
    cdef float *yt
    for t in prange(shares, nogil=True, schedule="static", chunksize=1, num_threads=shares):
        xp = <float *> malloc(<size_t>Hp * Wp * Cp * sizeof(float))
        yt = <float *> malloc(<size_t>OH * OWp * K * sizeof(float))
        for n in range(t * N // shares, (t + 1) * N // shares):
            tg_pad_channels_last(&x[n, 0, 0, 0], C, H, W, xp, Hp, Wp, Cp, top, left)
            tg_direct_forward(xp, Wp, Cp, &w[0, 0, 0, 0], KH, KW, K, yt, OH, OWp, sh, sw, dh, dw)
            tg_unpack_channels_last(yt, OH, OWp, K, &y[n, 0, 0, 0], OW)
        free(xp)
        free(yt)


def weight_grad(const float[:, :, :, ::1] grad_y, const float[:, :, :, ::1] x, float[:, :, :, :, ::1] partial,
                int top, int left, int sh, int sw, int dh, int dw):
    """partial[t] (KH, KW, Cp, K) = sum over share t's samples and output pixels of
    x_padded[pixel * stride + tap * dilation, c] * grad_y[pixel, k]; the caller sums the shares."""
    cdef int shares = partial.shape[0]
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int KH = partial.shape[1], KW = partial.shape[2], Cp = partial.shape[3], K = partial.shape[4]
    cdef int OH = grad_y.shape[2], OW = grad_y.shape[3]
    cdef int Hp = (OH - 1) * sh + (KH - 1) * dh + 1
    cdef int Wp = (OW - 1) * sw + (KW - 1) * dw + 1
    cdef int t, n
    cdef float *xp
    cdef float *gyt
    for t in prange(shares, nogil=True, schedule="static", chunksize=1, num_threads=shares):
        xp = <float *> malloc(<size_t>Hp * Wp * Cp * sizeof(float))
        gyt = <float *> malloc(<size_t>OH * OW * K * sizeof(float))
        memset(&partial[t, 0, 0, 0, 0], 0, <size_t>KH * KW * Cp * K * sizeof(float))
        for n in range(t * N // shares, (t + 1) * N // shares):
            tg_pad_channels_last(&x[n, 0, 0, 0], C, H, W, xp, Hp, Wp, Cp, top, left)
            tg_transpose(&grad_y[n, 0, 0, 0], K, OH * OW, gyt)  # (K, OH*OW) -> (OH*OW, K)
            tg_direct_weight_grad(xp, Wp, Cp, gyt, OH, OW, K, &partial[t, 0, 0, 0, 0], KH, KW,
                                  sh, sw, dh, dw)
        free(xp)
        free(gyt)
