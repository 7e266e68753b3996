"""The ``"simd"`` convolution strategy: direct loops with the output in vector registers.

Used by the numba and cython backends (their ``choose`` rules name it) for float32 layers
whose output channels are a multiple of the vector width (16 with AVX-512, 8 with AVX2),
ungrouped:

* forward: ``direct_conv.h``'s register-blocked loops on channels-last copies of each sample;
* backward_input: for stride 1, the adjoint is again a convolution, of grad_y padded by
  d (k - 1) - p with the flipped filters and the channel axes swapped (as in Winograd), so
  the same forward loops compute it (the input channels must then also be a multiple of
  the vector width); for other layers, the channels-last strategy's adjoint;
* backward_weight: register-blocked sums over the pixels, one share per thread, added up.

float64 arrays, and layers the loops do not cover, run on the channels-last strategy (the
``fallback`` module the backend passes), so a plan naming "simd" is always correct.
"""

from __future__ import annotations

import numpy as np

from tinygrad_cnn.nn.functional.geometry import ConvGeometry

try:
    from tinygrad_cnn.kernels.simd import _direct
except ImportError:  # the extension was not built: the backends do not offer "simd"
    _direct = None


def available() -> bool:
    return _direct is not None


def vector_width() -> int:
    return _direct.VEC if _direct is not None else 0


def applies(g) -> bool:
    """Layers the forward loops cover: the extension is built, one group, K % VEC == 0."""
    return _direct is not None and g.groups == 1 and g.out_channels % _direct.VEC == 0


def _covered(*arrays) -> bool:
    return all(a.dtype == np.float32 for a in arrays)


def _packed(weight: np.ndarray) -> np.ndarray:
    """(K, C, KH, KW) -> (KH, KW, Cp, K), channels zero-padded to Cp, a multiple of CHANNEL_BLOCK."""
    K, C, KH, KW = weight.shape
    block = _direct.CHANNEL_BLOCK
    Cp = (C + block - 1) // block * block
    packed = np.zeros((KH, KW, Cp, K), dtype=np.float32)
    packed[:, :, :C, :] = weight.transpose(2, 3, 1, 0)
    return packed


def _adjoint_geometry(g) -> ConvGeometry | None:
    """The stride-1 convolution whose output is grad_x: grad_y padded by d (k - 1) - p."""
    (kh, kw), (dh, dw) = g.kernel, g.dilation
    top, bottom, left, right = g.padding
    spans = ((kh - 1) * dh, (kh - 1) * dh, (kw - 1) * dw, (kw - 1) * dw)
    padding = tuple(s - p for s, p in zip(spans, (top, bottom, left, right)))
    if g.stride != (1, 1) or min(padding) < 0 or g.input_shape[1] % _direct.VEC:
        return None
    n, c = g.input_shape[:2]
    return ConvGeometry((n, g.out_channels, g.out_height, g.out_width), g.kernel, (1, 1), padding,
                        g.dilation, out_channels=c, groups=1)


def forward(x, weight, g, shares: int, fallback) -> np.ndarray:
    if not _covered(x, weight):
        return fallback.forward(x, weight, g, shares)
    y = np.empty(g.output_shape, dtype=np.float32)
    top, left = g.padding[0], g.padding[2]
    _direct.forward(x, _packed(weight), y, top, left, *g.stride, *g.dilation, max(1, min(shares, x.shape[0])))
    return y


def backward_input(grad_y, weight, g, shares: int, fallback) -> np.ndarray:
    adjoint = _adjoint_geometry(g)
    if adjoint is None or not _covered(grad_y, weight):
        return fallback.backward_input(grad_y, weight, g, shares)
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, K, KH, KW)
    return forward(grad_y, flipped, adjoint, shares, fallback)


def backward_weight(grad_y, x, g, shares: int, fallback) -> np.ndarray:
    if not _covered(grad_y, x):
        return fallback.backward_weight(grad_y, x, g, shares)
    K, C, KH, KW = g.weight_shape
    block = _direct.CHANNEL_BLOCK
    Cp = (C + block - 1) // block * block
    shares = max(1, min(shares, x.shape[0]))
    partial = np.empty((shares, KH, KW, Cp, K), dtype=np.float32)
    _direct.weight_grad(grad_y, x, partial, g.padding[0], g.padding[2], *g.stride, *g.dilation)
    summed = partial.sum(axis=0)[:, :, :C, :]  # (KH, KW, C, K)
    return np.ascontiguousarray(summed.transpose(3, 2, 0, 1))
