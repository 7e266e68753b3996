# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled loops of the pooling kernels, one (n, c) plane per parallel iteration.

Max pooling, symmetric padding (ph, pw) of -inf, dilation (dh, dw):

    y[n, c, oy, ox] = max over i < KH, j < KW of x[n, c, oy*sh - ph + i*dh, ox*sw - pw + j*dw]

and indices[n, c, oy, ox] = iy*W + ix of the first maximum in row-major window order (the
flat position in the H*W plane, as PyTorch's return_indices); a NaN is larger than
everything (the last NaN of the window wins), as PyTorch. The backward pass routes each
output gradient to that arg-max: grad_x.flat[plane + index] += grad_y.

Average pooling (PyTorch's rule): the window rows are hstart = oy*sh - ph up to
hend = min(hstart + KH, H + ph); the divisor is (hend - hstart)*(wend - wstart) with
count_include_pad, otherwise the number of window pixels inside the image. The backward
pass spreads grad_y / divisor evenly over the in-image pixels of the window.

Planes are independent, so the plane loop runs in parallel without races. Shapes and
arguments were checked by kernels/cython/pool.py.

2x2 windows at stride 2 without padding (LeNet's, VGG's), every window inside the image,
run on straight-line loops of their own (``_*_2x2``, chosen per call by pool.py): the
general loops' clipping per output costs more than the four reads (forward + backward, 2
threads, benchmarks/run.py: max pooling 64x6x28x28 1.64 -> 0.57 ms, 128x16x32x32 12.1 -> 2.4
ms; average pooling 1.69 -> 0.44 and 11.7 -> 1.7 ms). Same comparisons and the same order of
additions as the general loops, so the same results.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t


include "_windows.pxi"


def max_pool2d_forward_into(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                            int64_t[:, :, :, ::1] indices,
                            Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                            Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                            int num_threads):
    """Write the window maxima into y and their flat in-plane positions into indices.

    A window lying wholly in the padding (possible only with dilation) gives -inf and
    index -1, which the backward pass ignores.
    """
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], height = x.shape[2]
    cdef Py_ssize_t width = x.shape[3], oh = y.shape[2], ow = y.shape[3]
    cdef Py_ssize_t nc, n, c, oy, ox, i, j, y0, x0, i_lo, i_hi, j_lo, j_hi, best_at, at
    cdef floating best, value
    cdef const floating* plane
    for nc in prange(n_img * channels, nogil=True, schedule="static", num_threads=num_threads):
        n = nc // channels
        c = nc - n * channels
        plane = &x[n, c, 0, 0]
        for oy in range(oh):
            y0 = oy * sh - ph
            i_lo = first_valid(y0, dh)
            i_hi = end_valid(y0, dh, height, kh)
            for ox in range(ow):
                x0 = ox * sw - pw
                j_lo = first_valid(x0, dw)
                j_hi = end_valid(x0, dw, width, kw)
                best = -INFINITY
                best_at = -1
                if i_lo < i_hi and j_lo < j_hi:
                    # start from the first in-image pixel, then take strictly larger values:
                    # ties stay with the first maximum, and an all -inf window still has one
                    best_at = (y0 + i_lo * dh) * width + x0 + j_lo * dw
                    best = plane[best_at]
                    for i in range(i_lo, i_hi):
                        for j in range(j_lo, j_hi):
                            at = (y0 + i * dh) * width + x0 + j * dw
                            value = plane[at]
                            if value > best or value != value:  # value != value: NaN
                                best = value
                                best_at = at
                y[n, c, oy, ox] = best
                indices[n, c, oy, ox] = best_at


