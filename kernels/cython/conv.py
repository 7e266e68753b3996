"""Convolution kernels of the Cython backend: compiled im2col/col2im, matrix products in BLAS.

Five strategies (:func:`choose` picks one; the Function of ``nn.functional`` records the
choice at forward and passes it back at backward): ``"fully_connected"``, one matrix
product for a layer whose window is its whole input (``kernels/fully_connected.py``,
shared with the Numba backend); ``"winograd"``, F(2x2, 3x3) for 3x3
stride-1 layers (``winograd.py``, loops in _winograd.pyx: 16 GEMMs of transformed tiles on
each thread, 4 instead of 9 multiply-adds per output and channel pair); ``"simd"``, the
direct loops with the output in vector registers of ``kernels/simd`` (shared with the Numba
backend), for the float32 layers they cover with up to 64 channels (more, and the GEMMs win);
and two im2col + GEMM ones:

* ``"im2col"`` (SciPy's BLAS available and N >= threads, the training case): the compiled
  kernels in _conv.pyx split the batch over the OpenMP threads; each thread builds the
  columns of ONE image in a cache-sized buffer and calls single-threaded GEMM on them right
  away (and col2im right after, backwards). Little memory traffic, no thread waits for
  another, no transposes; backward-weight keeps a partial sum per thread.
* ``"whole_batch"`` (otherwise, e.g. one image, or no SciPy): parallel im2col of the whole
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

import numpy as np

from .. import fully_connected
from ..blas_threads import single_thread_blas
from ..simd import conv as simd
from . import MAX_THREADS, import_compiled, threads_for, winograd
from ._blas import connect
from ._checks import floats, shaped

_conv = import_compiled("_conv")
HAVE_BLAS = connect(_conv)  # SciPy's GEMM for the per-image kernels

__all__ = ["STRATEGIES", "choose", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
           "im2col", "col2im"]

STRATEGIES = ("im2col", "whole_batch", "winograd", "fully_connected") + (
    ("simd",) if simd.available() else ())

# The rule's thresholds, measured fwd + both gradients, float32, 2 threads, kernels alone in
# round-robin races, as multiples of Numba's Winograd on the same layer: Cython's Winograd
# 0.92 (32ch 16x16 b32), 0.91 (b128), 1.01 (128ch 16x16 b32), 0.78 (64ch 8x8 b32), 0.75
# (b128), where the SIMD loops took 1.41, 1.34, 2.63, 0.89, 0.99. But on small output planes
# the SIMD loops (their channel-vector layout) beat Winograd's GEMMs with 32 as the inner or
# outer dimension: 32ch 8x8 0.64 against 0.78 (b32), 0.73 against 0.83 (b128), 32->64 8x8
# 0.78 against 0.88, 32ch 4x4 0.76 against 0.79; not at 48 channels (8x8: 1.90 against 0.92).
WINOGRAD_MIN_CHANNELS = 32   # as Numba's rule
SIMD_SMALL_PLANE = (32, 64)  # (fewer channels up to which, output pixels up to which) simd stays


def choose(g, threads: int | None = None) -> str:
    """The rule, for geometry ``g`` and ``threads`` (default: the OpenMP threads):

    * ``"fully_connected"`` where the window is the whole input (``g.window_is_the_input``,
      LeNet-5's C5: one matrix product for the batch, ``kernels/fully_connected.py``);
    * ``"winograd"`` for the layers Numba's rule sends to Winograd (3x3, stride 1, undilated,
      ungrouped, padding <= 2, at least WINOGRAD_MIN_CHANNELS input and output channels) when
      every thread gets at least one image and SciPy's BLAS is there, except the layers of
      the next line with at most SIMD_SMALL_PLANE[0] input or output channels (the fewer of
      the two) on output planes of at most SIMD_SMALL_PLANE[1] pixels (32-channel layers at
      8x8), and the layers where ``simd.beats_winograd`` (32-channel layers on planes at
      least a vector wide, with AVX-512), where the SIMD loops are faster;
    * ``"simd"`` (the direct SIMD loops of kernels/simd, shared with the Numba backend) for
      the layers they cover with at most ``simd.MAX_CHANNELS`` input and output channels;
    * else ``"im2col"`` when every thread gets at least one image (and SciPy's BLAS is
      there), else ``"whole_batch"`` (one image: its multi-threaded GEMMs beat Winograd on
      one thread, 256ch 8x8 2.8 against 9.0 ms, 128ch 16x16 3.0 against 4.0).
    """
    threads = MAX_THREADS if threads is None else threads
    if g.window_is_the_input:
        return "fully_connected"
    n, c = g.input_shape[:2]
    narrow, wide = sorted((c, g.out_channels))
    simd_covers = simd.applies(g) and wide <= simd.MAX_CHANNELS
    per_image = HAVE_BLAS and n >= threads
    small_plane = narrow <= SIMD_SMALL_PLANE[0] and g.out_height * g.out_width <= SIMD_SMALL_PLANE[1]
    if (per_image and winograd.HAVE_BLAS and winograd.applies(g) and narrow >= WINOGRAD_MIN_CHANNELS
            and not (simd_covers and (small_plane or simd.beats_winograd(g)))):
        return "winograd"
    if simd_covers:
        return "simd"
    return "im2col" if per_image else "whole_batch"


def _strategy(g, plan) -> str:
    plan = choose(g) if plan is None else plan
    if plan not in STRATEGIES:
        raise ValueError(f"unknown cython conv strategy {plan!r}; expected one of {STRATEGIES}")
    if ((plan == "simd" and not simd.applies(g)) or (plan == "winograd" and not winograd.applies(g))
            or (plan == "fully_connected" and not fully_connected.applies(g))):
        plan = "im2col"  # a test may force a strategy on a layer it does not cover
    if plan == "winograd" and not winograd.HAVE_BLAS:
        plan = "whole_batch"
    return "whole_batch" if plan == "im2col" and not HAVE_BLAS else plan


class _PerImage:
    """The "im2col" strategy in the shape the SIMD strategy calls its fallback."""

    @staticmethod
    def forward(x, weight, g, shares):
        return conv2d_forward(x, weight, g, "im2col")

    @staticmethod
    def backward_input(grad_y, weight, g, shares):
        return conv2d_backward_input(grad_y, weight, g, "im2col")

    @staticmethod
    def backward_weight(grad_y, x, g, shares):
        return conv2d_backward_weight(grad_y, x, g, "im2col")


def _fill_cols(x: np.ndarray, cols: np.ndarray, g) -> None:
    """cols (N, C*KH*KW, OH*OW), possibly a strided view, <- im2col(x)."""
    _conv.im2col_into(x, cols, *g.flat(), threads_for(cols.size))


def _add_cols(cols: np.ndarray, out: np.ndarray, g) -> None:
    """out (N, C, H, W, zeroed) += col2im(cols), cols possibly a strided view."""
    _conv.col2im_add(cols, out, *g.flat(), threads_for(cols.size))


def _batch_cols(x: np.ndarray, g) -> np.ndarray:
    """im2col of the whole batch as a (C*KH*KW, N, OH*OW) array."""
    n, rows, positions = g.columns_shape
    buffer = np.empty((rows, n, positions), dtype=x.dtype)
    _fill_cols(x, buffer.transpose(1, 0, 2), g)
    return buffer


def _grouped(matrix: np.ndarray, groups: int) -> np.ndarray:
    """(rows, cols) -> (groups, rows/groups, cols): a view."""
    return matrix.reshape(groups, matrix.shape[0] // groups, matrix.shape[1])


def _work(g, dtype) -> np.ndarray:
    """One image's columns per thread."""
    return np.empty((MAX_THREADS, g.columns_shape[1] * g.columns_shape[2]), dtype=dtype)


