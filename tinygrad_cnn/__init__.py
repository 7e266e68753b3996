"""tinygrad_cnn: a readable Tensor with autograd, and convolutional networks built on it."""

from tinygrad_cnn import (
    cuda,
    data,
    models,
    nn,
    optim,
    quantization,
    theory,
    training,
    uncertainty,
    unsupervised,
)
from tinygrad_cnn.autograd import enable_grad, is_grad_enabled, no_grad
from tinygrad_cnn.kernels import get_backend, set_backend, use_backend
from tinygrad_cnn.random import manual_seed
from tinygrad_cnn.serialization import load, save
from tinygrad_cnn.summary import summary
from tinygrad_cnn.tensor import Tensor, bool_, cat, float32, float64, int64, stack, where

__version__ = "0.1.0"
__all__ = [
    "Tensor", "nn", "optim", "data", "models", "training", "theory", "cuda", "summary",
    "set_backend", "get_backend", "use_backend", "save", "load", "no_grad", "enable_grad",
    "is_grad_enabled", "manual_seed", "cat", "stack", "where", "float32", "float64", "int64", "bool_",
    "quantization",
]
__all__ += ["uncertainty", "unsupervised"]
