"""``tinygrad_cnn.keras.layers``: Keras's layers, each over tinygrad_cnn's own modules and ops."""

from tinygrad_cnn.keras.layers.base import Input, InputLayer, KerasTensor, Layer, Weight
from tinygrad_cnn.keras.layers.conv import *  # noqa: F403
from tinygrad_cnn.keras.layers.conv import __all__ as _conv
from tinygrad_cnn.keras.layers.core import *  # noqa: F403
from tinygrad_cnn.keras.layers.core import __all__ as _core
from tinygrad_cnn.keras.layers.pooling import *  # noqa: F403
from tinygrad_cnn.keras.layers.pooling import __all__ as _pooling

__all__ = ["Input", "InputLayer", "KerasTensor", "Layer", "Weight", *_conv, *_core, *_pooling]
