"""``nn.Module``: a container of parameters, buffers and sub-modules.

Assigning a :class:`Parameter` or a Module to an attribute registers it, so
``parameters()`` and ``state_dict()`` find every weight by walking the tree of
sub-modules; names are the attribute paths joined by dots, as in PyTorch
(``"features.0.weight"``), so state dicts can be exchanged with PyTorch code.

Hooks (PyTorch's signatures) let you watch a layer without editing it: a forward hook
``hook(module, input, output)`` sees every call, a full backward hook
``hook(module, grad_input, grad_output)`` the gradients flowing through it (see
:mod:`tinygrad_cnn.nn.hooks`); each ``register_*`` returns a handle whose ``remove()``
takes the hook off again. ``requires_grad_(False)`` freezes a whole sub-tree (transfer
learning: train a new head on frozen features).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from tinygrad_cnn.arguments import check_flag
from tinygrad_cnn.nn import hooks as _hooks
from tinygrad_cnn.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable weight: it requires a gradient and a Module registers it."""

    def __init__(self, data, requires_grad: bool = True, dtype=None, device: str = "cpu"):
        if isinstance(data, Tensor):
            device = data.device
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, device=device)

    def requires_grad_(self, requires_grad: bool = True) -> Parameter:
        """Freeze (``False``) or unfreeze this weight in place; returns it (as PyTorch).

        A frozen weight gets no gradient (``grad`` stays ``None``), so optimizers skip it.
        """
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"requires_grad_: requires_grad must be True or False, got {requires_grad!r}")
        self.requires_grad = bool(requires_grad)
        return self

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model. Subclasses set attributes in ``__init__``
    and define ``forward``; calling the module calls ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        for table in _hooks.HOOK_TABLES:
            object.__setattr__(self, table, OrderedDict())

    # ----------------------------------------------------------- registration
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        target = self._parameters if isinstance(value, Parameter) else \
            self._modules if isinstance(value, Module) else None
        for table in (self._parameters, self._buffers, self._modules):
            if table is not target:
                table.pop(name, None)
        if target is not None:  # an existing name keeps its place (a replaced layer stays in order)
            self.__dict__.pop(name, None)
            target[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: look in the registries.
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """A tensor that is state but not learned (e.g. batch-norm running statistics)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    # --------------------------------------------------------------- walking
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:  # shared weights count once
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for module_name, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every sub-module (children first) and on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> Module:
        """Training mode (``mode=False``: evaluation) for this module and every sub-module."""
        mode = check_flag(f"{type(self).__name__}.train", "mode", mode)
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (``False``) or unfreeze (``True``) every parameter of this module and its
        sub-modules, in place; returns the module, so ``model.features.requires_grad_(False)``
        chains. Frozen parameters get no gradient and optimizers skip them."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def summary(self, input_shape=None, **kwargs):
        """The Keras-style layer table, printed once (see :func:`tinygrad_cnn.summary`):
        ``model.summary()`` for a model that knows its input size, else
        ``model.summary((C, H, W))`` (a batch dimension in front is fine too)."""
        from tinygrad_cnn.summary import summary

        return summary(self, input_shape, **kwargs)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def to(self, device: str) -> Module:
        """Move every parameter and buffer (in place, keeping the objects) to ``device``."""
        from tinygrad_cnn.device import check_device, move_array

        device = check_device(device)
        for module in self.modules():
            for table in (module._parameters, module._buffers):
                for t in table.values():
                    if t is not None:
                        t.data = move_array(t.data, device)
                        if t.grad is not None:
                            t.grad = t.grad.to(device)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    def double(self) -> Module:
        """Convert floating parameters and buffers to float64 (for gradient checks)."""
        for module in self.modules():
            for table in (module._parameters, module._buffers):
                for t in table.values():
                    if t is not None and t.dtype.kind == "f":
                        t.data = t.data.astype(np.float64)
        return self

    # ----------------------------------------------------------------- state
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Every parameter and buffer by dotted name (detached)."""
        state: OrderedDict[str, Tensor] = OrderedDict()
        for module_name, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name, t in table.items():
                    if t is not None:
                        key = f"{module_name}.{name}" if module_name else name
                        state[key] = t.detach()
        return state

    def load_state_dict(self, state_dict, strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers of the same names.

        Names and shapes must match (with ``strict``: no missing or extra names);
        a mismatch raises ``ValueError`` listing the names at fault, and nothing is
        changed unless everything fits.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict for {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        arrays = {}
        for key, value in state_dict.items():
            if key not in own:
                continue
            array = value.data if isinstance(value, Tensor) else np.asarray(value)
            if array.shape != own[key].shape:
                raise ValueError(
                    f"load_state_dict: '{key}' has shape {array.shape} in the state dict "
                    f"but {own[key].shape} in the model"
                )
            arrays[key] = array
        targets = dict(self._named_state_tensors())
        for key, array in arrays.items():
            target = targets[key]
            from tinygrad_cnn.device import move_array

            target.data = move_array(array, target.device).astype(target.dtype).copy()

    def _named_state_tensors(self) -> Iterator[tuple[str, Tensor]]:
        for module_name, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name, t in table.items():
                    if t is not None:
                        yield (f"{module_name}.{name}" if module_name else name), t

    # ---------------------------------------------------------------- hooks
    def register_forward_pre_hook(self, hook) -> _hooks.RemovableHandle:
        """``hook(module, args) -> None or new args``, called before ``forward``."""
        return _hooks.add_hook(self, "_forward_pre_hooks", hook)

    def register_forward_hook(self, hook) -> _hooks.RemovableHandle:
        """``hook(module, args, output) -> None or a new output``, called after ``forward``
        (``args``: the tuple of positional arguments). ``handle.remove()`` takes it off."""
        return _hooks.add_hook(self, "_forward_hooks", hook)

    def register_full_backward_pre_hook(self, hook) -> _hooks.RemovableHandle:
        """``hook(module, grad_output) -> None or a new grad_output``, called when the gradient
        of the module's output is known, before it flows into the module."""
        return _hooks.add_hook(self, "_backward_pre_hooks", hook)

    def register_full_backward_hook(self, hook) -> _hooks.RemovableHandle:
        """``hook(module, grad_input, grad_output) -> None or a new grad_input``, called once
        the gradients with respect to the module's inputs are computed. ``grad_input`` has
        one entry per positional Tensor argument (``None`` where it needs no gradient),
        ``grad_output`` one per output tensor; both are tuples of Tensors."""
        return _hooks.add_hook(self, "_backward_hooks", hook)

    # ----------------------------------------------------------------- call
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        if not _hooks.has_hooks(self):
            return self.forward(*args, **kwargs)
        return _hooks.call_with_hooks(self, args, kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            modules = tuple(modules[0].items())
        else:
            modules = tuple((str(i), m) for i, m in enumerate(modules))
        for name, module in modules:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: {name} is a {type(module).__name__}, not a Module")
            setattr(self, name, module)

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __setitem__(self, index: int, module: Module) -> None:
        """``model.classifier[-1] = nn.Linear(64, 5)``: replace a layer (a new head) in place."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: can only hold Modules, got {type(module).__name__}")
        names = list(self._modules)
        if isinstance(index, bool) or not isinstance(index, int) or not -len(names) <= index < len(names):
            raise IndexError(f"Sequential: index {index!r} is out of range for {len(names)} layers")
        setattr(self, names[index], module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        setattr(self, str(len(self)), module)
        return self

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(Module):
    """A list of sub-modules that registers them (for loops over layers in forward)."""

    def __init__(self, modules=()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
