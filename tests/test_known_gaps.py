"""What PyTorch accepts and tinygrad_cnn once refused, found by running PyTorch's OpInfo sample
inputs against the API (tests/parity/test_parity_opinfo.py): an empty batch and cropping pads.

The expected shapes are PyTorch 2.13's outputs for the same calls.
"""

import numpy as np
import pytest

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor

EMPTY = Tensor(np.zeros((0, 2, 6, 6)), requires_grad=True)
EMPTY_1D = Tensor(np.zeros((0, 2, 6)), requires_grad=True)

EMPTY_BATCH = [
    ("conv2d", lambda: F.conv2d(EMPTY, Tensor(np.ones((3, 2, 3, 3)))), (0, 3, 4, 4)),
    ("conv_transpose2d", lambda: F.conv_transpose2d(EMPTY, Tensor(np.ones((2, 3, 3, 3)))), (0, 3, 8, 8)),
    ("unfold", lambda: F.unfold(EMPTY, 2), (0, 8, 25)),
    ("max_pool2d", lambda: F.max_pool2d(EMPTY, 2), (0, 2, 3, 3)),
    ("avg_pool2d", lambda: F.avg_pool2d(EMPTY, 2), (0, 2, 3, 3)),
    ("max_pool1d", lambda: F.max_pool1d(EMPTY_1D, 2), (0, 2, 3)),
    ("avg_pool1d", lambda: F.avg_pool1d(EMPTY_1D, 2), (0, 2, 3)),
    ("adaptive_avg_pool2d", lambda: F.adaptive_avg_pool2d(EMPTY, 2), (0, 2, 2, 2)),
    ("adaptive_avg_pool1d", lambda: F.adaptive_avg_pool1d(EMPTY_1D, 2), (0, 2, 2)),
    ("batch_norm (eval)", lambda: F.batch_norm(EMPTY, Tensor(np.zeros(2)), Tensor(np.ones(2))), (0, 2, 6, 6)),
]


@pytest.mark.parametrize("backend", ["reference", "numba", "cython"])
@pytest.mark.parametrize("name, call, shape", EMPTY_BATCH, ids=[c[0] for c in EMPTY_BATCH])
def test_an_empty_batch_gives_an_empty_output(name, call, shape, backend):
    from tinygrad_cnn import use_backend

    with use_backend(backend):
        y = call()
        assert y.shape == shape
        y.sum().backward()  # and an empty gradient
    assert EMPTY.grad is None or EMPTY.grad.shape == EMPTY.shape


def test_pad_with_negative_widths_crops():
    x = Tensor(np.arange(10.0).reshape(2, 5), requires_grad=True)
    y = F.pad(x, (-1, 1))
    np.testing.assert_array_equal(y.numpy(), [[1, 2, 3, 4, 0], [6, 7, 8, 9, 0]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    with pytest.raises(ValueError, match="crop more than"):
        F.pad(x, (-3, -3))
    with pytest.raises(ValueError, match="need mode='constant'"):
        F.pad(x, (-1, 1), mode="reflect")
