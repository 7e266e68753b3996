"""Keras's core layers: Dense over ``nn.Linear``, Flatten, Reshape, Dropout, Activation (and the
activation layers ReLU, LeakyReLU, Softmax), BatchNormalization, and the merge layers Add,
Subtract, Multiply, Average, Maximum, Minimum and Concatenate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import nn
from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.keras import activations, backend, initializers
from tinygrad_cnn.keras.layers.base import DENSE_LAYOUT, Layer, shape_text, unknown_product
from tinygrad_cnn.nn.functional.checks import check_flag, is_int, positive_int
from tinygrad_cnn.tensor import Tensor, cat

__all__ = [
    "Dense", "Flatten", "Reshape", "Dropout", "Activation", "ReLU", "LeakyReLU", "Softmax",
    "BatchNormalization", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
]


class Dense(Layer):
    """Fully connected layer on the last axis: y = activation(x kernel + bias), Keras kernel
    (in, units) over ``nn.Linear``'s weight (units, in). Parameters in units + units.
    Arguments: ``units``, ``activation=None``, ``use_bias=True``,
    ``kernel_initializer='glorot_uniform'``, ``bias_initializer='zeros'``."""

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = positive_int("Dense", "units", units)
        self.activation = activations.get(activation)
        self.use_bias = check_flag("Dense", "use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"layer '{self.name}' (Dense) needs inputs (batch, ..., features) with a known "
                             f"last axis, got {shape_text(input_shape)}")
        self.module = nn.Linear(input_shape[-1], self.units, bias=self.use_bias, dtype=self.dtype)
        self._track("kernel", self.module.weight, DENSE_LAYOUT, self.kernel_initializer)
        if self.use_bias:
            self._track("bias", self.module.bias, initializer=self.bias_initializer)
        self._expect(input_shape, len(input_shape), {-1: input_shape[-1]})

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def call(self, inputs: Tensor) -> Tensor:
        return self.activation(self.module(inputs))


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 d2 ...), in the input's order (channels_last: H, W, C).
    With ``data_format='channels_first'`` the input is (N, C, ...) and is put channels-last
    first, as Keras does, so a Dense layer after it sees the same order either way."""

    def __init__(self, data_format=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_format = backend.standardize_data_format(data_format)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], unknown_product(input_shape[1:]))

    def call(self, inputs: Tensor) -> Tensor:
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = inputs.permute(0, *range(2, inputs.ndim), 1)
        return inputs.reshape(inputs.shape[0], -1)


class Reshape(Layer):
    """(N, ...) -> (N, *target_shape); one entry may be -1 (inferred)."""

    def __init__(self, target_shape: Sequence[int], **kwargs) -> None:
        super().__init__(**kwargs)
        shape = tuple(target_shape) if isinstance(target_shape, (tuple, list)) else None
        if not shape or any(not is_int(s) or (s <= 0 and s != -1) for s in shape) or shape.count(-1) > 1:
            raise ValueError(f"Reshape: target_shape must be positive ints with at most one -1, "
                             f"got {target_shape!r}")
        self.target_shape = tuple(int(s) for s in shape)

    def compute_output_shape(self, input_shape):
        size = unknown_product(input_shape[1:])
        known = math.prod(s for s in self.target_shape if s != -1)
        if size is not None and (size % known if -1 in self.target_shape else size != known):
            raise ValueError(f"layer '{self.name}': cannot reshape {shape_text(input_shape)} to "
                             f"{self.target_shape}")
        fill = None if size is None else size // known
        return (input_shape[0], *(fill if s == -1 else s for s in self.target_shape))

    def call(self, inputs: Tensor) -> Tensor:
        return inputs.reshape(inputs.shape[0], *self.target_shape)


class Dropout(Layer):
    """In training, zero each value with probability ``rate`` and scale the others by 1 / (1 - rate);
    in inference the identity (``F.dropout``)."""

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        if noise_shape is not None or seed is not None:
            raise ValueError("Dropout: noise_shape and seed are not supported (seed the library with "
                             "tinygrad_cnn.manual_seed)")
        self.rate = float(rate)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs: Tensor) -> Tensor:
        return F.dropout(inputs, self.rate, self.training)


