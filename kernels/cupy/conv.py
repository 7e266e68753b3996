"""2-D convolution on the GPU: im2col + cuBLAS GEMMs, or a direct kernel for depthwise layers.

Same functions as ``kernels/reference/conv.py`` (docs/ARCHITECTURE.md), on a checked
``ConvGeometry`` ``g``: x (N, C, H, W), weight (K, C/G, KH, KW), y (N, K, OH, OW),
cross-correlation

    y[n, k, oh, ow] = sum_{c in group(k), kh, kw} weight[k, c, kh, kw]
                      * x[n, c, oh*sh + kh*dh - top, ow*sw + kw*dw - left]   (0 outside x)

Two strategies (``choose`` picks one, tests run both on every case):

* ``"im2col"``: the columns cols (N, C KH KW, OH OW) of every receptive field (a kernel), then
  per group one GEMM with the weight matrix (``cupy.matmul``: cuBLAS). The gradients are
  GEMMs too: the input's through the transposed weight matrix and col2im (a gather: one
  thread per input pixel sums the column entries copied from it, no atomics), the
  weight's as one GEMM per group over all N OH OW positions. A 1x1, stride-1, unpadded
  layer needs no columns: x itself is the matrix.
* ``"direct"``: the sum as written, one thread per output, per input pixel (a gather of the
  outputs that read it) and one block per weight tap (a reduction over N OH OW). For
  depthwise layers (one output channel per group), where a GEMM would be a
  matrix-vector product.
"""

from __future__ import annotations

from tinygrad_cnn.kernels.cupy import _runtime as rt

