"""Quantization parameters: scales, zero points, fixed-point multipliers, and the observers
that choose them from data.

Course: *quantized networks*. A b-bit integer q in [qmin, qmax] stands for the real number

    r = s (q - z)                       (s: the scale, z: the zero point, an integer)

and a real number is quantized by ``q = clamp(round(r / s) + z, qmin, qmax)``. Two schemes:

* **affine, per tensor** (activations): a calibrated range [lo, hi], widened to contain 0, is
  spread over all 2^b integers: s = (hi - lo) / (qmax - qmin), z = qmin - round(lo / s). The
  real 0 is then exactly an integer (z), so zero padding and ReLU stay exact. Values outside
  the range are clipped.
* **symmetric, per output channel** (weights): z = 0 and s_k = max |w_k| / qmax_w for output
  channel k, with qmax_w = 2^(b-1) - 1 and the range [-qmax_w, qmax_w] (the restricted range,
  so that -w quantizes to -q). One scale per channel matters: the channels of a trained layer
  differ in size by orders of magnitude, and one shared scale would round the small ones to 0.

Ranges come from *observers* that watch the activations on a few calibration batches:
``"minmax"`` (the smallest and largest value seen), ``"percentile"`` (the p-th and (100 - p)-th
percentiles: a few outliers no longer stretch the range, so the common values get finer
steps) and ``"moving_average"`` (min and max per batch, averaged exponentially, for
quantization-aware training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OBSERVERS = ("minmax", "percentile", "moving_average")
MAX_SAMPLES_PER_BATCH = 1 << 18  # the percentile observer keeps at most this many values per batch


def check_bits(fn: str, name: str, bits) -> int:
    """Bit widths from 2 to 8: the integers are stored in int8."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise ValueError(f"{fn}: {name} must be an int from 2 to 8 (values are stored in int8), got {bits!r}")
    return int(bits)


def affine_range(bits: int) -> tuple[int, int]:
    """(qmin, qmax) of a signed b-bit integer: (-128, 127) for 8 bits, (-8, 7) for 4."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


@dataclass(frozen=True)
class QParams:
    """One tensor's quantization: real = scale * (q - zero_point), q in [qmin, qmax]."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int

    def quantize(self, real: np.ndarray) -> np.ndarray:
        """clamp(round(real / scale) + zero_point, qmin, qmax) as int8 (round half to even)."""
        q = np.rint(np.asarray(real, dtype=np.float64) / self.scale) + self.zero_point
        return np.clip(q, self.qmin, self.qmax).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """scale * (q - zero_point) as float32."""
        return (self.scale * (q.astype(np.float64) - self.zero_point)).astype(np.float32)


def affine_qparams(lo: float, hi: float, bits: int) -> QParams:
    """Per-tensor affine parameters for the real range [lo, hi] (widened to contain 0)."""
    qmin, qmax = affine_range(bits)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"cannot quantize the range [{lo}, {hi}]: it is not finite (NaN or inf in the "
                         "data?)")
    if hi == lo:  # an all-zero tensor: any scale represents it exactly
        return QParams(1.0, 0, qmin, qmax)
    scale = (hi - lo) / (qmax - qmin)
    zero_point = int(np.clip(qmin - round(lo / scale), qmin, qmax))
    return QParams(scale, zero_point, qmin, qmax)


def symmetric_weight_scales(weight: np.ndarray, bits: int) -> np.ndarray:
    """s_k = max |w_k| / (2^(b-1) - 1) for each output channel k (axis 0); 1 for an all-zero channel."""
    qmax = (1 << (bits - 1)) - 1
    largest = np.abs(weight.reshape(weight.shape[0], -1)).max(axis=1).astype(np.float64)
    return np.where(largest > 0, largest / qmax, 1.0)


