"""The graph walk: deep chains, shared inputs, memory release, no_grad, errors."""

import gc
import weakref

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor
from tinygrad_cnn.testing import GradcheckError, gradcheck


def test_ten_thousand_op_chain_backprops_without_recursion_error():
    x = Tensor(1.0, requires_grad=True, dtype="float64")
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**10_000)


def test_diamond_graph_accumulates_gradients():
    x = Tensor(3.0, requires_grad=True)
    a = x * 2
    b = x * x
    (a + b + a * b).backward()  # d/dx [2x + x^2 + 2x^3] = 2 + 2x + 6x^2
    assert x.grad.item() == pytest.approx(2 + 6 + 54)


def test_residual_diamond_through_relu():
    x = Tensor([[-1.0, 2.0]], requires_grad=True, dtype="float64")
    w = Tensor([[0.5, -1.0], [2.0, 1.0]], requires_grad=True, dtype="float64")
    gradcheck(lambda x, w: ((x @ w).relu() + x).sum(), [x, w])


@pytest.mark.parametrize("paths", [2, 3, 4])
@pytest.mark.parametrize("join", ["relu", "add_relu"])
def test_paths_meeting_at_a_relu_fold_their_sum_into_its_mask(paths, join, monkeypatch):
    """Where two paths meet at a ReLU's output (a residual block's input), the engine hands
    both gradients to ``backward_of_sum``, which adds them inside the mask's pass; a third
    or fourth path is added to the earlier ones first. The result is the mask of the sum, in
    every order the paths' gradients arrive in."""
    import tinygrad_cnn.nn.functional as F
    from tinygrad_cnn.nn.functional.activation import ReLUFunction
    from tinygrad_cnn.nn.functional.residual import AddReLUFunction

    rng = np.random.default_rng(paths)
    a = Tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    b = Tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    weights = [rng.standard_normal((2, 3, 4, 4)) for _ in range(paths)]
    calls = []
    cls = ReLUFunction if join == "relu" else AddReLUFunction
    fused = cls.backward_of_sum
    monkeypatch.setattr(cls, "backward_of_sum",
                        lambda self, g_a, g_b: calls.append(1) or fused(self, g_a, g_b))
    y = F.relu(a) if join == "relu" else F.add_relu(a, b)
    # the paths differ in depth, so their gradients reach y in different orders
    terms = [(y * Tensor(w) if i % 2 else (y * 1.0) * Tensor(w)) for i, w in enumerate(weights)]
    sum(terms[1:], terms[0]).sum().backward()
    summed = sum(weights)
    expected = summed * (y.numpy() > 0)
    assert calls == [1]
    np.testing.assert_allclose(a.grad.numpy(), expected, rtol=1e-12)
    if join == "add_relu":
        np.testing.assert_allclose(b.grad.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("uses", [1, 2, 3, 5])
def test_a_leaf_read_by_several_paths_gets_their_sum_in_a_grad_of_its_own(uses):
    """A leaf's gradient is the sum over every path, in an array nobody else holds (one path:
    a copy, since an op may hand one array to several inputs)."""
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True, dtype="float64")
    y = Tensor([0.5, 0.5, 0.5], requires_grad=True, dtype="float64")
    total = x + y  # Add hands the same gradient array to x and to y
    for k in range(1, uses):
        total = total + x * float(k + 1)
    total.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0 + sum(range(2, uses + 1))] * 3)
    np.testing.assert_allclose(y.grad.numpy(), [1.0] * 3)
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())
    x.grad.numpy()[:] = 0.0  # writing one leaf's gradient leaves the other's alone
    np.testing.assert_allclose(y.grad.numpy(), [1.0] * 3)


def test_leaf_gradients_accumulate_across_backward_calls():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 7.0])
    x.zero_grad()
    assert x.grad is None


