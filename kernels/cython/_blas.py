"""SciPy's BLAS GEMM for the Cython convolution threads.

The per-image convolution kernels (_conv.pyx) call GEMM from inside their OpenMP threads,
each thread on its own images. They call the Fortran ``sgemm``/``dgemm`` that SciPy exports
in ``scipy.linalg.cython_blas``: :func:`connect` hands those function pointers to the
compiled module, so building needs no BLAS headers. That BLAS must then run on ONE thread
(``kernels/blas_threads.py``'s ``single_thread_blas``, shared with the Numba backend).
"""

from __future__ import annotations


def connect(conv_module) -> bool:
    """Hand SciPy's GEMM pointers to the compiled module; False if SciPy is not installed."""
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return False
    capsules = cython_blas.__pyx_capi__
    conv_module.set_blas(capsules["sgemm"], capsules["dgemm"])
    return True
