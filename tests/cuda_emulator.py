"""The CuPy backend's kernels run on the CPU: its CUDA sources compiled by g++, launched by ctypes.

Where there is no GPU, the tests still check every kernel of ``kernels/cupy`` against the
reference backend: :class:`EmulatedRuntime` takes the place of the GPU runtime
(``kernels/cupy/_runtime.RUNTIME``), with numpy arrays for CuPy's and each program's
``standalone_source()`` (the very text NVRTC compiles) built as a shared library behind a
small prelude that defines CUDA's keywords and thread indices for one CPU thread.

How a launch of ``blocks`` blocks runs: the kernels are grid-stride loops, correct for any
grid and block size, so the emulation runs a grid of ``min(blocks, 3)`` blocks of ONE thread
each, block after block (three, so that every loop's grid stride is exercised). With one
thread per block the shared-memory reductions add their values in order and
``__syncthreads`` has nothing to wait for. What this does not check: races between the
threads of a block or of the grid, and the speed; those need a GPU (``benchmarks/gpu_check.sh``).

Every launch also checks what the GPU would not: that each array argument is C-contiguous
(a kernel reads raw memory) and that its floating dtype is the kernel's.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from tinygrad_cnn.kernels.cupy import _runtime

EMULATED_GRID = 3
COMPILER = shutil.which("g++") or shutil.which("c++")

PRELUDE = r"""
#include <cmath>
#include <cstring>
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
struct EmulatedDim { unsigned x, y, z; };
extern "C" { EmulatedDim threadIdx, blockIdx, blockDim, gridDim; }
static inline void __syncthreads() {}
static inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, sizeof f); return f; }
static inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, sizeof d); return d; }
using std::sqrt;
"""


class EmulatedDim(ctypes.Structure):
    _fields_ = [("x", ctypes.c_uint), ("y", ctypes.c_uint), ("z", ctypes.c_uint)]


_C_TYPES = {np.int64: ctypes.c_longlong, np.float64: ctypes.c_double}


@functools.cache
def _library(name: str, source: str) -> ctypes.CDLL:
    """Compile one program's standalone source (once per process)."""
    if COMPILER is None:
        raise RuntimeError("no C++ compiler (g++) to emulate the CUDA kernels with")
    folder = Path(tempfile.mkdtemp(prefix=f"tinygrad_cnn_{name}_"))
    (folder / f"{name}.cpp").write_text(PRELUDE + source)
    library = folder / f"{name}.so"
    subprocess.run([COMPILER, "-O1", "-shared", "-fPIC", "-o", str(library), str(folder / f"{name}.cpp")],
                   check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(library))


class EmulatedRuntime:
    """numpy arrays and the kernels compiled for the CPU, one thread per block."""

    name = "emulated"
    xp = np

    def launch(self, program, kernel: str, dtype, blocks: int, args: tuple) -> None:
        library = _library(program.name, program.standalone_source())
        table = (ctypes.c_void_p * len(program.name_expressions)).in_dll(library, "kernel_table")
        scalar = _runtime.SCALAR_TYPES[np.dtype(dtype)]
        address = table[program.name_expressions.index(f"{kernel}<{scalar}>")]
        c_args, c_types = [], []
        for position, arg in enumerate(args):
            if isinstance(arg, np.ndarray):
                if not arg.flags.c_contiguous:
                    raise AssertionError(f"{kernel}: array argument {position} is not C-contiguous")
                if arg.dtype.kind == "f" and arg.dtype != np.dtype(dtype):
                    raise AssertionError(f"{kernel}<{scalar}>: array argument {position} is {arg.dtype}")
                c_args.append(ctypes.c_void_p(arg.ctypes.data))
                c_types.append(ctypes.c_void_p)
            else:
                c_type = _C_TYPES[type(arg)]
                c_args.append(c_type(arg))
                c_types.append(c_type)
        function = ctypes.CFUNCTYPE(None, *c_types)(address)
        grid = min(blocks, EMULATED_GRID)
        dims = {name: EmulatedDim.in_dll(library, name) for name in ("threadIdx", "blockIdx", "blockDim",
                                                                     "gridDim")}
        dims["threadIdx"].x, dims["blockDim"].x, dims["gridDim"].x = 0, 1, grid
        for block in range(grid):
            dims["blockIdx"].x = block
            function(*c_args)


@contextlib.contextmanager
def emulated():
    """Run the CuPy backend's kernels on the CPU inside the block."""
    saved = _runtime.RUNTIME
    _runtime.RUNTIME = EmulatedRuntime()
    try:
        yield
    finally:
        _runtime.RUNTIME = saved
