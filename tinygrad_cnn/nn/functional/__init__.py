"""``tinygrad_cnn.nn.functional`` (``F``): the differentiable operations of a network,
as plain functions of Tensors. The ``nn`` layers hold parameters and call these."""

from tinygrad_cnn.nn.functional.activation import (
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    tanh,
)

# Each op family's module lists its public names in __all__.
from tinygrad_cnn.nn.functional.conv import *  # noqa: E402,F403
from tinygrad_cnn.nn.functional.linear import dropout, linear
from tinygrad_cnn.nn.functional.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from tinygrad_cnn.nn.functional.normalization import *  # noqa: E402,F403
from tinygrad_cnn.nn.functional.padding import pad
from tinygrad_cnn.nn.functional.pooling import *  # noqa: E402,F403
from tinygrad_cnn.nn.functional.residual import *  # noqa: E402,F403

__all__ = [
    "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "linear", "dropout",
    "pad", "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]
# ... and the names of the families imported with * above
from tinygrad_cnn.nn.functional import conv as _conv, normalization as _norm  # noqa: E402,I001
from tinygrad_cnn.nn.functional import pooling as _pool, residual as _res  # noqa: E402,I001

__all__ += [*_conv.__all__, *_norm.__all__, *_pool.__all__, *_res.__all__]
