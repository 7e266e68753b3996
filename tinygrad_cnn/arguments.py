"""Checks of plain argument values (ints, sizes, flags), shared by the Tensor and every op.

Every error is a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad
value) that names the function, the argument and the value at fault. The checks of
tensors themselves live in ``nn/functional/checks.py``, which re-exports these.
"""

from __future__ import annotations

import numpy as np

LARGEST_ARGUMENT = 2**31 - 1  # compiled kernels index with 64-bit ints; larger values mean a typo


def is_int(value) -> bool:
    """True for Python and numpy integers, False for bools (``True`` is not a size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))



def check_flag(fn: str, name: str, value) -> bool:
    """A bool (numpy's too); any other truthy value (``'False'``, 1) is refused, not guessed."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be True or False, got {value!r}")
    return bool(value)



def int_tuple(fn: str, name: str, value, n: int, minimum: int = 1) -> tuple[int, ...]:
    """An int (the same for each of ``n`` dims) or a tuple/list of exactly ``n`` ints, each in
    [minimum, LARGEST_ARGUMENT]: the one normaliser for sizes, strides, dilations and paddings."""
    if is_int(value):
        values = (int(value),) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(is_int(v) for v in value):
        values = tuple(int(v) for v in value)
    else:
        raise ValueError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in values):
        rule = {0: "non-negative", 1: "positive"}.get(minimum, f"at least {minimum}")
        raise ValueError(f"{fn}: {name} must be {rule}, got {value!r}")
    if any(v > LARGEST_ARGUMENT for v in values):
        raise ValueError(f"{fn}: {name} {value!r} is too large (at most {LARGEST_ARGUMENT})")
    return values



def positive_int(fn: str, name: str, value) -> int:
    """One positive int (channels, features, groups), at most LARGEST_ARGUMENT."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")
    if value > LARGEST_ARGUMENT:
        raise ValueError(f"{fn}: {name} {value!r} is too large (at most {LARGEST_ARGUMENT})")
    return int(value)
