"""``tinygrad_cnn.nn``: layers that hold parameters, built on ``nn.functional``."""

from tinygrad_cnn.nn import functional, init

# Each layer family's module lists its public names in __all__.
from tinygrad_cnn.nn.binarized import *  # noqa: E402,F403
from tinygrad_cnn.nn.causal import *  # noqa: E402,F403
from tinygrad_cnn.nn.conv import *  # noqa: E402,F403
from tinygrad_cnn.nn.convolutionalize import convolutionalize
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
    "convolutionalize",
]
# ... and the names of the families imported with * above
from tinygrad_cnn.nn import conv as _conv, normalization as _norm, pooling as _pool, residual as _res  # noqa: E402,I001

__all__ += [*_conv.__all__, *_norm.__all__, *_pool.__all__, *_res.__all__]
