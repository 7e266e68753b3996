"""The ``quantized`` (int8) family under ``set_backend("cython")``: there is no Cython version.

Every function here runs the **Numba** kernel of the same name (``kernels/numba/quantized.py``),
so int8 inference gives the same integers on every CPU backend. The Numba module is imported
on the first call, not when the backend is chosen: loading the Numba backend pins the BLAS
libraries to one thread (``kernels/blas_threads.claim_cores``), which must not happen to a
Cython user who never runs a quantized model.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["requantize", "conv2d", "linear", "avg_pool2d", "max_pool2d"]


def _numba() -> ModuleType:
    return importlib.import_module("tinygrad_cnn.kernels.numba.quantized")


def requantize(*args):
    """Numba's ``requantize`` (no Cython version of this family)."""
    return _numba().requantize(*args)


def conv2d(*args):
    """Numba's ``conv2d`` (no Cython version of this family)."""
    return _numba().conv2d(*args)


def linear(*args):
    """Numba's ``linear`` (no Cython version of this family)."""
    return _numba().linear(*args)


def avg_pool2d(*args):
    """Numba's ``avg_pool2d`` (no Cython version of this family)."""
    return _numba().avg_pool2d(*args)


def max_pool2d(*args):
    """Numba's ``max_pool2d`` (no Cython version of this family)."""
    return _numba().max_pool2d(*args)
