"""Parameter groups, frozen parameters and per-group schedules, against PyTorch's optimizers
(the oracle: the same groups, gradients and steps in torch.optim) and hand formulas."""

import math

import numpy as np
import pytest

from tinygrad_cnn import Tensor, nn, optim

SHAPES = [(3, 2), (2,), (4,), (2, 2)]


def gradients(step: int, shapes=SHAPES):
    rng = np.random.default_rng(100 + step)
    return [rng.normal(size=s) for s in shapes]


def initial(shapes=SHAPES):
    rng = np.random.default_rng(7)
    return [rng.normal(size=s) for s in shapes]


GROUPS = {
    "SGD": ([{"params": [0, 1], "lr": 0.05, "momentum": 0.9, "nesterov": True},
             {"params": [2, 3], "weight_decay": 0.1, "dampening": 0.3, "momentum": 0.5}],
            dict(lr=0.2)),
    "Adam": ([{"params": [0, 1], "lr": 0.01, "betas": (0.8, 0.99)},
              {"params": [2, 3], "weight_decay": 0.1, "eps": 1e-3}], dict(lr=0.05)),
    "AdamW": ([{"params": [0, 1], "lr": 0.01, "weight_decay": 0.5},
               {"params": [2, 3]}], dict(lr=0.05, weight_decay=0.02)),
}


def run_ours(name, frozen=(), steps=5, schedule=False):
    params = [nn.Parameter(Tensor(w)) for w in initial()]
    for i in frozen:
        params[i].requires_grad_(False)
    specs, defaults = GROUPS[name]
    groups = [{**g, "params": [params[i] for i in g["params"]]} for g in specs]
    opt = getattr(optim, name)(groups, **defaults)
    scheduler = optim.StepLR(opt, step_size=2, gamma=0.5) if schedule else None
    for t in range(steps):
        opt.zero_grad()
        for p, g in zip(params, gradients(t)):
            if p.requires_grad:
                p.grad = Tensor(g)
        opt.step()
        if scheduler:
            scheduler.step()
    return [p.numpy() for p in params], opt


def run_torch(torch, name, frozen=(), steps=5, schedule=False):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in initial()]
    for i in frozen:
        params[i].requires_grad_(False)
    specs, defaults = GROUPS[name]
    groups = [{**g, "params": [params[i] for i in g["params"]]} for g in specs]
    opt = getattr(torch.optim, name)(groups, **defaults)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) if schedule else None
    for t in range(steps):
        opt.zero_grad()
        for p, g in zip(params, gradients(t)):
            if p.requires_grad:
                p.grad = torch.tensor(g)
        opt.step()
        if scheduler:
            scheduler.step()
    return [p.detach().numpy() for p in params], opt


@pytest.mark.parametrize("name", sorted(GROUPS))
@pytest.mark.parametrize("frozen,schedule", [((), False), ((1, 2), True)])
def test_groups_follow_pytorch(name, frozen, schedule):
    torch = pytest.importorskip("torch")
    ours, opt = run_ours(name, frozen, schedule=schedule)
    theirs, topt = run_torch(torch, name, frozen, schedule=schedule)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for i in frozen:  # frozen parameters never move
        np.testing.assert_array_equal(ours[i], initial()[i])
    ours_groups = opt.state_dict()["param_groups"]
    their_groups = topt.state_dict()["param_groups"]
    for g, tg in zip(ours_groups, their_groups):
        assert g["params"] == tg["params"]
        for key in ("lr", "weight_decay", "initial_lr"):
            assert (key in g) == (key in tg) and g.get(key) == pytest.approx(tg.get(key))
    assert sorted(opt.state_dict()["state"]) == sorted(topt.state_dict()["state"])


