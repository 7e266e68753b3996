"""The Keras layer over tinygrad_cnn modules: lazy weights, Keras's layouts, symbolic tensors.

A Keras layer is an ``nn.Module`` that

* **builds its weights lazily** from the first input shape it sees (``build(input_shape)``):
  ``Conv2D(32, (3, 3))`` does not know its input channels until it meets an input;
* keeps each weight in the tensor of the tinygrad_cnn module it wraps (``layer.module``, an
  ``nn.Conv2d``, ``nn.Linear``, ...), in PyTorch's layout, and shows it to Keras code in
  **Keras's layout** through a :class:`Weight` view: a convolution kernel is (kh, kw, in, out)
  in ``get_weights()`` and (out, in, kh, kw) in ``layer.module.weight``, one array seen two ways;
* can be called on real data (a Tensor or an array: the math runs at once) or on a
  :class:`KerasTensor`, a symbol with a shape and no values (``Input(shape=(28, 28, 1))``):
  then the call only records a :class:`Node` (this layer, its input symbols, its output
  symbol), from which ``Model(inputs, outputs)`` later reads the graph. ``layer.output`` is
  the output symbol of the layer's first call, as in Keras.

Keras layers start in inference mode (``training=False``: dropout off, batch norm on its moving
statistics); ``fit`` switches the model to training mode for its steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np

from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.device import move_array
from tinygrad_cnn.keras import backend, initializers
from tinygrad_cnn.nn.module import Module, Parameter
from tinygrad_cnn.tensor import Tensor

FLOAT_DTYPES = ("float32", "float64")


# ----------------------------------------------------------------- weight layouts
class Permuted:
    """A Keras array is ``own.transpose(perm)``; the tensor is ``keras.transpose(argsort(perm))``."""

    def __init__(self, perm: Sequence[int]) -> None:
        self.perm, self.inverse = tuple(perm), tuple(int(i) for i in np.argsort(perm))

    def to_keras(self, array: np.ndarray) -> np.ndarray:
        return array.transpose(self.perm)

    def from_keras(self, array: np.ndarray) -> np.ndarray:
        return array.transpose(self.inverse)

    def keras_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[i] for i in self.perm)


class _Same(Permuted):
    """Vectors (biases, batch-norm statistics) and custom weights: one layout for both."""

    def to_keras(self, array):
        return array

    from_keras = to_keras

    def keras_shape(self, shape):
        return tuple(shape)


SAME_LAYOUT = _Same(())


def conv_layout(nd: int) -> Permuted:
    """Convolution kernels: ours (out, in, *k) <-> Keras (*k, in, out); transposed convolutions:
    ours (in, out, *k) <-> Keras (*k, out, in), the same permutation."""
    return Permuted((*range(2, nd + 2), 1, 0))


DENSE_LAYOUT = Permuted((1, 0))  # nn.Linear (out, in) <-> Dense (in, out)


class DepthwiseLayout:
    """ours (in m, 1, kh, kw), output channel c m + j <-> Keras (kh, kw, in, m)."""

    def __init__(self, multiplier: int) -> None:
        self.multiplier = multiplier

    def to_keras(self, array):
        channels = array.shape[0] // self.multiplier
        return array.reshape(channels, self.multiplier, *array.shape[2:]).transpose(2, 3, 0, 1)

    def from_keras(self, array):
        kh, kw, channels, m = array.shape
        return array.transpose(2, 3, 0, 1).reshape(channels * m, 1, kh, kw)

    def keras_shape(self, shape):
        return (*shape[2:], shape[0] // self.multiplier, self.multiplier)


class Weight:
    """One Keras weight (``kernel``, ``bias``, ``gamma``, ``moving_mean``, ...) viewed in Keras's
    layout over the tinygrad_cnn tensor that holds it: ``numpy()`` reads, ``assign()`` writes."""

    def __init__(self, layer: Layer, name: str, tensor: Tensor, layout, trainable: bool) -> None:
        self.layer, self.name, self.tensor, self.layout = layer, name, tensor, layout
        self._trainable = trainable

    @property
    def path(self) -> str:
        return f"{self.layer.name}/{self.name}"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.keras_shape(self.tensor.shape)

    @property
    def size(self) -> int:
        return self.tensor.numel()

    @property
    def trainable(self) -> bool:
        return self._trainable and self.layer.trainable

    def numpy(self) -> np.ndarray:
        return np.ascontiguousarray(self.layout.to_keras(self.tensor.numpy()))

    def assign(self, value) -> None:
        array = np.asarray(value.numpy() if isinstance(value, (Tensor, Weight)) else value)
        if array.shape != self.shape:
            raise ValueError(f"weight '{self.path}' has shape {self.shape}, got an array of shape "
                             f"{array.shape}")
        own = np.ascontiguousarray(self.layout.from_keras(array), dtype=self.tensor.dtype)
        self.tensor.data = move_array(own, self.tensor.device)

    def __repr__(self) -> str:
        return f"<Weight path={self.path}, shape={self.shape}, trainable={self.trainable}>"


# ----------------------------------------------------------------- symbols and nodes
class KerasTensor:
    """A symbolic tensor: a shape (``None`` where unknown, the batch first) and the layer call
    that makes it. It holds no values; calling layers on it builds a graph."""

    def __init__(self, shape: Sequence[int | None], dtype: str = "float32", name: str | None = None) -> None:
        self.shape, self.dtype, self.name = tuple(shape), dtype, name
        self.node: Node | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class Node:
    """One call of ``layer`` in a graph: its input symbols (one, a list, or none for an
    InputLayer) and the output symbol it made."""

    def __init__(self, layer: Layer, arguments, output: KerasTensor) -> None:
        self.layer, self.arguments, self.output = layer, arguments, output
        self.parents: list[KerasTensor] = flatten(arguments) if arguments is not None else []
        output.node = self


def flatten(structure) -> list:
    return list(structure) if isinstance(structure, (list, tuple)) else [structure]


def map_structure(fn: Callable, structure):
    if isinstance(structure, (list, tuple)):
        return [fn(item) for item in structure]
    return fn(structure)


def is_symbolic(structure) -> bool:
    items = flatten(structure)
    symbolic = [isinstance(t, KerasTensor) for t in items]
    if any(symbolic) and not all(symbolic):
        raise TypeError("a layer cannot mix symbolic KerasTensors (from Input) with concrete data "
                        "in one call")
    return bool(items) and all(symbolic)


@contextmanager
def training_mode(module: Module, training: bool | None):
    """Run with every sub-module in training (True) or inference (False) mode, then restore;
    ``None`` leaves the modes as they are."""
    if training is None:
        yield
        return
    saved = [(m, m.training) for m in module.modules()]
    module.train(bool(training))
    try:
        yield
    finally:
        for m, mode in saved:
            object.__setattr__(m, "training", mode)


def shape_text(shape) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(shape_text(s) for s in shape) + "]"
    sizes = ", ".join("None" if s is None else str(s) for s in shape)
    return f"({sizes},)" if len(shape) == 1 else f"({sizes})"


# ----------------------------------------------------------------- the layer
class Layer(Module):
    """Base of every Keras layer. Subclasses define ``build(input_shape)`` (create weights with
    :meth:`add_weight` or :meth:`_track`), ``call(inputs)`` (the math on Tensors) and
    ``compute_output_shape(input_shape)``. Shapes include the batch dimension (``None``).

    Common arguments: ``name`` (default: the class name in snake case, numbered), ``trainable``,
    ``dtype`` (``'float32'`` or ``'float64'``), and, for a model's first layer,
    ``input_shape`` (without the batch) or ``batch_input_shape`` / ``input_dim``.
    """

    def __init__(self, name: str | None = None, trainable: bool = True, dtype: str | None = None,
                 input_shape: Sequence[int | None] | None = None,
                 batch_input_shape: Sequence[int | None] | None = None, input_dim: int | None = None,
                 batch_size: int | None = None, **unsupported) -> None:
        super().__init__()
        cls = type(self).__name__
        if unsupported:
            raise TypeError(f"{cls}: unsupported argument(s) {sorted(unsupported)} (tinygrad_cnn.keras "
                            "implements the arguments listed in the layer's docstring)")
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"{cls}: name must be a non-empty string without '/', got {name!r}")
        if dtype is not None and str(dtype) not in FLOAT_DTYPES:
            raise ValueError(f"{cls}: dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
        self.name = name or backend.unique_name(backend.snake_case(cls))
        self.dtype = str(dtype or "float32")
        self.built = False
        self._trainable = bool(trainable)
        self._weights: list[Weight] = []
        self._inbound_nodes: list[Node] = []
        self._input_spec: tuple[int, dict[int, int]] | None = None  # (rank, {axis: size})
        self._batch_input_shape = _batch_shape(cls, input_shape, batch_input_shape, input_dim, batch_size)
        object.__setattr__(self, "training", False)

    # ------------------------------------------------------------- weights
    def _track(self, name: str, tensor: Tensor, layout=SAME_LAYOUT, initializer=None,
               trainable: bool = True) -> Weight:
        """Record ``tensor`` as the Keras weight ``name``; draw it with ``initializer`` in Keras's
        layout (so fans and statistics are Keras's), then store it in our layout."""
        weight = Weight(self, name, tensor, layout, trainable)
        if initializer is not None:
            weight.assign(initializers.get(initializer)(weight.shape, self.dtype))
        if isinstance(tensor, Parameter):
            tensor.requires_grad = weight.trainable
        self._weights.append(weight)
        return weight

    def add_weight(self, name: str, shape: Sequence[int], initializer="glorot_uniform",
                   trainable: bool = True) -> Parameter:
        """A new weight of ``shape`` (Keras's layout is its own) for a custom layer's ``build``;
        returns the Parameter to use in ``call`` (``inputs @ self.kernel``)."""
        if any(w.name == name for w in self._weights):
            raise ValueError(f"layer '{self.name}' already has a weight named {name!r}")
        parameter = Parameter(Tensor.zeros(*shape, dtype=self.dtype))
        self.register_parameter(name, parameter)
        self._track(name, parameter, SAME_LAYOUT, initializer, trainable)
        return parameter

    @property
    def weights(self) -> list[Weight]:
        return list(self._weights)

    @property
    def trainable_weights(self) -> list[Weight]:
        return [w for w in self.weights if w.trainable]

    @property
    def non_trainable_weights(self) -> list[Weight]:
        return [w for w in self.weights if not w.trainable]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freeze (False) or unfreeze the layer's weights (transfer learning); recompile after."""
        self._trainable = bool(value)
        self._propagate_trainable()

    def _propagate_trainable(self) -> None:
        """Only trainable weights get gradients (a model passes the flag on to its layers)."""
        for weight in self._weights:
            if isinstance(weight.tensor, Parameter):
                weight.tensor.requires_grad = weight.trainable

    def get_weights(self) -> list[np.ndarray]:
        """The weights as numpy arrays in Keras's layout and order."""
        return [w.numpy() for w in self.weights]

    def set_weights(self, arrays: Sequence) -> None:
        """Load arrays in Keras's layout and order (as ``get_weights`` returns them)."""
        weights = self.weights
        arrays = list(arrays)
        if len(arrays) != len(weights):
            raise ValueError(f"layer '{self.name}' expects {len(weights)} weight arrays "
                             f"({[w.name for w in weights]}), got {len(arrays)}")
        for weight, array in zip(weights, arrays):
            if np.shape(array) != weight.shape:
                raise ValueError(f"weight '{weight.path}' has shape {weight.shape}, got {np.shape(array)}")
        for weight, array in zip(weights, arrays):
            weight.assign(array)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"layer '{self.name}' is not built yet: call it on an input (or give "
                             "input_shape) before count_params()")
        return sum(w.size for w in self.weights)

    # ------------------------------------------------------------- building
    def build(self, input_shape) -> None:
        """Create the weights for inputs of ``input_shape``; layers without weights need nothing."""

    def _ensure_built(self, input_shape) -> None:
        if not self.built:
            self.build(input_shape)
            self.built = True
        self._check_input(input_shape)

    def _expect(self, input_shape, rank: int, axes: dict[int, int] | None = None) -> None:
        """Declare (in ``build``) the rank and fixed axis sizes every later input must have."""
        self._input_spec = (rank, dict(axes or {}))
        self._check_input(input_shape)

    def _check_input(self, input_shape) -> None:
        if self._input_spec is None:
            return
        rank, axes = self._input_spec
        shape = tuple(input_shape)
        if len(shape) != rank:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects {rank}-D inputs "
                             f"(batch first), got shape {shape_text(shape)}")
        for axis, size in axes.items():
            if shape[axis] is not None and shape[axis] != size:
                raise ValueError(f"layer '{self.name}' ({type(self).__name__}) was built for axis {axis} "
                                 f"of size {size}, got an input of shape {shape_text(shape)}")

    def compute_output_shape(self, input_shape):
        """The output shape; by default found by running the layer on zeros (custom layers)."""
        dims = flatten(input_shape) if isinstance(input_shape, list) else [input_shape]
        if any(s is None for shape in dims for s in tuple(shape)[1:]):
            raise ValueError(f"layer '{self.name}': define compute_output_shape for inputs with unknown "
                             f"sizes {shape_text(input_shape)}")
        zeros = map_structure(lambda s: Tensor(np.zeros((1, *tuple(s)[1:]), self.dtype)), input_shape)
        with no_grad(), training_mode(self, False):
            out = self.call(zeros)
        return (None, *out.shape[1:])

    # ------------------------------------------------------------- calling
    def call(self, inputs):
        raise NotImplementedError(f"{type(self).__name__} does not define call()")

    def __call__(self, inputs, training: bool | None = None):
        if is_symbolic(inputs):
            return self._call_symbolic(inputs)
        values = map_structure(self._as_tensor, inputs)
        self._ensure_built(map_structure(lambda t: t.shape, values))
        with training_mode(self, training):
            return self.call(values)

    def forward(self, inputs):
        return self(inputs)

    def _as_tensor(self, value) -> Tensor:
        """Arrays become Tensors of the layer's dtype; Tensors pass as they are (the graph of
        their gradient stays whole; the ops refuse a mix of dtypes with a clear error)."""
        if isinstance(value, Tensor):
            return value
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"layer '{self.name}': inputs must be numeric arrays or Tensors, got "
                            f"{type(value).__name__}")
        return Tensor(array.astype(self.dtype, copy=False))

    def _call_symbolic(self, inputs) -> KerasTensor:
        shapes = map_structure(lambda t: t.shape, inputs)
        self._ensure_built(shapes)
        output = KerasTensor(self.compute_output_shape(shapes), self.dtype,
                             name=f"{self.name}/output_{len(self._inbound_nodes)}")
        self._inbound_nodes.append(Node(self, inputs, output))
        return output

    # ------------------------------------------------------------- graph symbols
    def _first_node(self, what: str) -> Node:
        if not self._inbound_nodes:
            raise AttributeError(f"layer '{self.name}' has never been called on a symbolic input, so it "
                                 f"has no {what} yet (give the model an input shape or an Input)")
        return self._inbound_nodes[0]

    @property
    def input(self):
        """The input symbol(s) of the layer's first call."""
        return self._first_node("input").arguments

    @property
    def output(self) -> KerasTensor:
        """The output symbol of the layer's first call."""
        return self._first_node("output").output

    @property
    def input_shape(self):
        return map_structure(lambda t: t.shape, self.input)

    @property
    def output_shape(self):
        return self.output.shape

    def __getattr__(self, name: str):
        # Python calls this when a property raises AttributeError: let the property's own
        # explanation ("has never been called on a symbolic input...") through
        prop = getattr(type(self), name, None)
        if isinstance(prop, property):
            return prop.fget(self)
        return super().__getattr__(name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _batch_shape(cls: str, input_shape, batch_input_shape, input_dim, batch_size):
    """The (batch, ...) shape a first layer was given, or None."""
    given = [v is not None for v in (input_shape, batch_input_shape, input_dim)]
    if sum(given) > 1:
        raise ValueError(f"{cls}: give only one of input_shape, batch_input_shape and input_dim")
    if input_dim is not None:
        input_shape = (input_dim,)
    if input_shape is not None:
        batch_input_shape = (batch_size, *_dims(cls, "input_shape", input_shape))
    elif batch_input_shape is not None:
        batch_input_shape = (batch_input_shape[0], *_dims(cls, "batch_input_shape", batch_input_shape[1:]))
    return None if batch_input_shape is None else tuple(batch_input_shape)


def _dims(cls: str, name: str, shape) -> tuple[int | None, ...]:
    shape = (shape,) if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool) else shape
    if not isinstance(shape, (tuple, list)) or not shape or any(
            s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0)
            for s in shape):
        raise ValueError(f"{cls}: {name} must be a tuple of positive ints (or None), got {shape!r}")
    return tuple(None if s is None else int(s) for s in shape)


