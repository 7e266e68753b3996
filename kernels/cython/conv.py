"""Convolution kernels of the Cython backend: compiled im2col/col2im, matrix products in BLAS.

Two strategies, both im2col + GEMM:

* ``batched`` (SciPy's BLAS available and N >= threads, the training case): the compiled
  kernels in _conv.pyx split the batch over the OpenMP threads; each thread builds the
  columns of ONE image in a cache-sized buffer and calls single-threaded GEMM on them right
  away (and col2im right after, backwards). Little memory traffic, no thread waits for
  another, no transposes; backward-weight keeps a partial sum per thread.
* ``whole batch`` (otherwise, e.g. one image, or no SciPy): parallel im2col of the whole
  batch, then one multi-threaded numpy matmul per group, as follows.

The whole-batch column buffer is laid out (C*KH*KW, N, OH*OW): the rows (c, i, j) of the whole batch side
by side, so each convolution is ONE matrix product per group over all N*OH*OW output
positions instead of N small ones (BLAS runs the large product faster and on every core):

    forward          Y (K, N*P)   = W (K, C*KH*KW) @ cols          then Y -> (N, K, OH, OW)
    backward input   dcols        = W^T @ dY (K, N*P)              then col2im(dcols) -> dx
    backward weight  dW (K, C*KH*KW) = dY (K, N*P) @ cols^T

with P = OH*OW, per group g for groups > 1 (rows and output channels of a group are
contiguous). Only the (N, K) <-> (K, N) transposes of dY and Y are extra copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import MAX_THREADS, import_compiled, threads_for
from ._blas import connect, single_thread_blas
from ._checks import floats, padding4, pair, shape4

_conv = import_compiled("_conv")
HAVE_BLAS = connect(_conv)  # SciPy's GEMM for the batched kernels

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "im2col", "col2im"]


def _output_size(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int) -> int:
    out = (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"the kernel (size {kernel}, dilation {dilation}) does not fit "
                         f"the padded input {size}")
    return out


def _geometry(input_shape, kernel_size, stride, padding, dilation):
    """Checked (N, C, H, W), (KH, KW), (sh, sw), (top, bottom, left, right), (dh, dw), (OH, OW)."""
    n, c, h, w = shape4(input_shape, "input_shape")
    kh, kw = pair(kernel_size, "kernel_size", 1)
    sh, sw = pair(stride, "stride", 1)
    top, bottom, left, right = padding4(padding)
    dh, dw = pair(dilation, "dilation", 1)
    oh = _output_size(h, kh, sh, top, bottom, dh)
    ow = _output_size(w, kw, sw, left, right, dw)
    return (n, c, h, w), (kh, kw), (sh, sw), (top, bottom, left, right), (dh, dw), (oh, ow)


def _fill_cols(x: np.ndarray, cols: np.ndarray, geometry) -> None:
    """cols (N, C*KH*KW, OH*OW), possibly a strided view, <- im2col(x)."""
    _, (kh, kw), (sh, sw), (top, _, left, _), (dh, dw), (oh, ow) = geometry
    _conv.im2col_into(x, cols, kh, kw, sh, sw, top, left, dh, dw, oh, ow, threads_for(cols.size))


def _add_cols(cols: np.ndarray, out: np.ndarray, geometry) -> None:
    """out (N, C, H, W, zeroed) += col2im(cols), cols possibly a strided view."""
    _, (kh, kw), (sh, sw), (top, _, left, _), (dh, dw), (oh, ow) = geometry
    _conv.col2im_add(cols, out, kh, kw, sh, sw, top, left, dh, dw, oh, ow, threads_for(cols.size))


def _batch_cols(x: np.ndarray, geometry) -> np.ndarray:
    """im2col of the whole batch as a (C*KH*KW, N, OH*OW) array."""
    (n, c, _, _), (kh, kw), _, _, _, (oh, ow) = geometry
    buffer = np.empty((c * kh * kw, n, oh * ow), dtype=x.dtype)
    _fill_cols(x, buffer.transpose(1, 0, 2), geometry)
    return buffer


def _check_groups(channels: int, out_channels: int, weight_in: int, groups: int) -> int:
    groups = int(groups)
    if groups < 1 or channels % groups or out_channels % groups or channels // groups != weight_in:
        raise ValueError(f"groups={groups} does not split {channels} input / {out_channels} output channels "
                         f"into weights of {weight_in} input channels")
    return groups


def _grouped(matrix: np.ndarray, groups: int) -> np.ndarray:
    """(rows, cols) -> (groups, rows/groups, cols): a view."""
    return matrix.reshape(groups, matrix.shape[0] // groups, matrix.shape[1])


def _batched_threads(n: int) -> int:
    """Threads for the batched kernels (0: use the whole-batch path)."""
    if not HAVE_BLAS or n < MAX_THREADS:
        return 0
    return MAX_THREADS


def conv2d_forward(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], padding: Sequence[int],
                   dilation: Sequence[int], groups: int) -> np.ndarray:
    """y[n, k, oy, ox] = sum over c in group(k), i, j of
    weight[k, c, i, j] * x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw]; y is (N, K, OH, OW)."""
    x, weight = floats(x, weight, ndim=4)
    k_out, c_in, kh, kw = weight.shape
    geometry = _geometry(x.shape, (kh, kw), stride, padding, dilation)
    (n, c, _, _), _, _, _, _, (oh, ow) = geometry
    groups = _check_groups(c, k_out, c_in, groups)
    threads = _batched_threads(n)
    if threads:
        (sh, sw), (top, _, left, _), (dh, dw) = geometry[2:5]
        y = np.empty((n, k_out, oh, ow), dtype=x.dtype)
        work = np.empty((threads, c * kh * kw * oh * ow), dtype=x.dtype)
        with single_thread_blas:
            _conv.conv2d_forward_batched(x, weight, y, work, groups, sh, sw, top, left, dh, dw)
        return y
    cols = _batch_cols(x, geometry).reshape(c * kh * kw, n * oh * ow)
    w = weight.reshape(k_out, c_in * kh * kw)
    if groups == 1:
        y = w @ cols
    else:
        y = np.matmul(_grouped(w, groups), _grouped(cols, groups))
    return y.reshape(k_out, n, oh, ow).transpose(1, 0, 2, 3).copy()


def _grad_rows(grad_y: np.ndarray, groups: int) -> np.ndarray:
    """grad_y (N, K, OH, OW) -> (groups, K/groups, N*OH*OW), the layout of the column buffer."""
    n, k_out, oh, ow = grad_y.shape
    rows = np.ascontiguousarray(grad_y.transpose(1, 0, 2, 3)).reshape(k_out, n * oh * ow)
    return _grouped(rows, groups)


def conv2d_backward_input(grad_y: np.ndarray, weight: np.ndarray, input_shape: Sequence[int],
                          stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                          groups: int) -> np.ndarray:
    """grad_x = col2im(W^T @ grad_y): each output gradient flows back, times the weight, to
    every input pixel its window read (the transpose of the forward map)."""
    grad_y, weight = floats(grad_y, weight, ndim=4)
    k_out, c_in, kh, kw = weight.shape
    geometry = _geometry(input_shape, (kh, kw), stride, padding, dilation)
    (n, c, h, w), _, _, _, _, (oh, ow) = geometry
    if grad_y.shape != (n, k_out, oh, ow):
        raise ValueError(f"grad_y has shape {grad_y.shape}, expected {(n, k_out, oh, ow)}")
    groups = _check_groups(c, k_out, c_in, groups)
    threads = _batched_threads(n)
    if threads:
        (sh, sw), (top, _, left, _), (dh, dw) = geometry[2:5]
        grad_x = np.zeros((n, c, h, w), dtype=grad_y.dtype)
        work = np.empty((threads, c * kh * kw * oh * ow), dtype=grad_y.dtype)
        with single_thread_blas:
            _conv.conv2d_backward_input_batched(grad_y, weight, grad_x, work, groups,
                                                sh, sw, top, left, dh, dw)
        return grad_x
    w_t = _grouped(weight.reshape(k_out, c_in * kh * kw), groups).transpose(0, 2, 1)
    grad_cols = np.matmul(w_t, _grad_rows(grad_y, groups))       # (groups, C/groups*KH*KW, N*P)
    grad_x = np.zeros((n, c, h, w), dtype=grad_y.dtype)
    _add_cols(grad_cols.reshape(c * kh * kw, n, oh * ow).transpose(1, 0, 2), grad_x, geometry)
    return grad_x


def conv2d_backward_weight(grad_y: np.ndarray, x: np.ndarray, weight_shape: Sequence[int],
                           stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                           groups: int) -> np.ndarray:
    """grad_w[k, c, i, j] = sum over n, oy, ox of grad_y[n, k, oy, ox] * x_padded[n, c, oy*sh + i*dh,
    ox*sw + j*dw], i.e. grad_y (K, N*P) @ cols^T per group."""
    grad_y, x = floats(grad_y, x, ndim=4)
    k_out, c_in, kh, kw = shape4(weight_shape, "weight_shape")
    geometry = _geometry(x.shape, (kh, kw), stride, padding, dilation)
    (n, c, _, _), _, _, _, _, (oh, ow) = geometry
    if grad_y.shape != (n, k_out, oh, ow):
        raise ValueError(f"grad_y has shape {grad_y.shape}, expected {(n, k_out, oh, ow)}")
    groups = _check_groups(c, k_out, c_in, groups)
    threads = _batched_threads(n)
    if threads:
        (sh, sw), (top, _, left, _), (dh, dw) = geometry[2:5]
        partial = np.zeros((threads, k_out * c_in * kh * kw), dtype=x.dtype)
        work = np.empty((threads, c * kh * kw * oh * ow), dtype=x.dtype)
        with single_thread_blas:
            _conv.conv2d_backward_weight_batched(grad_y, x, partial, work, groups, kh, kw, sh, sw,
                                                 top, left, dh, dw)
        return partial.sum(axis=0).reshape(k_out, c_in, kh, kw)
    cols = _grouped(_batch_cols(x, geometry).reshape(c * kh * kw, n * oh * ow), groups)
    grad_w = np.matmul(_grad_rows(grad_y, groups), cols.transpose(0, 2, 1))   # (groups, K/groups, R)
    return grad_w.reshape(k_out, c_in, kh, kw)


def im2col(x: np.ndarray, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
           dilation: Sequence[int]) -> np.ndarray:
    """cols[n, (c*KH + i)*KW + j, oy*OW + ox] = x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw],
    shape (N, C*KH*KW, OH*OW); padding is (top, bottom, left, right)."""
    (x,) = floats(x, ndim=4)
    geometry = _geometry(x.shape, kernel_size, stride, padding, dilation)
    (n, c, _, _), (kh, kw), _, _, _, (oh, ow) = geometry
    cols = np.empty((n, c * kh * kw, oh * ow), dtype=x.dtype)
    _fill_cols(x, cols, geometry)
    return cols


def col2im(cols: np.ndarray, input_shape: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
           padding: Sequence[int], dilation: Sequence[int]) -> np.ndarray:
    """The adjoint of im2col: x[n, c, iy, ix] = sum of the cols entries copied from (iy, ix)."""
    (cols,) = floats(cols, ndim=3)
    geometry = _geometry(input_shape, kernel_size, stride, padding, dilation)
    (n, c, h, w), (kh, kw), _, _, _, (oh, ow) = geometry
    if cols.shape != (n, c * kh * kw, oh * ow):
        raise ValueError(f"cols has shape {cols.shape}, expected {(n, c * kh * kw, oh * ow)}")
    x = np.zeros((n, c, h, w), dtype=cols.dtype)
    _add_cols(cols, x, geometry)
    return x
