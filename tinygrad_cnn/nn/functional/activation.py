"""Activation functions (elementwise non-linearities) and softmax.

Each takes one float32/float64 Tensor (checked by ``checks.check_tensor``: a numpy array or
a list gets a TypeError that says to wrap it) and returns a Tensor of its shape and dtype.
"""

from __future__ import annotations

from tinygrad_cnn.nn.functional.checks import check_tensor
from tinygrad_cnn.tensor import Tensor, _is_real_number


def relu(x: Tensor) -> Tensor:
    """max(0, x)."""
    return check_tensor("relu", "input", x).relu()


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    check_tensor("leaky_relu", "input", x)
    if not _is_real_number(negative_slope):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got {negative_slope!r}")
    return x.leaky_relu(negative_slope)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x)."""
    return check_tensor("sigmoid", "input", x).sigmoid()


def tanh(x: Tensor) -> Tensor:
    return check_tensor("tanh", "input", x).tanh()


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """e^x_i / sum_j e^x_j along ``dim``."""
    return check_tensor("softmax", "input", x).softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """x_i - log sum_j e^x_j along ``dim``, computed stably."""
    return check_tensor("log_softmax", "input", x).log_softmax(dim)
