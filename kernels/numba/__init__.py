"""Numba backend: the kernel interface of docs/ARCHITECTURE.md compiled to machine code.

One module per op family (``conv``, ``pool``, ``batchnorm``, ``residual``) with exactly the
function names and arguments of ``kernels/reference``; every compiled kernel's docstring says
which reference computation it equals.

Design rules shared by the modules:

* ``@njit(cache=True)``: the machine code is written to ``__pycache__`` (or
  ``NUMBA_CACHE_DIR``), so only the first process ever pays the compile time.
* Compiled functions call compiled functions of their own file only: the cache checks a
  kernel against its own source file, so after an edit to a callee in another file the
  caller would keep the old machine code (a documented Numba limitation).
* Few signatures: the Python wrappers pass C-contiguous float32/float64 arrays and plain
  ints (int64), so each kernel compiles at most twice (once per dtype).
* ``parallel=True`` loops (``prange``) split work over Numba's threads. A convolution
  calls BLAS *inside* those threads, so while it runs every BLAS library is pinned to one
  thread (see :mod:`._threads`): two Numba threads x one BLAS thread = two cores, no
  oversubscription.
* Numba owns the cores: when this backend loads, BLAS libraries are set to one thread for
  good (:func:`._threads.claim_cores`). Between kernels, OpenBLAS threads woken by the small
  GEMMs of ``Linear`` layers keep spinning and steal the cores from the next Numba kernel:
  measured, a LeNet-5 training step (batch 64) took 31.7 ms with numpy's BLAS on 2 threads
  and 15.8 ms on 1 (ResNet-20, whose only dense layer is tiny, was unchanged). Set
  ``TINYGRAD_CNN_BLAS_THREADS=N`` to keep N BLAS threads instead.
"""

from tinygrad_cnn.kernels.numba._threads import claim_cores

claim_cores()
