"""The Tensor: an n-dimensional array that remembers how it was computed.

A Tensor wraps a numpy array (a cupy array on ``"cuda"``) and, when it
``requires_grad``, the :class:`~tinygrad_cnn.autograd.Function` that created
it. Calling ``loss.backward()`` walks those links backwards and fills ``.grad``
of every leaf tensor that requires a gradient. Names, shapes and semantics
follow PyTorch; every method here is a thin wrapper over ``tinygrad_cnn.ops``.

Longer than 500 lines on purpose: the whole user-facing surface of a Tensor (construction,
arithmetic, reductions, shape and indexing methods, devices, autograd entry points) is
read in one place, grouped by section; each method is a line or two over ``ops``.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Sequence

import numpy as np

from tinygrad_cnn import ops
from tinygrad_cnn.arguments import check_flag
from tinygrad_cnn.autograd import run_backward
from tinygrad_cnn.device import array_module, check_device, device_of, move_array
from tinygrad_cnn.random import generator

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")
FLOAT_DTYPES = (float32, float64)

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def as_dtype(dtype) -> np.dtype:
    """Accept ``np.float32``, ``"float32"``, ``tinygrad_cnn.float32``, ``float`` and ``int``."""
    if dtype is float:
        return float32
    if dtype is int:
        return int64
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None


def check_same_device(op: str, tensors: Sequence[Tensor]) -> str:
    """The common device of ``tensors``; mixing devices in one op is an error."""
    device = tensors[0].device
    for t in tensors[1:]:
        if t.device != device:
            raise ValueError(
                f"{op}: tensors are on different devices ({device} and {t.device}); "
                "move them explicitly with .to(device)"
            )
    return device


class Tensor:
    """``Tensor(data, requires_grad=False, dtype=None, device="cpu")``.

    ``data`` may be a scalar, a (nested) list, a numpy/cupy array or a Tensor.
    Floating point data becomes float32 unless it is a float64 array or numpy scalar
    (kept, for gradient checks) or ``dtype`` says otherwise; integer and boolean arrays
    keep their dtype (class labels, masks) but cannot require gradients. Complex data is
    refused (TypeError).

    A C-contiguous numpy array of the final dtype is wrapped without a copy (like
    ``torch.from_numpy``): an optimizer step on a Parameter made from it changes the array.
    Pass ``data.copy()`` to keep the original.
    """

    __array_priority__ = 1000  # numpy defers ``ndarray + Tensor`` to Tensor.__radd__
    __hash__ = object.__hash__  # ``==`` is elementwise, identity stays hashable

    def __init__(self, data, requires_grad: bool = False, dtype=None, device: str = "cpu"):
        device = check_device(device)
        if isinstance(data, Tensor):
            data = data.data
        xp = array_module(device)
        if isinstance(data, np.generic):  # a numpy scalar keeps its dtype, as a 0-d array
            data = np.asarray(data)
        if isinstance(data, np.ndarray) or type(data).__module__.startswith("cupy"):
            array = move_array(data, device)
            if array.dtype.kind == "c":  # numpy would drop the imaginary part with only a warning
                raise TypeError(f"cannot make a Tensor from a complex array ({array.dtype}): tensors "
                                "are real; pass .real, .imag or abs() of it")
            if dtype is None and array.dtype.kind == "f" and array.dtype != float64:
                array = array.astype(float32)
            elif dtype is None and array.dtype.kind not in "fcbiu":
                raise TypeError(f"cannot make a Tensor from an array of dtype {array.dtype}")
        else:
            try:
                # first without a dtype: numpy would turn None into NaN (and a list holding None
                # into NaNs) when told float32; an object or string array is not numbers
                raw = np.asarray(data)
                if raw.dtype.kind in "OUSV":
                    raise TypeError(f"{data!r:.80} holds values that are not numbers (or integers "
                                    "beyond 64 bits)")
                if raw.dtype.kind == "c":
                    raise TypeError("tensors are real, this data is complex")
                array = raw.astype(float32 if dtype is None else as_dtype(dtype), copy=False)
            except (TypeError, ValueError) as error:
                raise TypeError(f"cannot make a Tensor from {type(data).__name__}: {error}") from None
            array = move_array(array, device)
        if dtype is not None:
            array = array.astype(as_dtype(dtype), copy=False)
        self.data = xp.ascontiguousarray(array) if array.ndim else array
        self.grad: Tensor | None = None
        self._creator = None
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array) -> Tensor:
        """Wrap an array the library produced itself: no copies, no checks (its device is the
        array's: numpy on the CPU, cupy on the GPU)."""
        t = cls.__new__(cls)
        t.data = array
        t.grad = None
        t._creator = None
        t._requires_grad = False
        return t

    # ------------------------------------------------------------ properties
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        value = check_flag("Tensor", "requires_grad", value)
        if not value and self._creator is not None:  # PyTorch's rule: the graph already reads it
            raise RuntimeError("requires_grad can only be turned off on a leaf tensor; use "
                               "y.detach() for a copy of a result that is cut from the graph")
        if value and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"only float32/float64 tensors can require gradients, this one is {self.data.dtype}"
            )
        self._requires_grad = bool(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._creator is None

    def size(self, dim: int | None = None):
        """The shape (``dim=None``) or the length of one dimension, as ``torch.Tensor.size``."""
        if dim is None:
            return self.shape
        axis = self._axis(dim)
        if self.ndim == 0:
            raise IndexError(f"size: a 0-d tensor has no dimension {dim}")
        return self.shape[axis]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.ndim

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        """The sub-tensors along dim 0, as ``torch.Tensor``; a 0-d tensor is not iterable."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self) -> bool:
        """The truth of a one-element tensor (``if loss < 0.1:``); with more elements it is
        ambiguous, an error (as PyTorch's and numpy's) instead of Python's len() fallback."""
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor with {self.data.size} elements (shape "
                             f"{self.shape}) is ambiguous: reduce it first, e.g. (t > 0).sum() > 0")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self._one_element("float"))

    def __int__(self) -> int:
        return int(self._one_element("int"))

    def __format__(self, spec: str) -> str:
        """``f"{loss:.3f}"`` formats a one-element tensor's value; without a spec, the repr."""
        return format(self._one_element("format"), spec) if spec else str(self)

    def _one_element(self, what: str):
        if self.data.size != 1:
            raise TypeError(f"{what}() of a tensor needs one element, this one has shape {self.shape}")
        return self.item()

    # ---------------------------------------------------------- conversions
    def numpy(self) -> np.ndarray:
        """The data as a numpy array (copied from the GPU if need be; shared on the CPU)."""
        return move_array(self.data, "cpu")

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """``np.asarray(tensor)`` and numpy functions on a tensor see its data (outside the
        graph), as with ``torch.Tensor``; numpy would otherwise build an object array of
        0-d tensors, one per element."""
        array = self.numpy() if dtype is None else self.numpy().astype(dtype, copy=False)
        return array.copy() if copy else array

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def to(self, target) -> Tensor:
        """``.to("cuda")``/``.to("cpu")`` moves; ``.to(float64)`` converts the dtype."""
        if isinstance(target, str) and target.split(":")[0] in ("cpu", "cuda"):
            device = check_device(target)
            if device == self.device:
                return self
            out = Tensor._wrap(move_array(self.data, device))
            out.requires_grad = self.requires_grad and self.is_leaf
            return out
        return self.type(target)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def type(self, dtype) -> Tensor:
        """This tensor in another dtype, as ``torch.Tensor.type``/``.to(dtype)``: itself when the
        dtype is already this one; between float32 and float64 a differentiable cast (the
        gradient is cast back); to an integer or boolean dtype a copy outside the graph."""
        dtype = as_dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype in FLOAT_DTYPES and self.dtype in FLOAT_DTYPES:
            return ops.Cast.apply(self, dtype=dtype)
        return Tensor._wrap(self.data.astype(dtype))

    def float(self) -> Tensor:
        return self.type(float32)

    def double(self) -> Tensor:
        return self.type(float64)

    def long(self) -> Tensor:
        return self.type(int64)

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
        extras = [f"dtype={self.dtype}"] if self.dtype != float32 else []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._creator is not None:
            extras.append(f"grad_fn={self._creator!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({body}{''.join(', ' + e for e in extras)})"

    # -------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf that requires a gradient.

        ``grad`` is dL/d(self); it may be left out only for a one-element tensor
        (a loss), where it is 1.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True (or it ran under no_grad())"
            )
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() without a grad argument needs a scalar (one-element) tensor; "
                    f"this one has shape {self.shape}: reduce it (e.g. .sum()) or pass grad"
                )
            grad = array_module(self.device).ones(self.shape, dtype=self.dtype)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            grad = move_array(np.asarray(grad) if not hasattr(grad, "shape") else grad, self.device)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): grad has shape {grad.shape}, tensor has {self.shape}")
            grad = grad.astype(self.dtype, copy=False)
        run_backward(self, grad, retain_graph=check_flag("backward", "retain_graph", retain_graph))

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------- factories
    @staticmethod
    def zeros(*shape, dtype=float32, requires_grad=False, device="cpu") -> Tensor:
        xp = array_module(check_device(device))
        return Tensor(xp.zeros(_shape(shape), as_dtype(dtype)), requires_grad, dtype, device)

    @staticmethod
    def ones(*shape, dtype=float32, requires_grad=False, device="cpu") -> Tensor:
        xp = array_module(check_device(device))
        return Tensor(xp.ones(_shape(shape), as_dtype(dtype)), requires_grad, dtype, device)

    @staticmethod
    def full(shape, fill_value, dtype=float32, requires_grad=False, device="cpu") -> Tensor:
        data = np.full(_shape((shape,)), fill_value, as_dtype(dtype))
        return Tensor(data, requires_grad, dtype, device)

    @staticmethod
    def randn(*shape, dtype=float32, requires_grad=False, device="cpu") -> Tensor:
        """Standard normal samples from the seeded generator (``manual_seed``)."""
        data = generator().standard_normal(_shape(shape)).astype(as_dtype(dtype))
        return Tensor(data, requires_grad, dtype, device)

    @staticmethod
    def rand(*shape, dtype=float32, requires_grad=False, device="cpu") -> Tensor:
        """Uniform samples on [0, 1) from the seeded generator."""
        data = generator().random(_shape(shape)).astype(as_dtype(dtype))
        return Tensor(data, requires_grad, dtype, device)

    @staticmethod
    def arange(start, end=None, step=1, dtype=None, device="cpu") -> Tensor:
        data = np.arange(start, end, step) if end is not None else np.arange(start)
        if dtype is None:
            dtype = int64 if data.dtype.kind in "iu" else float32
        return Tensor(data, dtype=dtype, device=device)

    @staticmethod
    def eye(n: int, m: int | None = None, dtype=float32, device="cpu") -> Tensor:
        return Tensor(np.eye(n, m, dtype=as_dtype(dtype)), dtype=dtype, device=device)

    @staticmethod
    def zeros_like(t: Tensor, requires_grad=False) -> Tensor:
        return Tensor.zeros(*t.shape, dtype=t.dtype, requires_grad=requires_grad, device=t.device)

    @staticmethod
    def ones_like(t: Tensor, requires_grad=False) -> Tensor:
        return Tensor.ones(*t.shape, dtype=t.dtype, requires_grad=requires_grad, device=t.device)

    # ------------------------------------------------------------ arithmetic
    def _operand(self, other) -> Tensor:
        """Make a scalar, list or array the right-hand side of an op (same dtype if a number)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float, bool, np.number)):
            xp = array_module(self.device)
            dtype = self.dtype if self.dtype.kind == "f" else np.result_type(self.dtype, other)
            return Tensor._wrap(xp.asarray(other, dtype=dtype))
        return Tensor(other, device=self.device)

    def _binary(self, fn, other, name: str, reverse: bool = False) -> Tensor:
        other = self._operand(other)
        x, y = (other, self) if reverse else (self, other)
        try:
            np.broadcast_shapes(x.shape, y.shape)
        except ValueError:
            raise ValueError(
                f"{name}: shapes {x.shape} and {y.shape} cannot be broadcast together"
            ) from None
        return fn.apply(x, y)

    def __add__(self, o): return self._binary(ops.Add, o, "add")  # noqa: E704
    def __radd__(self, o): return self._binary(ops.Add, o, "add", True)  # noqa: E704
    def __sub__(self, o): return self._binary(ops.Sub, o, "sub")  # noqa: E704
    def __rsub__(self, o): return self._binary(ops.Sub, o, "sub", True)  # noqa: E704
    def __mul__(self, o): return self._binary(ops.Mul, o, "mul")  # noqa: E704
    def __rmul__(self, o): return self._binary(ops.Mul, o, "mul", True)  # noqa: E704
    def __truediv__(self, o): return self._binary(ops.Div, o, "div")  # noqa: E704
    def __rtruediv__(self, o): return self._binary(ops.Div, o, "div", True)  # noqa: E704
    def __pow__(self, o): return self._binary(ops.Pow, o, "pow")  # noqa: E704
    def __rpow__(self, o): return self._binary(ops.Pow, o, "pow", True)  # noqa: E704
    def __neg__(self): return ops.Neg.apply(self)  # noqa: E704

    def __matmul__(self, other) -> Tensor:
        other = self._operand(other)
        a, b = self.shape, other.shape
        if self.ndim == 0 or other.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got {a} and {b}")
        inner_a, inner_b = a[-1], b[-2] if other.ndim > 1 else b[0]
        if inner_a != inner_b:
            raise ValueError(f"matmul: shapes {a} and {b} do not match ({inner_a} != {inner_b})")
        try:
            np.broadcast_shapes(a[:-2], b[:-2])
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of {a} and {b} do not broadcast") from None
        return ops.MatMul.apply(self, other)

    def __rmatmul__(self, other) -> Tensor:
        return self._operand(other).__matmul__(self)

    def matmul(self, other) -> Tensor:
        return self @ other

    def add(self, o): return self + o  # noqa: E704
    def sub(self, o): return self - o  # noqa: E704
    def mul(self, o): return self * o  # noqa: E704
    def div(self, o): return self / o  # noqa: E704
    def pow(self, o): return self**o  # noqa: E704
    def neg(self): return -self  # noqa: E704

    def maximum(self, other) -> Tensor:
        return self._binary(ops.Maximum, other, "maximum")

    def minimum(self, other) -> Tensor:
        return self._binary(ops.Minimum, other, "minimum")

    # Comparisons give boolean tensors (not differentiable), as in PyTorch.
    def _compare(self, other, op) -> Tensor:
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(op(self.data, other))

    def __eq__(self, o): return self._compare(o, np.equal)  # noqa: E704
    def __ne__(self, o): return self._compare(o, np.not_equal)  # noqa: E704
    def __lt__(self, o): return self._compare(o, np.less)  # noqa: E704
    def __le__(self, o): return self._compare(o, np.less_equal)  # noqa: E704
    def __gt__(self, o): return self._compare(o, np.greater)  # noqa: E704
    def __ge__(self, o): return self._compare(o, np.greater_equal)  # noqa: E704

    # ------------------------------------------------------------ unary math
    def exp(self): return ops.Exp.apply(self)  # noqa: E704
    def log(self): return ops.Log.apply(self)  # noqa: E704
    def sqrt(self): return ops.Sqrt.apply(self)  # noqa: E704
    def abs(self): return ops.Abs.apply(self)  # noqa: E704
    def __abs__(self): return ops.Abs.apply(self)  # noqa: E704
    def tanh(self): return ops.Tanh.apply(self)  # noqa: E704
    def sigmoid(self): return ops.Sigmoid.apply(self)  # noqa: E704
    def relu(self): return ops.LeakyReLU.apply(self, negative_slope=0.0)  # noqa: E704

    def leaky_relu(self, negative_slope: float = 0.01) -> Tensor:
        return ops.LeakyReLU.apply(self, negative_slope=float(negative_slope))

    def clamp(self, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
        """min(max(x, min), max) elementwise; ``min``/``max`` are numbers or Tensors that
        broadcast with x (differentiable too). Where min > max the result is max, as PyTorch."""
        if min is None and max is None:
            raise ValueError("clamp needs at least one of min and max")
        bounds = {"min": min, "max": max}
        for name, bound in bounds.items():
            if not (bound is None or isinstance(bound, Tensor) or _is_real_number(bound)):
                raise TypeError(f"clamp: {name} must be a number, a Tensor or None, got "
                                f"{type(bound).__name__}")
        if not any(isinstance(b, Tensor) for b in bounds.values()):
            return ops.Clamp.apply(self, low=min, high=max)
        present = [b for b in (min, max) if b is not None]
        operands = [self] + [self._operand(b) for b in present]
        try:
            np.broadcast_shapes(*(t.shape for t in operands))
        except ValueError:
            raise ValueError("clamp: shapes " + ", ".join(str(t.shape) for t in operands)
                             + " cannot be broadcast together") from None
        return ops.ClampTensor.apply(*operands, has_low=min is not None, has_high=max is not None)

    clip = clamp

    def softmax(self, dim: int = -1) -> Tensor:
        if self.ndim == 0:  # PyTorch: the softmax of a scalar along dim 0 or -1 is 1
            self._axis(dim)
            return self.reshape(1).softmax(0).reshape(())
        return ops.Softmax.apply(self, axis=self._axis(dim))

    def log_softmax(self, dim: int = -1) -> Tensor:
        if self.ndim == 0:
            self._axis(dim)
            return self.reshape(1).log_softmax(0).reshape(())
        return ops.LogSoftmax.apply(self, axis=self._axis(dim))

    # ------------------------------------------------------------ reductions
    def _axis(self, dim: int) -> int:
        """Check one dimension index and make it non-negative."""
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
            raise TypeError(f"dimension must be an int, got {dim!r}")
        n = max(self.ndim, 1)
        if not -n <= dim < n:
            raise ValueError(f"dimension {dim} is out of range for a tensor of shape {self.shape}")
        return int(dim) % n

    def _axes(self, dim) -> tuple[int, ...]:
        """``None`` (all), an int or a sequence of ints, as a tuple of axes. A 0-d tensor
        accepts dim 0 and -1 (as PyTorch) and has no axes to reduce."""
        if dim is None:
            return tuple(range(self.ndim))
        if not isinstance(dim, (int, np.integer, tuple, list)):
            raise TypeError(f"dim must be an int or a tuple of ints, got {dim!r}")
        dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
        axes = tuple(self._axis(d) for d in dims)
        if len(set(axes)) != len(axes):
            raise ValueError(f"dimension {dim} repeats an axis")
        return axes if self.ndim else ()

    def _check_not_empty(self, op: str, axes: tuple[int, ...]) -> None:
        """A maximum or minimum over nothing does not exist (a sum over nothing is 0)."""
        empty = [a for a in axes if self.shape[a] == 0]
        if empty or (self.data.size == 0 and not axes):
            where = f"dimension {empty[0]}" if empty else "every dimension"
            raise ValueError(f"{op}: cannot reduce over {where} of a tensor of shape {self.shape}: "
                             "an empty dimension has no extreme value")

    def sum(self, dim=None, keepdim: bool = False) -> Tensor:
        return ops.Sum.apply(self, axes=self._axes(dim), keepdim=check_flag("sum", "keepdim", keepdim))

    def mean(self, dim=None, keepdim: bool = False) -> Tensor:
        axes = self._axes(dim)
        count = math.prod(self.shape[a] for a in axes)
        return self.sum(dim, keepdim) / count

    def var(self, dim=None, correction: int = 1, keepdim: bool = False, unbiased=None) -> Tensor:
        """Variance, sum((x - mean)^2) / (n - correction); correction=1 (or None) is the unbiased
        estimate. PyTorch's older form ``var(unbiased)`` (a bool first) works too."""
        if isinstance(dim, (bool, np.bool_)):
            dim, unbiased = None, bool(dim)
        if unbiased is not None:
            correction = 1 if unbiased else 0
        if correction is None:
            correction = 1
        axes = self._axes(dim)
        count = math.prod(self.shape[a] for a in axes)
        centred = self - self.mean(axes, keepdim=True)
        return (centred * centred).sum(axes, keepdim) / max(count - correction, 0)

    def std(self, dim=None, correction: int = 1, keepdim: bool = False, unbiased=None) -> Tensor:
        return self.var(dim, correction, keepdim, unbiased).sqrt()

    def amax(self, dim=None, keepdim: bool = False) -> Tensor:
        axes = self._axes(dim)
        self._check_not_empty("amax", axes)
        return ops.Max.apply(self, axes=axes, keepdim=check_flag("amax", "keepdim", keepdim))

    def amin(self, dim=None, keepdim: bool = False) -> Tensor:
        axes = self._axes(dim)
        self._check_not_empty("amin", axes)
        return ops.Max.apply(self, axes=axes, keepdim=check_flag("amin", "keepdim", keepdim), minimum=True)

    def max(self, dim=None, keepdim: bool = False):
        """Over everything: the maximum. Along ``dim``: ``(values, indices)`` as PyTorch.
        With a Tensor instead of a dim: the elementwise ``maximum`` (PyTorch's binary form)."""
        if dim is None:
            return self.amax()
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        return self._extreme_along("max", dim, keepdim)

    def min(self, dim=None, keepdim: bool = False):
        if dim is None:
            return self.amin()
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        return self._extreme_along("min", dim, keepdim)

    def _extreme_along(self, op: str, dim, keepdim) -> ValuesIndices:
        keepdim = check_flag(op, "keepdim", keepdim)
        if self.ndim == 0:  # a scalar is its own extreme, at index 0
            self._axis(dim)
            return ValuesIndices(ops.Reshape.apply(self, shape=()), Tensor._wrap(np.zeros((), np.int64)))
        axis = self._axis(dim)
        self._check_not_empty(op, (axis,))
        index = (self.data.argmax if op == "max" else self.data.argmin)(axis=axis, keepdims=True)
        values = ops.TakeAlongAxis.apply(self, index=index, axis=axis)
        if not keepdim:
            values, index = values.squeeze(axis), index.squeeze(axis)
        return ValuesIndices(values, Tensor._wrap(index))

    def argmax(self, dim=None, keepdim: bool = False) -> Tensor:
        return self._arg_extreme("argmax", dim, keepdim)

    def argmin(self, dim=None, keepdim: bool = False) -> Tensor:
        return self._arg_extreme("argmin", dim, keepdim)

    def _arg_extreme(self, op: str, dim, keepdim) -> Tensor:
        keepdim = check_flag(op, "keepdim", keepdim)
        arg = getattr(self.data, op)
        if dim is None:
            self._check_not_empty(op, ())
            return Tensor._wrap(np.asarray(arg()))
        axis = self._axis(dim)
        if self.ndim == 0:
            return Tensor._wrap(np.zeros((), np.int64))
        self._check_not_empty(op, (axis,))
        return Tensor._wrap(arg(axis=axis, keepdims=keepdim))

    # ------------------------------------------------------------- movement
    def reshape(self, *shape) -> Tensor:
        shape = _shape(shape)
        try:
            target = np.empty(self.shape, dtype=bool).reshape(shape).shape
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {self.shape} "
                f"({self.data.size} elements) into {shape}"
            ) from None
        if target == self.shape:
            return self
        return ops.Reshape.apply(self, shape=target)

    view = reshape

    def permute(self, *dims) -> Tensor:
        order = tuple(self._axis(d) for d in _shape(dims))
        if sorted(order) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the {self.ndim} dims")
        return ops.Permute.apply(self, order=order)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        order = list(range(self.ndim))
        a, b = self._axis(dim0), self._axis(dim1)
        if self.ndim == 0:  # dims 0 and -1 of a scalar: nothing to swap
            return self
        order[a], order[b] = order[b], order[a]
        return ops.Permute.apply(self, order=tuple(order))

    @property
    def T(self) -> Tensor:  # noqa: N802 - PyTorch's name
        return self.permute(*reversed(range(self.ndim)))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = self._axis(start_dim), self._axis(end_dim)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape[:start] + (-1,) + self.shape[end + 1 :]
        return self.reshape(shape)

    def squeeze(self, dim=None) -> Tensor:
        """Drop dimensions of size 1: all of them (``dim=None``), or those among ``dim`` (an
        int or a tuple of ints); a listed dimension of another size stays, as PyTorch."""
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        axes = set(self._axes(dim))
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def unsqueeze(self, dim: int) -> Tensor:
        n = self.ndim + 1
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
            raise TypeError(f"unsqueeze: dim must be an int, got {dim!r}")
        if not -n <= dim < n:
            raise ValueError(f"unsqueeze: dim {dim} is out of range for shape {self.shape}")
        axis = dim % n
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def expand(self, *shape) -> Tensor:
        """Broadcast to ``shape`` (as varargs or one tuple), sizes aligned from the right;
        -1 keeps an existing dimension (not allowed for new leading ones), as PyTorch."""
        sizes = _shape(shape)
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: {sizes} has fewer dimensions than the tensor's shape {self.shape}")
        target = []
        for i, n in enumerate(sizes):
            if n == -1 and i >= lead:
                n = self.shape[i - lead]
            elif n < 0:
                where = "a new leading dimension" if n == -1 else "a size"
                raise ValueError(f"expand: {n} is not allowed as {where} (dim {i} of {sizes})")
            target.append(n)
        target = tuple(target)
        if any(old != new and old != 1 for old, new in zip(self.shape, target[lead:])):
            raise ValueError(f"expand: cannot expand shape {self.shape} to {target}")
        return ops.Expand.apply(self, shape=target)

    def contiguous(self) -> Tensor:
        """This tensor if its array is C-contiguous, else a C-contiguous copy (differentiable,
        as PyTorch's): what a view such as ``x.permute(...)`` becomes before raw-array code
        that needs rows in memory order."""
        if self.data.flags.c_contiguous:
            return self
        return ops.Contiguous.apply(self)

    def __getitem__(self, index) -> Tensor:
        index = _array_index(index)
        try:
            self.data[index]  # let numpy validate; errors become a clear IndexError
        except IndexError as error:
            raise IndexError(f"index {index!r} is out of range for shape {self.shape}: {error}") from None
        return ops.GetItem.apply(self, index=index)

    def gather(self, dim: int, index: Tensor) -> Tensor:
        """out[i][j] = self[i][index[i][j]] along ``dim`` (dim 1 here), as torch.gather: ``index``
        has the input's number of dims and at most its size along the others (the output has the
        index's shape), and entries in [0, size along ``dim``)."""
        index = index.data if isinstance(index, Tensor) else np.asarray(index)
        axis = self._axis(dim)
        if index.dtype.kind not in "iu":
            raise TypeError(f"gather: index must hold integers, got dtype {index.dtype}")
        if self.ndim == 0:
            return self.reshape(1).gather(0, index.reshape(-1)).reshape(index.shape)
        if index.ndim != self.ndim or any(i > n for d, (i, n) in enumerate(zip(index.shape, self.shape))
                                          if d != axis):
            raise ValueError(f"gather: index of shape {index.shape} does not fit the input of shape "
                             f"{self.shape} (same number of dims, at most the input's size except along "
                             f"dim {dim})")
        if index.size and (int(index.min()) < 0 or int(index.max()) >= self.shape[axis]):
            raise ValueError(f"gather: index values must be in [0, {self.shape[axis] - 1}] along dim {dim}, "
                             f"got [{int(index.min())}, {int(index.max())}]")
        source = self
        if any(i != n for d, (i, n) in enumerate(zip(index.shape, self.shape)) if d != axis):
            source = self[tuple(slice(None) if d == axis else slice(0, i) for d, i in enumerate(index.shape))]
        return ops.TakeAlongAxis.apply(source, index=index, axis=axis)

    def where(self, condition, other) -> Tensor:
        """``self`` where ``condition``, else ``other`` (PyTorch's method form of :func:`where`)."""
        return where(condition, self, other)


