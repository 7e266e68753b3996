"""``tinygrad_cnn.keras.models``: ``Sequential`` and ``Model``, where the course imports them from."""

from tinygrad_cnn.keras.model import Model, Sequential

__all__ = ["Model", "Sequential"]
