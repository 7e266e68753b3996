"""The optimizer base: parameter groups, zero_grad, and state for checkpoints.

Parameter groups are PyTorch's: an optimizer takes either an iterable of tensors (one group)
or a list of dicts, each with ``"params"`` and any hyper-parameter to override for that group,
e.g. a pretrained backbone with a small learning rate and a new head with a large one::

    optim.SGD([{"params": model.features.parameters(), "lr": 1e-3},
               {"params": model.classifier.parameters()}], lr=1e-2, momentum=0.9)

A group's missing options come from the optimizer's arguments (``optimizer.defaults``).
Parameters that are frozen (``requires_grad=False``) may be given: they get no gradient,
so every step skips them (a parameter is updated exactly when its ``grad`` is not None),
and they train again once unfrozen. ``add_param_group`` adds a group later (unfreezing
a backbone in a second phase of fine-tuning).
"""

from __future__ import annotations

from collections.abc import Iterable

from tinygrad_cnn.device import move_array
from tinygrad_cnn.tensor import Tensor


class Optimizer:
    """Holds ``param_groups`` (lists of parameters with their hyper-parameters, as PyTorch)
    and per-parameter ``state`` (e.g. momentum buffers), keyed by the parameter's index
    counted over all groups in order. Subclasses implement ``step`` and ``check_group``."""

    def __init__(self, params: Iterable, defaults: dict) -> None:
        name = type(self).__name__
        if isinstance(params, (Tensor, dict)):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts (parameter "
                            f"groups), got a single {type(params).__name__}; wrap it in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be in an ordered collection (a list), not a set: "
                            "the order of the state in a checkpoint depends on it")
        params = list(params)
        if not params:
            raise ValueError(f"{name} got an empty parameter list")
        self.check_group(dict(defaults), "the defaults")
        self.defaults = defaults
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def check_group(self, group: dict, where: str) -> None:
        """Raise ValueError if a group's hyper-parameters are invalid (subclasses)."""

    def add_param_group(self, group: dict) -> None:
        """Append a parameter group (a dict with ``"params"`` and optional overrides)."""
        name = type(self).__name__
        if not isinstance(group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict, got {type(group).__name__}")
        if "params" not in group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry, got keys {sorted(group)}")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be in an ordered collection (a list), not a set")
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimise Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimise a non-leaf tensor (one computed by an op); "
                                 "optimise the parameters it was computed from")
        index = len(self.param_groups)
        merged = {**self.defaults, **group, "params": params}
        self.check_group(merged, f"parameter group {index}")
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name}: parameter group {index} lists a parameter twice")
        if set(ids) & {id(p) for p in self.parameters()}:
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self.param_groups.append(merged)

    def parameters(self):
        for group in self.param_groups:
            yield from group["params"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (``None``, as PyTorch's default), or zero them in place."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """PyTorch's layout: ``{"state": {index: {...}}, "param_groups": [{hyper-parameters...,
        "params": [indices]}]}``, indices counted over all groups; arrays are copies."""
        groups, start = [], 0
        for g in self.param_groups:
            n = len(g["params"])
            groups.append({**{k: v for k, v in g.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        return {"state": {i: _copied(s) for i, s in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and state saved by :meth:`state_dict` from an optimizer
        with the same groups (the same number of groups and of parameters in each)."""
        name = type(self).__name__
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: the saved state has {len(groups)} parameter groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        for i, (group, saved) in enumerate(zip(self.param_groups, groups)):
            if "params" in saved and len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}: saved parameter group {i} has {len(saved['params'])} "
                                 f"parameters, this optimizer's has {len(group['params'])}")
        params = list(self.parameters())
        state = {}
        for key, entries in state_dict["state"].items():
            i = int(key)
            if not 0 <= i < len(params):
                raise ValueError(f"{name}: saved state for parameter {i}, but there are only {len(params)}")
            device = params[i].device
            state[i] = {k: move_array(v, device) if getattr(v, "ndim", 0) else v
                        for k, v in _copied(entries).items()}
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = state

    def _indexed_parameters(self):
        """(index, group, parameter) for every parameter with a gradient."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield i, group, p
                i += 1


def _copied(state: dict, device: str | None = None) -> dict:
    """A copy of one parameter's state whose arrays are not shared (steps update in place),
    on ``device`` if given."""
    if device is not None:
        state = {k: move_array(v, device) if hasattr(v, "shape") else v for k, v in state.items()}
    return {k: v.copy() if hasattr(v, "copy") else v for k, v in state.items()}


def check_number(optimizer: str, where: str, group: dict, key: str, low: float = 0.0,
                 high: float | None = None, high_open: bool = False) -> None:
    """``group[key]`` must be a real number in [low, high] (or [low, high) with ``high_open``)."""
    value = group[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{optimizer}: {key} in {where} must be a number, got {value!r}")
    too_high = high is not None and (value >= high if high_open else value > high)
    if not value >= low or too_high:
        bound = "" if high is None else f", {'<' if high_open else '<='} {high}"
        raise ValueError(f"{optimizer}: invalid {key} {value} in {where} (must be >= {low}{bound})")
