"""Layout helpers shared by the compiled convolution kernels (``conv.py``, ``winograd.py``)."""

from __future__ import annotations

from numba import njit
from numba import uint64 as _u


@njit(cache=True)
def transpose_into(src, dst):
    """dst (B, A) = src (A, B) transposed, both C-contiguous. Converts one sample between
    channel planes (C, H*W) and channels-last pixel rows (H*W, C). 8x8 tiles keep both
    sides' cache lines in L1; flat ``uint64`` indices (no negative-index wrap-around code)
    make it 1.5x faster than 2-D indexing (measured)."""
    A, B = src.shape
    s = src.reshape(A * B)
    d = dst.reshape(A * B)
    for a0 in range(0, A, 8):
        a1 = min(a0 + 8, A)
        for b0 in range(0, B, 8):
            b1 = min(b0 + 8, B)
            for b in range(b0, b1):
                for a in range(a0, a1):
                    d[_u(b * A + a)] = s[_u(a * B + b)]