def max_pool2d_backward_add(const floating[:, :, :, ::1] grad_y, const int64_t[:, :, :, ::1] indices,
                            floating[:, :, :, ::1] grad_x, int num_threads):
    """grad_x[n, c].flat[indices[n, c, oy, ox]] += grad_y[n, c, oy, ox] (grad_x zeroed).

    Returns the number of indices outside [0, H*W) other than the -1 of an empty window;
    they are skipped, never written, and pool.py raises if the count is not zero.
    """
    cdef Py_ssize_t n_img = grad_y.shape[0], channels = grad_y.shape[1]
    cdef Py_ssize_t oh = grad_y.shape[2], ow = grad_y.shape[3]
    cdef Py_ssize_t plane_size = grad_x.shape[2] * grad_x.shape[3]
    cdef Py_ssize_t nc, n, c, oy, ox, bad = 0
    cdef int64_t at
    cdef floating* plane
    for nc in prange(n_img * channels, nogil=True, schedule="static", num_threads=num_threads):
        n = nc // channels
        c = nc - n * channels
        plane = &grad_x[n, c, 0, 0]
        for oy in range(oh):
            for ox in range(ow):
                at = indices[n, c, oy, ox]
                if 0 <= at < plane_size:
                    plane[at] += grad_y[n, c, oy, ox]
                elif at != -1:
                    bad += 1
    return bad


def avg_pool2d_forward_into(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                            Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                            Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                            Py_ssize_t divisor_override, int num_threads):
    """y = (sum of the in-image pixels of each window) / divisor (see the module docstring;
    ``divisor_override`` > 0 replaces the divisor)."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], height = x.shape[2]
    cdef Py_ssize_t width = x.shape[3], oh = y.shape[2], ow = y.shape[3]
    cdef Py_ssize_t nc, n, c, oy, ox, iy, ix, divisor
    cdef Py_ssize_t h_start, h_end, w_start, w_end, row_lo, row_hi, col_lo, col_hi
    cdef floating total
    cdef const floating* plane
    for nc in prange(n_img * channels, nogil=True, schedule="static", num_threads=num_threads):
        n = nc // channels
        c = nc - n * channels
        plane = &x[n, c, 0, 0]
        for oy in range(oh):
            h_start = oy * sh - ph
            h_end = min(h_start + kh, height + ph)     # a ceil_mode window may pass the padding
            row_lo = max(h_start, 0)
            row_hi = min(h_end, height)
            for ox in range(ow):
                w_start = ox * sw - pw
                w_end = min(w_start + kw, width + pw)
                col_lo = max(w_start, 0)
                col_hi = min(w_end, width)
                if divisor_override > 0:
                    divisor = divisor_override
                elif count_include_pad:
                    divisor = (h_end - h_start) * (w_end - w_start)
                else:
                    divisor = (row_hi - row_lo) * (col_hi - col_lo)
                total = 0
                for iy in range(row_lo, row_hi):
                    for ix in range(col_lo, col_hi):
                        total = total + plane[iy * width + ix]
                y[n, c, oy, ox] = total / divisor if divisor > 0 else 0


def avg_pool2d_backward_add(const floating[:, :, :, ::1] grad_y, floating[:, :, :, ::1] grad_x,
                            Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                            Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                            Py_ssize_t divisor_override, int num_threads):
    """grad_x[in-image pixels of each window] += grad_y / divisor (grad_x zeroed)."""
    cdef Py_ssize_t n_img = grad_x.shape[0], channels = grad_x.shape[1]
    cdef Py_ssize_t height = grad_x.shape[2], width = grad_x.shape[3]
    cdef Py_ssize_t oh = grad_y.shape[2], ow = grad_y.shape[3]
    cdef Py_ssize_t nc, n, c, oy, ox, iy, ix, divisor
    cdef Py_ssize_t h_start, h_end, w_start, w_end, row_lo, row_hi, col_lo, col_hi
    cdef floating share
    cdef floating* plane
    for nc in prange(n_img * channels, nogil=True, schedule="static", num_threads=num_threads):
        n = nc // channels
        c = nc - n * channels
        plane = &grad_x[n, c, 0, 0]
        for oy in range(oh):
            h_start = oy * sh - ph
            h_end = min(h_start + kh, height + ph)
            row_lo = max(h_start, 0)
            row_hi = min(h_end, height)
            for ox in range(ow):
                w_start = ox * sw - pw
                w_end = min(w_start + kw, width + pw)
                col_lo = max(w_start, 0)
                col_hi = min(w_end, width)
                if divisor_override > 0:
                    divisor = divisor_override
                elif count_include_pad:
                    divisor = (h_end - h_start) * (w_end - w_start)
                else:
                    divisor = (row_hi - row_lo) * (col_hi - col_lo)
                if divisor > 0:
                    share = grad_y[n, c, oy, ox] / divisor
                    for iy in range(row_lo, row_hi):
                        for ix in range(col_lo, col_hi):
                            plane[iy * width + ix] += share


# ------------------------------------------------------------------ 2x2 windows, stride 2
cdef inline void _max_plane_2x2(const floating* plane, Py_ssize_t width, Py_ssize_t oh, Py_ssize_t ow,
                                floating* out, int64_t* where) noexcept nogil:
    cdef Py_ssize_t oy, ox, first, at, k
    cdef floating best, value
    for oy in range(oh):
        for ox in range(ow):
            first = 2 * oy * width + 2 * ox
            best = plane[first]
            at = first
            for k in range(1, 4):  # row-major window order: (0, 1), (1, 0), (1, 1)
                value = plane[first + (k // 2) * width + k % 2]
                if value > best or value != value:
                    best = value
                    at = first + (k // 2) * width + k % 2
            out[oy * ow + ox] = best
            where[oy * ow + ox] = at


def max_pool2d_forward_2x2_into(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                                int64_t[:, :, :, ::1] indices, int num_threads):
    """:func:`max_pool2d_forward_into` for 2x2 windows at stride 2 inside the image."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], width = x.shape[3]
    cdef Py_ssize_t oh = y.shape[2], ow = y.shape[3], nc, n, c
    for nc in prange(n_img * channels, nogil=True, schedule="static", num_threads=num_threads):
        n = nc // channels
        c = nc - n * channels
        _max_plane_2x2(&x[n, c, 0, 0], width, oh, ow, &y[n, c, 0, 0], &indices[n, c, 0, 0])


