"""Batch normalization kernels written from the definition (training mode).

x is viewed as (N, C, L): channel c is normalized with statistics over its M = N * L
values (for images L = H * W, so each feature map shares one mean and variance):

    mean_c = (1/M) sum x,   var_c = (1/M) sum (x - mean_c)^2   (biased, as PyTorch)
    inv_std_c = 1 / sqrt(var_c + eps),   x_hat = (x - mean_c) inv_std_c
    y = weight_c x_hat + bias_c

``weight`` and ``bias`` are arrays of shape (C,) (``nn.functional`` passes ones and
zeros when the layer is not affine). Arrays are C-contiguous and of one dtype.
"""

from __future__ import annotations

import numpy as np


def batch_norm_forward_train(x, weight, bias, eps):
    """y = weight * (x - mean) / sqrt(var + eps) + bias with biased batch statistics per
    channel; returns (y, mean, inv_std), mean and inv_std of shape (C,)."""
    mean = x.mean(axis=(0, 2))
    centred = x - mean[None, :, None]
    var = (centred * centred).mean(axis=(0, 2))  # two passes: no cancellation as in E[x^2]-E[x]^2
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    y = centred * (inv_std * weight)[None, :, None] + bias[None, :, None]
    return y, mean, inv_std


def batch_norm_backward(grad_y, x, mean, inv_std, weight):
    """Gradients of the training-mode forward pass; returns (grad_x, grad_weight, grad_bias).

    With g = dL/dy and sums over the M values of a channel:

        grad_bias   = sum g
        grad_weight = sum g x_hat
        grad_x      = weight inv_std / M * (M g - grad_bias - x_hat grad_weight)

    The last line is the chain rule through x_hat, mean and var: moving one x moves
    the statistics of its whole channel, hence the two subtracted sums.
    """
    m = x.shape[0] * x.shape[2]
    x_hat = (x - mean[None, :, None]) * inv_std[None, :, None]
    grad_bias = grad_y.sum(axis=(0, 2))
    grad_weight = (grad_y * x_hat).sum(axis=(0, 2))
    scale = (weight * inv_std / m)[None, :, None]
    grad_x = scale * (m * grad_y - grad_bias[None, :, None] - x_hat * grad_weight[None, :, None])
    return grad_x, grad_weight, grad_bias