def test_group_options_override_the_defaults_by_hand():
    a, b = nn.Parameter(Tensor([1.0])), nn.Parameter(Tensor([1.0]))
    opt = optim.SGD([{"params": [a], "lr": 0.5}, {"params": b}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    assert opt.param_groups[1]["params"] == [b]  # a single tensor becomes a list
    a.grad, b.grad = Tensor([1.0]), Tensor([1.0])
    opt.step()
    assert a.item() == pytest.approx(0.5) and b.item() == pytest.approx(0.9)


def test_state_dict_round_trip_with_groups_continues_exactly():
    ours, opt = run_ours("Adam", frozen=(1,), steps=3)
    params = [nn.Parameter(Tensor(w)) for w in ours]
    params[1].requires_grad_(False)
    specs, defaults = GROUPS["Adam"]
    fresh = optim.Adam([{**g, "params": [params[i] for i in g["params"]]} for g in specs], lr=1.0)
    fresh.load_state_dict(opt.state_dict())
    assert [g["lr"] for g in fresh.param_groups] == [0.01, 0.05]
    assert fresh.param_groups[0]["betas"] == (0.8, 0.99)
    continued, _ = run_ours("Adam", frozen=(1,), steps=4)
    for p, g in zip(params, gradients(3)):
        if p.requires_grad:
            p.grad = Tensor(g)
    fresh.step()
    for a, b in zip(params, continued):
        np.testing.assert_array_equal(a.numpy(), b)


def test_load_state_dict_refuses_other_groups():
    _, opt = run_ours("SGD", steps=1)
    w = nn.Parameter(Tensor([1.0]))
    with pytest.raises(ValueError, match="2 parameter groups"):
        optim.SGD([w], lr=0.1).load_state_dict(opt.state_dict())
    v = nn.Parameter(Tensor([1.0]))
    with pytest.raises(ValueError, match="group 0 has 2 parameters"):
        optim.SGD([{"params": [w]}, {"params": [v]}], lr=0.1).load_state_dict(opt.state_dict())


def test_frozen_then_unfrozen_parameter_trains_and_add_param_group():
    head, body = nn.Parameter(Tensor([1.0])), nn.Parameter(Tensor([1.0])).requires_grad_(False)
    opt = optim.SGD([head, body], lr=0.1)
    (head * body).sum().backward()
    assert body.grad is None
    opt.step()
    assert body.item() == 1.0 and head.item() == pytest.approx(0.9)
    body.requires_grad_(True)
    opt.zero_grad()
    (head * body).sum().backward()
    opt.step()
    assert body.item() == pytest.approx(1.0 - 0.1 * 0.9)
    extra = nn.Parameter(Tensor([2.0]))
    opt.add_param_group({"params": [extra], "lr": 1.0})
    assert opt.param_groups[1]["momentum"] == 0.0 and opt.param_groups[1]["lr"] == 1.0
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [head]})


def test_schedulers_act_per_group():
    a, b = nn.Parameter(Tensor([1.0])), nn.Parameter(Tensor([1.0]))
    opt = optim.SGD([{"params": [a], "lr": 1e-3}, {"params": [b]}], lr=1e-2)
    step = optim.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(2):
        step.step()
    assert step.get_last_lr() == pytest.approx([1e-4, 1e-3])
    opt = optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b]}], lr=1.0)
    warm = optim.LambdaLR(opt, [lambda e: min(1.0, (e + 1) / 4), lambda e: 0.5**e])
    warm.step()
    assert warm.get_last_lr() == pytest.approx([0.05, 0.5])
    cosine = optim.CosineAnnealingLR(optim.SGD([{"params": [a], "lr": 0.2}, {"params": [b]}], lr=1.0),
                                     T_max=4)
    cosine.step()
    factor = (1 + math.cos(math.pi / 4)) / 2
    assert cosine.get_last_lr() == pytest.approx([0.2 * factor, factor])
    with pytest.raises(ValueError, match="3 functions for 2"):
        optim.LambdaLR(opt, [lambda e: 1.0] * 3)


def test_lambda_lr_follows_pytorch():
    torch = pytest.importorskip("torch")
    lambdas = [lambda e: 0.9**e, lambda e: 1.0 / (1 + e)]
    w = [nn.Parameter(Tensor([1.0])), nn.Parameter(Tensor([1.0]))]
    tw = [torch.nn.Parameter(torch.ones(1)) for _ in range(2)]
    ours = optim.LambdaLR(optim.SGD([{"params": [w[0]], "lr": 0.3}, {"params": [w[1]]}], lr=0.1), lambdas)
    theirs = torch.optim.lr_scheduler.LambdaLR(
        torch.optim.SGD([{"params": [tw[0]], "lr": 0.3}, {"params": [tw[1]]}], lr=0.1), lambdas)
    for _ in range(4):
        ours.optimizer.step()
        theirs.optimizer.step()
        ours.step()
        theirs.step()
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr())


def test_group_errors_name_the_value():
    w = nn.Parameter(Tensor([1.0]))
    with pytest.raises(ValueError, match="invalid lr -0.5 in parameter group 0"):
        optim.SGD([{"params": [w], "lr": -0.5}], lr=0.1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([{"params": [w], "betas": (0.9, 1.0)}])
    with pytest.raises(TypeError, match="ordered collection"):
        optim.SGD({w}, lr=0.1)
    with pytest.raises(TypeError, match="got a single Parameter"):
        optim.SGD(w, lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="'params'"):
        optim.SGD([{"lr": 0.1}])
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([w, w], lr=0.1)
    with pytest.raises(TypeError, match="must be a number"):
        optim.AdamW([w], lr="fast")