def quantize_weight(weight: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(w_q int8, scales (K,)): w_q = clamp(round(w / s_k), -qmax, qmax), symmetric per channel."""
    qmax = (1 << (bits - 1)) - 1
    scales = symmetric_weight_scales(weight, bits)
    shape = (-1,) + (1,) * (weight.ndim - 1)
    q = np.clip(np.rint(weight.astype(np.float64) / scales.reshape(shape)), -qmax, qmax)
    return q.astype(np.int8), scales


def quantize_multiplier(real_multiplier) -> tuple[np.ndarray, np.ndarray]:
    """Write each M > 0 as multiplier * 2^-shift with an int32 multiplier in [2^30, 2^31).

    M = m 2^e with m in [0.5, 1) (``frexp``); multiplier = round(m 2^31) and shift = 31 - e, so
    that acc * M = (acc * multiplier) >> shift up to rounding, all in integers. M below 2^-32
    maps to multiplier 0 (acc * M rounds to 0 for every int32 acc anyway).
    Returns int32 multipliers and int8 shifts, the arrays a requantization kernel reads.
    """
    values = np.atleast_1d(np.asarray(real_multiplier, dtype=np.float64))
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"requantization multipliers must be positive and finite, got {values}")
    if (values >= 2.0**30).any():
        raise ValueError(f"requantization multiplier {values.max():.3g} is too large (at most 2^30): "
                         "the output scale is far smaller than the input and weight scales")
    mantissa, exponent = np.frexp(values)
    multiplier = np.rint(mantissa * 2.0**31).astype(np.int64)
    carry = multiplier == 1 << 31  # m rounded up to 1.0
    multiplier[carry] //= 2
    exponent = exponent + carry
    shift = 31 - exponent.astype(np.int64)
    tiny = shift > 62  # beyond what an int64 product can shift: the result is 0
    multiplier[tiny], shift[tiny] = 0, 1
    return multiplier.astype(np.int32), shift.astype(np.int8)


# ------------------------------------------------------------------------------------- observers
class Observer:
    """Watches arrays and reports a real range (lo, hi); ``None`` before the first array."""

    def __init__(self) -> None:
        self.lo: float | None = None
        self.hi: float | None = None

    def update(self, values: np.ndarray) -> None:
        raise NotImplementedError

    def range(self) -> tuple[float, float] | None:
        return None if self.lo is None else (self.lo, self.hi)


class MinMaxObserver(Observer):
    """The smallest and largest value of everything seen."""

    def update(self, values: np.ndarray) -> None:
        lo, hi = float(values.min()), float(values.max())
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)


class MovingAverageObserver(Observer):
    """lo <- lo + c (batch min - lo), the same for hi (c = ``averaging_constant``): follows the
    ranges of the activations while quantization-aware training changes them."""

    def __init__(self, averaging_constant: float = 0.01) -> None:
        super().__init__()
        if not 0.0 < averaging_constant <= 1.0:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant!r}")
        self.c = averaging_constant

    def update(self, values: np.ndarray) -> None:
        lo, hi = float(values.min()), float(values.max())
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            self.lo += self.c * (lo - self.lo)
            self.hi += self.c * (hi - self.hi)


class PercentileObserver(Observer):
    """The (100 - p)-th and p-th percentiles of everything seen (up to MAX_SAMPLES_PER_BATCH
    evenly spaced values of each batch are kept)."""

    def __init__(self, percentile: float = 99.99) -> None:
        super().__init__()
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) \
                or not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be a number in (50, 100], got {percentile!r}")
        self.percentile = float(percentile)
        self.samples: list[np.ndarray] = []

    def update(self, values: np.ndarray) -> None:
        flat = values.reshape(-1)
        step = max(1, flat.size // MAX_SAMPLES_PER_BATCH)
        self.samples.append(np.asarray(flat[::step], dtype=np.float64))
        every = np.concatenate(self.samples)
        self.lo = float(np.percentile(every, 100.0 - self.percentile))
        self.hi = float(np.percentile(every, self.percentile))


def make_observer(method: str, percentile: float = 99.99, averaging_constant: float = 0.01) -> Observer:
    if method == "minmax":
        return MinMaxObserver()
    if method == "percentile":
        return PercentileObserver(percentile)
    if method == "moving_average":
        return MovingAverageObserver(averaging_constant)
    raise ValueError(f"unknown observer {method!r}; expected one of {OBSERVERS}")
