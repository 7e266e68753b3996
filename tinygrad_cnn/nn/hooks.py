"""Module hooks: watch (or change) what flows through a layer without editing the layer.

PyTorch's four kinds, with its signatures:

* forward pre-hook ``hook(module, args)``: before ``forward``; may return new ``args``;
* forward hook ``hook(module, args, output)``: after ``forward``; may return a new output;
* full backward pre-hook ``hook(module, grad_output)``: when dL/d(output) is known;
* full backward hook ``hook(module, grad_input, grad_output)``: when dL/d(input) is known;
  may return a new ``grad_input``.

``Module.register_*_hook`` returns a :class:`RemovableHandle`; ``handle.remove()`` (or leaving
``with handle:``) takes the hook off.

How the backward hooks work: the autograd engine knows nothing of modules, so the module's
inputs and outputs are passed through an identity :class:`~tinygrad_cnn.autograd.Function`
(:class:`_PassThrough`) whose ``forward`` returns its input unchanged and whose ``backward``
reports the gradient it sees to the module's :class:`_BackwardHookCall`. The output's
pass-through sees dL/d(output) first (reverse topological order puts it before everything
inside the module); each input's pass-through sees dL/d(input) after every op of the module
that read that input, and the hook fires when the last expected input gradient arrives.
Which inputs to expect is found at forward time by walking the module's graph from its
output down to the wrapped inputs: an input the output does not depend on gets no gradient
(``None`` in ``grad_input``), and when none is reached the hook fires with the output's
gradient alone, as PyTorch's does for a first layer whose input needs no gradient.
"""

from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict

from tinygrad_cnn.autograd import Function, is_grad_enabled
from tinygrad_cnn.tensor import Tensor

# the per-module tables, created by Module.__init__
HOOK_TABLES = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")
_ids = itertools.count()


class RemovableHandle:
    """What ``register_*_hook`` returns: ``remove()`` takes the hook off (twice is harmless);
    as a context manager, the hook is registered for the ``with`` block only."""

    def __init__(self, table: OrderedDict, key: int) -> None:
        self._table, self.id = table, key

    def remove(self) -> None:
        self._table.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def add_hook(module, table_name: str, hook) -> RemovableHandle:
    if not callable(hook):
        raise TypeError(f"{type(module).__name__}.{table_name.strip('_')[:-1]}: the hook must be "
                        f"callable, got {hook!r}")
    table = module.__dict__.get(table_name)
    if table is None:  # a module built without Module.__init__ (e.g. by copy): make the table
        table = OrderedDict()
        object.__setattr__(module, table_name, table)
    key = next(_ids)
    table[key] = hook
    return RemovableHandle(table, key)


def has_hooks(module) -> bool:
    """Whether ``module`` has any hook (checked on every call: kept cheap)."""
    d = module.__dict__
    try:
        return bool(d["_forward_pre_hooks"] or d["_forward_hooks"] or d["_backward_pre_hooks"]
                    or d["_backward_hooks"])
    except KeyError:  # a module built without Module.__init__
        return any(d.get(name) for name in HOOK_TABLES)


def call_with_hooks(module, args: tuple, kwargs: dict):
    """``module(*args, **kwargs)`` with its hooks: pre-hooks, input pass-throughs, forward,
    forward hooks, output pass-through (the last two in PyTorch's order)."""
    d = module.__dict__
    for hook in list(d.get("_forward_pre_hooks", {}).values()):
        result = hook(module, args)
        if result is not None:
            args = result if isinstance(result, tuple) else (result,)
    backward = bool(d.get("_backward_hooks") or d.get("_backward_pre_hooks")) and is_grad_enabled()
    call = _BackwardHookCall(module, args) if backward else None
    if call is not None:
        args = call.wrap_inputs(args)
    output = module.forward(*args, **kwargs)
    for hook in list(d.get("_forward_hooks", {}).values()):
        result = hook(module, args, output)
        if result is not None:
            output = result
    if call is not None:
        output = call.wrap_output(output)
    return output


class _PassThrough(Function):
    """The identity, whose backward tells ``call`` the gradient: y = x, dL/dx = dL/dy
    (or whatever the hook returns instead)."""

    def forward(self, x, call=None, side=None, index=0):
        self.call, self.side, self.index = call, side, index
        return x

    def backward(self, grad_output):
        if self.side == "output":
            return self.call.output_gradient(grad_output)
        return self.call.input_gradient(self.index, grad_output)


