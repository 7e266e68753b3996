"""Numba backend: the kernel interface of docs/ARCHITECTURE.md compiled to machine code.

One module per op family (``conv``, ``pool``, ``batchnorm``, ``residual``) with exactly the
function names and arguments of ``kernels/reference``; every compiled kernel's docstring says
which reference computation it equals.

Design rules shared by the modules:

* ``@njit(cache=True)``: the machine code is written to ``__pycache__`` (or
  ``NUMBA_CACHE_DIR``), so only the first process ever pays the compile time.
* Few signatures: the Python wrappers pass C-contiguous float32/float64 arrays and plain
  ints (int64), so each kernel compiles at most twice (once per dtype).
* ``parallel=True`` loops (``prange``) split work over Numba's threads. A convolution
  calls BLAS *inside* those threads, so while it runs every BLAS library is pinned to one
  thread (see :mod:`._threads`): two Numba threads x one BLAS thread = two cores, no
  oversubscription. Outside those kernels numpy's BLAS keeps its threads.
"""
