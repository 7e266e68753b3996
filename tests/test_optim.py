"""Optimizers and schedules against their update formulas, written out by hand."""

import math

import numpy as np
import pytest

from tinygrad_cnn import Tensor, nn, optim


def quadratic_grads(w):
    """Loss sum(w^2 * c) has gradient 2 c w."""
    c = np.array([1.0, 2.0, 3.0])
    return 2 * c * w


def run(optimizer_cls, steps=4, **kwargs):
    w = nn.Parameter(Tensor(np.array([1.0, -2.0, 0.5])))
    opt = optimizer_cls([w], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        w.grad = Tensor(quadratic_grads(w.numpy()))
        opt.step()
    return w.numpy()


@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.0),
                                                  (0.9, True, 0.01), (0.5, False, 0.1)])
def test_sgd_formula(momentum, nesterov, wd):
    lr, w, v = 0.1, np.array([1.0, -2.0, 0.5]), None
    for _ in range(4):
        g = quadratic_grads(w) + wd * w
        if momentum:
            v = g.copy() if v is None else momentum * v + g
            g = g + momentum * v if nesterov else v
        w = w - lr * g
    got = run(optim.SGD, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    np.testing.assert_allclose(got, w, rtol=1e-12)


@pytest.mark.parametrize("cls,wd", [(optim.Adam, 0.0), (optim.Adam, 0.1), (optim.AdamW, 0.1)])
def test_adam_formula(cls, wd):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    w, m, v = np.array([1.0, -2.0, 0.5]), 0.0, 0.0
    for t in range(1, 5):
        g = quadratic_grads(w)
        if cls is optim.AdamW:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(run(cls, lr=lr, weight_decay=wd), w, rtol=1e-10)


def test_optimizer_state_dict_round_trip_continues_exactly():
    def fresh():
        w = nn.Parameter(Tensor(np.array([1.0, -2.0, 0.5])))
        return w, optim.Adam([w], lr=0.05)

    w1, opt1 = fresh()
    for _ in range(3):
        w1.grad = Tensor(quadratic_grads(w1.numpy()))
        opt1.step()
    w2, opt2 = fresh()
    w2.data = w1.data.copy()
    opt2.load_state_dict(opt1.state_dict())
    for w, opt in ((w1, opt1), (w2, opt2)):
        w.grad = Tensor(quadratic_grads(w.numpy()))
        opt.step()
    np.testing.assert_array_equal(w1.numpy(), w2.numpy())


def test_schedulers():
    w = nn.Parameter(Tensor([1.0]))
    opt = optim.SGD([w], lr=1.0)
    step = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        step.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt = optim.SGD([w], lr=1.0)
    cosine = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    for epoch in range(1, 5):
        cosine.step()
        expected = 0.1 + 0.9 * (1 + math.cos(math.pi * epoch / 4)) / 2
        assert cosine.get_last_lr()[0] == pytest.approx(expected)


def test_optimizer_argument_errors():
    w = nn.Parameter(Tensor([1.0]))
    with pytest.raises(ValueError, match="-1"):
        optim.SGD([w], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(TypeError, match="Tensors"):
        optim.SGD([np.ones(3)], lr=0.1)
