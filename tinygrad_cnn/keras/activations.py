"""Keras's activation functions by name (``activation='relu'``), as Tensor operations.

Each one is built from differentiable ops of the engine, so autograd gives its derivative:
``elu(x) = relu(x) + exp(min(x, 0)) - 1`` (the exponential only ever sees x <= 0, so a large
input cannot overflow into a NaN gradient), ``softplus(x) = relu(x) + log(1 + exp(-|x|))``.
``softmax`` normalises over the last axis (the classes of a channels-last output).
"""

from __future__ import annotations

from collections.abc import Callable

from tinygrad_cnn.tensor import Tensor

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def linear(x: Tensor) -> Tensor:
    return x


def relu(x: Tensor) -> Tensor:
    return x.relu()


def relu6(x: Tensor) -> Tensor:
    return x.clamp(0.0, 6.0)


def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    """Keras 3's default slope is 0.2 (PyTorch's 0.01)."""
    return x.leaky_relu(negative_slope)


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def hard_sigmoid(x: Tensor) -> Tensor:
    """relu6(x + 3) / 6, Keras 3's piecewise-linear sigmoid."""
    return (x / 6.0 + 0.5).clamp(0.0, 1.0)


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.softmax(axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.log_softmax(axis)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return x.relu() + (x.clamp(max=0.0).exp() - 1.0) * alpha


def selu(x: Tensor) -> Tensor:
    return elu(x, _SELU_ALPHA) * _SELU_SCALE


def softplus(x: Tensor) -> Tensor:
    return x.relu() + ((-x.abs()).exp() + 1.0).log()


def softsign(x: Tensor) -> Tensor:
    return x / (x.abs() + 1.0)


def swish(x: Tensor) -> Tensor:
    return x * x.sigmoid()


def exponential(x: Tensor) -> Tensor:
    return x.exp()


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": linear, "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid, "tanh": tanh, "softmax": softmax, "log_softmax": log_softmax,
    "elu": elu, "selu": selu, "softplus": softplus, "softsign": softsign, "swish": swish,
    "silu": swish, "exponential": exponential,
}


def get(identifier) -> Callable[[Tensor], Tensor]:
    """A name from ACTIVATIONS, ``None`` (linear) or a function of a Tensor."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return ACTIVATIONS[identifier.lower()]
        except KeyError:
            raise ValueError(f"unknown activation {identifier!r}; expected one of {sorted(ACTIVATIONS)} "
                             "or a function of a Tensor") from None
    if callable(identifier):
        return identifier
    raise TypeError(f"activation must be a name, None or a callable, got {identifier!r}")


def name_of(function: Callable) -> str:
    """The Keras name of an activation function (for ``get_config`` and the summary)."""
    for name, fn in ACTIVATIONS.items():
        if fn is function:
            return name
    return getattr(function, "__name__", repr(function))
