"""Module hooks and freezing, against hand-derived gradients and PyTorch's hooks."""

import numpy as np
import pytest

from tinygrad_cnn import Tensor, nn, no_grad


def linear_with(weight, bias):
    layer = nn.Linear(weight.shape[1], weight.shape[0]).double()
    layer.weight.data[...] = weight
    layer.bias.data[...] = bias
    return layer


def test_forward_hook_sees_input_and_output_and_is_removable():
    layer = nn.Linear(3, 2)
    seen = []
    handle = layer.register_forward_hook(lambda m, args, out: seen.append((m, args, out)))
    x = Tensor(np.ones((4, 3), np.float32))
    y = layer(x)
    assert len(seen) == 1 and seen[0][0] is layer and seen[0][1][0] is x and seen[0][2] is y
    handle.remove()
    handle.remove()  # twice is harmless
    layer(x)
    assert len(seen) == 1


def test_forward_hooks_replace_output_and_pre_hooks_replace_input():
    layer = nn.Identity()
    with layer.register_forward_pre_hook(lambda m, args: args[0] * 2):
        with layer.register_forward_hook(lambda m, args, out: out + 1):
            assert layer(Tensor([1.0, 2.0])).tolist() == [3.0, 5.0]
    assert layer(Tensor([1.0, 2.0])).tolist() == [1.0, 2.0]  # both removed by the with blocks


def test_backward_hook_gradients_match_the_formula():
    rng = np.random.default_rng(0)
    w, b, c = rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=(4, 2))
    layer = linear_with(w, b)
    x = Tensor(rng.normal(size=(4, 3)), requires_grad=True)
    calls = []
    layer.register_full_backward_hook(lambda m, gi, go: calls.append((gi, go)))
    (layer(x) * Tensor(c)).sum().backward()
    (grad_input,), (grad_output,) = calls[0]
    np.testing.assert_allclose(grad_output.numpy(), c)  # dL/dy of L = sum(y * c)
    np.testing.assert_allclose(grad_input.numpy(), c @ w)  # dL/dx = dL/dy W
    np.testing.assert_allclose(x.grad.numpy(), c @ w)
    np.testing.assert_allclose(layer.weight.grad.numpy(), c.T @ x.numpy())
    assert len(calls) == 1


def test_backward_hook_on_a_first_layer_whose_input_needs_no_gradient():
    layer = nn.Linear(3, 2)
    calls = []
    layer.register_full_backward_hook(lambda m, gi, go: calls.append((gi, go)))
    layer(Tensor(np.ones((1, 3), np.float32))).sum().backward()
    assert calls[0][0] == (None,) and calls[0][1][0].shape == (1, 2)


def test_backward_hooks_fire_in_reverse_order_and_can_replace_grad_input():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    order = []
    for name, m in model.named_children():
        m.register_full_backward_hook(lambda m, gi, go, name=name: order.append(name))
    model(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert order == ["2", "1", "0"]
    model.zero_grad()
    # zero the gradient that leaves the ReLU: nothing reaches the first layer's weights
    model[1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 0,))
    model(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert not model[0].weight.grad.numpy().any() and model[2].weight.grad.numpy().any()


def test_backward_pre_hook_sees_and_replaces_grad_output():
    layer = nn.Linear(3, 2)
    x = Tensor(np.ones((1, 3), np.float32), requires_grad=True)
    layer.register_full_backward_pre_hook(lambda m, go: (go[0] * 0,))
    layer(x).sum().backward()
    assert not x.grad.numpy().any()


class TwoInputs(nn.Module):
    def forward(self, a, b, scale=1.0):
        return a * scale


def test_backward_hook_with_an_input_the_output_ignores():
    module = TwoInputs()
    calls = []
    module.register_full_backward_hook(lambda m, gi, go: calls.append(gi))
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    module(a, b, scale=3.0).sum().backward()
    assert calls[0][1] is None and calls[0][0].tolist() == [3.0, 3.0]


def test_backward_hooks_are_skipped_without_a_graph_and_checked():
    layer = nn.Linear(3, 2)
    layer.register_full_backward_hook(lambda m, gi, go: None)
    with no_grad():
        assert layer(Tensor(np.ones((1, 3), np.float32))).requires_grad is False
    with pytest.raises(TypeError, match="callable"):
        layer.register_forward_hook("not a function")
    bad = nn.Linear(3, 2)
    bad.register_full_backward_hook(lambda m, gi, go: (Tensor(np.ones(5, np.float32)),))
    x = Tensor(np.ones((1, 3), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="shape"):
        bad(x).sum().backward()


def test_hooks_agree_with_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w1, b1, w2, b2 = rng.normal(size=(5, 3)), rng.normal(size=5), rng.normal(size=(2, 5)), rng.normal(size=2)
    x = rng.normal(size=(4, 3))
    ours = nn.Sequential(linear_with(w1, b1), nn.Tanh(), linear_with(w2, b2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    with torch.no_grad():
        for layer, (w, b) in zip((theirs[0], theirs[2]), ((w1, b1), (w2, b2))):
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))
    recorded = {"ours": [], "theirs": []}
    for key, model in (("ours", ours), ("theirs", theirs)):
        def hook(m, gi, go, key=key):
            recorded[key].append([None if g is None else np.array(g.detach().numpy() if key == "theirs"
                                                                   else g.numpy()) for g in gi + go])
        for m in model:
            m.register_full_backward_hook(hook)
    ours(Tensor(x, requires_grad=True)).pow(2).sum().backward()
    theirs(torch.tensor(x, requires_grad=True)).pow(2).sum().backward()
    assert len(recorded["ours"]) == len(recorded["theirs"]) == 3
    for a, b in zip(recorded["ours"], recorded["theirs"]):
        assert [g is None for g in a] == [g is None for g in b]
        for ga, gb in zip(a, b):
            if ga is not None:
                np.testing.assert_allclose(ga, gb, rtol=1e-10)


def test_requires_grad_freezes_a_sub_tree_and_returns_it():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert model[0].requires_grad_(False) is model[0]
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    model(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert model[0].weight.grad is None and model[2].weight.grad is not None
    assert model.num_parameters(trainable_only=True) == 4 * 2 + 2
    assert model[0].weight.requires_grad_() is model[0].weight and model[0].weight.requires_grad
    with pytest.raises(TypeError, match="True or False"):
        model.requires_grad_("no")


def test_replacing_a_layer_keeps_its_place():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0] = nn.Linear(3, 4)
    model[-1] = head = nn.Linear(4, 5)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"] and model[2] is head
    assert model(Tensor(np.ones((1, 3), np.float32))).shape == (1, 5)
    assert list(model.state_dict())[:2] == ["0.weight", "0.bias"]
    with pytest.raises(IndexError, match="out of range"):
        model[3] = nn.ReLU()
    with pytest.raises(TypeError, match="Modules"):
        model[0] = "layer"
