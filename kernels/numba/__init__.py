"""Numba backend: the kernel interface of docs/ARCHITECTURE.md compiled to machine code.

One module per op family (``conv`` is a package, one file per strategy; ``pool``,
``batchnorm``, ``residual``) with exactly the function names and arguments of
``kernels/reference``; every compiled kernel's docstring says which reference computation
it equals.

Design rules shared by the modules:

* ``@njit(cache=True)``: the machine code is written to disk, so only the first process
  ever pays the compile time.
* Numba's disk cache checks a compiled function against its own source file only: a
  kernel that calls a compiled helper of another file would keep the helper's old machine
  code after that file is edited (a documented Numba limitation). So this package keys
  its whole cache by a digest of every source file of the backend: it sets Numba's cache
  directory to ``<base>/tinygrad_cnn-<digest>`` while its modules are decorated (below),
  and any edit anywhere starts a fresh cache. ``<base>`` is ``NUMBA_CACHE_DIR`` if set,
  else this package's ``__pycache__`` (or, where that is read-only, the user's cache
  folder). Strategy files can then share helpers (``conv/_loops.py``).
* Few signatures: the Python wrappers pass C-contiguous float32/float64 arrays and plain
  ints (int64), so each kernel compiles at most twice (once per dtype).
* Every kernel is serial and releases the GIL (``nogil=True``) and computes one share of
  the work; ``shares.py`` runs the shares on a small pool of threads, one per core
  (Numba's thread count). Not ``prange``: parallel kernels compile twice as slowly, and
  Numba's fallback threading layer is not safe to call from two Python threads. A
  convolution calls BLAS *inside* those threads, so while it runs every BLAS library is
  pinned to one thread (``kernels/blas_threads.py``): two kernel threads x one BLAS thread =
  two cores.
* Numba owns the cores: when this backend loads, BLAS libraries are set to one thread for
  good (:func:`~tinygrad_cnn.kernels.blas_threads.claim_cores`). Between kernels, OpenBLAS
  threads woken by the small GEMMs of ``Linear`` layers keep spinning and steal the cores
  from the next Numba kernel (a LeNet-5 training step took twice as long). Set
  ``TINYGRAD_CNN_BLAS_THREADS=N`` to keep N BLAS threads instead.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba
from tinygrad_cnn.kernels.blas_threads import claim_cores

HERE = Path(__file__).resolve().parent


def source_digest(folder: Path = HERE) -> str:
    """A digest of every ``.py`` file below ``folder`` (names and contents)."""
    digest = hashlib.sha1()
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_directory(digest: str) -> Path:
    """Where this version of the backend keeps its compiled kernels."""
    if numba.config.CACHE_DIR:
        base = Path(numba.config.CACHE_DIR)
    elif os.access(HERE, os.W_OK):
        base = HERE / "__pycache__"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinygrad_cnn"
    return base / f"tinygrad_cnn-{digest}"


CACHE_DIR = cache_directory(source_digest())

# The cache location is read when a function is decorated: decorate every family now,
# under our directory, and leave Numba's setting as it was for everybody else.
_users_cache_dir = numba.config.CACHE_DIR
numba.config.CACHE_DIR = str(CACHE_DIR)
try:
    from tinygrad_cnn.kernels.numba import batchnorm, conv, pool, quantized, residual  # noqa: F401,E402
finally:
    numba.config.CACHE_DIR = _users_cache_dir

claim_cores()
