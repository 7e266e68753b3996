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

# the checks of plain values (sizes, ints, flags), here too so each op needs one import
from tinygrad_cnn.arguments import LARGEST_ARGUMENT, check_flag, int_tuple, is_int, positive_int  # noqa: F401
from tinygrad_cnn.tensor import FLOAT_DTYPES, Tensor


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





