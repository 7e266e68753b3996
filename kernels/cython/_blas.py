"""Single-threaded BLAS GEMM for the Cython convolution threads.

The batched convolution kernels (_conv.pyx) call GEMM from inside their OpenMP threads, each
thread on its own images. They call the Fortran ``sgemm``/``dgemm`` that SciPy exports in
``scipy.linalg.cython_blas`` (a function pointer, so building needs no BLAS headers). That
BLAS must then run on ONE thread: 2 OpenMP threads x 2 BLAS threads would fight over 2 cores,
and OpenBLAS serializes concurrent multi-threaded calls. :data:`single_thread_blas` pins the
library that owns the pointer (found with ``dladdr``) to one thread inside a ``with`` block.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os


def _capsule_address(capsule) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _library_of(address: int) -> str | None:
    """The shared library file that holds ``address`` (None where dladdr is missing)."""
    try:
        libdl = ctypes.CDLL(ctypes.util.find_library("dl") or None)
        info = _DlInfo()
        if libdl.dladdr(ctypes.c_void_p(address), ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(info.dli_fname.decode())
    except (OSError, AttributeError):
        pass
    return None


def connect(conv_module) -> bool:
    """Hand SciPy's GEMM pointers to the compiled module; False if SciPy is not installed."""
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return False
    capsules = cython_blas.__pyx_capi__
    conv_module.set_blas(capsules["sgemm"], capsules["dgemm"])
    single_thread_blas.library = _library_of(_capsule_address(capsules["dgemm"]))
    return True


class _SingleThreadBlas(contextlib.AbstractContextManager):
    """``with single_thread_blas:`` runs SciPy's BLAS on one thread inside the block."""

    def __init__(self) -> None:
        self.library: str | None = None
        self._controllers: list | None = None
        self._saved: list[int] = []

    def _find(self) -> list:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return []
        blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
        mine = [lib for lib in blas if self.library and os.path.realpath(lib.filepath) == self.library]
        return mine or blas  # unknown library: pin every BLAS (correct, if less generous)

    def __enter__(self) -> None:
        if self._controllers is None:
            self._controllers = self._find()
        self._saved = [lib.get_num_threads() for lib in self._controllers]
        for lib, threads in zip(self._controllers, self._saved):
            if threads != 1:
                lib.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        for lib, threads in zip(self._controllers or [], self._saved):
            if threads != 1:
                lib.set_num_threads(threads)


single_thread_blas = _SingleThreadBlas()