class InputLayer(Layer):
    """The entry of a graph: holds the input symbol of shape ``(batch_size, *shape)``."""

    def __init__(self, shape: Sequence[int | None] | None = None, batch_size: int | None = None,
                 dtype: str | None = None, name: str | None = None, batch_shape=None, input_shape=None,
                 **kwargs) -> None:
        if shape is not None and input_shape is not None:
            raise ValueError("InputLayer: give shape or input_shape, not both")
        shape = input_shape if shape is None else shape
        super().__init__(name=name, dtype=dtype, input_shape=shape, batch_input_shape=batch_shape,
                         batch_size=batch_size, **kwargs)
        if self._batch_input_shape is None:
            raise ValueError("InputLayer needs a shape (without the batch dimension), e.g. shape=(28, 28, 1)")
        self.built = True
        symbol = KerasTensor(self._batch_input_shape, self.dtype, self.name)
        self._inbound_nodes.append(Node(self, None, symbol))

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def Input(shape: Sequence[int | None] | None = None, batch_size: int | None = None, dtype: str | None = None,
          name: str | None = None, batch_shape=None) -> KerasTensor:  # noqa: N802 - Keras's name
    """``Input(shape=(28, 28, 1))``: the input symbol of a functional model (batch left out)."""
    return InputLayer(shape, batch_size, dtype, name, batch_shape).output


def unknown_product(sizes) -> int | None:
    """The product of sizes, or None if one is unknown."""
    return None if any(s is None for s in sizes) else math.prod(sizes)