def test_graph_is_released_after_backward():
    x = Tensor(np.ones(1000), requires_grad=True)
    y = x.exp()
    saved = weakref.ref(y._creator.z)  # the array exp saved for its backward pass
    loss = y.sum()
    del y
    loss.backward()
    gc.collect()
    assert saved() is None
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_an_intermediate_array_nobody_holds_is_freed_before_backward():
    """The graph keeps creators, not intermediate tensors: batch norm's output, read only by
    the ReLU after it (which saves its own output), is freed at once, and the gradient that
    flows back through it is still right."""
    import tinygrad_cnn.nn.functional as F

    x = Tensor(np.random.default_rng(0).normal(size=(4, 3, 5, 5)), requires_grad=True)
    w = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    normalised = F.batch_norm(x, None, None, w, None, training=True)
    freed = weakref.ref(normalised.data)
    out = F.relu(normalised)
    del normalised
    gc.collect()
    assert freed() is None
    out.sum().backward()
    grad_x, grad_w = x.grad.numpy(), w.grad.numpy()
    x.grad = w.grad = None
    F.relu(F.batch_norm(x, None, None, w, None, training=True)).sum().backward()  # all kept alive
    np.testing.assert_allclose(x.grad.numpy(), grad_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), grad_w, rtol=1e-12, atol=1e-12)
    gradcheck(lambda a, b: F.relu(F.batch_norm(a, None, None, b, None, training=True)), [x, w])


def test_a_freed_input_appears_as_one_stand_in_without_data():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    a = x.exp()
    b, c = a * 2, a * a   # a has two readers
    fn_a = a._creator
    del a
    gc.collect()
    stand_in = b._creator.inputs[0]
    assert stand_in is c._creator.inputs[0] is fn_a.output_tensor()  # one node for both readers
    assert stand_in._creator is fn_a and stand_in.requires_grad
    assert stand_in.shape == (2, 3) and stand_in.dtype == np.float64
    assert stand_in.data.strides == (0, 0)  # a broadcast 0-d array: no memory of its own
    (b + c).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.numpy()) * (2 + 2 * np.exp(x.numpy())))


def test_a_graph_without_backward_is_freed_without_the_cycle_collector():
    """No reference cycles: with the cycle collector off, dropping a result frees its graph
    and the arrays saved for backward, also after walks that made stand-ins and through a
    module with backward hooks (whose call records hold the wrapped inputs' Functions)."""
    import tinygrad_cnn.nn as nn

    layer = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    layer.register_full_backward_hook(lambda module, grad_input, grad_output: None)
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    gc.disable()
    try:
        doubled = x * 2
        upstream = weakref.ref(doubled._creator)  # what the hooked module's input came from
        out = layer(doubled)  # the hook walks the module's graph
        del doubled
        from tinygrad_cnn.autograd import topological_order

        topological_order(out.sum())  # a walk that makes stand-ins
        del out
        assert upstream() is None
    finally:
        gc.enable()


def test_requires_grad_cannot_be_turned_off_on_a_result():
    x = Tensor(np.ones(2), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="leaf tensor"):
        y.requires_grad = False
    y.detach().requires_grad = False  # a leaf: allowed


def test_retain_graph_allows_a_second_backward():
    x = Tensor(2.0, requires_grad=True)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == pytest.approx(8.0)


def test_no_grad_builds_no_graph():
    x = Tensor([1.0], requires_grad=True)
    with tc.no_grad():
        y = x * 2
    assert not y.requires_grad and y._creator is None

    @tc.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    assert tc.is_grad_enabled()


