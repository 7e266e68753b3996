"""Keras's weight initialisers, drawn in Keras's weight layout so the statistics match Keras.

The fans are Keras's: for a kernel of shape (*kernel, a, b) (a convolution (kh, kw, in, out),
a dense layer (in, out)) with receptive field r = prod(kernel), fan_in = a r and fan_out = b r.
``VarianceScaling(scale, mode, distribution)`` draws with variance scale / fan:

* ``glorot_uniform`` (Keras's default kernel): U(-l, l), l = sqrt(6 / (fan_in + fan_out));
* ``glorot_normal``: a normal truncated at two standard deviations, std sqrt(2 / (fan_in + fan_out));
* ``he_normal`` / ``he_uniform``: scale 2 over fan_in (for ReLU layers); ``lecun_*``: scale 1.

A truncated normal cut at 2 sigma has variance 0.774 sigma^2, so its sigma is divided by
0.8796 to keep the intended variance (as Keras). Draws come from tinygrad_cnn's generator
(``tinygrad_cnn.manual_seed``), or from ``seed`` when one is given (the same values each call).
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_cnn.keras.backend import snake_case
from tinygrad_cnn.random import generator

_TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight in Keras's layout."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """``initializer(shape) -> float32 array`` in Keras's layout."""

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"{type(self).__name__}: seed must be an int or None, got {seed!r}")
        self.seed = seed

    def _rng(self) -> np.random.Generator:
        return generator() if self.seed is None else np.random.default_rng(self.seed)

    def __call__(self, shape, dtype="float32") -> np.ndarray:
        return self.sample(tuple(int(s) for s in shape), self._rng()).astype(dtype)

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def _truncated_normal(rng: np.random.Generator, shape, mean: float, std: float) -> np.ndarray:
    """Normal draws, each outside mean +- 2 std drawn again."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    return mean + std * values


class Zeros(Initializer):
    def sample(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    def sample(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = float(value)

    def sample(self, shape, rng):
        return np.full(shape, self.value)


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)


class TruncatedNormal(RandomNormal):
    """Normal(mean, stddev) with draws beyond two standard deviations drawn again."""

    def sample(self, shape, rng):
        return _truncated_normal(rng, shape, self.mean, self.stddev)


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        if not minval <= maxval:
            raise ValueError(f"RandomUniform: minval {minval} must not exceed maxval {maxval}")
        self.minval, self.maxval = float(minval), float(maxval)

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)


class VarianceScaling(Initializer):
    """Variance ``scale / n`` with n = fan_in, fan_out or their mean (``mode='fan_avg'``)."""

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None) -> None:
        super().__init__(seed)
        if not scale > 0:
            raise ValueError(f"VarianceScaling: scale must be positive, got {scale!r}")
        if mode not in self.MODES:
            raise ValueError(f"VarianceScaling: mode must be one of {self.MODES}, got {mode!r}")
        distribution = "untruncated_normal" if distribution == "normal" else distribution
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(f"VarianceScaling: distribution must be one of {self.DISTRIBUTIONS}, "
                             f"got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def sample(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(variance), shape)
        return _truncated_normal(rng, shape, 0.0, math.sqrt(variance) / _TRUNCATED_STD)


def _variance_scaling(name: str, scale: float, mode: str, distribution: str) -> type:
    def __init__(self, seed: int | None = None) -> None:
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    doc = f"``VarianceScaling(scale={scale}, mode='{mode}', distribution='{distribution}')``."
    return type(name, (VarianceScaling,), {"__init__": __init__, "__doc__": doc})


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")

_ALIASES = {"zero": "zeros", "one": "ones", "uniform": "random_uniform", "normal": "random_normal"}
INITIALIZERS = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_normal": HeNormal, "he_uniform": HeUniform, "lecun_normal": LecunNormal,
    "lecun_uniform": LecunUniform,
}


def get(identifier) -> Initializer:
    """An Initializer from a name in INITIALIZERS (``'glorot_uniform'``), an instance or a class."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        key = snake_case(identifier)  # 'GlorotUniform' and 'glorot_uniform' alike
        key = _ALIASES.get(key, key)
        if key in INITIALIZERS:
            return INITIALIZERS[key]()
        raise ValueError(f"unknown initializer {identifier!r}; expected one of {sorted(INITIALIZERS)}")
    raise TypeError(f"initializer must be a name or an Initializer, got {identifier!r}")
