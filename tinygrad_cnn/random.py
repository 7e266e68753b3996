"""The library's random number generator.

Every random draw (``Tensor.randn``, weight initialisation, dropout, data
shuffling) comes from one ``numpy.random.Generator``, so
``tinygrad_cnn.manual_seed(n)`` makes a whole training run repeatable.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the global generator (as ``torch.manual_seed``) and return it."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed expects a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    """The current global generator."""
    return _generator
