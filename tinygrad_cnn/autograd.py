"""Reverse-mode automatic differentiation: the whole idea in one page.

Every differentiable operation is a :class:`Function` with two methods on raw
arrays:

* ``forward(*arrays, **options) -> array`` computes the result and saves on
  ``self`` whatever the backward pass will need;
* ``backward(grad_output) -> tuple of arrays`` applies the chain rule: given
  dL/d(output) it returns dL/d(input) for every input (``None`` for inputs
  that need no gradient).

``Function.apply`` runs ``forward`` on the inputs' data and, when any input
requires a gradient (and grad mode is on), remembers the Function as the
output's creator. Those links form the computational graph, a DAG that
``Tensor.backward`` walks in reverse topological order, summing the gradients
that reach a tensor along every path (the multivariable chain rule).

What the graph keeps alive: a Function holds its leaf inputs (parameters, which
receive ``.grad``) and, for every other input, the Function that made it, not
the tensor itself. So an intermediate result that nobody holds any more is
freed during the forward pass, unless some Function saved its array for the
backward pass (ReLU saves its output, batch norm its input). Before this rule,
a ResNet-20 step at batch 128 kept 98 MB of such arrays alive (the batch-norm
outputs that only the ReLU after it read) beside the 187 MB that backward needs.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinygrad_cnn.tensor import Tensor

class _GradState(threading.local):
    """Grad mode, one flag per thread (as PyTorch): a ``no_grad()`` block in one thread
    (an evaluation, a live view, a data-loading thread) never switches off graph
    building in another. Every new thread starts with grad mode on."""

    enabled = True


_grad_state = _GradState()


def is_grad_enabled() -> bool:
    """Whether ops called from this thread build a graph."""
    return _grad_state.enabled


class _GradMode(contextlib.ContextDecorator):
    """Context manager/decorator that switches graph building on or off in this thread."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._previous: list[bool] = []  # a stack: the same object may be entered re-entrantly

    def __enter__(self) -> None:
        self._previous.append(_grad_state.enabled)
        _grad_state.enabled = self.enabled

    def __exit__(self, *exc) -> None:
        _grad_state.enabled = self._previous.pop()

    def _recreate_cm(self) -> _GradMode:
        # As a decorator, each call gets its own manager: calls from several threads
        # must not share one stack of previous states.
        return type(self)(self.enabled)


