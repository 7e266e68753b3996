"""The ``"simd"`` convolution strategy: direct loops with the output in vector registers.

Used by the numba and cython backends (their ``choose`` rules name it) for ungrouped
float32 layers, in one of two register layouts (``direct_conv.h``):

* ``"pixels"`` (stride 1, output rows at least a vector long): a vector holds neighbouring
  output pixels of one channel, straight in NCHW, so nothing is transposed;
* ``"channels"`` (the others whose output channels are a multiple of the vector width, 16
  with AVX-512 and 8 with AVX2): a vector holds output channels of one pixel, on
  channels-last copies of each sample.

* forward: the register-blocked loops of the layout;
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


# Above this many input or output channels the backends' GEMM strategies win (3x3, 16x16,
# b32, fwd + both gradients, 2 threads: 128 channels simd 114 ms, Cython's im2col 62,
# Numba's Winograd 42; 96 channels 68 vs im2col 44; 64 channels 8x8 b128 16 vs 28)
MAX_CHANNELS = 64


# 3x3 stride-1 layers on the pixel layout with at most this many input and output channels
# run faster on these loops than on Winograd F(2x2, 3x3), with AVX-512's 3x3 blocks (fwd +
# both gradients, 2 threads, float32, simd's time over Winograd's in the same run;
# benchmarks/RESULTS.md, "Kernel strategy rule"): 32 channels 16x16 b32 0.57-0.81 (Numba's
# Winograd), 0.73-0.83 (Cython's), b128 0.84-0.99 and 0.74-0.92, 32x32 0.78-0.82; at 48 and
# 64 channels their weight gradient loses (48ch 16x16 b32 1.14-1.22, 64ch 1.07-1.39)
WINOGRAD_BEATEN_CHANNELS = 32


def available() -> bool:
    return _direct is not None


def vector_width() -> int:
    return _direct.VEC if _direct is not None else 0


def layout(g) -> str | None:
    """"pixels", "channels" or None (not covered) for geometry ``g``."""
    if _direct is None or g.groups != 1:
        return None
    if g.stride == (1, 1) and g.out_width >= _direct.VEC and g.kernel[1] <= 8:
        return "pixels"
    if g.out_channels % _direct.VEC == 0:
        return "channels"
    return None


def applies(g) -> bool:
    """Layers the loops cover: the extension is built, one group, and one of the layouts."""
    return layout(g) is not None


def beats_winograd(g) -> bool:
    """Whether these loops beat Winograd F(2x2, 3x3) on a layer both strategies cover: 3x3,
    AVX-512 (the 3x3 blocks of 8 channels, ``direct_conv.h``), the pixel layout for the layer
    and for grad_input's adjoint (both run those blocks: input and output channels multiples
    of 8) and at most WINOGRAD_BEATEN_CHANNELS channels. Both backends' rules ask this. The
    rules see no dtype: a float64 layer it sends here runs on the backend's fallback."""
    c, k = g.input_shape[1], g.out_channels
    if (_direct is None or _direct.ISA != "avx512" or g.kernel != (3, 3) or layout(g) != "pixels"
            or c % 8 or k % 8 or max(c, k) > WINOGRAD_BEATEN_CHANNELS):
        return False
    adjoint = _adjoint_geometry(g)
    return adjoint is not None and layout(adjoint) == "pixels"


def _all_shares(run, function, shares: int, *args) -> None:
    """``function(*args, shares, share)`` for every share: on OpenMP threads inside the
    extension when ``run`` is None (the Cython backend), else on ``run``'s threads
    (``run(kernel, shares, *args)`` calls ``kernel(*args, t, shares)``: the Numba backend's
    share pool), so that one pool of threads owns the cores."""
    if run is None:
        function(*args, shares, -1)
    else:
        run(lambda *a: function(*a[:-2], a[-1], a[-2]), shares, *args)


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
    """The stride-1 convolution whose output is grad_x: grad_y padded by d (k - 1) - p (None
    where that is not a layer the loops cover)."""
    (kh, kw), (dh, dw) = g.kernel, g.dilation
    top, bottom, left, right = g.padding
    spans = ((kh - 1) * dh, (kh - 1) * dh, (kw - 1) * dw, (kw - 1) * dw)
    padding = tuple(s - p for s, p in zip(spans, (top, bottom, left, right)))
    if g.stride != (1, 1) or min(padding) < 0:
        return None
    n, c = g.input_shape[:2]
    adjoint = ConvGeometry((n, g.out_channels, g.out_height, g.out_width), g.kernel, (1, 1), padding,
                           g.dilation, out_channels=c, groups=1)
    return adjoint if applies(adjoint) else None


def forward(x, weight, g, shares: int, fallback, run=None) -> np.ndarray:
    kind = layout(g)
    if kind is None or not _covered(x, weight):
        return fallback.forward(x, weight, g, shares)
    y = np.empty(g.output_shape, dtype=np.float32)
    top, left = g.padding[0], g.padding[2]
    shares = max(1, min(shares, x.shape[0]))
    if kind == "pixels":
        _all_shares(run, _direct.pixel_forward, shares, x, np.ascontiguousarray(weight), y, top, left,
                    *g.dilation)
    else:
        _all_shares(run, _direct.forward, shares, x, _packed(weight), y, top, left, *g.stride, *g.dilation)
    return y


def backward_input(grad_y, weight, g, shares: int, fallback, run=None) -> np.ndarray:
    adjoint = _adjoint_geometry(g)
    if adjoint is None or not _covered(grad_y, weight):
        return fallback.backward_input(grad_y, weight, g, shares)
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, K, KH, KW)
    return forward(grad_y, flipped, adjoint, shares, fallback, run)


def backward_weight(grad_y, x, g, shares: int, fallback, run=None) -> np.ndarray:
    kind = layout(g)
    # the pixel loops multiply the lanes past a row's end by grad_y = 0, so where rows end
    # inside a vector, x must be finite (Inf * 0 = NaN); a full check of x costs as much as
    # a third of the kernel (16 channels 32x32 b128: 1-2 of 4-6 ms), so it runs only then
    partial_lanes = kind == "pixels" and g.out_width % _direct.VEC != 0
    if kind is None or not _covered(grad_y, x) or (partial_lanes and not np.isfinite(x).all()):
        return fallback.backward_weight(grad_y, x, g, shares)
    K, C, KH, KW = g.weight_shape
    shares = max(1, min(shares, x.shape[0]))
    if kind == "pixels":
        partial = np.empty((shares, K, C, KH, KW), dtype=np.float32)
        _all_shares(run, _direct.pixel_weight_grad, shares, grad_y, x, partial, g.padding[0], g.padding[2],
                    *g.dilation)
        return partial.sum(axis=0) if shares > 1 else partial[0]
    block = _direct.CHANNEL_BLOCK
    Cp = (C + block - 1) // block * block
    partial = np.empty((shares, KH, KW, Cp, K), dtype=np.float32)
    _all_shares(run, _direct.weight_grad, shares, grad_y, x, partial, g.padding[0], g.padding[2], *g.stride,
                *g.dilation)
    summed = partial.sum(axis=0)[:, :, :C, :]  # (KH, KW, C, K)
    return np.ascontiguousarray(summed.transpose(3, 2, 0, 1))
