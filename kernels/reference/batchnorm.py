"""Batch normalization kernels written from the definition (training mode).

x is viewed as (N, C, L): channel c is normalized with statistics over its M = N * L
values (for images L = H * W, so each feature map shares one mean and variance):

    mean_c = (1/M) sum x,   var_c = (1/M) sum (x - mean_c)^2   (biased, as PyTorch)
    inv_std_c = 1 / sqrt(var_c + eps),   x_hat = (x - mean_c) inv_std_c
    y = weight_c x_hat + bias_c

``weight`` and ``bias`` are arrays of shape (C,) (``nn.functional`` passes ones and
zeros when the layer is not affine). Arrays are C-contiguous and of one dtype.

``relu=True`` fuses the ReLU that follows most batch norms (conv -> BN -> ReLU): the forward
returns max(y, 0), and the backward, given that output as ``relu_output``, first masks
grad_y where it is <= 0 (ReLU's backward, as ``residual.add_relu_backward``). The compiled
backends put the ReLU in the forward's write (no array for the pre-ReLU y); Numba's backward
also masks inside its two passes, Cython's in one vectorised pass before them.
"""

from __future__ import annotations

import numpy as np
from tinygrad_cnn.kernels.reference.residual import add_relu_backward


def batch_norm_forward_train(x, weight, bias, eps, relu=False):
    """y = weight * (x - mean) / sqrt(var + eps) + bias with biased batch statistics per
    channel, or max(y, 0) with ``relu`` (NaN stays NaN); returns (y, mean, inv_std), mean
    and inv_std of shape (C,)."""
    mean = x.mean(axis=(0, 2))
    centred = x - mean[None, :, None]
    var = (centred * centred).mean(axis=(0, 2))  # two passes: no cancellation as in E[x^2]-E[x]^2
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    y = centred * (inv_std * weight)[None, :, None] + bias[None, :, None]
    return (np.maximum(y, 0) if relu else y), mean, inv_std


def batch_norm_backward(grad_y, x, mean, inv_std, weight, relu_output=None):
    """Gradients of the training-mode forward pass; returns (grad_x, grad_weight, grad_bias).
    With ``relu_output`` (the forward's output with ``relu=True``), grad_y is first masked
    to 0 where that output is <= 0.

    With g = dL/dy and sums over the M values of a channel:

        grad_bias   = sum g
        grad_weight = sum g x_hat
        grad_x      = weight inv_std / M * (M g - grad_bias - x_hat grad_weight)

    The last line is the chain rule through x_hat, mean and var: moving one x moves
    the statistics of its whole channel, hence the two subtracted sums.
    """
    if relu_output is not None:  # ReLU's backward first, as the unfused pair runs it
        grad_y = add_relu_backward(grad_y, relu_output)
    m = x.shape[0] * x.shape[2]
    x_hat = (x - mean[None, :, None]) * inv_std[None, :, None]
    grad_bias = grad_y.sum(axis=(0, 2))
    grad_weight = (grad_y * x_hat).sum(axis=(0, 2))
    scale = (weight * inv_std / m)[None, :, None]
    grad_x = scale * (m * grad_y - grad_bias[None, :, None] - x_hat * grad_weight[None, :, None])
    return grad_x, grad_weight, grad_bias
