"""Differentiable tensor operations as :class:`~tinygrad_cnn.autograd.Function` s.

Each class states the derivative it implements. All of them work on numpy and
cupy arrays alike (``xp_of``). Binary operations broadcast as numpy does; their
backward passes "un-broadcast" the incoming gradient by summing over the
dimensions that broadcasting stretched (a value used many times receives the
sum of the gradients of its uses).

Longer than 500 lines: one short class per primitive (forward and derivative on one
screen each, as micrograd); the convolution-family ops are in ``nn.functional``.
"""

from __future__ import annotations

import numpy as np

from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import xp_of


def unbroadcast(grad, shape: tuple[int, ...]):
    """Sum ``grad`` down to ``shape``: the adjoint of numpy broadcasting."""
    if grad.shape == shape:
        return grad
    leading = grad.ndim - len(shape)
    if leading:
        grad = grad.sum(axis=tuple(range(leading)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


# ---------------------------------------------------------------- binary ops
class Add(Function):
    """z = x + y;  dz/dx = 1, dz/dy = 1."""

    def forward(self, x, y):
        self.shapes = x.shape, y.shape
        return x + y

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    """z = x - y;  dz/dx = 1, dz/dy = -1."""

    def forward(self, x, y):
        self.shapes = x.shape, y.shape
        return x - y

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    """z = x * y;  dz/dx = y, dz/dy = x."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, g):
        gx = unbroadcast(g * self.y, self.x.shape) if self.needs_input_grad[0] else None
        gy = unbroadcast(g * self.x, self.y.shape) if self.needs_input_grad[1] else None
        return gx, gy


class Div(Function):
    """z = x / y;  dz/dx = 1/y, dz/dy = -x/y^2."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return x / y

    def backward(self, g):
        gx = unbroadcast(g / self.y, self.x.shape) if self.needs_input_grad[0] else None
        gy = (
            unbroadcast(-g * self.x / (self.y * self.y), self.y.shape)
            if self.needs_input_grad[1]
            else None
        )
        return gx, gy


class Pow(Function):
    """z = x ** y;  dz/dx = y x^(y-1) (0 where y = 0, also at x = 0), dz/dy = x^y ln x
    (defined for x > 0)."""

    def forward(self, x, y):
        self.x, self.y = x, y
        self.z = x**y
        return self.z

    def backward(self, g):
        xp = xp_of(g)
        gx = gy = None
        if self.needs_input_grad[0]:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** -1 where y = 0, masked
                slope = xp.where(self.y == 0, 0, self.y * self.x ** (self.y - 1))  # x^0: slope 0
            gx = unbroadcast(g * slope.astype(g.dtype, copy=False), self.x.shape)
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_x = xp.where(self.x > 0, xp.log(xp.where(self.x > 0, self.x, 1)), 0)
            gy = unbroadcast(g * self.z * log_x, self.y.shape)
        return gx, gy


class Maximum(Function):
    """z = max(x, y); the gradient goes to the larger input (split equally on ties)."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return xp_of(x).maximum(x, y)

    def backward(self, g):
        x_wins = (self.x > self.y) + 0.5 * (self.x == self.y)
        return (
            unbroadcast(g * x_wins, self.x.shape),
            unbroadcast(g * (1 - x_wins), self.y.shape),
        )


class Minimum(Function):
    """z = min(x, y); the gradient goes to the smaller input (split equally on ties)."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return xp_of(x).minimum(x, y)

    def backward(self, g):
        x_wins = (self.x < self.y) + 0.5 * (self.x == self.y)
        return (
            unbroadcast(g * x_wins, self.x.shape),
            unbroadcast(g * (1 - x_wins), self.y.shape),
        )


class Where(Function):
    """z = cond ? x : y;  dz/dx = cond, dz/dy = not cond (cond is not differentiable)."""

    def forward(self, x, y, condition):
        condition = xp_of(x).asarray(condition)  # a numpy mask moves to x's device
        self.condition, self.shapes = condition, (x.shape, y.shape)
        return xp_of(x).where(condition, x, y)

    def backward(self, g):
        zero = g.dtype.type(0)
        return (
            unbroadcast(xp_of(g).where(self.condition, g, zero), self.shapes[0]),
            unbroadcast(xp_of(g).where(self.condition, zero, g), self.shapes[1]),
        )


class MatMul(Function):
    """Z = X @ Y (batched, broadcasting batch dims);  dL/dX = G Y^T, dL/dY = X^T G.

    1-D operands follow numpy: a vector on the left is a row, on the right a column.
    """

    def forward(self, x, y):
        self.x, self.y = x, y
        return x @ y

    def backward(self, g):
        xp = xp_of(g)
        # Promote 1-D operands to matrices, and g to the matching product shape.
        x = self.x[None, :] if self.x.ndim == 1 else self.x
        y = self.y[:, None] if self.y.ndim == 1 else self.y
        g = g.reshape(np.broadcast_shapes(x.shape[:-2], y.shape[:-2]) + (x.shape[-2], y.shape[-1]))
        gx = gy = None
        if self.needs_input_grad[0]:
            gx = unbroadcast(g @ xp.swapaxes(y, -1, -2), x.shape).reshape(self.x.shape)
        if self.needs_input_grad[1]:
            gy = unbroadcast(xp.swapaxes(x, -1, -2) @ g, y.shape).reshape(self.y.shape)
        return gx, gy


# ----------------------------------------------------------------- unary ops
class Neg(Function):
    """z = -x."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Exp(Function):
    """z = e^x;  dz/dx = e^x."""

    def forward(self, x):
        self.z = xp_of(x).exp(x)
        return self.z

    def backward(self, g):
        return g * self.z


class Log(Function):
    """z = ln x;  dz/dx = 1/x."""

    def forward(self, x):
        self.x = x
        return xp_of(x).log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    """z = sqrt(x);  dz/dx = 1 / (2 sqrt(x))."""

    def forward(self, x):
        self.z = xp_of(x).sqrt(x)
        return self.z

    def backward(self, g):
        return g / (2 * self.z)


class Abs(Function):
    """z = |x|;  dz/dx = sign(x) (0 at 0, as PyTorch)."""

    def forward(self, x):
        self.x = x
        return xp_of(x).abs(x)

    def backward(self, g):
        return g * xp_of(g).sign(self.x)


class Tanh(Function):
    """z = tanh x;  dz/dx = 1 - z^2."""

    def forward(self, x):
        self.z = xp_of(x).tanh(x)
        return self.z

    def backward(self, g):
        return g * (1 - self.z * self.z)


class Sigmoid(Function):
    """z = 1 / (1 + e^-x), computed without overflow;  dz/dx = z (1 - z)."""

    def forward(self, x):
        xp = xp_of(x)
        e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
        self.z = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self.z

    def backward(self, g):
        return g * self.z * (1 - self.z)


class LeakyReLU(Function):
    """z = x if x > 0 else slope * x (ReLU is slope 0);  dz/dx = 1 or slope (slope at 0).

    NaN stays NaN, and its gradient follows PyTorch: ReLU passes it (its mask is
    "not x <= 0"), a leaky ReLU scales it by the slope (its mask is "x > 0")."""

    def forward(self, x, negative_slope=0.0):
        self.slope = negative_slope
        if negative_slope == 0.0:
            self.positive = ~(x <= 0)
            return xp_of(x).where(self.positive, x, x.dtype.type(0))  # (x * mask: -inf * 0 = NaN)
        self.positive = x > 0
        return xp_of(x).where(self.positive, x, x * x.dtype.type(negative_slope))

    def backward(self, g):
        if self.slope == 0.0:
            return g * self.positive
        return xp_of(g).where(self.positive, g, g * g.dtype.type(self.slope))


class Clamp(Function):
    """z = min(max(x, low), high);  dz/dx = 1 inside [low, high], 0 outside."""

    def forward(self, x, low=None, high=None):
        self.inside = xp_of(x).ones(x.shape, dtype=bool)
        if low is not None:
            self.inside &= x >= low
        if high is not None:
            self.inside &= x <= high
        return xp_of(x).clip(x, low, high).astype(x.dtype, copy=False)

    def backward(self, g):
        return g * self.inside


class ClampTensor(Function):
    """z = min(max(x, low), high) with Tensor bounds (broadcasting), as PyTorch's clamp:
    dz/dx = 1 where low <= x <= high; dz/dlow = 1 where x < low (and low < high);
    dz/dhigh = 1 where x > high, or everywhere high < low (then z = high)."""

    def forward(self, x, *bounds, has_low=True, has_high=True):
        xp = xp_of(x)
        bounds = iter(bounds)
        low = next(bounds) if has_low else None
        high = next(bounds) if has_high else None
        self.shapes = [x.shape] + [b.shape for b in (low, high) if b is not None]
        inside = xp.ones(np.broadcast_shapes(*self.shapes), dtype=bool)
        self.masks = []
        z = x
        if low is not None:
            inside = inside & (x >= low)
            below = x < low if high is None else (x < low) & (low < high)
            self.masks.append(below)
            z = xp.maximum(z, low)
        if high is not None:
            inside = inside & (x <= high)
            self.masks.append((x > high) | (high < low) if low is not None else x > high)
            z = xp.minimum(z, high)
        self.inside = inside
        return xp.broadcast_to(z, inside.shape).astype(x.dtype, copy=True)

    def backward(self, g):
        zero = g.dtype.type(0)
        xp = xp_of(g)
        masks = [self.inside] + self.masks
        return tuple(unbroadcast(xp.where(mask, g, zero), shape) for mask, shape in zip(masks, self.shapes))


# ---------------------------------------------------------------- reductions
def _expand_reduced(g, shape, axes, keepdim):
    """Give a reduced gradient back the reduced axes (size 1) so it broadcasts."""
    if not keepdim:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return g


class Sum(Function):
    """z = sum over ``axes`` (a tuple);  dz/dx_i = 1 for every summed element."""

    def forward(self, x, axes=(), keepdim=False):
        self.shape, self.axes, self.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim)

    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axes, self.keepdim)
        return xp_of(g).broadcast_to(g, self.shape).copy()


class Max(Function):
    """z = max (or min) over ``axes``; the gradient is shared equally by the
    elements that attain it (PyTorch's ``amax`` convention); a NaN is the extreme of its
    slice (numpy's and PyTorch's max), so the NaNs share that gradient."""

    def forward(self, x, axes=(), keepdim=False, minimum=False):
        self.shape, self.axes, self.keepdim = x.shape, axes, keepdim
        z = (x.min if minimum else x.max)(axis=axes, keepdims=True)
        xp = xp_of(x)
        self.is_extreme = (x == z) | (xp.isnan(x) & xp.isnan(z))
        return z if keepdim else z.squeeze(axis=axes)

    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axes, self.keepdim)
        count = self.is_extreme.sum(axis=self.axes, keepdims=True)
        return g * self.is_extreme / count


class TakeAlongAxis(Function):
    """z = x[..., index, ...] along one axis (the gather used by max(dim) and losses).

    The backward pass scatters with ``add.at``: an element that the index picks twice
    receives both gradients (``put_along_axis`` would keep only the last one).
    """

    def forward(self, x, index, axis=0):
        index = _index_on_device_of(x, index)
        self.shape, self.index, self.axis = x.shape, index, axis
        return xp_of(x).take_along_axis(x, index, axis=axis)

    def backward(self, g):
        xp = xp_of(g)
        gx = xp.zeros(self.shape, dtype=g.dtype)
        where = list(xp.ix_(*(xp.arange(n) for n in self.index.shape)))  # every other axis: itself
        where[self.axis] = self.index
        xp.add.at(gx, tuple(where), g)
        return gx


# ------------------------------------------------------------- movement ops
def _index_on_device_of(x, index):
    """Array indices (numpy, e.g. class labels) moved to the device of ``x``: cupy arrays are
    indexed by cupy arrays."""
    xp = xp_of(x)
    if xp is np:
        return index
    if isinstance(index, tuple):
        return tuple(xp.asarray(i) if isinstance(i, np.ndarray) else i for i in index)
    return xp.asarray(index) if isinstance(index, np.ndarray) else index


class Reshape(Function):
    def forward(self, x, shape=()):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


class Permute(Function):
    def forward(self, x, order=()):
        self.order = order
        return x.transpose(order)

    def backward(self, g):
        return g.transpose(np.argsort(self.order))


class Cast(Function):
    """z = x in another float dtype (the same values, rounded to float32 or widened);
    dz/dx = 1, the gradient cast back to x's dtype."""

    def forward(self, x, dtype=None):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


class Contiguous(Function):
    """z = x copied into C order (the same values);  dz/dx = 1."""

    def forward(self, x):
        return xp_of(x).ascontiguousarray(x)

    def backward(self, g):
        return g


class Expand(Function):
    """Broadcast to a larger shape; the backward pass sums over the copies."""

    def forward(self, x, shape=()):
        self.shape = x.shape
        return xp_of(x).broadcast_to(x, shape)

    def backward(self, g):
        return unbroadcast(g, self.shape)


class GetItem(Function):
    """z = x[index] (basic slicing and integer-array indexing).

    The backward pass scatters with ``add.at``, so an element picked twice by an
    integer index receives both gradients. An index of slices, integers, ``None``,
    ``...`` and boolean masks picks each element at most once, so there a plain
    assignment does the same (``add.at`` is about 50x slower: ResNet-20's stride-2
    shortcuts ``x[:, :, ::2, ::2]`` took 1.3 ms each).
    """

    def forward(self, x, index=()):
        index = _index_on_device_of(x, index)
        self.shape, self.index = x.shape, index
        return x[index]

    def backward(self, g):
        xp = xp_of(g)
        gx = xp.zeros(self.shape, dtype=g.dtype)
        if _picks_each_once(self.index):
            gx[self.index] = g
        else:
            xp.add.at(gx, self.index, g)
        return gx


def _picks_each_once(index) -> bool:
    """True when ``x[index]`` cannot pick an element twice: only slices, Python ints, None,
    ``...`` and boolean arrays in it (a list or an integer array may repeat an element)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(part, (slice, int)) or part is None or part is Ellipsis
               or (hasattr(part, "dtype") and part.dtype == bool and part.ndim > 0) for part in parts)


class Concatenate(Function):
    """z = [x_1, x_2, ...] joined along ``axis``; the gradient is split back."""

    def forward(self, *xs, axis=0):
        self.axis = axis
        self.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return xp_of(xs[0]).concatenate(xs, axis=axis)

    def backward(self, g):
        return tuple(xp_of(g).split(g, self.bounds, axis=self.axis))


class Pad(Function):
    """Pad every axis by (before, after) with a constant, reflection, replication or wrap.

    Each padded position copies one source position, found by padding the index
    vector ``arange(n)`` itself; the backward pass adds every gradient back to
    its source (``add.at``), so a border pixel copied three times gets three gradients.
    """

    MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

    def forward(self, x, widths=(), mode="constant", value=0.0):
        xp = xp_of(x)
        self.shape, self.widths, self.mode = x.shape, widths, mode
        if mode == "constant":
            return xp.pad(x, widths, mode="constant", constant_values=value)
        self.sources = [
            np.pad(np.arange(n), w, mode=self.MODES[mode]) if w != (0, 0) else None
            for n, w in zip(x.shape, widths)
        ]
        for axis, source in enumerate(self.sources):
            if source is not None:
                x = xp.take(x, xp.asarray(source), axis=axis)
        return x

    def backward(self, g):
        xp = xp_of(g)
        if self.mode == "constant":
            inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(self.widths, self.shape))
            return g[inner]
        for axis in reversed(range(g.ndim)):
            source = self.sources[axis]
            if source is None:
                continue
            moved = xp.moveaxis(g, axis, 0)
            folded = xp.zeros((self.shape[axis],) + moved.shape[1:], dtype=g.dtype)
            xp.add.at(folded, xp.asarray(source), moved)
            g = xp.moveaxis(folded, 0, axis)
        return g


# ------------------------------------------------------------ softmax family
class LogSoftmax(Function):
    """z = x - logsumexp(x), shifted by max(x) for stability;  dL/dx = g - softmax * sum(g)."""

    def forward(self, x, axis=-1):
        xp = xp_of(x)
        self.axis = axis
        if x.size == 0:  # nothing to normalise (the maximum of an empty axis does not exist)
            self.z = x.copy()
            return self.z
        shifted = x - x.max(axis=axis, keepdims=True)
        self.z = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.z

    def backward(self, g):
        return g - xp_of(g).exp(self.z) * g.sum(axis=self.axis, keepdims=True)


class Softmax(Function):
    """z = e^(x - max) / sum e^(x - max);  dL/dx = z * (g - sum(g z))."""

    def forward(self, x, axis=-1):
        xp = xp_of(x)
        self.axis = axis
        if x.size == 0:  # nothing to normalise (the maximum of an empty axis does not exist)
            self.z = x.copy()
            return self.z
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        self.z = e / e.sum(axis=axis, keepdims=True)
        return self.z

    def backward(self, g):
        return self.z * (g - (g * self.z).sum(axis=self.axis, keepdims=True))