def _window(g) -> tuple[int, ...]:
    """(sh, sw, top, left, dh, dw) for the per-image kernels."""
    kh, kw, sh, sw, top, left, dh, dw, oh, ow = g.flat()
    return sh, sw, top, left, dh, dw


def conv2d_forward(x: np.ndarray, weight: np.ndarray, g, plan: str | None = None) -> np.ndarray:
    """y[n, k, oy, ox] = sum over c in group(k), i, j of
    weight[k, c, i, j] * x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw]; y is (N, K, OH, OW)."""
    x, weight = floats(x, weight, ndim=4)
    shaped(x, g.input_shape, "x")
    shaped(weight, g.weight_shape, "weight")
    n, k_out, oh, ow = g.output_shape
    strategy = _strategy(g, plan)
    if strategy == "fully_connected":
        with single_thread_blas:
            return fully_connected.forward(x, weight, g)
    if strategy == "simd":
        return simd.forward(x, weight, g, MAX_THREADS, _PerImage)
    if strategy == "winograd":
        with single_thread_blas:
            return winograd.forward(x, weight, g, _PerImage)
    if strategy == "im2col":
        y = np.empty(g.output_shape, dtype=x.dtype)
        with single_thread_blas:
            _conv.conv2d_forward_batched(x, weight, y, _work(g, x.dtype), g.groups, *_window(g))
        return y
    cols = _batch_cols(x, g).reshape(g.columns_shape[1], n * oh * ow)
    w = weight.reshape(k_out, -1)
    y = w @ cols if g.groups == 1 else np.matmul(_grouped(w, g.groups), _grouped(cols, g.groups))
    return y.reshape(k_out, n, oh, ow).transpose(1, 0, 2, 3).copy()


