"""The ``"winograd"`` convolution strategy of the Cython backend: F(2x2, 3x3), loops in _winograd.pyx.

The same algorithm as the Numba backend's (``kernels/numba/conv/winograd.py``, whose
docstring derives it): 4x4 input tiles overlapping by 2, V = B^T d B, U = G g G^T, 16 GEMMs
M[xi] = V[xi] @ U[xi] summed over the input channels, Y = A^T M A; 4 instead of 9
multiply-adds per output and channel pair. For 3x3, stride 1, undilated, ungrouped layers with
padding of at most 2 per side (:func:`applies`):

* forward: the kernel with U (16, C, K);
* backward_input: the same kernel on grad_y padded by 2 - padding, with each filter rotated by
  180 degrees and the channel axes swapped, U (16, K, C) (the adjoint of a stride-1
  correlation is one);
* backward_weight: dU[xi] = sum over tiles of V[xi]^T @ (A dY A^T)[xi], one partial sum per
  thread, then grad_w = G^T dU G per filter.

The weight transforms are one small numpy GEMM each, with the 16x9 matrix kron(G, G)
(U[4i + j] = sum_ab G[i, a] g[a, b] G[j, b]); its entries 0, 1/4, 1/2, 1 are exact.

Inputs (or output gradients, or weights) that are not all finite run on the fallback strategy
the backend passes (its "im2col"): the transforms subtract neighbouring values, and Inf -
Inf = NaN would replace the +-Inf other algorithms give.
"""

from __future__ import annotations

import numpy as np

from . import MAX_THREADS, import_compiled, threads_for
from ._blas import connect

_winograd = import_compiled("_winograd")
HAVE_BLAS = connect(_winograd)  # the threads' GEMMs are SciPy's sgemm/dgemm

# Tiles per GEMM (one row per 4x4 tile): samples are stacked until about this many rows, so
# that the 16 GEMMs are not too thin. Up to 64 channels the stack's V and M (16 x rows x
# (C + K) values) should stay within about 1 MiB, half this machine's L2: fwd + both gradients,
# float32, 2 threads, 64 channels 8x8 took 1.33x as long with 256 rows as with 128 (32
# channels: 1.00-1.07x). Wider layers are GEMM-bound and want longer GEMMs (128 channels
# 16x16: 128 rows 1.03x, 256 rows 1.00x; 256 channels 8x8: 64 rows 1.08x).
STACKED_ROWS = 256
NARROW_STACKED_ROWS = 128  # max(C, K) <= NARROW_CHANNELS
NARROW_CHANNELS = 64

G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
GG = np.kron(G, G)  # (16, 9): GG[4i + j, 3a + b] = G[i, a] G[j, b]


def applies(g) -> bool:
    """3x3 kernels, stride 1, no dilation, one group, padding 0-2 per side (grad_input's
    padding 2 - p must not be negative)."""
    return (g.kernel == (3, 3) and g.stride == (1, 1) and g.dilation == (1, 1) and g.groups == 1
            and all(0 <= p <= 2 for p in g.padding))


def transformed_weight(weight: np.ndarray, flipped: bool = False) -> np.ndarray:
    """U (16, C, K): U[4i + j, c, k] = (G weight[k, c] G^T)[i, j], in the weight's dtype.
    ``flipped``: grad_input's filters, weight[k, c] rotated by 180 degrees, U (16, K, C)."""
    k_out, c_in = weight.shape[:2]
    if flipped:
        filters = weight[:, :, ::-1, ::-1].reshape(k_out * c_in, 9)
    else:
        filters = weight.transpose(1, 0, 2, 3).reshape(c_in * k_out, 9)
    u = GG.astype(weight.dtype) @ filters.T
    return u.reshape((16, k_out, c_in) if flipped else (16, c_in, k_out))


