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


@pytest.mark.parametrize("call, expected", [
    (lambda s: s.sum(0), 2.5), (lambda s: s.mean(-1), 2.5), (lambda s: s.amax(0), 2.5),
    (lambda s: s.amin(-1), 2.5), (lambda s: s.max(0).values, 2.5), (lambda s: s.min(-1).values, 2.5),
    (lambda s: s.max(0).indices, 0), (lambda s: s.argmax(0), 0), (lambda s: s.argmin(-1), 0),
    (lambda s: s.transpose(0, 0), 2.5), (lambda s: s.transpose(0, -1), 2.5), (lambda s: s.squeeze(0), 2.5),
    (lambda s: s.squeeze((0,)), 2.5), (lambda s: s.softmax(0), 1.0), (lambda s: s.log_softmax(-1), 0.0),
    (lambda s: s.sum((0,), keepdim=True), 2.5), (lambda s: s.gather(0, np.array(0)), 2.5),
])
def test_dim_0_and_minus_1_of_a_0d_tensor_as_pytorch(call, expected):
    s = Tensor(np.array(2.5), requires_grad=True)
    out = call(s)
    assert out.shape == () and out.item() == expected
    if out.dtype.kind == "f":
        out.backward()
        assert s.grad.shape == () and s.grad.item() == (0.0 if expected in (1.0, 0.0) else 1.0)


def test_0d_tensors_refuse_other_dims_and_cat_clearly():
    s = Tensor(np.array(2.5))
    for call in (lambda: s.sum(1), lambda: s.transpose(0, 1), lambda: s.softmax(-2), lambda: s.max(1)):
        with pytest.raises(ValueError, match="out of range"):
            call()
    with pytest.raises(IndexError, match="0-d tensor has no dimension 0"):
        s.size(0)
    with pytest.raises(ValueError, match="element 0 is 0-d.*stack"):
        tc.cat([s, s])
    assert tc.stack([s, s]).shape == (2,)


def test_softmax_along_an_empty_dimension_is_empty_and_extremes_refuse_it():
    x = Tensor(np.zeros((2, 0, 3)), requires_grad=True)
    for out in (x.softmax(1), x.log_softmax(1), x.softmax(0)):
        assert out.shape == (2, 0, 3)
        out.sum().backward()
        assert x.grad.shape == (2, 0, 3)
    assert x.sum(1).shape == (2, 3) and x.amax(2).shape == (2, 0)  # 3 values per row: fine
    for name, call in (("amax", lambda: x.amax(1)), ("amin", lambda: x.amin()), ("max", lambda: x.max(-2)),
                       ("argmin", lambda: x.argmin(1)), ("argmax", lambda: x.argmax())):
        with pytest.raises(ValueError, match=rf"{name}: cannot reduce over .*\(2, 0, 3\)"):
            call()


def test_cat_and_stack_name_the_element_that_is_not_a_tensor():
    t = Tensor([1.0])
    with pytest.raises(TypeError, match="cat: element 1 must be a Tensor, got NoneType"):
        tc.cat([t, None])
    with pytest.raises(TypeError, match="stack: element 0 must be a Tensor, got ndarray"):
        tc.stack([np.ones(1), t])
    with pytest.raises(TypeError, match="list or tuple of Tensors, got Tensor"):
        tc.cat(t)


def test_squeeze_with_a_tuple_of_dims():
    x = Tensor(np.ones((1, 2, 1, 3)), requires_grad=True)
    assert x.squeeze((0, 2)).shape == (2, 3)
    assert x.squeeze((0, 1)).shape == (2, 1, 3)  # dim 1 has size 2: kept, as PyTorch
    assert x.squeeze([-2, 0]).shape == (2, 3) and x.squeeze(()).shape == (1, 2, 1, 3)
    x.squeeze((0, 2)).sum().backward()
    assert x.grad.shape == (1, 2, 1, 3)
    with pytest.raises(ValueError, match="repeats"):
        x.squeeze((0, -4))
    with pytest.raises(TypeError, match="must be an int"):
        x.squeeze(("a",))


