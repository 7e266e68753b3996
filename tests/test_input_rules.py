"""One rule for the inputs of every layer and functional op: Tensors, of one float dtype.

A numpy array or a list gets a TypeError that names the op and says to wrap it (not numpy's
"'numpy.ndarray' object has no attribute ..."); a float64 input to float32 weights gets a
TypeError naming both dtypes (PyTorch refuses it too; silently promoting would double the
memory of a model and hide the mistake).
"""

import numpy as np
import pytest

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, nn

ARRAY = np.ones((2, 3), dtype=np.float32)

LAYERS = [nn.Linear(3, 2), nn.ReLU(), nn.LeakyReLU(0.1), nn.Sigmoid(), nn.Tanh(), nn.Softmax(1),
          nn.LogSoftmax(1), nn.Flatten(), nn.Dropout(0.5)]
FUNCTIONS = [F.relu, F.leaky_relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax, F.dropout,
             lambda x: F.linear(x, Tensor(np.ones((2, 3), np.float32)))]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("value", [ARRAY, ARRAY.tolist()], ids=["ndarray", "list"])
def test_layers_refuse_arrays_with_a_type_error_that_names_them(layer, value):
    with pytest.raises(TypeError, match=r"must be a Tensor, got (ndarray|list) \(wrap arrays with Tensor"):
        layer(value)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_functions_refuse_arrays_and_integer_tensors(fn):
    with pytest.raises(TypeError, match=r"must be a Tensor, got ndarray"):
        fn(ARRAY)
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        fn(Tensor(np.ones((2, 3), dtype=np.int64)))


def test_linear_refuses_a_float64_input_to_float32_weights():
    layer = nn.Linear(3, 2)
    with pytest.raises(TypeError, match="linear: all tensors must share one dtype, got input float64, "
                                        "weight float32, bias float32"):
        layer(Tensor(np.ones((1, 3))))
    assert layer(Tensor(ARRAY)).dtype == np.float32
    assert nn.Linear(3, 2, dtype="float64")(Tensor(np.ones((1, 3)))).dtype == np.float64
    with pytest.raises(TypeError, match="weight float64, bias float32"):
        F.linear(Tensor(ARRAY), Tensor(np.ones((2, 3))), Tensor(np.ones(2, np.float32)))


def test_scalar_options_are_checked():
    with pytest.raises(TypeError, match="negative_slope must be a number"):
        F.leaky_relu(Tensor(ARRAY), "0.1")
    with pytest.raises(ValueError, match="dropout probability"):
        F.dropout(Tensor(ARRAY), "0.5")
    with pytest.raises(TypeError, match="training must be True or False"):
        F.dropout(Tensor(ARRAY), 0.5, training="False")
