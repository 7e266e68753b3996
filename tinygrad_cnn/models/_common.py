"""Small helpers shared by the model definitions."""

from __future__ import annotations

import math

from tinygrad_cnn import nn
from tinygrad_cnn.nn import init


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, groups: int = 1) -> nn.Sequential:
    """conv (no bias: the batch norm's shift replaces it) -> BN -> ReLU, the modern unit."""
    padding = kernel_size // 2 if padding is None else padding
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups,
                  bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def init_weights(model: nn.Module, linear_std: float | None = None) -> nn.Module:
    """He (Kaiming) initialisation for ReLU networks, as torchvision: convolution weights
    ~ N(0, 2 / fan_out), zero conv biases, batch norm gamma = 1 and beta = 0; linear layers
    N(0, linear_std^2) with zero bias when ``linear_std`` is given (else PyTorch's default)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.weight is not None:
            init.ones_(m.weight)
            init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                init.zeros_(m.bias)
    return model


def check_positive(name: str, **values) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}: {key} must be a positive int, got {value!r}")


def scaled(channels: int, width: float) -> int:
    """channels * width, at least 1 (for slimmer variants of a network)."""
    return max(1, int(math.floor(channels * width + 0.5)))
