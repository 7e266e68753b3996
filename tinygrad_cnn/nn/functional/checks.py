"""Argument checks shared by every functional op and layer: declared apart from the math.

Each public function of ``nn.functional`` (and each ``nn`` layer) parses its arguments
once, with these helpers, and then does its math on values it can trust. Every error
is a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad value) that
names the function, the argument and the value at fault.

One rule for tensors: the tensors of one op are ``Tensor`` objects (not numpy arrays or
lists: wrap them with ``Tensor(...)``), floating point (float32 or float64), and all of
one dtype (PyTorch refuses a float64 input to float32 weights, and so do we).
"""

from __future__ import annotations

import numpy as np

from tinygrad_cnn.tensor import FLOAT_DTYPES, Tensor

LARGEST_ARGUMENT = 2**31 - 1  # compiled kernels index with 64-bit ints; larger values mean a typo


def is_int(value) -> bool:
    """True for Python and numpy integers, False for bools (``True`` is not a size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def require_tensor(fn: str, name: str, value) -> Tensor:
    """``value`` must be a Tensor (of any dtype: flatten and indexing take labels too)."""
    if not isinstance(value, Tensor):
        hint = " (wrap arrays with Tensor(...))" if isinstance(value, (np.ndarray, np.generic, list, tuple)) \
            else ""
        raise TypeError(f"{fn}: {name} must be a Tensor, got {type(value).__name__}{hint}")
    return value


def check_tensor(fn: str, name: str, value) -> Tensor:
    """``value`` must be a float32/float64 Tensor."""
    require_tensor(fn, name, value)
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {value.dtype}")
    return value


def check_float_tensors(fn: str, **tensors: Tensor | None) -> None:
    """Every named tensor (``None``: an optional one left out) is a float Tensor, all of one dtype."""
    present = {name: check_tensor(fn, name, t) for name, t in tensors.items() if t is not None}
    if len({t.dtype for t in present.values()}) > 1:
        listed = ", ".join(f"{name} {t.dtype}" for name, t in present.items())
        raise TypeError(f"{fn}: all tensors must share one dtype, got {listed} "
                        "(convert with .double() or .float())")


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
