# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled loops of the convolution kernels: im2col, its adjoint col2im, and batched convolutions.

Convolution is cross-correlation. With zero padding (top, left), stride (sh, sw) and
dilation (dh, dw), the column matrix of one image has one row per (c, i, j) and one column
per output position (oy, ox):

    cols[(c*KH + i)*KW + j, oy*OW + ox] = x[c, oy*sh - top + i*dh, ox*sw - left + j*dw]

(zero where the input index falls in the padding). Then, per group g of G,

    y[g]       = W[g] (K/G, R/G) @ cols[g] (R/G, OH*OW)          R = C*KH*KW
    grad_cols  = W[g]^T @ grad_y[g],   grad_x = col2im(grad_cols)
    grad_W[g] += grad_y[g] @ cols[g]^T                           (summed over the batch)

col2im is the adjoint (transpose) of im2col: every column entry is *added* back to the input
pixel it was copied from, so overlapping windows sum, which is the gradient of the input.

The ``*_batched`` kernels give each OpenMP thread a contiguous share of the batch and a
column buffer of one image (small enough to stay in cache), and call single-threaded BLAS
GEMM (SciPy's, whose function pointers ``set_blas`` receives) on it: the columns of an image
are used while still in cache, and the threads never wait for each other. conv.py falls back
to a whole-batch numpy matmul if SciPy's BLAS is missing.

The caller (kernels/cython/conv.py) has checked shapes, dtypes and arguments, so bounds
checks are off here. Each (n, c) plane is written by exactly one iteration, so the
parallel loops have no races.
"""

from cython cimport floating
from cython.parallel cimport prange

cdef extern from *:
    """
    #ifdef _OPENMP
    #define TGC_HAVE_OPENMP 1
    #else
    #define TGC_HAVE_OPENMP 0
    #endif
    """
    int TGC_HAVE_OPENMP


OPENMP = bool(TGC_HAVE_OPENMP)  # was this extension compiled with OpenMP (parallel prange)?

include "_gemm.pxi"
include "_windows.pxi"


cdef void im2col_plane(const floating* src, Py_ssize_t height, Py_ssize_t width, floating* dst,
                       Py_ssize_t row_stride, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t top, Py_ssize_t left, Py_ssize_t dh, Py_ssize_t dw,
                       Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """The KH*KW rows of one input plane: dst[(i*KW + j)*row_stride + oy*OW + ox] =
    src[(oy*sh - top + i*dh)*W + ox*sw - left + j*dw], or 0 in the padding."""
    cdef Py_ssize_t i, j, oy, ox, oy_lo, oy_hi, ox_lo, ox_hi, off_y, off_x
    cdef const floating* line
    cdef floating* out
    for i in range(kh):
        off_y = i * dh - top
        oy_lo = first_valid(off_y, sh)
        oy_hi = end_valid(off_y, sh, height, oh)
        for j in range(kw):
            off_x = j * dw - left
            # a tap left of the whole output row (left padding beyond the taps before it) has
            # its first valid column past OW (and end_valid never returns less than it): clip
            # both to the row, or the loops below write past it (into the next image's
            # columns when cols is a transposed view)
            ox_lo = min(first_valid(off_x, sw), ow)
            ox_hi = max(min(end_valid(off_x, sw, width, ow), ow), ox_lo)
            out = dst + (i * kw + j) * row_stride      # KW (not KH) strides the row index
            for oy in range(oh):
                if oy < oy_lo or oy >= oy_hi:          # the whole output row reads padding
                    for ox in range(ow):
                        out[oy * ow + ox] = 0
                    continue
                line = src + (oy * sh + off_y) * width + off_x
                for ox in range(ox_lo):
                    out[oy * ow + ox] = 0
                if sw == 1:                            # a contiguous copy the compiler vectorizes
                    for ox in range(ox_lo, ox_hi):
                        out[oy * ow + ox] = line[ox]
                else:
                    for ox in range(ox_lo, ox_hi):
                        out[oy * ow + ox] = line[ox * sw]
                for ox in range(ox_hi, ow):
                    out[oy * ow + ox] = 0


cdef void col2im_plane(const floating* src, Py_ssize_t row_stride, floating* dst, Py_ssize_t height,
                       Py_ssize_t width, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t top, Py_ssize_t left, Py_ssize_t dh, Py_ssize_t dw,
                       Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """The adjoint of im2col_plane: dst[iy*W + ix] += every row entry copied from (iy, ix)."""
    cdef Py_ssize_t i, j, oy, ox, oy_lo, oy_hi, ox_lo, ox_hi, off_y, off_x
    cdef const floating* row
    cdef floating* line
    for i in range(kh):
        off_y = i * dh - top
        oy_lo = first_valid(off_y, sh)
        oy_hi = end_valid(off_y, sh, height, oh)
        for j in range(kw):
            off_x = j * dw - left
            ox_lo = first_valid(off_x, sw)
            ox_hi = end_valid(off_x, sw, width, ow)
            row = src + (i * kw + j) * row_stride
            for oy in range(oy_lo, oy_hi):
                line = dst + (oy * sh + off_y) * width + off_x
                for ox in range(ox_lo, ox_hi):
                    line[ox * sw] += row[oy * ow + ox]


def im2col_into(const floating[:, :, :, ::1] x, floating[:, :, :] cols,
                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t top, Py_ssize_t left, Py_ssize_t dh, Py_ssize_t dw,
                Py_ssize_t oh, Py_ssize_t ow, int num_threads):
    """Fill cols (N, C*KH*KW, OH*OW) from x (N, C, H, W), in parallel over (n, c) planes.

    cols may be a strided view (e.g. a (C*KH*KW, N, OH*OW) buffer transposed, so that one
    GEMM covers the whole batch); only its last axis must be contiguous.
    """
    cdef Py_ssize_t channels = x.shape[1], nc, n, c
    if cols.shape[2] > 1 and cols.strides[2] != sizeof(floating):  # (a length-1 axis has any stride)
        raise ValueError("the last axis of cols must be contiguous")
    for nc in prange(x.shape[0] * channels, nogil=True, schedule="static", num_threads=num_threads):
        n = nc // channels
        c = nc - n * channels
        im2col_plane(&x[n, c, 0, 0], x.shape[2], x.shape[3], &cols[n, c * kh * kw, 0],
                     cols.strides[1] // sizeof(floating), kh, kw, sh, sw, top, left, dh, dw, oh, ow)


def col2im_add(const floating[:, :, :] cols, floating[:, :, :, ::1] x,
               Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
               Py_ssize_t top, Py_ssize_t left, Py_ssize_t dh, Py_ssize_t dw,
               Py_ssize_t oh, Py_ssize_t ow, int num_threads):
    """x (N, C, H, W, zeroed by the caller) += col2im(cols), in parallel over (n, c) planes.

    Entries of cols that map to the padding are dropped. cols may be a strided view with a
    contiguous last axis.
    """
    cdef Py_ssize_t channels = x.shape[1], nc, n, c
    if cols.shape[2] > 1 and cols.strides[2] != sizeof(floating):  # (a length-1 axis has any stride)
        raise ValueError("the last axis of cols must be contiguous")
    for nc in prange(x.shape[0] * channels, nogil=True, schedule="static", num_threads=num_threads):
        n = nc // channels
        c = nc - n * channels
        col2im_plane(&cols[n, c * kh * kw, 0], cols.strides[1] // sizeof(floating), &x[n, c, 0, 0],
                     x.shape[2], x.shape[3], kh, kw, sh, sw, top, left, dh, dw, oh, ow)


def conv2d_forward_batched(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weight,
                           floating[:, :, :, ::1] y, floating[:, ::1] work, int groups,
                           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t top, Py_ssize_t left,
                           Py_ssize_t dh, Py_ssize_t dw):
    """y[n, group g] = W[g] @ im2col(x[n])[g] for every image; work is (threads, C*KH*KW*OH*OW)."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], k_out = weight.shape[0]
    cdef Py_ssize_t kh = weight.shape[2], kw = weight.shape[3], oh = y.shape[2], ow = y.shape[3]
    cdef Py_ssize_t threads = work.shape[0], taps = kh * kw, t, n, c, g
    cdef int p = <int>(oh * ow), kg = <int>(k_out // groups), rg = <int>(weight.shape[1] * taps)
    cdef floating* cols
    for t in prange(threads, nogil=True, schedule="static", chunksize=1, num_threads=threads):
        cols = &work[t, 0]
        for n in range(t * n_img // threads, (t + 1) * n_img // threads):
            for c in range(channels):
                im2col_plane(&x[n, c, 0, 0], x.shape[2], x.shape[3], cols + c * taps * p, p,
                             kh, kw, sh, sw, top, left, dh, dw, oh, ow)
            for g in range(groups):
                # row-major y[n, g] (kg, p) = W[g] (kg, rg) @ cols[g] (rg, p)
                gemm_rows(c'N', c'N', p, kg, rg, cols + g * rg * p, p, &weight[g * kg, 0, 0, 0], rg,
                          0, &y[n, g * kg, 0, 0], p)


def conv2d_backward_input_batched(const floating[:, :, :, ::1] grad_y, const floating[:, :, :, ::1] weight,
                                  floating[:, :, :, ::1] grad_x, floating[:, ::1] work, int groups,
                                  Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t top, Py_ssize_t left,
                                  Py_ssize_t dh, Py_ssize_t dw):
    """grad_x[n] (zeroed) += col2im(W[g]^T @ grad_y[n, g]) for every image and group."""
    cdef Py_ssize_t n_img = grad_x.shape[0], channels = grad_x.shape[1], k_out = weight.shape[0]
    cdef Py_ssize_t kh = weight.shape[2], kw = weight.shape[3], oh = grad_y.shape[2], ow = grad_y.shape[3]
    cdef Py_ssize_t threads = work.shape[0], taps = kh * kw, t, n, c, g
    cdef int p = <int>(oh * ow), kg = <int>(k_out // groups), rg = <int>(weight.shape[1] * taps)
    cdef floating* cols
    for t in prange(threads, nogil=True, schedule="static", chunksize=1, num_threads=threads):
        cols = &work[t, 0]
        for n in range(t * n_img // threads, (t + 1) * n_img // threads):
            for g in range(groups):
                # row-major cols[g] (rg, p) = W[g]^T (rg, kg) @ grad_y[n, g] (kg, p)
                gemm_rows(c'N', c'T', p, rg, kg, &grad_y[n, g * kg, 0, 0], p, &weight[g * kg, 0, 0, 0], rg,
                          0, cols + g * rg * p, p)
            for c in range(channels):
                col2im_plane(cols + c * taps * p, p, &grad_x[n, c, 0, 0], grad_x.shape[2], grad_x.shape[3],
                             kh, kw, sh, sw, top, left, dh, dw, oh, ow)


def conv2d_backward_weight_batched(const floating[:, :, :, ::1] grad_y, const floating[:, :, :, ::1] x,
                                   floating[:, ::1] partial, floating[:, ::1] work, int groups,
                                   Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                                   Py_ssize_t top, Py_ssize_t left, Py_ssize_t dh, Py_ssize_t dw):
    """partial[t] (zeroed, K*C/G*KH*KW) += grad_y[n, g] @ im2col(x[n])[g]^T over thread t's images.

    The caller sums partial over threads: each thread owns its partial sum, so no locks.
    """
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], k_out = grad_y.shape[1]
    cdef Py_ssize_t oh = grad_y.shape[2], ow = grad_y.shape[3]
    cdef Py_ssize_t threads = work.shape[0], taps = kh * kw, t, n, c, g
    cdef int p = <int>(oh * ow), kg = <int>(k_out // groups), rg = <int>(channels // groups * taps)
    cdef floating* cols
    for t in prange(threads, nogil=True, schedule="static", chunksize=1, num_threads=threads):
        cols = &work[t, 0]
        for n in range(t * n_img // threads, (t + 1) * n_img // threads):
            for c in range(channels):
                im2col_plane(&x[n, c, 0, 0], x.shape[2], x.shape[3], cols + c * taps * p, p,
                             kh, kw, sh, sw, top, left, dh, dw, oh, ow)
            for g in range(groups):
                # row-major grad_W[g] (kg, rg) += grad_y[n, g] (kg, p) @ cols[g]^T (p, rg)
                gemm_rows(c'T', c'N', rg, kg, p, cols + g * rg * p, p, &grad_y[n, g * kg, 0, 0], p,
                          1, &partial[t, g * kg * rg], rg)
