"""Adam and AdamW: per-parameter step sizes from running moments of the gradient."""

from __future__ import annotations

from tinygrad_cnn.autograd import no_grad_method
from tinygrad_cnn.device import xp_of
from tinygrad_cnn.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Adam (Kingma & Ba), as PyTorch: with g = grad (+ weight_decay * w, L2 style),
    m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
    w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: eps and weight_decay must be >= 0")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

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


