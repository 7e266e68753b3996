"""The optimizer base: parameter groups, zero_grad, and state for checkpoints."""

from __future__ import annotations

from collections.abc import Iterable

from tinygrad_cnn.device import move_array
from tinygrad_cnn.tensor import Tensor


class Optimizer:
    """Holds ``param_groups`` (lists of parameters with their hyper-parameters, as PyTorch)
    and per-parameter ``state`` (e.g. momentum buffers). Subclasses implement ``step``."""

    def __init__(self, params: Iterable, defaults: dict) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict] = []
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise TypeError(f"{type(self).__name__}: can only optimise tensors that "
                                    "require grad")
            self.param_groups.append(group)
        self.state: dict[int, dict] = {}  # keyed by the parameter's index over all groups

    def parameters(self):
        for group in self.param_groups:
            yield from group["params"]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Hyper-parameters per group and state arrays per parameter index (no tensors)."""
        return {
            "state": {i: _copied(s) for i, s in self.state.items()},
            "param_groups": [{k: v for k, v in g.items() if k != "params"}
                             for g in self.param_groups],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"optimizer state has {len(groups)} parameter groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        for group, saved in zip(self.param_groups, groups):
            group.update(saved)
        params = list(self.parameters())
        # a checkpoint's arrays are numpy: each parameter's state goes to that parameter's device
        self.state = {int(i): _copied(s, params[int(i)].device) for i, s in state_dict["state"].items()}

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