SOURCE = r"""
// The geometry arguments every conv kernel takes after its arrays, in this order:
// N, C, H, W (x), K (filters), G (groups), KH, KW, sh, sw, top, left, dh, dw, OH, OW.
#define CONV_ARGS                                                                   \
  long long N, long long C, long long H, long long W, long long K, long long G,     \
  long long KH, long long KW, long long sh, long long sw, long long top,            \
  long long left, long long dh, long long dw, long long OH, long long OW

// The output position o whose window reads input position h at tap k (o stride + k dilation
// - pad = h), or -1 where there is none: what a gather over the taps adds from.
__device__ __forceinline__ long long reader(long long h, long long pad, long long k, long long dilation,
                                            long long stride, long long out) {
  const long long t = h + pad - k * dilation;
  return t < 0 || t % stride != 0 || t / stride >= out ? -1 : t / stride;
}

// cols[n, (c KH + kh) KW + kw, oh OW + ow] = x[n, c, oh sh + kh dh - top, ow sw + kw dw - left]
// (0 in the padding): one thread per (n, c, oh, ow), writing its KH KW taps.
template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ cols, CONV_ARGS) {
  const long long L = OH * OW;
  GRID_STRIDE_LOOP(i, N * C * L) {
    const long long ow = i % OW, oh = (i / OW) % OH, plane = i / L;  // plane = n C + c
    const T* src = x + plane * H * W;
    T* dst = cols + plane * KH * KW * L + oh * OW + ow;
    for (long long kh = 0; kh < KH; ++kh) {
      const long long ih = oh * sh + kh * dh - top;
      for (long long kw = 0; kw < KW; ++kw) {
        const long long iw = ow * sw + kw * dw - left;
        const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
        dst[(kh * KW + kw) * L] = inside ? src[ih * W + iw] : T(0);
      }
    }
  }
}

// The adjoint of im2col, as a gather: x[n, c, h, w] = the sum of the column entries copied
// from it, one per tap (kh, kw) whose window position (oh, ow) lands on (h, w).
template <typename T>
__global__ void col2im(const T* __restrict__ cols, T* __restrict__ x, CONV_ARGS) {
  const long long L = OH * OW;
  GRID_STRIDE_LOOP(i, N * C * H * W) {
    const long long w = i % W, h = (i / W) % H, plane = i / (H * W);
    const T* src = cols + plane * KH * KW * L;
    T total = 0;
    for (long long kh = 0; kh < KH; ++kh) {
      const long long oh = reader(h, top, kh, dh, sh, OH);
      if (oh < 0) continue;
      for (long long kw = 0; kw < KW; ++kw) {
        const long long ow = reader(w, left, kw, dw, sw, OW);
        if (ow >= 0) total += src[(kh * KW + kw) * L + oh * OW + ow];
      }
    }
    x[i] = total;
  }
}

// Direct forward: one thread per output y[n, k, oh, ow], summing its group's C/G channels.
template <typename T>
__global__ void direct_forward(const T* __restrict__ x, const T* __restrict__ weight,
                               T* __restrict__ y, CONV_ARGS) {
  const long long CG = C / G, KG = K / G;
  GRID_STRIDE_LOOP(i, N * K * OH * OW) {
    const long long ow = i % OW, oh = (i / OW) % OH, k = (i / (OW * OH)) % K, n = i / (OW * OH * K);
    const T* src = x + (n * C + (k / KG) * CG) * H * W;
    const T* taps = weight + k * CG * KH * KW;
    T total = 0;
    for (long long c = 0; c < CG; ++c) {
      for (long long kh = 0; kh < KH; ++kh) {
        const long long ih = oh * sh + kh * dh - top;
        if (ih < 0 || ih >= H) continue;
        for (long long kw = 0; kw < KW; ++kw) {
          const long long iw = ow * sw + kw * dw - left;
          if (iw < 0 || iw >= W) continue;
          total += src[(c * H + ih) * W + iw] * taps[(c * KH + kh) * KW + kw];
        }
      }
    }
    y[i] = total;
  }
}

// Direct input gradient, a gather: grad_x[n, c, h, w] = sum over the filters k of c's group
// and the taps whose output (oh, ow) read (h, w) of weight[k, c, kh, kw] grad_y[n, k, oh, ow].
template <typename T>
__global__ void direct_backward_input(const T* __restrict__ grad_y, const T* __restrict__ weight,
                                      T* __restrict__ grad_x, CONV_ARGS) {
  const long long CG = C / G, KG = K / G;
  GRID_STRIDE_LOOP(i, N * C * H * W) {
    const long long w = i % W, h = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    const long long k0 = (c / CG) * KG, cg = c % CG;
    T total = 0;
    for (long long k = k0; k < k0 + KG; ++k) {
      const T* g = grad_y + (n * K + k) * OH * OW;
      const T* taps = weight + (k * CG + cg) * KH * KW;
      for (long long kh = 0; kh < KH; ++kh) {
        const long long oh = reader(h, top, kh, dh, sh, OH);
        if (oh < 0) continue;
        for (long long kw = 0; kw < KW; ++kw) {
          const long long ow = reader(w, left, kw, dw, sw, OW);
          if (ow >= 0) total += taps[kh * KW + kw] * g[oh * OW + ow];
        }
      }
    }
    grad_x[i] = total;
  }
}

// Direct weight gradient: one block per tap grad_w[k, c, kh, kw], its threads summing
// grad_y[n, k, oh, ow] x[n, group c, oh sh + kh dh - top, ow sw + kw dw - left] over the
// N OH OW positions (in double), then adding their partial sums in shared memory.
template <typename T>
__global__ void direct_backward_weight(const T* __restrict__ grad_y, const T* __restrict__ x,
                                       T* __restrict__ grad_w, CONV_ARGS) {
  __shared__ double scratch[BLOCK_THREADS];
  const long long CG = C / G, KG = K / G;
  for (long long e = blockIdx.x; e < K * CG * KH * KW; e += gridDim.x) {
    const long long kw = e % KW, kh = (e / KW) % KH, cg = (e / (KW * KH)) % CG, k = e / (KW * KH * CG);
    const long long c = (k / KG) * CG + cg;
    double partial = 0;
    for (long long j = threadIdx.x; j < N * OH * OW; j += blockDim.x) {
      const long long ow = j % OW, oh = (j / OW) % OH, n = j / (OW * OH);
      const long long ih = oh * sh + kh * dh - top, iw = ow * sw + kw * dw - left;
      if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
      partial += (double)grad_y[((n * K + k) * OH + oh) * OW + ow] *
                 (double)x[((n * C + c) * H + ih) * W + iw];
    }
    const double total = block_sum(partial, scratch);
    if (threadIdx.x == 0) grad_w[e] = (T)total;
  }
}
"""

PROGRAM = rt.Program("conv", SOURCE, ("im2col", "col2im", "direct_forward", "direct_backward_input",
                                      "direct_backward_weight"))

STRATEGIES = ("im2col", "direct")


def choose(g, threads: int | None = None) -> str:
    """``"direct"`` when every group has one output channel (depthwise), else ``"im2col"``.
    ``threads`` is part of the common interface; the GPU's threads are the kernels' own."""
    return "direct" if g.out_channels // g.groups == 1 else "im2col"


def _strategy(g, plan: str | None) -> str:
    plan = choose(g) if plan is None else plan
    if plan not in STRATEGIES:
        raise ValueError(f"unknown cupy conv strategy {plan!r}; expected one of {STRATEGIES}")
    return plan


