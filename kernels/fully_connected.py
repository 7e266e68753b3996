"""The ``"fully_connected"`` strategy: a window as large as the input is a matrix product.

When the kernel covers the whole (unpadded) input, with one group and no dilation
(``ConvGeometry.window_is_the_input``), each output channel has one pixel and

    y[n, k] = sum_{c, i, j} weight[k, c, i, j] * x[n, c, i, j]

is the product X W^T of the input rows X (N, C KH KW), one flattened sample each, and the
filter rows W (K, C KH KW): a fully connected layer. LeNet-5's C5 (16 -> 120, 5x5 on 5x5)
is one; LeCun et al. (1998) call it a convolution because on a larger input it would be
one. The gradients are products too:

    grad_x = grad_y W      (N, K) @ (K, C KH KW)
    grad_w = grad_y^T X    (K, N) @ (N, C KH KW)

Three BLAS calls for the whole batch (on one thread: the layer is small), where the
per-sample strategies did one matrix-vector product per sample (LeNet-5's C5, b64, forward
and both gradients: about 0.2 ms against 0.85 on channels-last; benchmarks/RESULTS.md).
Both CPU backends' rules send such layers here (plain numpy: nothing to compile); the
arguments were checked by the backend's entry points. ``shares`` and ``stacked`` are the
Numba strategies' interface and are not used.
"""

from __future__ import annotations

import numpy as np


def applies(g) -> bool:
    return g.window_is_the_input


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C H W): one row a sample (or a filter); N may be 0."""
    return np.ascontiguousarray(a).reshape(a.shape[0], int(np.prod(a.shape[1:])))


def forward(x, weight, g, shares: int = 1, stacked: int | None = None) -> np.ndarray:
    return (_rows(x) @ _rows(weight).T).reshape(g.output_shape)


def backward_input(grad_y, weight, g, shares: int = 1, stacked: int | None = None) -> np.ndarray:
    return (_rows(grad_y) @ _rows(weight)).reshape(g.input_shape)


def backward_weight(grad_y, x, g, shares: int = 1, stacked: int | None = None) -> np.ndarray:
    return (_rows(grad_y).T @ _rows(x)).reshape(g.weight_shape)
