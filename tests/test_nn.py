"""nn.Module behaviour, the basic layers and initialisation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, nn
from tinygrad_cnn.testing import gradcheck


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 3)
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(3, 2))
        self.scale = 2.0

    def forward(self, x):
        return self.out(self.hidden(x)) * self.scale


def test_parameters_names_and_state_dict():
    model = TwoLayer()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["hidden.weight", "hidden.bias", "out.1.weight", "out.1.bias"]
    assert list(model.state_dict()) == names
    assert model.hidden.weight.shape == (3, 4)  # (out, in) as PyTorch
    assert sum(p.numel() for p in model.parameters()) == 4 * 3 + 3 + 3 * 2 + 2
    assert [type(c).__name__ for c in model.children()] == ["Linear", "Sequential"]


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = TwoLayer().missing


def test_train_eval_flags_propagate():
    model = TwoLayer().eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_load_state_dict_round_trip_and_errors():
    a, b = TwoLayer(), TwoLayer()
    b.load_state_dict(a.state_dict())
    x = Tensor.randn(5, 4)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    state = a.state_dict()
    state["hidden.weight"] = Tensor.zeros(4, 4)
    with pytest.raises(ValueError, match=r"hidden.weight.*\(4, 4\).*\(3, 4\)"):
        b.load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing keys \['out.1.bias'\]"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "out.1.bias"})


def test_repr_is_readable():
    text = repr(TwoLayer())
    assert "(hidden): Linear(in_features=4, out_features=3, bias=True)" in text
    assert "(1): Linear(in_features=3, out_features=2, bias=True)" in text


def test_zero_grad_clears_gradients():
    model = TwoLayer()
    model(Tensor.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@given(batch=st.integers(1, 4), extra=st.integers(0, 2), bias=st.booleans())
def test_linear_matches_formula_and_gradcheck(batch, extra, bias):
    layer = nn.Linear(3, 2, bias=bias)
    x = np.random.default_rng(batch).standard_normal((batch,) + (2,) * extra + (3,))
    expected = x @ layer.weight.numpy().T + (layer.bias.numpy() if bias else 0)
    np.testing.assert_allclose(layer(Tensor(x.astype(np.float32))).numpy(), expected, rtol=1e-5, atol=1e-6)
    w = Tensor(layer.weight.numpy().astype(np.float64), requires_grad=True)
    b = Tensor(np.ones(2), requires_grad=True)
    gradcheck(lambda x, w, b: F.linear(x, w, b if bias else None),
              [Tensor(x, requires_grad=True), w, b])


def test_linear_shape_error():
    with pytest.raises(ValueError, match=r"input of shape \(2, 5\).*weight of shape \(2, 3\)"):
        nn.Linear(3, 2)(Tensor.ones(2, 5))


def test_dropout_obeys_train_and_eval():
    tc.manual_seed(0)
    layer = nn.Dropout(0.5)
    x = Tensor.ones(10_000)
    y = layer(x).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}
    assert abs(y.mean() - 1.0) < 0.05  # inverted dropout keeps the expectation
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="1.5"):
        nn.Dropout(1.5)


def test_flatten_and_activations():
    x = Tensor(np.arange(24.0).reshape(2, 3, 4) - 12)
    assert nn.Flatten()(x).shape == (2, 12)
    np.testing.assert_array_equal(nn.ReLU()(x).numpy(), np.maximum(x.numpy(), 0))
    np.testing.assert_allclose(nn.Softmax(1)(x).numpy().sum(1), np.ones((2, 4)), rtol=1e-6)


@pytest.mark.parametrize("init_fn,expected_std", [
    (lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"), np.sqrt(2 / 200)),
    (lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu"), np.sqrt(2 / 200)),
    (nn.init.xavier_normal_, np.sqrt(2 / (200 + 300))),
    (nn.init.xavier_uniform_, np.sqrt(2 / (200 + 300))),
])
def test_init_variances(init_fn, expected_std):
    tc.manual_seed(1)
    w = init_fn(Tensor.zeros(300, 200))
    assert abs(w.numpy().std() - expected_std) / expected_std < 0.02
    tc.manual_seed(1)
    np.testing.assert_array_equal(init_fn(Tensor.zeros(300, 200)).numpy(), w.numpy())
