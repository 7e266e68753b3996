"""Integer (int8) inference kernels, written from the definition (the oracle).

Course: *quantized networks*. A real number r is stored as an integer q with a scale s and
a zero point z (the integer that stands for r = 0):

    r = s (q - z),        q = clamp(round(r / s) + z, qmin, qmax)      (int8: -128 ... 127)

Weights use z = 0 and one scale per output channel (symmetric, per channel); activations
one scale and zero point per tensor. A convolution of quantized input x and weights w is then

    y_real[k] = s_x s_w[k] sum_(c, m, n) (x_q - z_x) w_q[k] + bias[k]

so the whole sum runs on integers: int8 products accumulated in **int32**, plus the bias
stored as int32 in units of s_x s_w[k]. The int32 accumulator is brought back to int8 in the
output's scale s_y by *requantization*: multiply by M[k] = s_x s_w[k] / s_y and add z_y.
M[k] is a real number, but the hardware multiplies by integers only, so M is written as

    M = multiplier * 2^-shift,    multiplier an int32 in [2^30, 2^31),

and ``round(acc * M)`` becomes an int64 product and a rounding right shift (round half up):
``(acc * multiplier + 2^(shift - 1)) >> shift``. Nothing in this file touches a float.

Fusing ReLU is free: clamping the result to [z_y, qmax] instead of [qmin, qmax] is ReLU,
because the integer z_y stands for 0.

The kernel interface of the ``quantized`` family (every backend, same names and arguments):

* ``requantize(acc, multiplier, shift, zero_point, qmin, qmax) -> int8``: acc int32
  (N, K, ...) with one (multiplier, shift) per channel K (int64 arrays of shape (K,)).
* ``conv2d(x, x_zero_point, weight, bias, multiplier, shift, y_zero_point, qmin, qmax,
  stride, padding, dilation, groups) -> y int8``: x int8 (N, C, H, W), weight int8
  (K, C/groups, KH, KW), bias int32 (K,), zero padding of the *real* input (the integer
  z_x), ``padding=(top, bottom, left, right)`` as the float ``conv`` family.
* ``linear(x, x_zero_point, weight, bias, multiplier, shift, y_zero_point, qmin, qmax) -> y``:
  x int8 (N, F), weight int8 (K, F), bias int32 (K,).
* ``avg_pool2d(x, x_zero_point, kernel_size, stride, padding, multiplier, shift, y_zero_point,
  qmin, qmax) -> y``: the int32 window sum of (x - z_x) (padding counts as real zero and is
  included in the divisor, PyTorch's default), requantized with M = s_x / (s_y KH KW);
  ``multiplier`` and ``shift`` are int64 arrays of shape (1,) (one M for every channel).
* ``max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode) -> y``: the largest
  integer of each window (the map q -> s (q - z) is increasing, so the largest integer is the
  largest real value and the output keeps the input's scale and zero point); padding never
  wins, and a window of padding alone (possible with dilation) gives -128.

Sums wrap around modulo 2^32, as int32 hardware does; the quantizer checks beforehand that
no sum of a layer can exceed the int32 range, so no sum ever wraps in practice. Arguments are
trusted (``tinygrad_cnn.quantization`` checked them): C-contiguous arrays of the dtypes above.
"""

from __future__ import annotations

import numpy as np
from tinygrad_cnn.kernels.reference.conv import conv2d_forward as correlate
from tinygrad_cnn.kernels.reference.pool import max_pool2d_forward as float_max_pool

from tinygrad_cnn.nn.functional.geometry import ConvGeometry


def requantize(acc, multiplier, shift, zero_point, qmin, qmax):
    """y = clamp(round(acc * multiplier / 2^shift) + zero_point, qmin, qmax) as int8, per channel
    (axis 1 of acc); the division by 2^shift is a right shift that rounds half up."""
    channel = (1, -1) + (1,) * (acc.ndim - 2)  # broadcast the per-channel (K,) arrays along axis 1
    mult = multiplier.astype(np.int64).reshape(channel)
    sh = shift.astype(np.int64).reshape(channel)
    product = acc.astype(np.int64) * mult  # |acc| < 2^31 and multiplier < 2^31: fits in int64
    rounded = (product + (np.int64(1) << (sh - 1))) >> sh  # >> floors, so + half rounds half up
    return np.clip(rounded + zero_point, qmin, qmax).astype(np.int8)


def _centred(x, zero_point):
    """x - z as int32: the integers that are proportional to the real values (0 means 0)."""
    return x.astype(np.int32) - np.int32(zero_point)


def conv2d(x, x_zero_point, weight, bias, multiplier, shift, y_zero_point, qmin, qmax, geometry):
    """The int8 convolution: acc[n, k] = bias[k] + sum (x - z_x) * w[k] over the receptive field
    (int32, padding is real zero), then :func:`requantize`.

    The correlation itself is the float reference ``conv2d_forward``: its loops work for any
    dtype, and on int32 arrays they add int32 products exactly (modulo 2^32)."""
    acc = correlate(_centred(x, x_zero_point), weight.astype(np.int32), geometry)
    acc += bias.astype(np.int32).reshape(1, -1, 1, 1)
    return requantize(acc, multiplier, shift, y_zero_point, qmin, qmax)


def linear(x, x_zero_point, weight, bias, multiplier, shift, y_zero_point, qmin, qmax):
    """The int8 dense layer: acc[n, k] = bias[k] + sum_f (x[n, f] - z_x) w[k, f] (int32), requantized."""
    acc = _centred(x, x_zero_point) @ weight.astype(np.int32).T
    acc += bias.astype(np.int32)
    return requantize(acc, multiplier, shift, y_zero_point, qmin, qmax)


def avg_pool2d(x, x_zero_point, multiplier, shift, y_zero_point, qmin, qmax, geometry):
    """The int8 average pool of a PoolGeometry: the int32 sum of (x - z_x) over each window (a
    window sum is a convolution with a kernel of ones, one channel at a time), times
    M = s_x / (s_y KH KW)."""
    n, c, h, w = x.shape
    ones = np.ones((1, 1, *geometry.kernel), dtype=np.int32)
    ph, pw = geometry.padding
    planes = ConvGeometry((n * c, 1, h, w), geometry.kernel, geometry.stride, (ph, ph, pw, pw),
                          out_channels=1)
    sums = correlate(_centred(x, x_zero_point).reshape(n * c, 1, h, w), ones, planes)
    sums = sums.reshape(n, c, *sums.shape[2:])
    per_channel = (np.full(c, multiplier[0], dtype=np.int64), np.full(c, shift[0], dtype=np.int64))
    return requantize(sums, *per_channel, y_zero_point, qmin, qmax)


def max_pool2d(x, geometry):
    """The int8 max pool of a PoolGeometry: the float reference on the same integers (float32
    holds every int8 exactly, and padding there is -inf, so it never wins), back to int8."""
    values, _ = float_max_pool(x.astype(np.float32), geometry)
    return np.maximum(values, -128).astype(np.int8)  # -inf: a window of padding alone
