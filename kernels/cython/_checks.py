"""Argument checks shared by the Cython backend's Python modules.

The compiled loops run with bounds checks off, so everything that decides an index (shapes,
dtypes, memory layout, strides, paddings) is checked here, in Python, before they run.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def pair(value: int | Sequence[int], name: str, minimum: int) -> tuple[int, int]:
    """``value`` as two ints (an int is used for both), each at least ``minimum``."""
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    first, second = (int(v) for v in value)
    if first < minimum or second < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {(first, second)}")
    return first, second


def padding4(value: int | Sequence[int]) -> tuple[int, int, int, int]:
    """Zero padding as (top, bottom, left, right); an int or (ph, pw) pads symmetrically."""
    if isinstance(value, (int, np.integer)):
        value = (value,) * 4
    value = tuple(int(v) for v in value)
    if len(value) == 2:
        value = (value[0], value[0], value[1], value[1])
    if len(value) != 4 or min(value) < 0:
        raise ValueError(f"padding must be 4 non-negative ints (top, bottom, left, right), got {value}")
    return value  # type: ignore[return-value]


def shape4(shape: Sequence[int], name: str) -> tuple[int, int, int, int]:
    """A 4-d shape as ints."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError(f"{name} must be a 4-d shape, got {shape}")
    return shape  # type: ignore[return-value]
