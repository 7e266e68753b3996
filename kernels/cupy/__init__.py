"""CuPy backend: the kernel interface of docs/ARCHITECTURE.md on an NVIDIA GPU.

Tensors on ``device="cuda"`` hold ``cupy.ndarray`` s, and ``kernel_module(family, "cuda")``
returns these modules, with exactly the function names and arguments of
``kernels/reference`` (the oracle they are tested against):

    conv.py       im2col / col2im kernels + cuBLAS GEMMs (``cupy.matmul``): strategy "im2col";
                  a direct kernel per output, input pixel and weight tap: strategy "direct"
                  (chosen for depthwise layers, where a GEMM would be a matrix-vector product)
    pool.py       max pooling (arg-max routing) and average pooling, forward and backward
    batchnorm.py  training-mode batch norm: a per-channel reduction kernel + an elementwise one
    residual.py   the fused add + ReLU and its gradient mask

Design rules shared by the modules:

* The CUDA C source of each family is a module-level string (``SOURCE``), templated on the
  scalar type; ``_runtime.Program`` compiles it once, on first use, with CuPy's
  ``RawModule`` for both ``float`` and ``double`` (NVRTC; CuPy also caches the binary on
  disk). The sources compile without a GPU, so tests check them with ``nvcc --ptx``.
* Every kernel is a grid-stride loop (``GRID_STRIDE_LOOP``): correct for any grid and
  block size, so a launch may cap its grid, and the same source runs, one thread at a
  time, in the CPU emulation the tests use where there is no GPU
  (``tests/cuda_emulator.py``).
* Sums over a gradient are gathers, never atomics: col2im and the pooling backward passes
  run one thread per input element that sums what reached it, so results are
  deterministic. The per-channel and per-weight sums reduce within one block (shared
  memory), accumulating in double.
* CuPy is imported only when a kernel first runs, so importing these modules never fails on
  a machine without CuPy or a GPU.
"""