def no_grad() -> _GradMode:
    """``with no_grad():`` (or ``@no_grad()``) builds no graph: for evaluation and updates."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    return _GradMode(True)


class Function:
    """One differentiable operation; subclasses define ``forward`` and ``backward``.

    ``forward`` returns one array, or a tuple whose first array is the differentiable
    result and whose others are side results that carry no gradient (max pooling's
    arg-max indices, batch norm's statistics), as PyTorch's ``mark_non_differentiable``.
    ``apply`` then returns a tuple of Tensors; ``backward`` receives dL/d(first output).
    ``backward`` may return one array for several inputs (``Add``: the same gradient reaches
    both), and must not write into the gradient it receives: :func:`run_backward` never
    updates a gradient in place either (sums are new arrays; a leaf's first gradient is
    copied into ``.grad``), so one array can safely feed several paths. Where two paths
    meet, the engine calls ``backward_of_sum(a, b)`` instead, which adds them and calls
    ``backward`` unless the Function does both in one pass.
    """

    needs_input_grad: tuple[bool, ...]
    released = False  # set once backward has freed what forward saved

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    def backward_of_sum(self, grad_a, grad_b):
        """``backward(grad_a + grad_b)``: the engine calls this where two paths meet at this
        Function's output (a residual block's input feeds both its convolution and its
        shortcut) and hands over both gradients unsummed. A Function whose backward is one
        elementwise pass may fold the sum into it (ReLU's mask: one pass instead of two,
        ``nn/functional/activation.py``); the result must equal backward of the sum."""
        return self.backward(grad_a + grad_b)

    @classmethod
    def apply(cls, *inputs: Tensor, **options):
        from tinygrad_cnn.tensor import Tensor, check_same_device

        check_same_device(cls.__name__, inputs)
        fn = cls()
        fn.needs_input_grad = tuple(t.requires_grad for t in inputs)
        result = fn.forward(*(t.data for t in inputs), **options)
        outputs = tuple(map(Tensor._wrap, result)) if isinstance(result, tuple) else (Tensor._wrap(result),)
        if _grad_state.enabled and any(fn.needs_input_grad):
            output = outputs[0]
            output.requires_grad = True
            # the edges: a leaf itself, else its creator (see the module docstring)
            fn.parents = tuple(t if t._creator is None else t._creator for t in inputs)
            output._creator = fn
            fn._output = weakref.ref(output)
            fn._output_meta = (output.shape, output.dtype, output.device)
        return outputs if isinstance(result, tuple) else outputs[0]

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        """The input tensors, for code that walks the graph (hooks, summaries): a leaf, the
        tensor itself while someone holds it, or else :meth:`output_tensor` of its creator."""
        return tuple(p if not isinstance(p, Function) else p.output_tensor() for p in self.parents)

    def output_tensor(self) -> Tensor:
        """The tensor this Function made; once nobody holds it, a stand-in with its shape,
        dtype and creator and no data of its own (a broadcast 0-d array): the same object for
        as long as someone holds it, so one walk of the graph sees one node. The Function
        refers to its stand-in weakly: a strong link both ways would be a reference cycle,
        and the Function's saved arrays would wait for Python's cycle collector."""
        output = self._output()
        if output is not None:
            return output
        standin = self._standin() if "_standin" in self.__dict__ else None
        if standin is None:
            from tinygrad_cnn.device import array_module
            from tinygrad_cnn.tensor import Tensor

            shape, dtype, device = self._output_meta
            xp = array_module(device)
            standin = Tensor._wrap(xp.broadcast_to(xp.zeros((), dtype=dtype), shape))
            standin._requires_grad, standin._creator = True, self
            self._standin = weakref.ref(standin)
        return standin

    def __repr__(self) -> str:
        return f"<{type(self).__name__}Backward>"


def topological_order(root: Tensor) -> list[Tensor]:
    """Tensors of the graph ending at ``root``, every tensor after its inputs (a freed
    intermediate appears as its creator's stand-in): :func:`graph_order` as tensors."""
    return [node.output_tensor() if isinstance(node, Function) else node for node in graph_order(root)]


def graph_order(root: Tensor) -> list:
    """The nodes of the graph ending at ``root`` (a Function stands for the tensor it made, a
    leaf tensor for itself), every node after its inputs.

    The invariant backward relies on: in ``reversed(order)`` a node comes after
    every node that reads it, on every graph. So when backward reaches a node,
    every op that used it has already sent its share of the gradient, even when an
    op reads a tensor together with one of its own descendants (``x * x.exp()``,
    ``cat([skip, up(skip)])``).

    Depth-first post-order with an explicit stack (a chain of 10,000 operations
    needs no deep Python recursion). A node is marked visited when it is
    *expanded*, not when it is pushed: it may sit on the stack several times, but
    only its first expansion counts, and it is appended to ``order`` only after
    all of its inputs were appended (they were pushed above its "done" marker).
    """
    order: list = []
    visited: set[int] = set()
    stack = [(_node_of(root), False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if isinstance(node, Function):
            if node.released:
                raise RuntimeError(
                    "backward through a graph a second time: its saved arrays were freed "
                    "by the first backward; pass retain_graph=True to the first call"
                )
            for parent, needs in zip(node.parents, node.needs_input_grad):
                if needs and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _node_of(tensor: Tensor):
    """The graph node a tensor stands for: its creator, or for a leaf the tensor itself."""
    return tensor._creator if tensor._creator is not None else tensor


def _shape_and_dtype(node) -> tuple:
    return node._output_meta[:2] if isinstance(node, Function) else (node.shape, node.dtype)


def run_backward(root: Tensor, grad_root, retain_graph: bool = False) -> None:
    """Propagate ``grad_root`` = dL/d(root) to every leaf that requires a gradient.

    Gradients of intermediate results live only in a local dictionary, keyed by the
    Function that made them; leaves accumulate theirs into ``.grad`` (as in PyTorch).
    Where several paths meet at a node, the last two gradients that arrived stay unsummed
    until the node is reached (older ones are added up as they come), so the node's
    Function can fold the last sum into its own pass (:meth:`Function.backward_of_sum`).
    Unless ``retain_graph``, each node's Function is dropped once used, releasing the
    saved arrays, so memory stays flat over many training steps.
    """
    from tinygrad_cnn.tensor import Tensor

    grads = {id(_node_of(root)): [grad_root]}
    for node in reversed(graph_order(root)):
        parts = grads.pop(id(node), None)
        if parts is None:
            continue
        if not isinstance(node, Function):  # a leaf: accumulate
            grad = parts[0] + parts[1] if len(parts) == 2 else parts[0]
            if node.grad is not None:
                node.grad = Tensor._wrap(node.grad.data + grad)
            else:  # copy one part: an op may hand the same array to several inputs
                node.grad = Tensor._wrap(grad if len(parts) == 2 else grad.copy())
            continue
        fn = node
        with no_grad():
            input_grads = fn.backward(parts[0]) if len(parts) == 1 else fn.backward_of_sum(*parts)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, needs, g in zip(fn.parents, fn.needs_input_grad, input_grads):
            if not needs or g is None:
                continue
            shape, dtype = _shape_and_dtype(parent)
            if g.shape != shape:
                raise RuntimeError(
                    f"{fn!r} returned a gradient of shape {g.shape} for an input of shape {shape}")
            if g.dtype != dtype:
                g = g.astype(dtype)
            waiting = grads.get(id(parent))
            if waiting is None:
                grads[id(parent)] = [g]
            elif len(waiting) == 1:
                waiting.append(g)
            else:  # a third path: the first two are summed (a new array), as they came
                grads[id(parent)] = [waiting[0] + waiting[1], g]
        if not retain_graph:  # free the saved arrays and the links to the inputs
            fn.__dict__.clear()
            fn.released = True


def no_grad_method(method):
    """Decorator for methods that must never build a graph (optimizer steps)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with no_grad():
            return method(*args, **kwargs)

    return wrapper
