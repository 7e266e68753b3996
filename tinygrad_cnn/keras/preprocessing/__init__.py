"""``tinygrad_cnn.keras.preprocessing``: ``image.ImageDataGenerator`` and single-image helpers."""

from tinygrad_cnn.keras.preprocessing import image

__all__ = ["image"]
