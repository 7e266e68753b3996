"""Adam and AdamW: per-parameter step sizes from running moments of the gradient."""

from __future__ import annotations

from tinygrad_cnn.autograd import no_grad_method
from tinygrad_cnn.device import xp_of
from tinygrad_cnn.optim.optimizer import Optimizer, check_number


class Adam(Optimizer):
    """Adam (Kingma & Ba), as PyTorch: with g = grad (+ weight_decay * w, L2 style),
    m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
    w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).

    Every option may be set per parameter group (``Adam([{"params": ..., "lr": 1e-4}], lr=1e-3)``).
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def check_group(self, group: dict, where: str) -> None:
        name = type(self).__name__
        for key in ("lr", "eps", "weight_decay"):
            check_number(name, where, group, key)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas in {where} must be a pair (b1, b2), got {betas!r}")
        group["betas"] = tuple(betas)
        for i in range(2):
            check_number(name, where, {f"betas[{i}]": betas[i]}, f"betas[{i}]", 0.0, 1.0, high_open=True)

    @no_grad_method
    def step(self) -> None:
        for i, group, p in self._indexed_parameters():
            xp = xp_of(p.data)
            g = p.grad.data
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            if wd and self.decoupled_weight_decay:
                p.data *= 1 - lr * wd
            elif wd:
                g = g + wd * p.data
            state = self.state.setdefault(i, {})
            if "step" not in state:
                state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
            state["step"] += 1
            m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            step_size = lr / (1 - b1**t)
            denominator = xp.sqrt(v / (1 - b2**t)) + eps
            p.data -= (step_size * m / denominator).astype(p.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w <- w (1 - lr * wd) before
    the Adam step, instead of adding wd * w to the gradient. Default wd = 0.01."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