def avg_pool2d_forward_2x2_into(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                                Py_ssize_t divisor, int num_threads):
    """:func:`avg_pool2d_forward_into` for 2x2 windows at stride 2 inside the image."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], width = x.shape[3]
    cdef Py_ssize_t oh = y.shape[2], ow = y.shape[3], nc, n, c, oy, ox, first
    cdef floating total
    cdef const floating* plane
    for nc in prange(n_img * channels, nogil=True, schedule="static", num_threads=num_threads):
        n = nc // channels
        c = nc - n * channels
        plane = &x[n, c, 0, 0]
        for oy in range(oh):
            for ox in range(ow):
                first = 2 * oy * width + 2 * ox
                total = 0
                total = total + plane[first]
                total = total + plane[first + 1]
                total = total + plane[first + width]
                total = total + plane[first + width + 1]
                y[n, c, oy, ox] = total / divisor


def avg_pool2d_backward_2x2_add(const floating[:, :, :, ::1] grad_y, floating[:, :, :, ::1] grad_x,
                                Py_ssize_t divisor, int num_threads):
    """:func:`avg_pool2d_backward_add` for 2x2 windows at stride 2 inside the image: the windows
    do not overlap, so each pixel gets one share (grad_x zeroed: an odd last row keeps 0)."""
    cdef Py_ssize_t n_img = grad_x.shape[0], channels = grad_x.shape[1], width = grad_x.shape[3]
    cdef Py_ssize_t oh = grad_y.shape[2], ow = grad_y.shape[3], nc, n, c, oy, ox, first
    cdef floating share
    cdef floating* plane
    for nc in prange(n_img * channels, nogil=True, schedule="static", num_threads=num_threads):
        n = nc // channels
        c = nc - n * channels
        plane = &grad_x[n, c, 0, 0]
        for oy in range(oh):
            for ox in range(ow):
                first = 2 * oy * width + 2 * ox
                share = grad_y[n, c, oy, ox] / divisor
                plane[first] = share
                plane[first + 1] = share
                plane[first + width] = share
                plane[first + width + 1] = share