def _shape(shape) -> tuple[int, ...]:
    """Accept f(2, 3) and f((2, 3)) and f([2, 3])."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    shape = tuple(shape)
    for n in shape:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise TypeError(f"shape entries must be ints, got {shape!r}")
    return tuple(int(n) for n in shape)


def _is_real_number(value) -> bool:
    """An int or float (numpy's too), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _tensor_list(op: str, tensors) -> list[Tensor]:
    """The tensors joined by cat or stack: a non-empty sequence of Tensors."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, Sequence):
        raise TypeError(f"{op} expects a list or tuple of Tensors, got {type(tensors).__name__}")
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op} needs at least one tensor")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: element {i} must be a Tensor, got {type(t).__name__}")
    return tensors


def _array_index(index):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


# ------------------------------------------------------ functions of tensors
def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension (shapes must agree elsewhere)."""
    tensors = _tensor_list("cat", tensors)
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ValueError(f"cat: element {i} is 0-d and has no dimension to join along; "
                             "stack joins scalars")
    axis = tensors[0]._axis(dim)
    first = tensors[0].shape
    for t in tensors[1:]:
        if t.ndim != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first)) if i != axis
        ):
            raise ValueError(f"cat along dim {dim}: shapes {first} and {t.shape} do not match")
    return ops.Concatenate.apply(*tensors, axis=axis)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join equal-shaped tensors along a new dimension."""
    tensors = _tensor_list("stack", tensors)
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: shapes {tensors[0].shape} and {t.shape} differ")
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def where(condition, x, y) -> Tensor:
    """Elementwise ``x if condition else y``; differentiable in x and y."""
    condition = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    reference = x if isinstance(x, Tensor) else y
    if not isinstance(reference, Tensor):
        raise TypeError("where: at least one of x and y must be a Tensor")
    x, y = reference._operand(x), reference._operand(y)
    try:
        np.broadcast_shapes(condition.shape, x.shape, y.shape)
    except ValueError:
        raise ValueError(
            f"where: shapes {condition.shape}, {x.shape} and {y.shape} cannot be broadcast"
        ) from None
    return ops.Where.apply(x, y, condition=condition.astype(bool))
