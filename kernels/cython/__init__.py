"""The CPU kernels compiled ahead of time with Cython (``set_backend("cython")``).

The kernel interface of docs/ARCHITECTURE.md compiled ahead of time, beside the Numba
backend's just-in-time kernels. The convolution has the strategies of ``conv.py``: two
im2col ones (per image on each thread, or the whole batch in one GEMM), Winograd's
F(2x2, 3x3) (``winograd.py``) and the SIMD loops shared with Numba (``kernels/simd``); of
the Numba backend's, channels-last patches are not written here:

    _conv.pyx       im2col / col2im loops; the per-image GEMMs call SciPy's BLAS (sgemm/dgemm
                    from scipy.linalg.cython_blas, through _gemm.pxi), the whole-batch GEMM
                    numpy.matmul
    _winograd.pyx   the F(2x2, 3x3) tile transforms; each thread's 16 GEMMs call SciPy's BLAS
    _pool.pyx       max pooling (arg-max routing) and average pooling, forward and backward
    _batchnorm.pyx  training-mode batch normalization, forward and backward
    _residual.pyx   the fused residual add + ReLU

``conv.py``, ``pool.py``, ``batchnorm.py`` and ``residual.py`` here expose the kernel
interface of docs/ARCHITECTURE.md: they check their inputs (the compiled loops run without
bounds checks), allocate the outputs and call the loops, which are written for both float32
and float64 (Cython fused types) and parallel over images, planes or channels with OpenMP
``prange`` when the extension was built with OpenMP.

The extensions are built by ``pip install .`` / ``pip install -e .`` (setup.py). If they were
not built, importing any module of this package raises ImportError, which
``tinygrad_cnn.kernels.set_backend("cython")`` reports with the command that builds them.
"""

from __future__ import annotations

import os

BUILD_HINT = (
    "the Cython extensions of tinygrad_cnn were not built; build them with "
    "`python -m pip install -e .` (or `pip install .`) from the repository root, "
    "which needs a C compiler"
)

# Below this many elements of work a loop runs on one thread: waking the OpenMP team costs
# microseconds, more than the work of a small LeNet-sized array.
PARALLEL_THRESHOLD = 32_768


def _max_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    requested = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if requested.isdigit() and int(requested) > 0:
        return min(int(requested), cores)
    return cores


MAX_THREADS = _max_threads()


def threads_for(work: int) -> int:
    """The number of OpenMP threads for a loop touching ``work`` elements."""
    return 1 if work < PARALLEL_THRESHOLD else MAX_THREADS


def import_compiled(name: str):
    """Import the compiled module ``name`` of this package, or raise ImportError with BUILD_HINT."""
    import importlib

    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError as error:
        raise ImportError(f"{BUILD_HINT} ({error})") from error
