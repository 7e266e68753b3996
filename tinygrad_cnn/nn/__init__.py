"""``tinygrad_cnn.nn``: layers that hold parameters, built on ``nn.functional``."""

from tinygrad_cnn.nn import functional, init

# Each layer family's module lists its public names in __all__.
from tinygrad_cnn.nn.conv import *  # noqa: E402,F403
from tinygrad_cnn.nn.layers import (
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from tinygrad_cnn.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from tinygrad_cnn.nn.module import Module, ModuleList, Parameter, Sequential
from tinygrad_cnn.nn.normalization import *  # noqa: E402,F403
from tinygrad_cnn.nn.pooling import *  # noqa: E402,F403
from tinygrad_cnn.nn.residual import *  # noqa: E402,F403
from tinygrad_cnn.nn.sync_batchnorm import *  # noqa: E402,F403

__all__ = [
    "functional", "init", "Module", "ModuleList", "Parameter", "Sequential", "Linear",
    "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Flatten",
    "Dropout", "CrossEntropyLoss", "NLLLoss", "MSELoss", "BCELoss", "BCEWithLogitsLoss",
]
