"""2-D convolution on the Numba backend: six strategies and the rule that picks one.

Same functions as ``kernels/reference/conv.py`` (docs/ARCHITECTURE.md), on a checked
``ConvGeometry`` ``g``: x (N, C, H, W), weight (K, C/groups, KH, KW), y (N, K, OH, OW),
cross-correlation

    y[n, k, oh, ow] = sum_{c in group(k), kh, kw} weight[k, c, kh, kw]
                      * x[n, c, oh*sh + kh*dh - top, ow*sw + kw*dw - left]   (0 outside x)

One file per strategy, each with the same ``forward``, ``backward_input`` and
``backward_weight``:

* ``direct.py``: the sum tap by tap, for depthwise convolutions (a GEMM would be a
  matrix-vector product);
* ``kernels/fully_connected.py`` (shared with the Cython backend): a window as large as
  the input (LeNet-5's C5), one matrix product for the batch in numpy's BLAS;
* ``simd.py``: register-blocked direct loops in C with SIMD intrinsics (``kernels/simd``,
  built by setup.py), for the other 16-64-channel layers (ResNet-20's 16-channel ones);
* ``winograd.py``: Winograd's F(2x2, 3x3), 4 instead of 9 multiply-adds per output and
  channel pair, for 3x3 stride-1 layers;
* ``channels_last.py``: a patch matrix of channels-last pixel rows, for small output planes;
* ``im2col_gemm.py``: im2col columns + GEMM, everything else (and the ``im2col``/``col2im``
  of a whole batch).

:func:`choose` is the rule (its thresholds come from measurements, kept in
benchmarks/RESULTS.md). It returns a :class:`Plan`: the strategy and how many shares the
batch is split into (one per thread). ``nn.functional``'s Function records the plan at
forward, so backward runs the same one; tests pass plans of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from tinygrad_cnn.kernels import fully_connected
from tinygrad_cnn.kernels.blas_threads import single_thread_blas
from tinygrad_cnn.kernels.numba.conv import channels_last, direct, im2col_gemm, simd, winograd

STRATEGIES = {
    "direct": direct,
    "fully_connected": fully_connected,
    "winograd": winograd,
    "channels_last": channels_last,
    "im2col": im2col_gemm,
}
if simd.simd.available():  # the ahead-of-time SIMD loops, where setup.py could build them
    STRATEGIES["simd"] = simd

WINOGRAD_MIN_CHANNELS = 32      # below this, F(2x2, 3x3)'s 16 small GEMMs lose to channels-last
# "simd" wins on layers of 16-64 channels, and on stride-1 layers with 16-64 output channels
# and fewer input channels (fwd + both gradients, ms, 2 threads, against the strategy the rule
# chose before: LeNet-5's 6 -> 16 5x5 b64 1.97 against channels-last 2.21, 8 -> 16 3x3 16x16
# b64 1.36 against 3.29; fwd + weight gradient, a first layer's pair: ResNet-20's 3 -> 16 stem
# b32 1.13 against im2col 1.42, b128 3.34 against 4.61, 1 -> 64 3x3 64x64 b4 0.86 against
# 1.96); but with a stride and few input channels it can lose (forward: 3 -> 32 3x3 stride 2
# b32 0.58 against im2col's 0.34, 3 -> 64 11x11 stride 4 3.68 against 1.44), and so does
# LeNet's 1 -> 6 (6 output channels)
SIMD_CHANNELS = (16, simd.simd.MAX_CHANNELS)
CHANNELS_LAST_MAX_PIXELS = 256  # larger output planes give im2col long contiguous rows


@dataclass(frozen=True)
class Plan:
    """How one convolution runs: ``strategy`` (a key of STRATEGIES), the batch split into
    ``shares`` contiguous parts (one per thread, ``kernels/numba/shares.py``), and
    ``stacked`` samples per GEMM for the strategies that stack them (None: their rule)."""

    strategy: str
    shares: int = 1
    stacked: int | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown numba conv strategy {self.strategy!r}; expected one of "
                             f"{tuple(STRATEGIES)}")
        if self.shares < 1 or (self.stacked is not None and self.stacked < 1):
            raise ValueError(f"a plan needs shares >= 1 and stacked >= 1, got {self}")


def choose(g, threads: int | None = None) -> Plan:
    """The rule, for geometry ``g`` and ``threads`` (default: Numba's thread count):

    * every group has one output channel (depthwise): ``"direct"``;
    * the window is the whole input (``g.window_is_the_input``): ``"fully_connected"``, one
      share (its matrix products run on one BLAS thread);
    * 3x3, stride 1, undilated, ungrouped, padding <= 2, at least WINOGRAD_MIN_CHANNELS
      input and output channels (ResNet's and VGG's main layers): ``"winograd"``, except
      where the SIMD loops beat it (``kernels/simd/conv.py:beats_winograd``: 32-channel
      layers on planes at least a vector wide, with AVX-512);
    * input and output channels within SIMD_CHANNELS, or (stride 1) output channels within
      them and fewer input channels, in a layer the SIMD loops cover (ResNet-20's stem and
      16-channel layers, its stride-2 ones and, by the exception above, its 32-channel ones;
      LeNet-5's 6 -> 16 layer): ``"simd"``, where setup.py built kernels/simd;
    * output planes of at most CHANNELS_LAST_MAX_PIXELS pixels: ``"channels_last"``;
    * otherwise ``"im2col"``.

    The batch is split into min(threads, N) shares.
    """
    threads = numba.get_num_threads() if threads is None else threads
    n, c = g.input_shape[:2]
    k = g.out_channels
    shares = max(1, min(threads, n))
    if k // g.groups == 1:
        return Plan("direct", shares)
    if g.window_is_the_input:
        return Plan("fully_connected", 1)
    low, high = SIMD_CHANNELS
    few_inputs = c < low and g.stride == (1, 1)
    simd_covers = ("simd" in STRATEGIES and low <= k and (low <= c or few_inputs) and max(c, k) <= high
                   and simd.applies(g))
    if (winograd.applies(g) and min(c, k) >= WINOGRAD_MIN_CHANNELS
            and not (simd_covers and simd.simd.beats_winograd(g))):
        return Plan("winograd", shares)
    if simd_covers:
        return Plan("simd", shares)
    if g.out_height * g.out_width <= CHANNELS_LAST_MAX_PIXELS:
        return Plan("channels_last", shares)
    return Plan("im2col", shares)


def _runner(g, plan: Plan | None):
    plan = choose(g) if plan is None else plan
    module = STRATEGIES[plan.strategy]
    if not module.applies(g):  # a test may force Winograd on a layer it does not cover
        module = channels_last
    return module, plan


def conv2d_forward(x: np.ndarray, weight: np.ndarray, g, plan: Plan | None = None) -> np.ndarray:
    """y = cross-correlation of x with weight (no bias): (N, C, H, W) -> (N, K, OH, OW)."""
    module, plan = _runner(g, plan)
    with single_thread_blas:
        return module.forward(x, weight, g, plan.shares, plan.stacked)


def conv2d_backward_input(grad_y: np.ndarray, weight: np.ndarray, g, plan: Plan | None = None) -> np.ndarray:
    """grad_x = the adjoint of the forward map applied to grad_y, shape ``g.input_shape``."""
    module, plan = _runner(g, plan)
    with single_thread_blas:
        return module.backward_input(grad_y, weight, g, plan.shares, plan.stacked)


def conv2d_backward_weight(grad_y: np.ndarray, x: np.ndarray, g, plan: Plan | None = None) -> np.ndarray:
    """grad_w[k, c, kh, kw] = sum_{n, oh, ow} grad_y[n, k, oh, ow] * (the x entry it multiplied)."""
    module, plan = _runner(g, plan)
    with single_thread_blas:
        return module.backward_weight(grad_y, x, g, plan.shares, plan.stacked)


def im2col(x: np.ndarray, g) -> np.ndarray:
    """cols (N, C*KH*KW, OH*OW): cols[n, (c*KH + kh)*KW + kw, oh*OW + ow] is the input entry
    that weight tap (c, kh, kw) multiplies for output (oh, ow) (0 in the padding)."""
    return im2col_gemm.im2col(x, g)


def col2im(cols: np.ndarray, g) -> np.ndarray:
    """The adjoint of :func:`im2col`: every column entry is added back to the input position it
    was copied from (overlapping windows sum; padding entries are dropped)."""
    return im2col_gemm.col2im(cols, g)
