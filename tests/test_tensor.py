"""Tensor construction, dtypes, factories, conversions and error messages."""

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor


def test_construction_and_dtypes():
    assert Tensor([1, 2, 3]).dtype == np.float32  # lists become float32
    assert Tensor(np.ones(3)).dtype == np.float64  # float64 arrays are kept
    assert Tensor(np.ones(3, dtype=np.float16)).dtype == np.float32
    assert Tensor(np.arange(3)).dtype == np.int64  # integer labels stay integers
    assert Tensor(2.5).shape == () and Tensor(2.5).item() == 2.5
    assert Tensor([1, 2], dtype="float64").dtype == np.float64
    assert Tensor([1, 2], dtype=tc.int64).dtype == np.int64
    t = Tensor([[1.0, 2.0]], requires_grad=True)
    assert (t.shape, t.ndim, t.size(), t.size(1), t.numel(), t.device) == (
        (1, 2), 2, (1, 2), 2, 2, "cpu")
    assert t.grad is None and t.requires_grad and t.is_leaf


def test_factories():
    tc.manual_seed(0)
    a = Tensor.randn(2, 3)
    tc.manual_seed(0)
    np.testing.assert_array_equal(a.numpy(), Tensor.randn((2, 3)).numpy())
    assert Tensor.zeros(2, 3).numpy().sum() == 0 and Tensor.ones(4).numpy().sum() == 4
    assert Tensor.full((2, 2), 7.0).numpy().tolist() == [[7, 7], [7, 7]]
    assert Tensor.arange(5).numpy().tolist() == [0, 1, 2, 3, 4]
    assert Tensor.arange(0, 1, 0.5).dtype == np.float32
    np.testing.assert_array_equal(Tensor.eye(3).numpy(), np.eye(3))
    r = Tensor.rand(1000).numpy()
    assert 0 <= r.min() and r.max() < 1


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="int64"):
        Tensor(np.arange(3), requires_grad=True)


def test_shape_mismatch_errors_name_both_shapes_and_the_op():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\)"):
        Tensor.ones(2, 3) + Tensor.ones(4)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        Tensor.ones(2, 3) @ Tensor.ones(4, 5)
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4,\)"):
        Tensor.ones(2, 3).reshape(4)
    with pytest.raises(ValueError, match="out of range"):
        Tensor.ones(2, 3).sum(2)
    with pytest.raises(ValueError, match="cat along dim 0"):
        tc.cat([Tensor.ones(2, 3), Tensor.ones(2, 4)])
    with pytest.raises(IndexError, match="out of range"):
        Tensor.ones(2, 3)[5]
    with pytest.raises(TypeError, match="cannot make a Tensor"):
        Tensor("hello")


def test_devices_are_checked():
    with pytest.raises(ValueError, match="unknown device"):
        Tensor([1.0], device="tpu")
    if not tc.device.cuda_is_available():
        with pytest.raises(RuntimeError, match="CuPy"):
            Tensor([1.0], device="cuda")


def test_mixing_devices_says_so():
    a = Tensor([1.0])
    b = Tensor([2.0])
    b.data = type("FakeCupyArray", (), {"shape": (1,), "dtype": np.dtype("float32")})()
    with pytest.raises(ValueError, match="different devices"):
        a + b


def test_conversions_and_comparisons():
    t = Tensor([1.0, 2.0, 3.0])
    assert t.tolist() == [1.0, 2.0, 3.0]
    assert (t > 1.5).numpy().tolist() == [False, True, True]
    assert (t == Tensor([1.0, 0.0, 3.0])).long().sum().item() == 2
    assert t.double().dtype == np.float64 and t.to("float64").dtype == np.float64
    assert "requires_grad=True" in repr(Tensor([1.0], requires_grad=True))
    with pytest.raises(ValueError, match="one element"):
        t.item()


# ---------------------------------------------------------------- edge cases (PyTorch's behaviour)
def test_expand_with_minus_one_in_a_tuple_or_as_varargs():
    assert Tensor(np.ones((1, 1, 3))).expand((-1, 4, 3)).shape == (1, 4, 3)
    assert Tensor(np.ones((1, 1, 3))).expand(-1, 4, 3).shape == (1, 4, 3)
    assert Tensor(np.ones((5, 1, 5))).expand((-1, 5, -1)).shape == (5, 5, 5)
    assert Tensor(np.ones((5, 1, 5))).expand([2, -1, 5, -1]).shape == (2, 5, 5, 5)
    with pytest.raises(ValueError, match="new leading dimension"):
        Tensor(np.ones((5, 1, 5))).expand(-1, 5, 1, 5)
    with pytest.raises(ValueError, match="fewer dimensions"):
        Tensor(np.ones((5, 1, 5))).expand(5, 5)
    with pytest.raises(ValueError, match=r"cannot expand shape \(5, 1, 5\) to \(5, 5, 4\)"):
        Tensor(np.ones((5, 1, 5))).expand(5, 5, 4)
    with pytest.raises(ValueError, match="-2 is not allowed as a size"):
        Tensor(np.ones(3)).expand(-2, 3)


def test_gather_with_a_repeated_index_accumulates_every_gradient():
    x = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    picked = x.gather(1, np.array([[2, 2, 0, 2]]))  # element 2 is read three times
    (picked * Tensor(np.array([[1.0, 10.0, 100.0, 1000.0]]))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[100.0, 0.0, 1011.0]])


def test_complex_data_is_refused():
    for data in (np.array([1 + 2j]), np.complex64(1.0), np.ones(2, dtype=np.complex128)):
        with pytest.raises(TypeError, match="complex"):
            Tensor(data)
    with pytest.raises(TypeError, match="complex"):
        Tensor(np.array([1 + 0j]), dtype="float32")  # numpy would cast with only a warning
    with pytest.raises(TypeError, match="complex"):
        Tensor([1 + 2j])


def test_numpy_scalars_keep_their_dtype():
    assert Tensor(np.float64(2.5)).dtype == np.float64 and Tensor(np.float64(2.5)).shape == ()
    assert Tensor(np.float32(2.5)).dtype == np.float32
    assert Tensor(np.int32(3)).dtype == np.int32
    assert isinstance(Tensor(np.float64(1.0)).data, np.ndarray)
