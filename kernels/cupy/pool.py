"""Max and average pooling on the GPU.

Same functions and arguments as ``kernels/reference/pool.py`` (docs/ARCHITECTURE.md), on a
checked ``PoolGeometry``; layout NCHW, symmetric ``padding=(ph, pw)``. Output position
(oh, ow) and window offset (i, j) read input row ``oh*sh - ph + i*dh`` and column
``ow*sw - pw + j*dw``; positions outside the input are padding.

* Forward: one thread per output, looping over the window offsets that land inside the
  input only (``taps``), so a huge kernel over a small image costs the image, not the kernel.
* Backward: a gather, one thread per input pixel, looping over the windows that can hold it
  (``windows``); max pooling adds the gradients of the outputs whose arg-max it is (the
  indices route them), average pooling each window's grad / divisor. No atomics: every
  input gradient is written once, in a fixed order.
"""

from __future__ import annotations

import numpy as np
from tinygrad_cnn.kernels.cupy import _runtime as rt

SOURCE = r"""
// The geometry arguments every pooling kernel takes after its arrays, in this order.
#define POOL_ARGS                                                                     \
  long long N, long long C, long long H, long long W, long long KH, long long KW,     \
  long long sh, long long sw, long long ph, long long pw, long long dh, long long dw, \
  long long OH, long long OW

// [lo, hi): the window offsets i < kernel whose input position o stride - pad + i dilation
// lies in [0, size).
__device__ __forceinline__ void taps(long long o, long long stride, long long pad, long long kernel,
                                     long long dilation, long long size, long long* lo,
                                     long long* hi) {
  const long long start = o * stride - pad, last = size - 1 - start;  // i dilation <= last
  long long a = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
  long long b = last < 0 ? 0 : (last / dilation + 1 < kernel ? last / dilation + 1 : kernel);
  *lo = a < b ? a : b;
  *hi = b;
}

// [lo, hi): the output positions o < out whose window o stride - pad + [0, (kernel - 1)
// dilation] spans input position h.
__device__ __forceinline__ void windows(long long h, long long stride, long long pad, long long kernel,
                                        long long dilation, long long out, long long* lo,
                                        long long* hi) {
  const long long first = h + pad - (kernel - 1) * dilation;  // o stride >= first
  long long a = first <= 0 ? 0 : (first + stride - 1) / stride;
  long long b = (h + pad) / stride + 1;  // o stride <= h + pad
  *lo = a;
  *hi = b < out ? b : out;
}

// y = the window's maximum, indices = its position ih W + iw. Only a strictly larger value
// (or a NaN) replaces the current best, so ties keep the first maximum in row-major window
// order and the last NaN wins (PyTorch); a window without an input element gets -inf, -1.
template <typename T>
__global__ void max_forward(const T* __restrict__ x, T* __restrict__ y, long long* __restrict__ indices,
                            POOL_ARGS) {
  GRID_STRIDE_LOOP(i, N * C * OH * OW) {
    const long long ow = i % OW, oh = (i / OW) % OH, plane = i / (OW * OH);
    const T* src = x + plane * H * W;
    long long i_lo, i_hi, j_lo, j_hi;
    taps(oh, sh, ph, KH, dh, H, &i_lo, &i_hi);
    taps(ow, sw, pw, KW, dw, W, &j_lo, &j_hi);
    T best = minus_infinity<T>();
    long long where = -1;
    for (long long a = i_lo; a < i_hi; ++a) {
      const long long ih = oh * sh - ph + a * dh;
      for (long long b = j_lo; b < j_hi; ++b) {
        const long long at = ih * W + ow * sw - pw + b * dw;
        const T v = src[at];
        if (where < 0 || v > best || v != v) {  // v != v: v is NaN
          best = v;
          where = at;
        }
      }
    }
    y[i] = best;
    indices[i] = where;
  }
}

// grad_x[n, c, h, w] = the sum of grad_y over the windows that hold (h, w) and whose arg-max
// it is.
template <typename T>
__global__ void max_backward(const T* __restrict__ grad_y, const long long* __restrict__ indices,
                             T* __restrict__ grad_x, POOL_ARGS) {
  GRID_STRIDE_LOOP(i, N * C * H * W) {
    const long long w = i % W, h = (i / W) % H, plane = i / (W * H), at = h * W + w;
    long long oh_lo, oh_hi, ow_lo, ow_hi;
    windows(h, sh, ph, KH, dh, OH, &oh_lo, &oh_hi);
    windows(w, sw, pw, KW, dw, OW, &ow_lo, &ow_hi);
    const long long* arg = indices + plane * OH * OW;
    const T* g = grad_y + plane * OH * OW;
    T total = 0;
    for (long long oh = oh_lo; oh < oh_hi; ++oh)
      for (long long ow = ow_lo; ow < ow_hi; ++ow)
        if (arg[oh * OW + ow] == at) total += g[oh * OW + ow];
    grad_x[i] = total;
  }
}

// The divisor of average pooling along one axis (PyTorch's rule): the window clipped to the
// padded input [-pad, size + pad), or, without count_include_pad, to the input [0, size).
__device__ __forceinline__ long long window_size(long long o, long long stride, long long pad,
                                                 long long kernel, long long size,
                                                 long long count_include_pad) {
  long long start = o * stride - pad;
  long long end = start + kernel < size + pad ? start + kernel : size + pad;
  if (!count_include_pad) {
    start = start > 0 ? start : 0;
    end = end < size ? end : size;
  }
  return end - start;
}

__device__ __forceinline__ long long divisor(long long oh, long long ow, long long sh, long long sw,
                                             long long ph, long long pw, long long KH, long long KW,
                                             long long H, long long W, long long count_include_pad,
                                             long long divisor_override) {
  if (divisor_override > 0) return divisor_override;
  return window_size(oh, sh, ph, KH, H, count_include_pad) *
         window_size(ow, sw, pw, KW, W, count_include_pad);
}

// y = (the window's sum, padding 0) / divisor (divisor_override if > 0). No dilation.
template <typename T>
__global__ void avg_forward(const T* __restrict__ x, T* __restrict__ y, long long count_include_pad,
                            long long divisor_override, POOL_ARGS) {
  GRID_STRIDE_LOOP(i, N * C * OH * OW) {
    const long long ow = i % OW, oh = (i / OW) % OH, plane = i / (OW * OH);
    const T* src = x + plane * H * W;
    long long i_lo, i_hi, j_lo, j_hi;
    taps(oh, sh, ph, KH, 1, H, &i_lo, &i_hi);
    taps(ow, sw, pw, KW, 1, W, &j_lo, &j_hi);
    T total = 0;
    for (long long a = i_lo; a < i_hi; ++a)
      for (long long b = j_lo; b < j_hi; ++b) total += src[(oh * sh - ph + a) * W + ow * sw - pw + b];
    y[i] = total / (T)divisor(oh, ow, sh, sw, ph, pw, KH, KW, H, W, count_include_pad, divisor_override);
  }
}

// grad_x[n, c, h, w] = the sum of grad_y / divisor over the windows that hold (h, w).
template <typename T>
__global__ void avg_backward(const T* __restrict__ grad_y, T* __restrict__ grad_x,
                             long long count_include_pad, long long divisor_override, POOL_ARGS) {
  GRID_STRIDE_LOOP(i, N * C * H * W) {
    const long long w = i % W, h = (i / W) % H, plane = i / (W * H);
    long long oh_lo, oh_hi, ow_lo, ow_hi;
    windows(h, sh, ph, KH, 1, OH, &oh_lo, &oh_hi);
    windows(w, sw, pw, KW, 1, OW, &ow_lo, &ow_hi);
    const T* g = grad_y + plane * OH * OW;
    T total = 0;
    for (long long oh = oh_lo; oh < oh_hi; ++oh)
      for (long long ow = ow_lo; ow < ow_hi; ++ow)
        total += g[oh * OW + ow] /
                 (T)divisor(oh, ow, sh, sw, ph, pw, KH, KW, H, W, count_include_pad, divisor_override);
    grad_x[i] = total;
  }
}
"""