def test_backward_on_non_scalar_needs_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"scalar.*\(2,\)"):
        (x * 2).backward()
    (x * 2).backward(Tensor([1.0, 1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_backward_without_requires_grad_says_so():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_detach_cuts_the_graph():
    x = Tensor(2.0, requires_grad=True)
    y = x * x.detach()
    y.backward()
    assert x.grad.item() == pytest.approx(2.0)


def test_gradcheck_catches_a_wrong_gradient():
    from tinygrad_cnn import ops

    class WrongSquare(ops.Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, g):
            return g * self.x  # should be 2 x

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda t: WrongSquare.apply(t), [x])
    assert not gradcheck(lambda t: WrongSquare.apply(t), [x], raise_exception=False)
    assert not gradcheck(lambda t: WrongSquare.apply(t), [x], n_directions=3,
                         raise_exception=False)


def test_gradcheck_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * 2, [Tensor([1.0], requires_grad=True)])


# ---------------------------------------------- an op that reads a tensor and its descendant
@pytest.mark.parametrize("build", [
    lambda x: x * x.exp(),            # the input before its descendant ...
    lambda x: x.exp() * x,            # ... and after it
    lambda x: x + x.tanh(),
    lambda x: x.tanh() + x,
    lambda x: tc.cat([x, x * 2]),     # DenseNet's cat([old features, new features])
    lambda x: tc.cat([x * 2, x]),
    lambda x: x / (x * x + 1),        # AlexNet's local response normalisation: x / f(x)
], ids=["x*exp", "exp*x", "x+tanh", "tanh+x", "cat-old-first", "cat-new-first", "x/f(x)"])
def test_an_op_reading_a_tensor_and_its_descendant_in_either_order(build):
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    gradcheck(lambda t: build(t).sum(), [x])


def test_backward_order_puts_every_tensor_after_all_its_readers():
    from tinygrad_cnn.autograd import topological_order

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    a = x.exp()
    b = x * a          # reads x and its descendant a
    c = x + (b + a)    # reads x before its descendants
    order = list(reversed(topological_order(c.sum())))
    position = {id(t): i for i, t in enumerate(order)}
    for tensor in order:
        if tensor._creator is not None:
            for parent in tensor._creator.inputs:
                if parent.requires_grad:
                    assert position[id(parent)] > position[id(tensor)]


# -------------------------------------------------------------- grad mode per thread
def test_no_grad_in_one_thread_leaves_grad_mode_on_in_the_others():
    import threading

    entered, release = threading.Event(), threading.Event()

    def evaluate():
        with tc.no_grad():
            entered.set()
            release.wait(5)

    worker = threading.Thread(target=evaluate)
    worker.start()
    try:
        assert entered.wait(5)
        assert tc.is_grad_enabled()
        x = Tensor([1.0], requires_grad=True)
        assert (x * 2).requires_grad
    finally:
        release.set()
        worker.join()
    assert tc.is_grad_enabled()


def test_a_no_grad_decorated_function_called_from_many_threads_restores_every_thread():
    import threading

    @tc.no_grad()
    def step(barrier):
        barrier.wait(5)
        return tc.is_grad_enabled()

    barrier = threading.Barrier(4)
    seen, after = [], []

    def worker():
        seen.append(step(barrier))
        after.append(tc.is_grad_enabled())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [False] * 4 and after == [True] * 4
    assert tc.is_grad_enabled()


def test_contiguous_copies_a_view_into_memory_order_and_passes_the_gradient():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    view = x.permute(1, 0)
    assert not view.data.flags.c_contiguous
    y = view.contiguous()
    assert y.data.flags.c_contiguous and y.contiguous() is y
    np.testing.assert_array_equal(y.numpy(), np.arange(6.0).reshape(2, 3).T)
    (y * Tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(6.0).reshape(3, 2).T)


def test_relu_passes_the_gradient_of_a_nan_as_pytorch_and_leaky_relu_scales_it():
    x = Tensor(np.array([np.nan, -1.0, 2.0]), requires_grad=True)
    y = x.relu()
    assert np.isnan(y.numpy()[0]) and y.numpy()[1] == 0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0, 1.0])  # torch.relu's backward
    x.zero_grad()
    x.leaky_relu(0.1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.1, 0.1, 1.0])  # torch's leaky_relu


def test_relu_of_minus_infinity_is_zero_in_both_relus():
    """Tensor.relu (array math) and F.relu (the kernels) agree: max(-inf, 0) = 0, not the
    NaN of -inf * 0."""
    import tinygrad_cnn.nn.functional as F

    x = np.array([-np.inf, np.inf, -2.0, 0.0, np.nan])
    for relu in (lambda t: t.relu(), F.relu):
        t = Tensor(x, requires_grad=True)
        y = relu(t)
        y.sum().backward()
        np.testing.assert_array_equal(y.numpy(), [0.0, np.inf, 0.0, 0.0, np.nan])
        np.testing.assert_array_equal(t.grad.numpy(), [0.0, 1.0, 0.0, 0.0, 1.0])


def test_gradients_at_edge_points_are_pytorchs():
    """x ** 0 has slope 0 also at x = 0 (not 0 * 0 ** -1 = NaN); the max of a slice holding
    a NaN is that NaN, and its gradient goes there (not 0 / 0 everywhere)."""
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x**2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 4.0])
    x = Tensor(np.array([1.0, np.nan, 2.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])
    x = Tensor(np.array([[1.0, 3.0], [np.nan, 0.0]]), requires_grad=True)
    x.amin(1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1.0, 0.0], [1.0, 0.0]])