class Activation(Layer):
    """``Activation('relu')``: an activation function as a layer (see :mod:`..activations`)."""

    def __init__(self, activation, **kwargs) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs: Tensor) -> Tensor:
        return self.activation(inputs)


class ReLU(Activation):
    def __init__(self, **kwargs) -> None:
        super().__init__("relu", **kwargs)


class LeakyReLU(Activation):
    """max(x, 0) + negative_slope min(x, 0); Keras's default slope 0.3."""

    def __init__(self, negative_slope: float = 0.3, **kwargs) -> None:
        super().__init__(functools.partial(activations.leaky_relu, negative_slope=float(negative_slope)),
                         **kwargs)


class Softmax(Activation):
    def __init__(self, axis: int = -1, **kwargs) -> None:
        super().__init__(functools.partial(activations.softmax, axis=axis), **kwargs)


class BatchNormalization(Layer):
    """Batch normalisation over every axis but ``axis`` (the channels: -1 for channels_last),
    Keras's conventions, over ``nn.BatchNorm1d``'s parameters and buffers:

        training:  y = gamma (x - mean_B) / sqrt(var_B + epsilon) + beta,  var_B biased;
                   moving = momentum moving + (1 - momentum) batch statistic  (var_B biased too)
        inference: y = gamma (x - moving_mean) / sqrt(moving_variance + epsilon) + beta

    Keras's momentum (0.99) is the weight of the OLD value, PyTorch's (0.1) that of the new one,
    and Keras averages the biased batch variance where PyTorch takes the unbiased one, so the
    moving statistics are updated here, by Keras's rule. A frozen layer (``trainable=False``)
    normalises with its moving statistics even in training, as in Keras (transfer learning).
    Weights: gamma, beta (trainable), moving_mean, moving_variance (not): 4 C parameters.
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", **kwargs) -> None:
        super().__init__(**kwargs)
        if not is_int(axis):
            raise ValueError(f"BatchNormalization: axis must be an int, got {axis!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"BatchNormalization: epsilon must be positive, got {epsilon!r}")
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = check_flag("BatchNormalization", "center", center), \
            check_flag("BatchNormalization", "scale", scale)
        self.initializers = tuple(initializers.get(i) for i in (gamma_initializer, beta_initializer,
                                                                moving_mean_initializer,
                                                                moving_variance_initializer))

    def build(self, input_shape) -> None:
        rank = len(input_shape)
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"layer '{self.name}': axis {self.axis} is not a feature axis of inputs "
                             f"{shape_text(input_shape)}")
        self.axis %= rank
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(f"layer '{self.name}': axis {self.axis} of {shape_text(input_shape)} "
                             "must be known")
        m = self.module = nn.BatchNorm1d(channels, eps=self.epsilon, momentum=1 - self.momentum,
                                         dtype=self.dtype)
        gamma, beta, mean, variance = self.initializers
        if self.scale:
            self._track("gamma", m.weight, initializer=gamma)
        else:
            m.register_parameter("weight", None)
        if self.center:
            self._track("beta", m.bias, initializer=beta)
        else:
            m.register_parameter("bias", None)
        self._track("moving_mean", m.running_mean, initializer=mean, trainable=False)
        self._track("moving_variance", m.running_var, initializer=variance, trainable=False)
        self._expect(input_shape, rank, {self.axis: channels})

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs: Tensor) -> Tensor:
        # (N, ..., C, ...) -> (N, C, L): the channel axis second, the others flattened
        order = (0, self.axis, *(i for i in range(1, inputs.ndim) if i != self.axis))
        x = inputs.permute(*order) if self.axis != 1 else inputs
        shape = x.shape
        x = x.reshape(shape[0], shape[1], -1)
        m = self.module
        if self.training and self.trainable:
            y = F.batch_norm(x, None, None, m.weight, m.bias, True, eps=self.epsilon)
            self._update_moving_statistics(x)
        else:
            y = F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, eps=self.epsilon)
        y = y.reshape(*shape)
        return y.permute(*(int(i) for i in np.argsort(order))) if self.axis != 1 else y

    @no_grad()
    def _update_moving_statistics(self, x: Tensor) -> None:
        data = x.numpy().astype(np.float64)
        m, keep = self.module, self.momentum
        batch_statistics = ((m.running_mean, data.mean(axis=(0, 2))), (m.running_var, data.var(axis=(0, 2))))
        for tensor, batch in batch_statistics:
            tensor.data = (keep * tensor.data + (1 - keep) * batch).astype(tensor.dtype)


# ----------------------------------------------------------------- merging
class _Merge(Layer):
    """Element-wise merge of a list of inputs of one shape (Keras broadcasts size-1 axes too)."""

    def _shapes(self, input_shape) -> list[tuple]:
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) needs a list of at least two "
                             f"inputs, got {shape_text(input_shape) if input_shape else input_shape}")
        return [tuple(s) for s in input_shape]

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        if len({len(s) for s in shapes}) != 1:
            raise ValueError(f"layer '{self.name}': inputs of different ranks {shape_text(shapes)}")
        out = []
        for sizes in zip(*shapes):
            known = {s for s in sizes if s is not None and s != 1}
            if len(known) > 1:
                raise ValueError(f"layer '{self.name}' ({type(self).__name__}): input shapes "
                                 f"{shape_text(shapes)} do not match")
            out.append(known.pop() if known else (None if None in sizes else 1))
        return tuple(out)

    def build(self, input_shape) -> None:
        self.compute_output_shape(input_shape)

    def call(self, inputs: list[Tensor]) -> Tensor:
        self.compute_output_shape([list(t.shape) for t in inputs])
        return self._combine(list(inputs))

    def _combine(self, inputs: list[Tensor]) -> Tensor:
        return functools.reduce(self._merge, inputs[1:], inputs[0])


class Add(_Merge):
    def _merge(self, a, b):
        return a + b


class Subtract(_Merge):
    """inputs[0] - inputs[1] (exactly two inputs)."""

    def _shapes(self, input_shape):
        shapes = super()._shapes(input_shape)
        if len(shapes) != 2:
            raise ValueError(f"layer '{self.name}' (Subtract) takes exactly two inputs, got {len(shapes)}")
        return shapes

    def _merge(self, a, b):
        return a - b


class Multiply(_Merge):
    def _merge(self, a, b):
        return a * b


class Average(Add):
    def _combine(self, inputs):
        return super()._combine(inputs) / len(inputs)


class Maximum(_Merge):
    def _merge(self, a, b):
        return a.maximum(b)


class Minimum(_Merge):
    def _merge(self, a, b):
        return a.minimum(b)


class Concatenate(_Merge):
    """Join a list of inputs along ``axis`` (default -1, the channels of channels_last maps;
    U-Net's skip connections); the other axes must match."""

    def __init__(self, axis: int = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        if not is_int(axis):
            raise ValueError(f"Concatenate: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        rank = len(shapes[0])
        if len({len(s) for s in shapes}) != 1 or not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"layer '{self.name}': cannot concatenate {shape_text(shapes)} "
                             f"along axis {self.axis}")
        axis = self.axis % rank
        out = list(shapes[0])
        for i in range(rank):
            sizes = {s[i] for s in shapes}
            if i == axis:
                out[i] = None if None in sizes else sum(s[i] for s in shapes)
            elif len(sizes - {None}) > 1:
                raise ValueError(f"layer '{self.name}' (Concatenate): input shapes {shape_text(shapes)} "
                                 f"differ outside axis {self.axis}")
            else:
                out[i] = next(iter(sizes - {None}), None)
        return tuple(out)

    def call(self, inputs: list[Tensor]) -> Tensor:
        self.compute_output_shape([list(t.shape) for t in inputs])
        return cat(list(inputs), dim=self.axis % inputs[0].ndim)
