"""The fused residual join y = ReLU(a + b) of a ResNet block (shortcut a, residual b),
and the plain ReLU y = max(x, 0) it extends.

Fusing the add and the ReLU saves one pass over memory and one saved array: the
backward pass needs only y, since d max(s, 0)/ds = 1 exactly where y > 0. The same
backward serves the plain ReLU (the join with b = 0).
"""

from __future__ import annotations

import numpy as np


def add_relu_forward(a, b):
    """y = max(a + b, 0), elementwise (a and b have the same shape)."""
    return np.maximum(a + b, 0)


def relu_forward(x):
    """y = max(x, 0), elementwise; NaN stays NaN (its backward is :func:`add_relu_backward`)."""
    return np.maximum(x, 0)


def add_relu_backward(grad_y, y):
    """dL/da = dL/db = grad_y where y > 0, else 0 (0 at the kink, as ReLU); one array,
    since the same gradient flows to both inputs. Where y is NaN the gradient passes, as
    in PyTorch (its mask is "not y <= 0")."""
    return grad_y * ~(y <= 0)


def add_relu_backward_of_sum(grad_a, grad_b, y):
    """:func:`add_relu_backward` of grad_a + grad_b: where the join's output y also feeds two
    paths (the next block's convolution and its shortcut), the two gradients that come back
    are added and masked in one pass by the compiled backends."""
    return add_relu_backward(grad_a + grad_b, y)
