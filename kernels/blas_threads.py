"""Who owns the cores: BLAS threads must not fight the compiled kernels' threads.

The Numba and Cython convolution kernels call a GEMM from inside their parallel loops:
every thread runs its own GEMM on its own samples, through the BLAS that SciPy ships
(``scipy.linalg.cython_blas``; Numba's ``np.dot`` calls it too; in wheels it is a separate
OpenBLAS from numpy's). If that BLAS also started its threads, 2 kernel threads x 2 BLAS
threads would fight for 2 cores, and a pthreads OpenBLAS called inside an OpenMP region
even warns that it may hang; measured, an unpinned ResNet 3x3 convolution ran 10-50x
slower. So while such a kernel runs, :data:`single_thread_blas` pins every loaded BLAS
library to one thread and restores the previous counts afterwards (a few ctypes calls,
microseconds; where the counts already are 1, as :func:`claim_cores` leaves them, only the
reads: 3 instead of 10 us a kernel). numpy's BLAS is idle while the kernel runs, so pinning
it too costs nothing. One pin serves both compiled backends.
"""

from __future__ import annotations

import os
import threading


class _SingleThreadBlas:
    """Context manager: all BLAS libraries run on one thread inside the block (re-entrant,
    and safe to enter from several threads: the first to enter pins, the last to leave
    restores)."""

    def __init__(self) -> None:
        self._libs: list | None = None
        self._saved: list[int] = []
        self._depth = 0
        self._lock = threading.Lock()

    @staticmethod
    def _find() -> list:
        # Load the BLAS behind the kernels' GEMMs first (Numba itself loads it lazily, on
        # the first GEMM, which would be too late for the controller to see it).
        try:
            import scipy.linalg.cython_blas  # noqa: F401
        except ImportError:  # the kernels' GEMMs need SciPy; without it there is nothing to pin
            pass
        from threadpoolctl import ThreadpoolController

        return [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]

    def __enter__(self) -> None:
        with self._lock:
            if self._libs is None:
                self._libs = self._find()
            if self._depth == 0:
                self._saved = [lib.get_num_threads() for lib in self._libs]
                for lib, n in zip(self._libs, self._saved):
                    if n != 1:  # claim_cores leaves them at 1: then there is nothing to set
                        lib.set_num_threads(1)
            self._depth += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for lib, n in zip(self._libs, self._saved):
                    if n != 1:
                        lib.set_num_threads(n)


single_thread_blas = _SingleThreadBlas()


def claim_cores() -> None:
    """Give the cores to the kernels' threads: every loaded BLAS library runs on ``TINYGRAD_CNN_BLAS_THREADS``
    threads (default 1) from now on, so BLAS threads spinning after a matrix product do not
    compete with Numba's threads for the same cores."""
    setting = os.environ.get("TINYGRAD_CNN_BLAS_THREADS", "1")
    try:
        threads = int(setting)
    except ValueError:
        raise ValueError(f"TINYGRAD_CNN_BLAS_THREADS must be a positive int, got {setting!r}") from None
    if threads < 1:
        raise ValueError(f"TINYGRAD_CNN_BLAS_THREADS must be a positive int, got {setting!r}")
    for lib in _SingleThreadBlas._find():
        lib.set_num_threads(threads)
