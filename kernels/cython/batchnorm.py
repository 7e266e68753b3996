"""Batch-normalization kernels of the Cython backend (the loops are in _batchnorm.pyx).

x of shape (N, C, *spatial) is viewed as (N, C, L); statistics are per channel over the
N*L values (biased variance), inv_std = 1 / sqrt(var + eps), y = weight * xhat + bias.
"""

from __future__ import annotations

import numpy as np

from . import import_compiled, threads_for
from ._checks import floats
from .residual import add_relu_backward

_batchnorm = import_compiled("_batchnorm")

__all__ = ["batch_norm_forward_train", "batch_norm_backward"]


def _as_ncl(x: np.ndarray) -> np.ndarray:
    if x.ndim < 2:
        raise ValueError(f"batch norm needs (N, C, ...) input, got shape {x.shape}")
    return x.reshape(x.shape[0], x.shape[1], -1)


def _per_channel(value: np.ndarray | None, channels: int, fill: float, dtype: np.dtype) -> np.ndarray:
    if value is None:  # an affine=False layer: weight 1, bias 0
        return np.full(channels, fill, dtype=dtype)
    (value,) = floats(value)
    if value.shape != (channels,) or value.dtype != dtype:
        raise ValueError(f"expected a ({channels},) {dtype} parameter, got {value.shape} {value.dtype}")
    return value


def batch_norm_forward_train(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                             eps: float, relu: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, mean, inv_std): mean and inv_std are (C,) batch statistics of x; with ``relu``,
    y = max(y, 0)."""
    (x,) = floats(x)
    x3 = _as_ncl(x)
    channels = x3.shape[1]
    if x3.shape[0] * x3.shape[2] == 0:
        raise ValueError("batch norm needs at least one value per channel")
    weight = _per_channel(weight, channels, 1.0, x.dtype)
    bias = _per_channel(bias, channels, 0.0, x.dtype)
    y = np.empty_like(x3)
    mean = np.empty(channels, dtype=x.dtype)
    inv_std = np.empty(channels, dtype=x.dtype)
    _batchnorm.batch_norm_forward_into(x3, weight, bias, y, mean, inv_std, float(eps), bool(relu),
                                       threads_for(x.size))
    return y.reshape(x.shape), mean, inv_std


def batch_norm_backward(grad_y: np.ndarray, x: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
                        weight: np.ndarray | None, relu_output: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grad_x, grad_weight, grad_bias) of the training-mode forward pass; with
    ``relu_output`` (the forward's output with ``relu``), of relu(batch norm)."""
    grad_y, x = floats(grad_y, x)
    if grad_y.shape != x.shape:
        raise ValueError(f"grad_y {grad_y.shape} and x {x.shape} differ")
    if relu_output is not None:
        # the fused ReLU's mask first, in the residual loops (one vectorised pass): inside the
        # two passes below it ran 10x slower (a branch per value; with 16 float64 lanes gcc 12
        # -O3 even gave the upper 8 the wrong mask)
        grad_y = add_relu_backward(grad_y, relu_output)
    x3, g3 = _as_ncl(x), _as_ncl(grad_y)
    channels = x3.shape[1]
    mean = _per_channel(mean, channels, 0.0, x.dtype)
    inv_std = _per_channel(inv_std, channels, 1.0, x.dtype)
    weight = _per_channel(weight, channels, 1.0, x.dtype)
    grad_x = np.empty_like(x3)
    grad_weight = np.empty(channels, dtype=x.dtype)
    grad_bias = np.empty(channels, dtype=x.dtype)
    _batchnorm.batch_norm_backward_into(g3, x3, mean, inv_std, weight, grad_x, grad_weight, grad_bias,
                                        threads_for(x.size))
    return grad_x.reshape(x.shape), grad_weight, grad_bias