def _grad_rows(grad_y: np.ndarray, groups: int) -> np.ndarray:
    """grad_y (N, K, OH, OW) -> (groups, K/groups, N*OH*OW), the layout of the column buffer."""
    n, k_out, oh, ow = grad_y.shape
    rows = np.ascontiguousarray(grad_y.transpose(1, 0, 2, 3)).reshape(k_out, n * oh * ow)
    return _grouped(rows, groups)


def conv2d_backward_input(grad_y: np.ndarray, weight: np.ndarray, g, plan: str | None = None) -> np.ndarray:
    """grad_x = col2im(W^T @ grad_y): each output gradient flows back, times the weight, to
    every input pixel its window read (the transpose of the forward map)."""
    grad_y, weight = floats(grad_y, weight, ndim=4)
    shaped(grad_y, g.output_shape, "grad_y")
    shaped(weight, g.weight_shape, "weight")
    strategy = _strategy(g, plan)
    if strategy == "fully_connected":
        with single_thread_blas:
            return fully_connected.backward_input(grad_y, weight, g)
    if strategy == "simd":
        return simd.backward_input(grad_y, weight, g, MAX_THREADS, _PerImage)
    if strategy == "winograd":
        with single_thread_blas:
            return winograd.backward_input(grad_y, weight, g, _PerImage)
    grad_x = np.zeros(g.input_shape, dtype=grad_y.dtype)
    if strategy == "im2col":
        with single_thread_blas:
            _conv.conv2d_backward_input_batched(grad_y, weight, grad_x, _work(g, grad_y.dtype), g.groups,
                                                *_window(g))
        return grad_x
    n, rows, positions = g.columns_shape
    w_t = _grouped(weight.reshape(g.out_channels, -1), g.groups).transpose(0, 2, 1)
    grad_cols = np.matmul(w_t, _grad_rows(grad_y, g.groups))       # (groups, C/groups*KH*KW, N*P)
    _add_cols(grad_cols.reshape(rows, n, positions).transpose(1, 0, 2), grad_x, g)
    return grad_x


def conv2d_backward_weight(grad_y: np.ndarray, x: np.ndarray, g, plan: str | None = None) -> np.ndarray:
    """grad_w[k, c, i, j] = sum over n, oy, ox of grad_y[n, k, oy, ox] * x_padded[n, c, oy*sh + i*dh,
    ox*sw + j*dw], i.e. grad_y (K, N*P) @ cols^T per group."""
    grad_y, x = floats(grad_y, x, ndim=4)
    shaped(grad_y, g.output_shape, "grad_y")
    shaped(x, g.input_shape, "x")
    weight_shape = g.weight_shape
    strategy = _strategy(g, plan)
    if strategy == "fully_connected":
        with single_thread_blas:
            return fully_connected.backward_weight(grad_y, x, g)
    if strategy == "simd":
        return simd.backward_weight(grad_y, x, g, MAX_THREADS, _PerImage)
    if strategy == "winograd":
        with single_thread_blas:
            return winograd.backward_weight(grad_y, x, g, _PerImage)
    if strategy == "im2col":
        partial = np.zeros((MAX_THREADS, int(np.prod(weight_shape))), dtype=x.dtype)
        kh, kw = g.kernel
        with single_thread_blas:
            _conv.conv2d_backward_weight_batched(grad_y, x, partial, _work(g, x.dtype), g.groups, kh, kw,
                                                 *_window(g))
        return partial.sum(axis=0).reshape(weight_shape)
    n, rows, positions = g.columns_shape
    cols = _grouped(_batch_cols(x, g).reshape(rows, n * positions), g.groups)
    grad_w = np.matmul(_grad_rows(grad_y, g.groups), cols.transpose(0, 2, 1))   # (groups, K/groups, R)
    return grad_w.reshape(weight_shape)


def im2col(x: np.ndarray, g) -> np.ndarray:
    """cols[n, (c*KH + i)*KW + j, oy*OW + ox] = x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw],
    shape (N, C*KH*KW, OH*OW)."""
    (x,) = floats(x, ndim=4)
    shaped(x, g.input_shape, "x")
    cols = np.empty(g.columns_shape, dtype=x.dtype)
    _fill_cols(x, cols, g)
    return cols


def col2im(cols: np.ndarray, g) -> np.ndarray:
    """The adjoint of im2col: x[n, c, iy, ix] = sum of the cols entries copied from (iy, ix)."""
    (cols,) = floats(cols, ndim=3)
    shaped(cols, g.columns_shape, "cols")
    x = np.zeros(g.input_shape, dtype=cols.dtype)
    _add_cols(cols, x, g)
    return x
