"""Fully convolutional networks: a trained classifier's dense layers rewritten as convolutions.

A dense layer after ``Flatten`` reads a (C, H, W) feature map as one vector of C H W
numbers: ``y = W x + b`` with W of shape (K, C H W). Reshape W to (K, C, H, W) and it is a
convolution with an H x W kernel and no padding: on the original input it sees the whole
map once, so it gives the same K numbers (as a 1 x 1 map); every later dense layer
(K_out, K_in) becomes a 1 x 1 convolution. The rewritten network accepts *larger* inputs:
on an image bigger than the training size it slides the whole classifier over it, every
window at once, sharing the convolutions' work between overlapping windows, and returns
a map of class scores (N, classes, H', W'), each pixel the classifier's output for one
window (Long, Shelhamer & Darrell's fully convolutional networks; OverFeat's sliding
windows). With total stride s before the flatten (the product of the strides and pooling
factors) and a training input of h x w, score pixel (i, j) is the window whose top-left
corner is (i s, j s) on the canvas: H' = (H_canvas - h) / s + 1.

The windows are exact crops only where no zero padding reaches inside them (padding
sees the canvas's real neighbours instead of zeros) and adaptive poolings keep their
output size whatever the input, so they give no map.
"""

from __future__ import annotations

import copy
import math

from tinygrad_cnn.nn import layers
from tinygrad_cnn.nn.conv import Conv2d
from tinygrad_cnn.nn.layers import Flatten, Linear, LogSoftmax, Softmax
from tinygrad_cnn.nn.module import Module, Sequential

# layers that act on each number alone: the same on a feature vector or on a map
ELEMENTWISE = (layers.ReLU, layers.LeakyReLU, layers.Sigmoid, layers.Tanh, layers.Dropout, layers.Identity)

__all__ = ["convolutionalize"]


def convolutionalize(model: Module, input_shape: tuple[int, int, int] | None = None) -> Sequential:
    """A copy of ``model`` (an ``nn.Sequential``, possibly nested) whose ``Flatten`` and the
    ``Linear`` layers after it are replaced by equivalent convolutions.

    Args:
        model: ``Sequential(..., Flatten(), Linear, activations/Dropout, Linear, ...)``.
        input_shape: the (C, H, W) the classifier was trained on; it fixes the size of the
            map entering ``Flatten``. Without it that map is taken as square with the channel
            count of the last layer before ``Flatten`` that states one (``out_channels`` or
            ``num_features``).

    Shape: on the training size, (N, C, H, W) -> (N, K, 1, 1), equal to the classifier's
    (N, K) output; on a larger canvas, (N, K, H', W') class scores (see the module docs).
    ``Softmax``/``LogSoftmax`` after the dense layers become the same over dim 1 (classes).
    The original model is not changed; the copy shares no arrays with it.
    """
    if not isinstance(model, Sequential):
        raise TypeError(
            f"convolutionalize: needs an nn.Sequential (its layers in order), got {type(model).__name__}; "
            "a model with its own forward() cannot be rewritten layer by layer"
        )
    layers = _flat_layers(model)
    flat_at = next((i for i, m in enumerate(layers) if isinstance(m, Flatten)), None)
    if flat_at is None:
        raise ValueError("convolutionalize: the model has no nn.Flatten before its dense layers")
    flatten = layers[flat_at]
    if (flatten.start_dim, flatten.end_dim) != (1, -1):
        raise ValueError(f"convolutionalize: Flatten must flatten dims 1..-1, this one flattens "
                         f"{flatten.start_dim}..{flatten.end_dim}")
    head = layers[flat_at + 1:]
    first = next((m for m in head if isinstance(m, Linear)), None)
    if first is None:
        raise ValueError("convolutionalize: no nn.Linear after the Flatten")
    body = [copy.deepcopy(m) for m in layers[:flat_at]]
    map_shape = _map_shape(body, first.in_features, input_shape)
    converted, kernel = [], map_shape[1:]
    for layer in head:
        if isinstance(layer, Linear):
            converted.append(_linear_as_conv(layer, kernel))
            kernel = (1, 1)
        elif isinstance(layer, ELEMENTWISE):
            converted.append(copy.deepcopy(layer))
        elif isinstance(layer, (Softmax, LogSoftmax)) and layer.dim in (1, -1):
            converted.append(type(layer)(dim=1))
        else:
            raise ValueError(f"convolutionalize: {type(layer).__name__} after the Flatten has no "
                             "convolutional equivalent here (dense layers, activations and dropout do)")
    return Sequential(*body, *converted)


def _flat_layers(model: Sequential) -> list[Module]:
    """The leaves of nested Sequentials, in order (other modules stay whole)."""
    out: list[Module] = []
    for m in model:
        out.extend(_flat_layers(m) if isinstance(m, Sequential) else [m])
    return out


def _map_shape(body: list[Module], in_features: int, input_shape) -> tuple[int, int, int]:
    """(C, H, W) of the map that the Flatten received."""
    if input_shape is not None:
        from tinygrad_cnn.autograd import no_grad
        from tinygrad_cnn.tensor import Tensor

        if len(input_shape) != 3 or not all(isinstance(n, int) and n > 0 for n in input_shape):
            raise ValueError(f"convolutionalize: input_shape must be (C, H, W) positive ints, "
                             f"got {input_shape}")
        trunk = Sequential(*body).eval()
        dtype = next((p.dtype for p in trunk.parameters()), "float32")
        with no_grad():
            shape = trunk(Tensor.zeros(1, *input_shape, dtype=dtype)).shape[1:]
    else:
        channels = None
        for part in body:
            for m in part.modules():
                channels = getattr(m, "out_channels", None) or getattr(m, "num_features", None) or channels
        side = math.isqrt(in_features // channels) if channels else 0
        if not channels or channels * side * side != in_features:
            raise ValueError(f"convolutionalize: cannot tell the (C, H, W) of the {in_features} features "
                             "entering the first Linear; pass input_shape=(C, H, W)")
        shape = (channels, side, side)
    if len(shape) != 3 or math.prod(shape) != in_features:
        raise ValueError(f"convolutionalize: the Flatten receives a map of shape {tuple(shape)}, but the "
                         f"first Linear expects {in_features} features")
    return tuple(shape)


def _linear_as_conv(layer: Linear, kernel: tuple[int, int]) -> Conv2d:
    """Conv2d(in / (kH kW), out, kernel) with W reshaped to (out, C, kH, kW): the same sums."""
    out_features, in_features = layer.weight.shape
    channels = in_features // (kernel[0] * kernel[1])
    conv = Conv2d(channels, out_features, kernel, bias=layer.bias is not None, dtype=layer.weight.dtype)
    conv.weight.data = layer.weight.data.reshape(out_features, channels, *kernel).copy()
    conv.weight.requires_grad = layer.weight.requires_grad
    if layer.bias is not None:
        conv.bias.data = layer.bias.data.copy()
        conv.bias.requires_grad = layer.bias.requires_grad
    return conv
