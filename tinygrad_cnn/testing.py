"""Gradient checking: compare autograd with central finite differences.

For a function f and inputs x, autograd computes the vector-Jacobian product
v^T J for a cotangent v. Central differences estimate the directional
derivative  d/dt <v, f(x + t u)> = (<v, f(x + e u)> - <v, f(x - e u)>) / 2e
with error O(e^2). They must match <v^T J, u> for every direction u: the unit
vectors (every entry, the default) or random directions (fast mode). float64 is
required, since in float32 the difference quotient drowns in rounding error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.device import xp_of
from tinygrad_cnn.tensor import Tensor


class GradcheckError(AssertionError):
    """Autograd and finite differences disagree."""


def _as_output(result) -> Tensor:
    if isinstance(result, (tuple, list)):
        result = result[0]
    return result


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    n_directions: int | None = None,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Check the gradients of ``fn(*inputs)`` w.r.t. every input that requires grad.

    ``n_directions=None`` checks every entry of every input (the full Jacobian
    against one random cotangent); an int checks that many random directions per
    input instead (for large inputs). Tolerances follow torch.autograd.gradcheck:
    |analytic - numeric| <= atol + rtol * |numeric|.
    """
    inputs = list(inputs)
    rng = np.random.default_rng(seed)
    for i, x in enumerate(inputs):
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; use float64 inputs")
    out = _as_output(fn(*inputs))
    cotangent = rng.standard_normal(out.shape)
    for x in inputs:
        x.grad = None
    (out * Tensor(cotangent, dtype=out.dtype, device=out.device)).sum().backward()
    analytic = [None if not x.requires_grad or x.grad is None else x.grad.numpy().copy()
                for x in inputs]

    def projected(x_index: int, direction: np.ndarray, step: float) -> float:
        x = inputs[x_index]
        original = x.data
        x.data = original + step * xp_of(original).asarray(direction)  # on x's device
        with no_grad():
            value = _as_output(fn(*inputs)).numpy()
        x.data = original
        return float((value * cotangent).sum())

    for i, x in enumerate(inputs):
        if not x.requires_grad:
            continue
        grad = analytic[i] if analytic[i] is not None else np.zeros(x.shape)
        if n_directions is None:
            directions = (np.eye(1, x.data.size, k).reshape(x.shape) for k in range(x.data.size))
        else:
            directions = (rng.standard_normal(x.shape) for _ in range(n_directions))
        for k, u in enumerate(directions):
            numeric = (projected(i, u, eps) - projected(i, u, -eps)) / (2 * eps)
            exact = float((grad * u).sum())
            if abs(exact - numeric) > atol + rtol * abs(numeric):
                where = (f"entry {np.unravel_index(k, x.shape)}" if n_directions is None
                         else f"random direction {k}")
                message = (f"gradcheck: input {i} (shape {x.shape}), {where}: autograd gives "
                           f"{exact:.8g}, finite differences {numeric:.8g}")
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True