class _BackwardHookCall:
    """The bookkeeping of one call of a module that has backward hooks."""

    def __init__(self, module, args: tuple) -> None:
        self.module = module
        self.tensor_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        # id(the _PassThrough Function of a wrapped input) -> (a weak reference to it, its
        # position in grad_input): the graph keeps creators, not intermediate tensors, so the
        # walk meets the Function; weakly, since the Function refers to this call (no cycle)
        self.wrapped: dict[int, tuple] = {}
        self.expected: set[int] = set()
        self.received: dict[int, object] = {}
        self.grad_output: tuple | None = None

    def wrap_inputs(self, args: tuple) -> tuple:
        args = list(args)
        for slot, position in enumerate(self.tensor_positions):
            x = args[position]
            if x.requires_grad:
                args[position] = _PassThrough.apply(x, call=self, side="input", index=slot)
                wrapper = args[position]._creator
                self.wrapped[id(wrapper)] = (weakref.ref(wrapper), slot)
        return tuple(args)

    def wrap_output(self, output):
        if not isinstance(output, Tensor):
            raise TypeError(
                f"{type(self.module).__name__}: backward hooks need a module that returns one "
                f"Tensor, this one returned {type(output).__name__}"
            )
        if not output.requires_grad:
            return output
        self.expected = self._reached_inputs(output)
        return _PassThrough.apply(output, call=self, side="output")

    def _reached_inputs(self, output: Tensor) -> set[int]:
        """Slots of the wrapped inputs that ``output`` depends on (a walk of the module's graph)."""
        # walked by creators (alive while ``output`` is), not by tensors: a stand-in of a
        # freed intermediate may be gone, and its id reused, before the walk ends
        reached, seen, stack = set(), set(), [output._creator]
        while stack:
            fn = stack.pop()
            if fn is None or id(fn) in seen:
                continue
            seen.add(id(fn))
            ref, slot = self.wrapped.get(id(fn), (None, None))
            if ref is not None and ref() is fn:
                reached.add(slot)
                continue
            stack.extend(p for p, needs in zip(fn.parents, fn.needs_input_grad)
                         if needs and isinstance(p, Function))
        return reached

    def output_gradient(self, grad):
        hooks = self.module.__dict__
        grad_output = (Tensor._wrap(grad),)
        for hook in list(hooks.get("_backward_pre_hooks", {}).values()):
            result = hook(self.module, grad_output)
            if result is not None:
                grad_output = _as_gradients(result, grad_output, "grad_output", self.module)
        self.grad_output, self.received = grad_output, {}
        if not self.expected:
            self._fire()
        return grad_output[0].data

    def input_gradient(self, slot: int, grad):
        self.received[slot] = grad
        if set(self.received) != self.expected:
            return grad
        new = self._fire()
        if new is None:
            return grad
        if len(self.expected) > 1:
            raise RuntimeError(
                f"{type(self.module).__name__}: a backward hook may replace grad_input only for a "
                "module with one input that requires a gradient"
            )
        return new[slot].data

    def _fire(self):
        """Call the backward hooks; returns the replaced grad_input, or None."""
        grad_input = tuple(
            Tensor._wrap(self.received[s]) if s in self.received else None
            for s in range(len(self.tensor_positions))
        )
        replaced = None
        for hook in list(self.module.__dict__.get("_backward_hooks", {}).values()):
            result = hook(self.module, grad_input, self.grad_output)
            if result is not None:
                grad_input = replaced = _as_gradients(result, grad_input, "grad_input", self.module)
        return replaced


def _as_gradients(result, like: tuple, name: str, module) -> tuple:
    """A hook's replacement gradients: a tuple as long as ``like``, shapes kept."""
    result = result if isinstance(result, tuple) else (result,)
    if len(result) != len(like):
        raise ValueError(f"{type(module).__name__}: a backward hook returned {len(result)} "
                         f"{name} entries, expected {len(like)}")
    for new, old in zip(result, like):
        if old is not None and (not isinstance(new, Tensor) or new.shape != old.shape):
            shape = getattr(new, "shape", type(new).__name__)
            raise ValueError(f"{type(module).__name__}: a backward hook returned a {name} of "
                             f"{shape}, expected a Tensor of shape {old.shape}")
    return result