def _args(g) -> tuple[int, ...]:
    """The geometry in the order of CONV_ARGS."""
    kh, kw, sh, sw, top, left, dh, dw, oh, ow = g.flat()
    n, c, h, w = g.input_shape
    k = g.out_channels if g.out_channels is not None else 1
    return n, c, h, w, k, g.groups, kh, kw, sh, sw, top, left, dh, dw, oh, ow


def _pointwise(g) -> bool:
    """A 1x1, stride-1, unpadded layer: x (N, C, H W) is already its own column matrix."""
    return g.kernel == (1, 1) and g.stride == (1, 1) and not any(g.padding)


def _columns(x, g):
    """(N, G, C/G KH KW, OH OW): the columns of each group."""
    n, c = g.input_shape[:2]
    cols = x if _pointwise(g) else im2col(x, g)
    return cols.reshape(n, g.groups, (c // g.groups) * g.kernel[0] * g.kernel[1], g.out_height * g.out_width)


def _direct(kernel: str, shape, first, second, g, launch=rt.launch):
    """A direct kernel's output of ``shape``: ``kernel(first, second, out, geometry)``, one thread
    (``launch_blocks``: one block) per output element."""
    out = rt.xp().empty(shape, dtype=first.dtype)
    launch(PROGRAM, kernel, first.dtype, out.size, first, second, out, *_args(g))
    return out


def conv2d_forward(x, weight, g, plan: str | None = None):
    """y = cross-correlation of x with weight (no bias): (N, C, H, W) -> (N, K, OH, OW)."""
    if _strategy(g, plan) == "direct":
        return _direct("direct_forward", g.output_shape, x, weight, g)
    xp = rt.xp()
    groups, k = g.groups, g.out_channels
    matrices = weight.reshape(groups, k // groups, -1)  # (G, K/G, C/G KH KW)
    # (G, K/G, C/G KH KW) @ (N, G, C/G KH KW, OH OW) -> (N, G, K/G, OH OW)
    return xp.matmul(matrices, _columns(x, g)).reshape(g.output_shape)


def conv2d_backward_input(grad_y, weight, g, plan: str | None = None):
    """grad_x = the adjoint of the forward map applied to grad_y, shape ``g.input_shape``."""
    if _strategy(g, plan) == "direct":
        return _direct("direct_backward_input", g.input_shape, grad_y, weight, g)
    xp = rt.xp()
    n, groups, k = g.input_shape[0], g.groups, g.out_channels
    matrices = weight.reshape(groups, k // groups, -1)
    # (G, C/G KH KW, K/G) @ (N, G, K/G, OH OW): the columns' gradient
    cols = xp.matmul(matrices.transpose(0, 2, 1), grad_y.reshape(n, groups, k // groups, -1))
    if _pointwise(g):
        return cols.reshape(g.input_shape)
    return col2im(cols.reshape(g.columns_shape), g)


def conv2d_backward_weight(grad_y, x, g, plan: str | None = None):
    """grad_w[k, c, kh, kw] = sum_{n, oh, ow} grad_y[n, k, oh, ow] * (the x entry it multiplied)."""
    if _strategy(g, plan) == "direct":
        return _direct("direct_backward_weight", g.weight_shape, grad_y, x, g, rt.launch_blocks)
    xp = rt.xp()
    n, groups, k = g.input_shape[0], g.groups, g.out_channels
    length = g.out_height * g.out_width
    # one GEMM per group over all N OH OW positions: (G, K/G, N L) @ (G, N L, C/G KH KW)
    gy = grad_y.reshape(n, groups, k // groups, length).transpose(1, 2, 0, 3).reshape(groups, k // groups, -1)
    cols = _columns(x, g).transpose(1, 0, 3, 2).reshape(groups, n * length, -1)
    return xp.matmul(gy, cols).reshape(g.weight_shape)


def im2col(x, g):
    """cols (N, C*KH*KW, OH*OW): cols[n, (c*KH + kh)*KW + kw, oh*OW + ow] is the input entry
    that weight tap (c, kh, kw) multiplies for output (oh, ow) (0 in the padding)."""
    cols = rt.xp().empty(g.columns_shape, dtype=x.dtype)
    n, c = g.input_shape[:2]
    rt.launch(PROGRAM, "im2col", x.dtype, n * c * g.out_height * g.out_width, x, cols, *_args(g))
    return cols


def col2im(cols, g):
    """The adjoint of :func:`im2col`: every column entry is added back to the input position it
    was copied from (overlapping windows sum; padding entries are dropped)."""
    x = rt.xp().empty(g.input_shape, dtype=cols.dtype)
    rt.launch(PROGRAM, "col2im", cols.dtype, x.size, cols, x, *_args(g))
    return x
