"""Causal and dilated 1-D convolution: networks that read a signal as it arrives.

A convolution with kernel size k and dilation d looks at d (k - 1) + 1 samples. Padded
symmetrically ('same'), output t also sees inputs *after* t: fine for a recording that is
already complete, useless for a detector that must answer while the signal streams in.
A **causal** convolution pads only on the left, by d (k - 1) zeros:

    y[t] = b + Σ_c Σ_i w[c, i] x[c, t - d (k - 1 - i)],   i = 0 .. k - 1

so y has the input's length and y[t] depends on x[..., :t + 1] only (WaveNet, van den Oord
et al. 2016; temporal convolutional networks, Bai et al. 2018). Stacking causal layers with
dilations 1, 2, 4, ..., 2^(L-1) grows the receptive field exponentially with the depth:

    R = 1 + (k - 1) Σ_l d_l = 1 + (k - 1) (2^L - 1)

(k = 3, five layers: R = 63 samples) with L layers of k C² weights each, where undilated
layers would need (R - 1) / (k - 1) = 31 layers for the same field.
``tinygrad_cnn.theory.receptive_field`` computes R for any stack; for a causal stack it
reports ``start`` = -(R - 1) / 2, the centre of a field that ends at the output's own step.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinygrad_cnn.nn.conv import Conv1d
from tinygrad_cnn.nn.functional.checks import int_tuple, positive_int
from tinygrad_cnn.nn.layers import ReLU
from tinygrad_cnn.nn.module import Module, Sequential
from tinygrad_cnn.nn.normalization import BatchNorm1d

__all__ = ["CausalConv1d", "causal_conv_stack"]


class CausalConv1d(Conv1d):
    """A :class:`Conv1d` padded with d (k - 1) zeros on the left only: (N, C_in, L) ->
    (N, C_out, ceil(L / stride)), output t depends on the inputs up to time t·stride only.
    weight (C_out, C_in / groups, k), bias (C_out,), as Conv1d; ``padding`` is
    ``((d (k - 1), 0),)``, so ``theory.receptive_field`` reads the layer like any other."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, bias: bool = True, dtype=None):
        kernel = int_tuple("CausalConv1d", "kernel_size", kernel_size, 1)[0]
        spread = int_tuple("CausalConv1d", "dilation", dilation, 1)[0]
        left = spread * (kernel - 1)
        super().__init__(in_channels, out_channels, kernel, stride=stride, padding=((left, 0),),
                         dilation=spread, groups=groups, bias=bias, dtype=dtype)


def causal_conv_stack(in_channels: int, channels: int, kernel_size: int = 3,
                      dilations: Sequence[int] = (1, 2, 4, 8), batch_norm: bool = True) -> Sequential:
    """A stack of causal convolutions, one per entry of ``dilations``, each followed by batch
    norm (optional) and ReLU: ``in_channels`` -> ``channels`` maps, the signal's length kept.
    Receptive field 1 + (k - 1) Σ dilations (the layers' names: ``"0"``, ``"1"``, ... as any
    Sequential: conv, [batch norm], ReLU per entry)."""
    fn = "causal_conv_stack"
    in_channels = positive_int(fn, "in_channels", in_channels)
    channels = positive_int(fn, "channels", channels)
    if isinstance(dilations, (str, bytes)) or not isinstance(dilations, Sequence) or not dilations:
        raise ValueError(f"{fn}: dilations must be a non-empty sequence of positive ints, got {dilations!r}")
    dilations = int_tuple(fn, "dilations", tuple(dilations), len(dilations))
    layers: list[Module] = []
    for i, d in enumerate(dilations):
        layers.append(CausalConv1d(in_channels if i == 0 else channels, channels, kernel_size, dilation=d,
                                   bias=not batch_norm))
        if batch_norm:
            layers.append(BatchNorm1d(channels))
        layers.append(ReLU())
    return Sequential(*layers)
