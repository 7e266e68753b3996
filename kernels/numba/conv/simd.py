"""The ``"simd"`` strategy on this backend: the direct SIMD loops of ``kernels/simd``.

They are compiled ahead of time by setup.py (no Numba compilation at all) and run on this
backend's share pool (not OpenMP: one pool of threads owns the cores); float64 arrays and
the layers they do not cover run on this backend's channels-last strategy.
"""

from __future__ import annotations

from tinygrad_cnn.kernels.numba.conv import channels_last
from tinygrad_cnn.kernels.numba.shares import run
from tinygrad_cnn.kernels.simd import conv as simd


def applies(geometry) -> bool:
    return simd.applies(geometry)


def forward(x, weight, g, shares: int, stacked: int | None = None):
    return simd.forward(x, weight, g, shares, channels_last, run)


def backward_input(grad_y, weight, g, shares: int, stacked: int | None = None):
    return simd.backward_input(grad_y, weight, g, shares, channels_last, run)


def backward_weight(grad_y, x, g, shares: int, stacked: int | None = None):
    return simd.backward_weight(grad_y, x, g, shares, channels_last, run)