PROGRAM = rt.Program("pool", SOURCE, ("max_forward", "max_backward", "avg_forward", "avg_backward"))


def _args(g) -> tuple[int, ...]:
    """The geometry in the order of POOL_ARGS."""
    return (*g.input_shape, *g.flat())


def _average_options(g) -> tuple[int, int]:
    """(count_include_pad, divisor_override or 0) as the kernels' integers."""
    return int(g.count_include_pad), g.divisor_override or 0


def max_pool2d_forward(x, g):
    """y[n, c, oh, ow] = max over the window; indices = argmax as h * W + w (int64)."""
    xp = rt.xp()
    y = xp.empty(g.output_shape, dtype=x.dtype)
    indices = xp.empty(g.output_shape, dtype=np.int64)
    rt.launch(PROGRAM, "max_forward", x.dtype, y.size, x, y, indices, *_args(g))
    return y, indices


def max_pool2d_backward(grad_y, indices, g):
    """grad_x[n, c, indices[n, c, oh, ow]] += grad_y[n, c, oh, ow], as a gather."""
    grad_x = rt.xp().empty(g.input_shape, dtype=grad_y.dtype)
    rt.launch(PROGRAM, "max_backward", grad_y.dtype, grad_x.size, grad_y, indices, grad_x, *_args(g))
    return grad_x


def avg_pool2d_forward(x, g):
    """y = (window sum, padding 0) / divisor (``divisor_override``, else the clipped window area)."""
    y = rt.xp().empty(g.output_shape, dtype=x.dtype)
    rt.launch(PROGRAM, "avg_forward", x.dtype, y.size, x, y, *_average_options(g), *_args(g))
    return y


def avg_pool2d_backward(grad_y, g):
    """Every input position of a window receives grad_y / divisor of that window."""
    grad_x = rt.xp().empty(g.input_shape, dtype=grad_y.dtype)
    rt.launch(PROGRAM, "avg_backward", grad_y.dtype, grad_x.size, grad_y, grad_x, *_average_options(g),
              *_args(g))
    return grad_x
