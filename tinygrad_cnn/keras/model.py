"""Keras's models: ``Sequential`` (a stack of layers) and the functional ``Model(inputs, outputs)``.

A functional model is the graph recorded when layers were called on symbols: starting from
its output symbols, the nodes (layer calls) that lead back to its input symbols, in an order
where every node comes after the nodes that feed it (a topological order). Calling the model
on data runs those nodes in that order, each layer on the values of its input symbols. The
layers are shared, not copied: ``Model(inputs=model.input, outputs=[layer.output for layer in
model.layers])`` is a second model over the same weights whose ``predict`` returns every
layer's output (the course's activation maps, channels-last).

A ``Sequential`` model calls its layers one after another. Once it knows its input shape (an
``input_shape=`` on the first layer, an ``Input`` added first, ``build(shape)``, or the first
batch it sees) it also records the graph, so ``model.input``, ``model.output`` and every
``layer.output`` exist, as in Keras.

Models are ``nn.Module`` trees: the layers are the children (by name) and their tinygrad_cnn
modules the grandchildren, so ``model.parameters()``, ``state_dict()`` and the training
checkpoints work on them unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from tinygrad_cnn.keras.fitting import Fitting, write_checkpoint
from tinygrad_cnn.keras.layers.base import (
    InputLayer,
    KerasTensor,
    Layer,
    Node,
    flatten,
    map_structure,
    shape_text,
)
from tinygrad_cnn.serialization import load, save

__all__ = ["Model", "Sequential"]


def graph_nodes(inputs: list[KerasTensor], outputs: list[KerasTensor]) -> list[Node]:
    """The nodes from ``inputs`` (their InputLayer nodes included) to ``outputs``, in Keras's order:
    by decreasing depth (a node's depth is one more than the deepest node that reads its output;
    the outputs' nodes have depth 0), ties in the order a depth-first search from the outputs
    finishes them. Every node then comes after the nodes it reads from (a topological order).
    The search keeps its own stack, so deep graphs need no recursion."""
    given = {id(t) for t in inputs}
    finished: list[Node] = []
    state: dict[int, int] = {}  # id(node) -> 1 while its parents are visited, 2 when finished
    for output in outputs:
        if output.node is None:
            raise ValueError(f"{output} was not made by a layer")
        stack = [(output.node, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                state[id(node)] = 2
                finished.append(node)
                continue
            if id(node) in state:
                continue
            state[id(node)] = 1
            stack.append((node, True))
            for parent in reversed(node.parents):
                if id(parent) not in given and not parent.node.parents:
                    raise ValueError(f"graph disconnected: the outputs depend on {parent}, which is not "
                                     f"among the model's inputs {inputs}")
                if id(parent.node) not in state:
                    stack.append((parent.node, False))
    for t in inputs:  # an input no output reads still belongs to the model
        if id(t.node) not in state:
            finished.append(t.node)
    depth: dict[int, int] = {}
    for node in reversed(finished):  # readers before the nodes they read
        here = depth.setdefault(id(node), 0)
        for parent in node.parents:
            depth[id(parent.node)] = max(depth.get(id(parent.node), 0), here + 1)
    position = {id(node): i for i, node in enumerate(finished)}
    return sorted(finished, key=lambda node: (-depth[id(node)], position[id(node)]))


class Model(Fitting, Layer):
    """``Model(inputs, outputs, name=None)``: the functional API (see the module docstring).
    ``inputs``/``outputs`` are a symbol or a list of symbols; ``predict`` returns an array or a list.
    Without inputs and outputs it is a subclassed model: define ``call(inputs)``."""

    def __init__(self, inputs=None, outputs=None, name: str | None = None, trainable: bool = True,
                 **kwargs) -> None:
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.stop_training = False
        self._reset_compile()
        self._graph_inputs: list[KerasTensor] = []
        self._graph_outputs = None
        self._nodes: list[Node] = []
        self._graph_layers: list[Layer] = []
        if inputs is None and outputs is None:
            return
        if inputs is None or outputs is None:
            raise ValueError("Model needs both inputs and outputs (or neither, for a subclassed model)")
        self._set_graph(inputs, outputs)
        self.built = True

    # ------------------------------------------------------------- the graph
    def _set_graph(self, inputs, outputs) -> None:
        ins, outs = flatten(inputs), flatten(outputs)
        for t in ins + outs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model inputs and outputs must be symbols (from Input and layer calls), got "
                                f"{type(t).__name__}")
        for t in ins:
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"model inputs must come from Input(...), got {t}")
        ordered = graph_nodes(ins, outs)
        layers: list[Layer] = []
        for node in ordered:
            if node.layer not in layers:
                layers.append(node.layer)
        self._graph_inputs, self._graph_layers = ins, layers
        self._nodes = [node for node in ordered if node.parents]  # the calls to run; inputs are given
        self._graph_outputs = outputs if isinstance(outputs, KerasTensor) else list(outputs)
        self._input_structure = inputs if isinstance(inputs, KerasTensor) else list(inputs)
        self.dtype = ins[0].dtype  # arrays given to the model become Tensors of its inputs' dtype
        self._register(self.layers)

    def _register(self, layers: Sequence[Layer]) -> None:
        """The layers become the model's children by position (state_dict keys '0.module.weight',
        as PyTorch's Sequential), so two builds of one architecture exchange state dicts and
        checkpoints whatever their layers were named."""
        names = [layer.name for layer in layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"layer names must be unique in a model, {duplicates} appear more than once")
        self._modules.clear()
        for i, layer in enumerate(layers):
            self._modules[str(i)] = layer

    def _run(self, inputs, apply):
        """Walk the graph: ``apply(layer, arguments)`` gives each node's output from its inputs'."""
        given = flatten(inputs) if isinstance(self._input_structure, list) else [inputs]
        if len(given) != len(self._graph_inputs):
            raise ValueError(f"model '{self.name}' takes {len(self._graph_inputs)} input(s), "
                             f"got {len(given)}")
        values = {id(t): v for t, v in zip(self._graph_inputs, given)}
        for node in self._nodes:
            arguments = map_structure(lambda t: values[id(t)], node.arguments)
            values[id(node.output)] = apply(node.layer, arguments)
        return map_structure(lambda t: values[id(t)], self._graph_outputs)

    def call(self, inputs):
        if self._graph_outputs is None:
            raise NotImplementedError(f"{type(self).__name__}: a subclassed model must define call(inputs)")
        return self._run(inputs, lambda layer, x: layer(x))

    def compute_output_shape(self, input_shape):
        if self._graph_outputs is None:
            return super().compute_output_shape(input_shape)

        def shape_of(layer, shapes):
            layer._ensure_built(shapes)
            return tuple(layer.compute_output_shape(shapes))

        if not isinstance(self._graph_outputs, KerasTensor):
            raise ValueError(f"model '{self.name}' has {len(self.outputs)} outputs: only a single-output "
                             "model can be used as a layer of another model")
        return self._run(input_shape, shape_of)

    @property
    def layers(self) -> list[Layer]:
        if self._graph_outputs is not None:
            return list(self._graph_layers)
        return [m for m in self._modules.values() if isinstance(m, Layer)]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = [layer.name for layer in self.layers]
        raise ValueError(f"no layer named {name!r} in model '{self.name}'; layers: {names}")

    def _graph(self, what: str):
        if self._graph_outputs is None:
            raise AttributeError(f"model '{self.name}' has no {what} yet: give it an input shape "
                                 "(input_shape= on the first layer, an Input, or build(shape)) or call "
                                 "it on data first")

    @property
    def inputs(self) -> list[KerasTensor]:
        self._graph("inputs")
        return list(self._graph_inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        self._graph("outputs")
        return flatten(self._graph_outputs)

    @property
    def input(self):
        self._graph("input")
        return self._input_structure

    @property
    def output(self):
        self._graph("output")
        return self._graph_outputs

    @property
    def output_names(self) -> list[str]:
        if self._graph_outputs is None:
            return ["output"]
        return [t.node.layer.name for t in self.outputs]

    # ------------------------------------------------------------- weights
    @property
    def weights(self):
        seen, out = set(), []
        for layer in self.layers:
            for weight in layer.weights:
                if id(weight.tensor) not in seen:
                    seen.add(id(weight.tensor))
                    out.append(weight)
        return out

    def _propagate_trainable(self) -> None:
        for layer in self.layers:
            layer.trainable = self._trainable

    def save_weights(self, filepath: str | os.PathLike) -> None:
        """Every weight in Keras's layout and order, keyed ``'<layer>/<weight>'``, in an ``.npz``
        archive (written atomically; the file name is kept as given, e.g. ``'model.weights.h5'``)."""
        arrays = {}
        for weight in self.weights:
            if weight.path in arrays:
                raise ValueError(f"two weights are named {weight.path!r}: give the layers unique names")
            arrays[weight.path] = weight.numpy()
        save(arrays, filepath)

    def save(self, filepath: str | os.PathLike) -> None:
        """A training checkpoint: the weights, the optimizer's state and the history (an ``.npz``
        archive whatever the name, e.g. the course's ``'cats_and_dogs_small_1.h5'``). The
        architecture is the code that built the model: build it again and ``load_weights(filepath)``
        (there is no ``load_model``)."""
        write_checkpoint(self, filepath)

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Read a ``save_weights`` file (weight by weight in order, as Keras 2's default: the layer
        names may differ) or a training checkpoint written by ``ModelCheckpoint``."""
        archive = load(filepath)
        if "meta" in archive and any(k.startswith("model.") for k in archive):  # a training checkpoint
            state = {k.removeprefix("model."): v for k, v in archive.items() if k.startswith("model.")}
            self.load_state_dict(state)
            return
        weights, arrays = self.weights, list(archive.items())
        if len(arrays) != len(weights):
            raise ValueError(f"load_weights({os.fspath(filepath)!r}): the file holds {len(arrays)} weights, "
                             f"model '{self.name}' has {len(weights)}")
        for weight, (path, array) in zip(weights, arrays):
            if tuple(array.shape) != weight.shape:
                raise ValueError(f"load_weights: weight '{weight.path}' has shape {weight.shape}, the file's "
                                 f"'{path}' in its place has {tuple(array.shape)}")
        for weight, (_, array) in zip(weights, arrays):
            weight.assign(array.numpy())

    # ------------------------------------------------------------- summary
    def summary(self, line_length: int | None = None, positions: Sequence[float] | None = None,
                print_fn=None) -> None:
        """Keras's table: Layer (type), Output Shape, Param # (and Connected to, for functional
        models), then the total, trainable and non-trainable parameter counts."""
        if not self.built:
            raise ValueError(f"model '{self.name}' is not built yet: give the first layer an input_shape, "
                             "call build(input_shape), or call the model on a batch first")
        print_fn = print_fn or (lambda line: print(line, file=sys.stdout))
        functional = type(self) is not Sequential and self._graph_outputs is not None
        headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])
        rows = [self._summary_row(layer, functional) for layer in self.layers]
        line_length = line_length or (98 if functional else 65)
        positions = positions or ([0.33, 0.55, 0.67, 1.0] if functional else [0.45, 0.85, 1.0])
        ends = [int(line_length * p) if p <= 1 else int(p) for p in positions]
        widths = [end - start for start, end in zip([0, *ends[:-1]], ends)]
        for row in rows:  # widen a column rather than cut a name
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], max(len(part) for part in cell) + 1)
        width = sum(widths)

        def emit(cells) -> None:
            for k in range(max(len(c) for c in cells)):
                parts = ((c[k] if k < len(c) else "").ljust(w) for c, w in zip(cells, widths))
                print_fn("".join(parts).rstrip())

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        emit([[h] for h in headers])
        print_fn("=" * width)
        for i, row in enumerate(rows):
            emit(row)
            print_fn("=" * width if i == len(rows) - 1 else "_" * width)
        trainable = sum(w.size for w in self.weights if w.trainable)
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * width)

    def _summary_row(self, layer: Layer, functional: bool) -> list[list[str]]:
        own = [n for n in layer._inbound_nodes if n in self._nodes or isinstance(layer, InputLayer)]
        shapes = {shape_text(n.output.shape) for n in own}
        shape = shapes.pop() if len(shapes) == 1 else ("multiple" if shapes else "?")
        if isinstance(layer, InputLayer):
            shape = f"[{shape}]"
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        row = [[f"{layer.name} ({type(layer).__name__})"], [shape], [params]]
        if functional:
            sources = [f"{p.node.layer.name}[{p.node.layer._inbound_nodes.index(p.node)}][0]"
                       for n in own if n in self._nodes for p in n.parents]
            row.append(sources or ["[]"])
        return row


