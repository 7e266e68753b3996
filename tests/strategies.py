"""Hypothesis strategies shared by the test modules."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = st.sampled_from([np.float32, np.float64])


def finite_arrays(shape, dtype=np.float64, low=-3.0, high=3.0):
    """Arrays of ``shape`` with finite elements drawn from [low, high]."""
    return hnp.arrays(dtype, shape, elements=st.floats(low, high, width=64 if dtype == np.float64 else 32))


@st.composite
def maybe_transposed(draw, shape, dtype=np.float64, low=-3.0, high=3.0):
    """An array of ``shape`` that is sometimes a non-contiguous (transposed) view."""
    if len(shape) >= 2 and draw(st.booleans()):
        base = draw(finite_arrays(shape[::-1], dtype, low, high))
        return base.T
    return draw(finite_arrays(shape, dtype, low, high))
