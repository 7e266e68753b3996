"""Compute kernels: one module per op family per backend, all with one interface.

    kernels/reference/conv.py    readable loops from the mathematical definition (the oracle)
    kernels/numba/conv.py        the same functions compiled with Numba (CPU)
    kernels/cython/...           the same functions as Cython extensions (CPU)
    kernels/cupy/...             the same functions on an NVIDIA GPU

Op families: ``conv``, ``pool``, ``batchnorm``, ``residual``. Every backend's
module of a family defines the same function names with the same arguments.
Kernels work on raw arrays: the differentiable functions in
``tinygrad_cnn.nn.functional`` validate shapes and arguments, make arrays
contiguous, and only then call :func:`kernel_module` ``(family).some_kernel(...)``.

The CPU backend is chosen by ``set_backend(name)``, the context manager
``use_backend(name)``, or the environment variable ``TINYGRAD_CNN_BACKEND``.
Arrays on the GPU always use the ``cupy`` backend.

Two process-wide policies live beside the backends: who owns the cores
(``blas_threads.py``) and who keeps freed memory (``allocator.py``); and two convolution
strategies both CPU backends use: the direct SIMD loops (``simd/``) and the fully connected
layer's matrix products (``fully_connected.py``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from types import ModuleType

from tinygrad_cnn.kernels.allocator import keep_freed_memory

CPU_BACKENDS = ("reference", "numba", "cython")
FAMILIES = ("conv", "pool", "batchnorm", "residual", "quantized")
DEFAULT_BACKEND = "numba"
ENV_VARIABLE = "TINYGRAD_CNN_BACKEND"


def _checked(name: str) -> str:
    if name not in CPU_BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {CPU_BACKENDS}")
    return name


_backend = _checked(os.environ.get(ENV_VARIABLE, DEFAULT_BACKEND))
keep_freed_memory()  # a step's arrays reuse the last step's memory (kernels/allocator.py)


class _ThreadBackend(threading.local):
    """``use_backend`` blocks of this thread, innermost last (empty: the process's choice).

    Per thread, like grad mode: a block in one thread (a live view, a test) never
    changes the kernels that another thread's training runs on."""

    def __init__(self) -> None:
        self.stack: list[str] = []


_thread = _ThreadBackend()


def get_backend() -> str:
    """The CPU backend in use in this thread."""
    return _thread.stack[-1] if _thread.stack else _backend


def set_backend(name: str) -> None:
    """Choose the CPU kernels for the whole process: ``"numba"`` (compiled, the default),
    ``"reference"`` (readable loops, the oracle) or ``"cython"``. The environment variable
    ``TINYGRAD_CNN_BACKEND`` sets the choice at import time. GPU arrays always run on the
    ``cupy`` kernels: move them with ``.to("cuda")`` (or ``device="cuda"``) instead."""
    global _backend
    if name == "cuda" or name == "cupy":
        raise ValueError(
            f"set_backend({name!r}): backends choose CPU kernels {CPU_BACKENDS}; for the GPU, "
            "put tensors and models on it with device='cuda' or .to('cuda')"
        )
    name = _checked(name)
    _load_all(name)
    _backend = name


@contextlib.contextmanager
def use_backend(name: str):
    """``with use_backend("reference"): ...`` runs the block, in this thread, on other kernels."""
    name = _checked(name)
    _load_all(name)
    _thread.stack.append(name)
    try:
        yield
    finally:
        _thread.stack.pop()


def _load_all(name: str) -> None:
    for family in FAMILIES:  # load everything first: a failed switch leaves the old backend
        _load(name, family)


def _load(backend: str, family: str) -> ModuleType:
    try:
        return importlib.import_module(f"tinygrad_cnn.kernels.{backend}.{family}")
    except ImportError as error:
        raise RuntimeError(
            f"backend {backend!r} cannot load its {family!r} kernels: {error}"
        ) from None


def kernel_module(family: str, device: str = "cpu") -> ModuleType:
    """The module implementing ``family`` for ``device`` under the current backend."""
    return _load("cupy" if device == "cuda" else get_backend(), family)
