"""The fused residual join y = ReLU(a + b) and the plain ReLU on the GPU: one elementwise
kernel each way.

Same functions and arguments as ``kernels/reference/residual.py``: one pass over memory and
no temporary for a + b. NaN stays NaN forward and passes its gradient backward (PyTorch's
relu: its mask is "not y <= 0").
"""

from __future__ import annotations

from tinygrad_cnn.kernels.cupy import _runtime as rt

SOURCE = r"""
// y = max(a + b, 0); a NaN sum stays NaN (only a sum < 0 becomes 0).
template <typename T>
__global__ void add_relu(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y,
                         long long size) {
  GRID_STRIDE_LOOP(i, size) {
    const T s = a[i] + b[i];
    y[i] = s < 0 ? T(0) : s;
  }
}

// y = max(x, 0); NaN stays NaN.
template <typename T>
__global__ void relu(const T* __restrict__ x, T* __restrict__ y, long long size) {
  GRID_STRIDE_LOOP(i, size) {
    const T v = x[i];
    y[i] = v < 0 ? T(0) : v;
  }
}

// grad = 0 where y <= 0, else grad_y (a NaN y passes grad_y).
template <typename T>
__global__ void relu_mask(const T* __restrict__ grad_y, const T* __restrict__ y, T* __restrict__ grad,
                          long long size) {
  GRID_STRIDE_LOOP(i, size) { grad[i] = y[i] <= 0 ? T(0) : grad_y[i]; }
}

// grad = 0 where y <= 0, else grad_a + grad_b: the mask of the sum of two gradients.
template <typename T>
__global__ void relu_mask_of_sum(const T* __restrict__ grad_a, const T* __restrict__ grad_b,
                                 const T* __restrict__ y, T* __restrict__ grad, long long size) {
  GRID_STRIDE_LOOP(i, size) {
    const T g = grad_a[i] + grad_b[i];
    grad[i] = y[i] <= 0 ? T(0) : g;
  }
}
"""

PROGRAM = rt.Program("residual", SOURCE, ("add_relu", "relu", "relu_mask", "relu_mask_of_sum"))


def add_relu_forward(a, b):
    """y = max(a + b, 0), elementwise (a and b have the same shape and dtype)."""
    y = rt.xp().empty_like(a)
    rt.launch(PROGRAM, "add_relu", a.dtype, a.size, a, b, y, a.size)
    return y


def relu_forward(x):
    """y = max(x, 0), elementwise."""
    y = rt.xp().empty_like(x)
    rt.launch(PROGRAM, "relu", x.dtype, x.size, x, y, x.size)
    return y


def add_relu_backward(grad_y, y):
    """dL/da = dL/db = grad_y where y > 0 (or NaN), else 0."""
    grad = rt.xp().empty_like(grad_y)
    rt.launch(PROGRAM, "relu_mask", grad_y.dtype, y.size, grad_y, y, grad, y.size)
    return grad


def add_relu_backward_of_sum(grad_a, grad_b, y):
    """add_relu_backward(grad_a + grad_b, y), in one pass."""
    grad = rt.xp().empty_like(grad_a)
    rt.launch(PROGRAM, "relu_mask_of_sum", grad_a.dtype, y.size, grad_a, grad_b, y, grad, y.size)
    return grad