def transformed_weight_adjoint(du: np.ndarray, weight_shape) -> np.ndarray:
    """grad_w (K, C, 3, 3) from dU (16, C, K): grad_w[k, c] = G^T dU[:, c, k] G, the adjoint of
    :func:`transformed_weight`."""
    k_out, c_in = weight_shape[:2]
    g9 = GG.T.astype(du.dtype) @ du.reshape(16, c_in * k_out)     # (9, C*K)
    return np.ascontiguousarray(g9.reshape(3, 3, c_in, k_out).transpose(3, 2, 0, 1))


def stacked_for(channels: int, out_height: int, out_width: int, stacked: int | None = None) -> int:
    """Samples per GEMM: about STACKED_ROWS tiles (NARROW_STACKED_ROWS for layers of at most
    NARROW_CHANNELS ``channels``, the larger of C and K); ``stacked``, if given, overrides."""
    tiles = ((out_height + 1) // 2) * ((out_width + 1) // 2)
    rows = NARROW_STACKED_ROWS if channels <= NARROW_CHANNELS else STACKED_ROWS
    return stacked or max(1, rows // tiles)


def _finite(*arrays: np.ndarray) -> bool:
    """Whether every value of these C-contiguous arrays is finite."""
    return all(_winograd.all_finite(a.reshape(-1), threads_for(a.size)) for a in arrays)


def _threads(n: int, threads: int | None) -> int:
    """One share of the batch per thread, at least one sample each."""
    return max(1, min(MAX_THREADS if threads is None else threads, n))


def _run(x, u, y, top, left, threads, stacked) -> None:
    """The forward kernel on x (N, C, H, W) -> y (N, K, OH, OW)."""
    c_in, (k_out, oh, ow) = x.shape[1], y.shape[1:]
    rows = stacked_for(max(c_in, k_out), oh, ow, stacked)
    work = np.empty((_threads(x.shape[0], threads), _winograd.work_size(c_in, k_out, oh, ow, rows)),
                    dtype=x.dtype)
    _winograd.forward(x, u, y, work, top, left, rows)


def forward(x, weight, g, fallback, threads=None, stacked=None) -> np.ndarray:
    """y (N, K, OH, OW) = the correlation of x with weight (``fallback.forward`` if not finite)."""
    if not _finite(x, weight):
        return fallback.forward(x, weight, g, threads)
    y = np.empty(g.output_shape, dtype=x.dtype)
    _run(x, transformed_weight(weight), y, g.padding[0], g.padding[2], threads, stacked)
    return y


def backward_input(grad_y, weight, g, fallback, threads=None, stacked=None) -> np.ndarray:
    """grad_x: the forward kernel on grad_y padded by 2 - padding with the flipped filters."""
    if not _finite(grad_y, weight):
        return fallback.backward_input(grad_y, weight, g, threads)
    grad_x = np.empty(g.input_shape, dtype=grad_y.dtype)
    _run(grad_y, transformed_weight(weight, flipped=True), grad_x, 2 - g.padding[0], 2 - g.padding[2],
         threads, stacked)
    return grad_x


def backward_weight(grad_y, x, g, fallback, threads=None, stacked=None) -> np.ndarray:
    """grad_w (K, C, 3, 3) = G^T (sum over threads of dU) G."""
    if not _finite(grad_y, x):
        return fallback.backward_weight(grad_y, x, g, threads)
    n, c_in = g.input_shape[:2]
    k_out = g.out_channels
    rows = stacked_for(max(c_in, k_out), g.out_height, g.out_width, stacked)
    shares = _threads(n, threads)
    partial = np.zeros((shares, 16, c_in, k_out), dtype=x.dtype)
    size = _winograd.work_size(c_in, k_out, g.out_height, g.out_width, rows)
    work = np.empty((shares, size), dtype=x.dtype)
    _winograd.backward_weight(grad_y, x, partial, work, g.padding[0], g.padding[2], rows)
    return transformed_weight_adjoint(partial.sum(axis=0) if shares > 1 else partial[0], g.weight_shape)
