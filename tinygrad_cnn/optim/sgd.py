"""Stochastic gradient descent with momentum (heavy ball or Nesterov) and weight decay."""

from __future__ import annotations

from tinygrad_cnn.autograd import no_grad_method
from tinygrad_cnn.optim.optimizer import Optimizer, check_number


class SGD(Optimizer):
    """As PyTorch's SGD: with g = grad + weight_decay * w,
    v <- momentum * v + (1 - dampening) * g   (v = g on the first step),
    step = g + momentum * v if nesterov else v,
    w <- w - lr * step.

    Every option may be set per parameter group (``SGD([{"params": ..., "lr": 0.1}], lr=0.01)``).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def check_group(self, group: dict, where: str) -> None:
        for key in ("lr", "momentum", "dampening", "weight_decay"):
            check_number("SGD", where, group, key)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: Nesterov momentum needs momentum > 0 and dampening = 0 ({where})")

    @no_grad_method
    def step(self) -> None:
        for i, group, p in self._indexed_parameters():
            g = p.grad.data
            if group["weight_decay"]:
                g = g + group["weight_decay"] * p.data
            if group["momentum"]:
                state = self.state.setdefault(i, {})
                v = state.get("momentum_buffer")
                if v is None:
                    v = g.copy()
                else:
                    v *= group["momentum"]
                    v += (1 - group["dampening"]) * g
                state["momentum_buffer"] = v
                g = g + group["momentum"] * v if group["nesterov"] else v
            p.data -= (group["lr"] * g).astype(p.dtype, copy=False)
