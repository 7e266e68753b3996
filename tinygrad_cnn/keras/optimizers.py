"""Keras's optimizers as thin front ends to ``tinygrad_cnn.optim``.

A Keras optimizer is made before the model knows its weights (``compile(optimizer=Adam(1e-3))``),
so each class here holds Keras's hyper-parameters and creates the engine's optimizer over the
trainable parameters when ``fit`` first needs it (again if the set of trainable weights changed,
e.g. after freezing layers). Keras's defaults and update rules:

* ``SGD(learning_rate=0.01, momentum=0.0, nesterov=False)``: Keras's velocity
  m <- momentum m - lr g, w <- w + m is PyTorch's v <- momentum v + g, w <- w - lr v with
  m = -lr v (``optim.SGD``), the same steps for a fixed learning rate;
* ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)`` (``optim.Adam``).
  Keras adds epsilon to sqrt(v) before the bias correction, PyTorch after it,
  lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps) = lr / (1 - b1^t) m / (sqrt(v / (1 - b2^t)) + eps'),
  which are the same step for eps' = eps / sqrt(1 - b2^t): set before each step t, so the
  steps are Keras's exactly (it matters where gradients are tiny, where Adam's steps are
  decided by epsilon);
* ``RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)``, Keras's
  rule with epsilon inside the square root (:class:`RMSpropStep`, an ``optim.Optimizer``);
* ``AdamW(learning_rate=0.001, weight_decay=0.004, ...)`` (``optim.AdamW``).

``clipnorm`` (each gradient's norm), ``global_clipnorm`` (all gradients together) and
``clipvalue`` clip the gradients before the step. Keras 2's ``lr=`` is accepted for
``learning_rate=`` (the course's ``RMSprop(lr=1e-4)``).
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_cnn import optim
from tinygrad_cnn.autograd import no_grad_method
from tinygrad_cnn.device import xp_of
from tinygrad_cnn.optim.optimizer import Optimizer as EngineOptimizer


class RMSpropStep(EngineOptimizer):
    """Keras's RMSprop on tinygrad_cnn parameters: with g the gradient,
    v <- rho v + (1 - rho) g^2 (centered: also a <- rho a + (1 - rho) g and v - a^2 below),
    step = lr g / sqrt(v + eps);  w <- w - step, or with momentum m <- momentum m + step, w <- w - m.
    """

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, momentum: float = 0.0, eps: float = 1e-7,
                 centered: bool = False) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, momentum=momentum, eps=eps, centered=centered))

    @no_grad_method
    def step(self) -> None:
        for i, group, p in self._indexed_parameters():
            xp, g = xp_of(p.data), p.grad.data
            lr, rho, momentum, eps = group["lr"], group["rho"], group["momentum"], group["eps"]
            state = self.state.setdefault(i, {})
            if "square_avg" not in state:
                state["square_avg"] = xp.zeros_like(p.data)
                if group["centered"]:
                    state["grad_avg"] = xp.zeros_like(p.data)
                if momentum:
                    state["momentum_buffer"] = xp.zeros_like(p.data)
            v = state["square_avg"]
            v *= rho
            v += (1 - rho) * g * g
            denominator = v + eps
            if group["centered"]:
                a = state["grad_avg"]
                a *= rho
                a += (1 - rho) * g
                denominator = denominator - a * a
            increment = lr * g / xp.sqrt(denominator)
            if momentum:
                m = state["momentum_buffer"]
                m *= momentum
                m += increment
                increment = m
            p.data -= increment.astype(p.dtype, copy=False)


class Optimizer:
    """Keras's hyper-parameters now, the engine's optimizer once the weights are known."""

    def __init__(self, learning_rate: float, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, lr: float | None = None) -> None:
        name = type(self).__name__
        if lr is not None:
            learning_rate = lr
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) \
                or learning_rate < 0:
            raise ValueError(f"{name}: learning_rate must be a non-negative number, got {learning_rate!r}")
        clips = (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm))
        for key, value in clips:
            if value is not None and not value > 0:
                raise ValueError(f"{name}: {key} must be positive, got {value!r}")
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(f"{name}: give clipnorm or global_clipnorm, not both")
        self._learning_rate = float(learning_rate)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.engine: EngineOptimizer | None = None
        self._bound: list[int] = []
        self.iterations = 0  # steps taken, as Keras's optimizer.iterations

    def _make(self, params: list) -> EngineOptimizer:
        raise NotImplementedError

    @property
    def learning_rate(self) -> float:
        return self.engine.param_groups[0]["lr"] if self.engine is not None else self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = float(value)
        if self.engine is not None:
            for group in self.engine.param_groups:
                group["lr"] = float(value)

    lr = learning_rate

    def bind(self, params: list) -> EngineOptimizer:
        """The engine optimizer over ``params``, made anew when they changed (its state too)."""
        if not params:
            raise ValueError(f"{type(self).__name__}: the model has no trainable weights")
        ids = [id(p) for p in params]
        if self.engine is None or ids != self._bound:
            lr = self.learning_rate
            self.engine, self._bound = self._make(params), ids
            self.learning_rate = lr
        return self.engine

    def apply_gradients(self) -> None:
        """Clip the gradients as asked, then take one step."""
        grads = [p.grad for p in self.engine.parameters() if p.grad is not None]
        if self.clipvalue is not None:
            for g in grads:
                g.data = xp_of(g.data).clip(g.data, -self.clipvalue, self.clipvalue)
        if self.clipnorm is not None:
            for g in grads:
                _clip_norm([g], self.clipnorm)
        if self.global_clipnorm is not None:
            _clip_norm(grads, self.global_clipnorm)
        self._before_step()
        self.engine.step()
        self.iterations += 1

    def _before_step(self) -> None:
        """Hyper-parameters that depend on the step number."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


