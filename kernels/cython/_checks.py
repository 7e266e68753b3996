"""The memory-safety checks of the Cython backend's Python modules.

The compiled loops run with bounds checks off, so before they run, every array they touch
must have exactly the shape the geometry says, one float dtype and a C-contiguous layout.
The arguments themselves (strides, paddings, sizes) were checked once, when
``nn.functional`` parsed them into the geometry object; nothing here normalises them again.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def floats(*arrays: np.ndarray, ndim: int | None = None) -> tuple[np.ndarray, ...]:
    """The arrays as C-contiguous float32/float64 arrays of one dtype (no copy when they are)."""
    dtype = np.asarray(arrays[0]).dtype
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"cython kernels take float32 or float64 arrays, got {dtype}")
    out = []
    for array in arrays:
        array = np.ascontiguousarray(array)
        if array.dtype != dtype:
            raise TypeError(f"all arrays must share one dtype: {dtype} and {array.dtype}")
        if ndim is not None and array.ndim != ndim:
            raise ValueError(f"expected a {ndim}-d array, got shape {array.shape}")
        out.append(array)
    return tuple(out)


def shaped(array: np.ndarray, shape, name: str) -> None:
    """``array`` must have exactly ``shape`` (the geometry's)."""
    if array.shape != tuple(shape):
        raise ValueError(f"{name} has shape {array.shape}, the geometry expects {tuple(shape)}")
