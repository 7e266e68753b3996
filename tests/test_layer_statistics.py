"""Trainer(layer_statistics=...): the recorded gradient norms and activation statistics equal
the same numbers computed by hand from the model after the step."""

import numpy as np
import pytest

from tinygrad_cnn import Tensor, nn, no_grad, optim, training


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n)


def test_records_equal_hand_computed_norms_and_statistics():
    x, y = data()
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    trainer = training.Trainer(model, optim.SGD(model.parameters(), lr=0.0), batch_size=len(x),
                               progress=False, layer_statistics=True)
    trainer.fit((x, y), epochs=1, validation_data=(x, y))
    stats = trainer.layer_statistics
    assert stats.batches == [(0, 0)]  # one training batch; the validation pass is not recorded
    for name in ("0", "2"):
        layer = model[int(name)]
        expected = np.sqrt(sum((p.grad.numpy().astype(np.float64) ** 2).sum() for p in layer.parameters()))
        assert stats.gradient_norms[name] == [pytest.approx(expected, rel=1e-6)]
        assert stats.update_ratios[name] == [0.0]  # lr 0
    assert "1" not in stats.gradient_norms  # the ReLU has no parameters
    with no_grad():
        hidden = model[1](model[0](Tensor(x))).numpy().astype(np.float64)
    assert stats.activations["1"]["mean"] == [pytest.approx(hidden.mean(), rel=1e-6)]
    assert stats.activations["1"]["std"] == [pytest.approx(hidden.std(), rel=1e-5)]
    assert stats.activations["1"]["zero_fraction"] == [pytest.approx((hidden == 0).mean())]
    assert stats.activations["1"]["dead_fraction"] == [pytest.approx((hidden.max(axis=0) <= 0).mean())]
    assert not any(m._forward_hooks for m in model.modules())  # removed when training ended
    assert "dead_fraction" in stats.report() and stats.last()["0"]["gradient_norm"] > 0


def test_dead_relus_every_and_output_gradients():
    x, y = data(16)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    model[0].bias.data[:3] = -100.0  # three units that never fire
    stats = training.LayerStatistics(every=2, output_gradients=True)
    trainer = training.Trainer(model, optim.SGD(model.parameters(), lr=0.1), batch_size=4, seed=0,
                               progress=False, callbacks=[stats])
    trainer.fit((x, y), epochs=1)
    assert [b for _, b in stats.batches] == [0, 2]
    assert all(d >= 0.5 for d in stats.activations["1"]["dead_fraction"])
    # dL/d(logits) of the mean cross-entropy has norm <= sqrt(2) / batch size per example row
    assert all(0 < g <= np.sqrt(2 * 4) / 4 for g in stats.output_gradient_norms["2"])
    assert set(stats.output_gradient_norms) == {"0", "1", "2"}


def test_layer_statistics_arguments():
    with pytest.raises(ValueError, match="every"):
        training.LayerStatistics(every=0)
    model = nn.Sequential(nn.Linear(4, 3))
    trainer = training.Trainer(model, optim.SGD(model.parameters(), lr=0.1), progress=False,
                               callbacks=[training.LayerStatistics(layers=["fc"])])
    with pytest.raises(ValueError, match="no layers named"):
        trainer.fit(data(), epochs=1)