def _clip_norm(grads: list, max_norm: float) -> None:
    """Scale the gradients by max_norm / norm when their joint L2 norm exceeds max_norm."""
    norm = math.sqrt(sum(float((g.data.astype(np.float64) ** 2).sum()) for g in grads))
    if norm > max_norm:
        for g in grads:
            g.data = g.data * (max_norm / norm)


class SGD(Optimizer):
    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float | None = None, **kwargs) -> None:
        super().__init__(learning_rate, **kwargs)
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), weight_decay or 0.0

    def _make(self, params):
        return optim.SGD(params, lr=self.learning_rate, momentum=self.momentum, nesterov=self.nesterov,
                         weight_decay=self.weight_decay)


class Adam(Optimizer):
    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _make(self, params):
        return optim.Adam(params, lr=self.learning_rate, betas=(self.beta_1, self.beta_2), eps=self.epsilon)

    def _before_step(self) -> None:
        t = self.iterations + 1  # Keras's epsilon, in PyTorch's place (see the module docstring)
        for group in self.engine.param_groups:
            group["eps"] = self.epsilon / math.sqrt(1.0 - self.beta_2**t)


class AdamW(Adam):
    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.weight_decay = float(weight_decay)

    def _make(self, params):
        return optim.AdamW(params, lr=self.learning_rate, betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                           weight_decay=self.weight_decay)


class RMSprop(Optimizer):
    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs) -> None:
        super().__init__(learning_rate, **kwargs)
        if not 0 <= rho < 1:
            raise ValueError(f"RMSprop: rho must be in [0, 1), got {rho!r}")
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), \
            bool(centered)

    def _make(self, params):
        return RMSpropStep(params, lr=self.learning_rate, rho=self.rho, momentum=self.momentum,
                           eps=self.epsilon, centered=self.centered)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(identifier) -> Optimizer:
    """An Optimizer from a name (``'adam'``, ``'sgd'``, ``'rmsprop'``, ``'adamw'``) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in OPTIMIZERS:
        return OPTIMIZERS[identifier.lower()]()
    if isinstance(identifier, EngineOptimizer):
        raise TypeError("compile() takes a Keras optimizer (tinygrad_cnn.keras.optimizers.Adam(...)) or its "
                        "name; a tinygrad_cnn.optim optimizer needs the weights first")
    raise ValueError(f"unknown optimizer {identifier!r}; expected one of {sorted(OPTIMIZERS)} or an instance")
