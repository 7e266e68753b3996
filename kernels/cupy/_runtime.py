"""Compiling and launching the CUDA kernels of this backend (one place for both).

A :class:`Program` is one family's CUDA C source (``SOURCE`` of conv.py, pool.py, ...)
behind the common prelude below, and the names of its kernel templates. Its
``name_expressions`` instantiate each template for ``float`` and ``double``; CuPy's
``RawModule`` compiles them all with NVRTC the first time a kernel of the program runs,
once per process (CuPy keeps the binary in its disk cache too).

Kernels run through :data:`RUNTIME`, the GPU: CuPy's arrays (``RUNTIME.xp``) and its kernel
launches. The tests of machines without a GPU put a CPU emulation in its place
(``tests/cuda_emulator.py``: numpy arrays, the same sources compiled by g++), so the
kernels' index arithmetic is checked against the reference backend everywhere.

Launch rules: every integer argument is passed as a 64-bit ``long long`` and every float
as a ``double`` (one rule, no mismatched signatures); blocks have :data:`BLOCK_THREADS`
threads; an elementwise launch asks for one thread per work item, capped at
:data:`MAX_BLOCKS` blocks (the kernels are grid-stride loops, so any grid is correct).
"""

from __future__ import annotations

import numpy as np

BLOCK_THREADS = 256
MAX_BLOCKS = 65536
SCALAR_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

# The prelude of every program: the loop every kernel is written with, the block-wide sum
# of the reductions, and -infinity (no math headers needed, so NVRTC, nvcc and the tests'
# g++ emulation all compile the same text).
COMMON_SOURCE = r"""
#define BLOCK_THREADS 256

// for (i = this thread's first item; i < n; i += all threads of the grid): every kernel
// is correct for any grid and block size.
#define GRID_STRIDE_LOOP(i, n)                                                   \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (long long)blockDim.x * gridDim.x)

// The sum of one value per thread over the block (blockDim.x a power of two, at most
// BLOCK_THREADS), a tree in shared memory; every thread of the block gets it.
__device__ double block_sum(double value, double* scratch) {
  scratch[threadIdx.x] = value;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) scratch[threadIdx.x] += scratch[threadIdx.x + half];
    __syncthreads();
  }
  double total = scratch[0];
  __syncthreads();  // scratch is written again by the next call
  return total;
}

template <typename T> __device__ __forceinline__ T minus_infinity();
template <> __device__ __forceinline__ float minus_infinity<float>() {
  return __int_as_float((int)0xff800000u);
}
template <> __device__ __forceinline__ double minus_infinity<double>() {
  return __longlong_as_double((long long)0xfff0000000000000ull);
}
"""


def cupy():
    """CuPy, imported on first use (importing this backend never needs it)."""
    import cupy as module  # noqa: PLC0415 - optional dependency

    return module


class Program:
    """One family's CUDA source and kernel templates, compiled once on first use."""

    def __init__(self, name: str, source: str, kernels: tuple[str, ...]):
        self.name, self.kernels = name, kernels
        self.code = COMMON_SOURCE + source
        self._module = None

    @property
    def name_expressions(self) -> list[str]:
        """Every kernel template for both scalar types, e.g. ``"im2col<float>"``."""
        return [f"{kernel}<{scalar}>" for kernel in self.kernels for scalar in SCALAR_TYPES.values()]

    def standalone_source(self) -> str:
        """The program as one translation unit that instantiates every kernel template, as the
        ``name_expressions`` do for NVRTC: ``kernel_table[j]`` is the address of
        ``name_expressions[j]``. For ``nvcc`` (tests compile it without a GPU) and for the
        tests' C++ emulation."""
        entries = ",\n  ".join(f"(void*)&{name}" for name in self.name_expressions)
        return f'{self.code}\nextern "C" {{\nvoid* kernel_table[] = {{\n  {entries}\n}};\n}}\n'

    def function(self, kernel: str, dtype):
        """The compiled ``kernel<float>`` or ``kernel<double>`` (compiling the program once)."""
        if self._module is None:
            self._module = cupy().RawModule(code=self.code, options=("--std=c++17",),
                                            name_expressions=self.name_expressions)
        return self._module.get_function(f"{kernel}<{SCALAR_TYPES[np.dtype(dtype)]}>")


def _argument(value):
    """Kernel arguments: arrays as they are, ints as long long, floats as double."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"a kernel takes no bool argument, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return np.int64(value)
    if isinstance(value, (float, np.floating)):
        return np.float64(value)
    return value


class CudaRuntime:
    """The GPU: CuPy's arrays and its kernel launches."""

    name = "cuda"

    @property
    def xp(self):
        return cupy()

    def launch(self, program: Program, kernel: str, dtype, blocks: int, args: tuple) -> None:
        program.function(kernel, dtype)((blocks,), (BLOCK_THREADS,), args)


RUNTIME = CudaRuntime()


def xp():
    """The array module of the runtime in use (``cupy`` on the GPU)."""
    return RUNTIME.xp


def launch(program: Program, kernel: str, dtype, items: int, *args) -> None:
    """Run ``kernel`` with one thread per item (at most MAX_BLOCKS blocks of them)."""
    if items > 0:
        blocks = min(-(-items // BLOCK_THREADS), MAX_BLOCKS)
        RUNTIME.launch(program, kernel, dtype, blocks, tuple(_argument(a) for a in args))


def launch_blocks(program: Program, kernel: str, dtype, units: int, *args) -> None:
    """Run ``kernel`` with one block per unit of work (a channel, a weight tap), whose threads
    share it (the reductions)."""
    if units > 0:
        RUNTIME.launch(program, kernel, dtype, min(units, MAX_BLOCKS), tuple(_argument(a) for a in args))
