"""``tinygrad_cnn.data``: datasets that work offline."""

from tinygrad_cnn.data.datasets import load_digits

__all__ = ["load_digits"]