def test_clamp_with_tensor_bounds():
    x = Tensor(np.array([[-2.0, 0.0, 1.0, 3.0]]), requires_grad=True)
    low = Tensor(np.array([-1.0, 0.0, 2.0, 5.0]), requires_grad=True)
    high = Tensor(np.array([[1.0], [4.0]]), requires_grad=True)
    out = x.clamp(low, high)  # broadcast to (2, 4); where low > high the result is high
    np.testing.assert_array_equal(out.numpy(), [[-1.0, 0.0, 1.0, 1.0], [-1.0, 0.0, 2.0, 4.0]])
    out.sum().backward()
    # x: inside [low, high] (x = low counts as inside); low: x < low < high; high: x > high or high < low
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 2.0, 0.0, 0.0]])
    np.testing.assert_array_equal(low.grad.numpy(), [2.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(high.grad.numpy(), [[2.0], [1.0]])
    assert x.clamp(min=low).numpy().tolist() == [[-1.0, 0.0, 2.0, 5.0]]
    assert x.clamp(max=0.5).numpy().tolist() == [[-2.0, 0.0, 0.5, 0.5]]
    assert x.clamp(2.0, 1.0).numpy().tolist() == [[1.0, 1.0, 1.0, 1.0]]  # min > max: max, as PyTorch
    with pytest.raises(ValueError, match="cannot be broadcast"):
        x.clamp(Tensor(np.ones(3)))
    with pytest.raises(TypeError, match="min must be a number, a Tensor or None"):
        x.clamp("0")


# ------------------------------------- found by running PyTorch's OpInfo sample inputs on the API
def test_gather_follows_torch_gather_and_checks_its_index():
    x = Tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    out = x.gather(1, np.array([[0, 3], [1, 1]]))  # a smaller index: rows 0 and 1 only, as PyTorch
    np.testing.assert_array_equal(out.numpy(), [[0.0, 3.0], [5.0, 5.0]])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0, 0, 1], [0, 2, 0, 0], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"index values must be in \[0, 3\] along dim 1, got \[-1, 0\]"):
        x.gather(1, np.array([[-1, 0]]))
    with pytest.raises(ValueError, match=r"index of shape \(2,\) does not fit the input of shape \(3, 4\)"):
        x.gather(1, np.array([0, 1]))
    with pytest.raises(ValueError, match="does not fit"):
        x.gather(1, np.zeros((4, 1), np.int64))  # 4 rows of a 3-row input
    with pytest.raises(TypeError, match="index must hold integers"):
        x.gather(0, np.array([[0.0]]))


def test_var_and_std_accept_pytorch_s_other_spellings():
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)))
    a = x.numpy()
    assert x.var(False).item() == pytest.approx(a.var())                  # var(unbiased)
    assert x.std(True).item() == pytest.approx(a.std(ddof=1))
    np.testing.assert_allclose(x.var(1, correction=None).numpy(), a.var(1, ddof=1))
    np.testing.assert_allclose(x.std(0, unbiased=False).numpy(), a.std(0))


def test_max_and_min_with_a_tensor_are_elementwise_and_where_is_a_method():
    a, b = Tensor([1.0, 5.0, 3.0]), Tensor([4.0, 2.0, 3.0])
    assert a.max(b).tolist() == [4.0, 5.0, 3.0] and a.min(b).tolist() == [1.0, 2.0, 3.0]
    assert a.where(a > 2, b).tolist() == [4.0, 5.0, 3.0]


# --- Python's protocols and dtype casts, as PyTorch's (found by a stranger's try) ------------

def test_dtype_casts_are_differentiable_and_a_no_op_cast_is_the_tensor():
    w = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    assert w.float() is w and w.to(np.float32) is w
    (w * 2 + w.float()).sum().backward()  # the cast did not cut the graph: 2 + 1 per element
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])
    v = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    wide = v.double() * 3
    assert wide.dtype == np.float64 and wide.requires_grad and (v * 2).to(tc.float64).requires_grad
    wide.sum().backward()
    assert v.grad.dtype == np.float32  # the gradient comes back in the leaf's dtype
    np.testing.assert_array_equal(v.grad.numpy(), [3.0, 3.0])
    labels = v.long()  # to an integer dtype: data outside the graph
    assert labels.dtype == np.int64 and not labels.requires_grad


def test_truth_value_numbers_format_and_iteration():
    assert not bool(Tensor([0.0])) and bool(Tensor(0.5)) and bool(Tensor([[2.0]]) > 1)
    assert ("small" if Tensor([0.5]) < 0.1 else "large") == "large"
    with pytest.raises(ValueError, match="2 elements .* ambiguous"):
        bool(Tensor([-1.0, -2.0]) > 0)
    assert float(Tensor(2.5)) == 2.5 and int(Tensor([3.7])) == 3 and f"{Tensor(0.12345):.2f}" == "0.12"
    with pytest.raises(TypeError, match="one element"):
        float(Tensor([1.0, 2.0]))
    np.testing.assert_array_equal(abs(Tensor([-1.0, 2.0])).numpy(), [1.0, 2.0])
    rows = list(Tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0]
    with pytest.raises(TypeError, match="0-d"):
        list(Tensor(1.0))


@pytest.mark.parametrize("data", [None, [1.0, None], ["1", "2"], [[1.0], [1.0, 2.0]]])
def test_data_that_is_not_numbers_is_refused(data):
    with pytest.raises(TypeError, match="cannot make a Tensor"):
        Tensor(data)
    with pytest.raises(TypeError, match="cannot make a Tensor"):
        Tensor([1.0, 2.0]) * data  # numpy would have made None a NaN


def test_numpy_sees_a_tensors_data():
    t = Tensor([[1.0, -2.0]], requires_grad=True)
    array = np.asarray(t)
    assert array.dtype == np.float32 and array.tolist() == [[1.0, -2.0]]
    np.testing.assert_array_equal(np.abs(t), [[1.0, 2.0]])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    total = np.ones(2, np.float32) + t  # numpy still defers its operators to the Tensor
    assert isinstance(total, Tensor) and total.requires_grad


def test_a_dim_that_is_not_an_int_is_named():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match="unsqueeze: dim must be an int, got 1.5"):
        x.unsqueeze(1.5)
    with pytest.raises(TypeError, match="dim must be an int or a tuple of ints, got 1.0"):
        x.sum(1.0)
