"""Training-mode batch normalization on the GPU: a per-channel reduction + an elementwise kernel.

Same functions and arguments as ``kernels/reference/batchnorm.py``: x viewed as (N, C, L),
channel c normalised with the biased statistics of its M = N*L values. Each pass is two
kernels:

* a reduction, one block per channel: its threads sum their share of the channel's M
  values in double and add the partial sums in shared memory (forward: the mean, then the
  centred sum of squares, two passes as the reference, so no cancellation; backward: the
  sums of grad_y and of grad_y x_hat);
* an elementwise kernel, one thread per value, applying the per-channel numbers.

With ``relu`` the forward writes max(y, 0) and the backward reads grad_y as 0 where that
output (``relu_output``) is <= 0: the ReLU after the batch norm, inside its kernels.
"""

from __future__ import annotations

from tinygrad_cnn.kernels.cupy import _runtime as rt

SOURCE = r"""
// Per channel c (one block each): mean_c = sum x / M, var_c = sum (x - mean_c)^2 / M,
// inv_std_c = 1 / sqrt(var_c + eps), over the M = N L values x[n, c, l].
template <typename T>
__global__ void statistics(const T* __restrict__ x, T* __restrict__ mean, T* __restrict__ inv_std,
                           double eps, long long N, long long C, long long L) {
  __shared__ double scratch[BLOCK_THREADS];
  const long long M = N * L;
  for (long long c = blockIdx.x; c < C; c += gridDim.x) {
    double partial = 0;
    for (long long j = threadIdx.x; j < M; j += blockDim.x)
      partial += (double)x[((j / L) * C + c) * L + j % L];
    const double mu = block_sum(partial, scratch) / (double)M;
    partial = 0;
    for (long long j = threadIdx.x; j < M; j += blockDim.x) {
      const double d = (double)x[((j / L) * C + c) * L + j % L] - mu;
      partial += d * d;
    }
    const double var = block_sum(partial, scratch) / (double)M;
    if (threadIdx.x == 0) {
      mean[c] = (T)mu;
      inv_std[c] = (T)(1.0 / sqrt(var + eps));
    }
  }
}

// y = (x - mean_c) (inv_std_c weight_c) + bias_c, or max(y, 0) with relu (NaN stays NaN),
// one thread per value.
template <typename T>
__global__ void normalize(const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ inv_std,
                          const T* __restrict__ weight, const T* __restrict__ bias, T* __restrict__ y,
                          long long N, long long C, long long L, long long relu) {
  GRID_STRIDE_LOOP(i, N * C * L) {
    const long long c = (i / L) % C;
    const T v = (x[i] - mean[c]) * (inv_std[c] * weight[c]) + bias[c];
    y[i] = relu && v < 0 ? T(0) : v;
  }
}

// grad_y[at], or 0 where masked and the fused ReLU's output relu_y[at] <= 0.
template <typename T>
__device__ T masked_gradient(const T* grad_y, const T* relu_y, long long at, long long masked) {
  return masked && relu_y[at] <= 0 ? T(0) : grad_y[at];
}

// Per channel c (one block each): grad_bias_c = sum g, grad_weight_c = sum g x_hat.
template <typename T>
__global__ void gradient_sums(const T* __restrict__ grad_y, const T* __restrict__ x,
                              const T* __restrict__ mean, const T* __restrict__ inv_std,
                              T* __restrict__ grad_weight, T* __restrict__ grad_bias, long long N,
                              long long C, long long L, const T* __restrict__ relu_y, long long masked) {
  __shared__ double scratch[BLOCK_THREADS];
  const long long M = N * L;
  for (long long c = blockIdx.x; c < C; c += gridDim.x) {
    const double mu = (double)mean[c], s = (double)inv_std[c];
    double g_sum = 0, gx_sum = 0;
    for (long long j = threadIdx.x; j < M; j += blockDim.x) {
      const long long at = ((j / L) * C + c) * L + j % L;
      const double g = (double)masked_gradient(grad_y, relu_y, at, masked);
      g_sum += g;
      gx_sum += g * ((double)x[at] - mu) * s;
    }
    const double bias_total = block_sum(g_sum, scratch);
    const double weight_total = block_sum(gx_sum, scratch);
    if (threadIdx.x == 0) {
      grad_bias[c] = (T)bias_total;
      grad_weight[c] = (T)weight_total;
    }
  }
}

// grad_x = weight_c inv_std_c / M (M g - grad_bias_c - x_hat grad_weight_c), one thread per value.
template <typename T>
__global__ void input_gradient(const T* __restrict__ grad_y, const T* __restrict__ x,
                               const T* __restrict__ mean, const T* __restrict__ inv_std,
                               const T* __restrict__ weight, const T* __restrict__ grad_weight,
                               const T* __restrict__ grad_bias, T* __restrict__ grad_x, long long N,
                               long long C, long long L, const T* __restrict__ relu_y, long long masked) {
  const T M = (T)(N * L);
  GRID_STRIDE_LOOP(i, N * C * L) {
    const long long c = (i / L) % C;
    const T x_hat = (x[i] - mean[c]) * inv_std[c];
    const T g = masked_gradient(grad_y, relu_y, i, masked);
    grad_x[i] = weight[c] * inv_std[c] / M * (M * g - grad_bias[c] - x_hat * grad_weight[c]);
  }
}
"""

PROGRAM = rt.Program("batchnorm", SOURCE, ("statistics", "normalize", "gradient_sums", "input_gradient"))


def _sizes(x) -> tuple[int, int, int]:
    """(N, C, L) of x viewed as (N, C, L) (an image batch's L is H W)."""
    n, c = x.shape[:2]
    return n, c, x.size // (n * c)


def batch_norm_forward_train(x, weight, bias, eps, relu=False):
    """y = weight * (x - mean) / sqrt(var + eps) + bias with biased batch statistics per
    channel (max(y, 0) with ``relu``); returns (y, mean, inv_std), mean and inv_std of shape
    (C,), y of x's shape."""
    xp = rt.xp()
    n, c, length = _sizes(x)
    mean, inv_std = xp.empty(c, dtype=x.dtype), xp.empty(c, dtype=x.dtype)
    y = xp.empty_like(x)
    rt.launch_blocks(PROGRAM, "statistics", x.dtype, c, x, mean, inv_std, float(eps), n, c, length)
    rt.launch(PROGRAM, "normalize", x.dtype, x.size, x, mean, inv_std, weight, bias, y, n, c, length,
              int(bool(relu)))
    return y, mean, inv_std


def batch_norm_backward(grad_y, x, mean, inv_std, weight, relu_output=None):
    """Gradients of the training-mode forward pass; returns (grad_x, grad_weight, grad_bias);
    with ``relu_output`` (the forward's output with ``relu``), of relu(batch norm)."""
    xp = rt.xp()
    n, c, length = _sizes(x)
    masked = relu_output is not None
    relu_y = relu_output if masked else grad_y  # not read unless masked
    grad_weight, grad_bias = xp.empty(c, dtype=x.dtype), xp.empty(c, dtype=x.dtype)
    grad_x = xp.empty_like(x)
    rt.launch_blocks(PROGRAM, "gradient_sums", x.dtype, c, grad_y, x, mean, inv_std, grad_weight, grad_bias,
                     n, c, length, relu_y, int(masked))
    rt.launch(PROGRAM, "input_gradient", x.dtype, x.size, grad_y, x, mean, inv_std, weight, grad_weight,
              grad_bias, grad_x, n, c, length, relu_y, int(masked))
    return grad_x, grad_weight, grad_bias