class Sequential(Model):
    """``Sequential([layers])`` or ``Sequential()`` and ``add(layer)``: each layer's output is the
    next one's input. ``pop()`` removes the last layer."""

    def __init__(self, layers: Sequence[Layer] | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self._stack: list[Layer] = []
        self._symbols: list[KerasTensor] = []  # each layer's output symbol in this model's graph
        self._set_input_layer(None)
        for layer in layers or []:
            self.add(layer)

    def _set_input_layer(self, layer: InputLayer | None) -> None:
        object.__setattr__(self, "_input_layer", layer)  # a reference, not a registered child

    @property
    def layers(self) -> list[Layer]:
        return list(self._stack)

    def add(self, layer) -> None:
        if isinstance(layer, KerasTensor):  # Sequential([Input(shape), ...]), as Keras 3 writes it
            if layer.node is None or not isinstance(layer.node.layer, InputLayer):
                raise TypeError("Sequential.add takes layers, or an Input(...) symbol first")
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._stack:
                raise ValueError("an Input can only be the first thing added to a Sequential model")
            self._set_input_layer(layer)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes a tinygrad_cnn.keras layer, got {type(layer).__name__}")
        if any(layer.name == other.name for other in self._stack):
            raise ValueError(f"a layer named {layer.name!r} is already in model '{self.name}'")
        if self._input_layer is None and not self._stack and layer._batch_input_shape is not None:
            self._set_input_layer(InputLayer(batch_shape=layer._batch_input_shape))
        if self._input_layer is not None:
            self._extend(layer)  # a layer that does not fit raises here, before it is added
        self._stack.append(layer)
        self._finish()

    def _extend(self, layer: Layer) -> None:
        """Call ``layer`` on the graph's last symbol: shapes are checked and weights built now."""
        self._symbols.append(layer(self._symbols[-1] if self._symbols else self._input_layer.output))

    def _finish(self) -> None:
        if self._symbols and len(self._symbols) == len(self._stack):
            self._set_graph(self._input_layer.output, self._symbols[-1])
            self.built = True
        else:
            self._register(self._stack)

    def pop(self) -> Layer:
        if not self._stack:
            raise TypeError("there are no layers in the model")
        layer = self._stack.pop()
        if self._symbols:
            self._symbols.pop()
        if not self._stack:
            self._graph_outputs, self._nodes, self.built = None, [], False
        self._finish()
        return layer

    def build(self, input_shape=None) -> None:
        """Build for inputs of ``input_shape`` (batch first: ``(None, 28, 28, 1)``)."""
        if self._input_layer is None:
            if input_shape is None:
                raise ValueError("Sequential.build needs an input_shape (with the batch dimension first)")
            self._set_input_layer(InputLayer(batch_shape=(None, *tuple(input_shape)[1:])))
        if not self._stack:
            raise ValueError("Sequential.build: the model has no layers")
        self._symbols = []
        for layer in self._stack:
            self._extend(layer)
        self._finish()

    def call(self, inputs):
        for layer in self._stack:
            inputs = layer(inputs)
        return inputs

    def compute_output_shape(self, input_shape):
        for layer in self._stack:
            layer._ensure_built(input_shape)
            input_shape = tuple(layer.compute_output_shape(input_shape))
        return input_shape

    @property
    def output_names(self) -> list[str]:
        return [self._stack[-1].name] if self._stack else ["output"]
