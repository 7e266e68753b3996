"""The fused residual add + ReLU and the plain ReLU of the Cython backend (the loops are
in _residual.pyx).

    y = max(a + b, 0);   grad_a = grad_b = grad_y * [y > 0]    (ReLU: b = 0)
"""

from __future__ import annotations

import numpy as np

from . import import_compiled, threads_for
from ._checks import floats

_residual = import_compiled("_residual")

__all__ = ["add_relu_forward", "relu_forward", "add_relu_backward", "add_relu_backward_of_sum"]


def add_relu_forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y = max(a + b, 0), elementwise; a and b have one shape."""
    a, b = floats(a, b)
    if a.shape != b.shape:
        raise ValueError(f"add_relu needs equal shapes, got {a.shape} and {b.shape}")
    y = np.empty_like(a)
    _residual.add_relu_forward_into(a.reshape(-1), b.reshape(-1), y.reshape(-1), threads_for(a.size))
    return y


def relu_forward(x: np.ndarray) -> np.ndarray:
    """y = max(x, 0), elementwise."""
    (x,) = floats(x)
    y = np.empty_like(x)
    _residual.relu_forward_into(x.reshape(-1), y.reshape(-1), threads_for(x.size))
    return y


def add_relu_backward(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The gradient reaching both inputs: grad_y where y > 0, else 0."""
    grad_y, y = floats(grad_y, y)
    if grad_y.shape != y.shape:
        raise ValueError(f"grad_y {grad_y.shape} and y {y.shape} differ")
    grad = np.empty_like(grad_y)
    _residual.add_relu_backward_into(grad_y.reshape(-1), y.reshape(-1), grad.reshape(-1), threads_for(y.size))
    return grad


def add_relu_backward_of_sum(grad_a: np.ndarray, grad_b: np.ndarray, y: np.ndarray) -> np.ndarray:
    """add_relu_backward(grad_a + grad_b, y), in one pass."""
    grad_a, grad_b, y = floats(grad_a, grad_b, y)
    if not grad_a.shape == grad_b.shape == y.shape:
        raise ValueError(f"grad_a {grad_a.shape}, grad_b {grad_b.shape} and y {y.shape} differ")
    grad = np.empty_like(grad_a)
    _residual.add_relu_backward_of_sum_into(grad_a.reshape(-1), grad_b.reshape(-1), y.reshape(-1),
                                            grad.reshape(-1), threads_for(y.size))
    return grad
