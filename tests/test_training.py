"""The training loop: learning, determinism, exact resume, callbacks, plots, and CNNs that learn."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, models, nn, optim
from tinygrad_cnn.data import DataLoader, load_digits, load_mnist, make_shapes
from tinygrad_cnn.training import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
    Trainer,
    filter_grid,
    load_checkpoint,
    mean_iou,
    plot_history,
)

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
HAVE_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()


@pytest.fixture(scope="module")
def digits():
    x, y, xt, yt = load_digits(seed=0)
    return x.reshape(len(x), -1), y, xt.reshape(len(xt), -1), yt


def mlp(dropout=0.1):
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 10))


def test_mlp_learns_digits_to_95_percent():
    tc.manual_seed(0)
    x_train, y_train, x_test, y_test = load_digits(seed=0)
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10))
    opt = optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(15):
        order = rng.permutation(len(x_train))
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            loss = F.cross_entropy(model(Tensor(x_train[idx])), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with tc.no_grad():
        accuracy = (model(Tensor(x_test)).argmax(1).numpy() == y_test).mean()
    assert accuracy >= 0.95, accuracy


def run(digits, epochs, seed=0, callbacks=(), resume=None, scheduler=True, device="cpu", **fit):
    x, y, xt, yt = digits
    tc.manual_seed(seed)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = optim.StepLR(opt, 1, 0.7) if scheduler else None
    trainer = Trainer(model, opt, scheduler=sched, callbacks=callbacks, progress=False, seed=seed,
                      device=device)
    start = trainer.resume(resume) if resume else 0
    trainer.fit((x, y), epochs, (xt, yt), initial_epoch=start, **fit)
    return model, trainer


def params(model):
    return [p.numpy().copy() for p in model.parameters()]


def test_fit_learns_and_is_deterministic(digits, device):
    m1, t1 = run(digits, 3, device=device)
    m2, t2 = run(digits, 3, device=device)
    assert t1.history["val_accuracy"][-1] > 0.85
    assert t1.history["loss"][0] > t1.history["loss"][-1]
    assert t1.history.history == t2.history.history  # same seed, same numbers
    for a, b in zip(params(m1), params(m2)):
        np.testing.assert_array_equal(a, b)
    _, t3 = run(digits, 3, seed=1, device=device)
    assert t3.history["loss"] != t1.history["loss"]
    assert t1.history["lr"] == pytest.approx([0.05, 0.035, 0.0245])
    scores = t1.evaluate(digits[2:])
    assert scores["accuracy"] == pytest.approx(t1.history["val_accuracy"][-1])
    assert t1.predict(digits[2]).shape == (len(digits[3]), 10)


def test_resume_from_a_checkpoint_continues_exactly(digits, tmp_path):
    path = str(tmp_path / "ckpt-{epoch}.npz")
    straight, t_straight = run(digits, 4, callbacks=[ModelCheckpoint(path, monitor="val_accuracy")])
    resumed, t_resumed = run(digits, 4, resume=tmp_path / "ckpt-2.npz")
    for a, b in zip(params(straight), params(resumed)):
        np.testing.assert_array_equal(a, b)
    assert t_resumed.history.history == t_straight.history.history
    assert len(t_resumed.history) == 4


def test_checkpoint_for_another_model_is_refused(digits, tmp_path):
    _, trainer = run(digits, 1)
    trainer.save_checkpoint(tmp_path / "c.npz", info={"model": "mlp"})
    other = nn.Sequential(nn.Linear(64, 10))
    before = params(other)
    with pytest.raises(ValueError, match="saved from model 'mlp'"):
        load_checkpoint(tmp_path / "c.npz", other)
    for a, b in zip(before, params(other)):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a valid checkpoint"):
        load_checkpoint(tmp_path / "junk.npz", other)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz", other)


def test_early_stopping_best_checkpoint_and_csv(digits, tmp_path):
    seen = []
    stopper = EarlyStopping("val_loss", patience=0, min_delta=10.0)  # nothing improves by 10: stop
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy", save_best_only=True)
    logger = CSVLogger(tmp_path / "log.csv")
    spy = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    _, trainer = run(digits, 10, callbacks=[stopper, best, logger, spy])
    assert seen == [0, 1] and stopper.stopped_epoch == 1 and len(trainer.history) == 2
    assert best.saved == [str(tmp_path / "best.npz")] * len(best.saved) and (tmp_path / "best.npz").exists()
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["val_accuracy"]) == pytest.approx(trainer.history["val_accuracy"][1])
    with pytest.raises(ValueError, match="'val_f1' is not logged"):
        run(digits, 1, callbacks=[EarlyStopping("val_f1")])


def test_learning_rate_callbacks(digits):
    schedule = LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    _, trainer = run(digits, 3, callbacks=[schedule], scheduler=False)
    assert trainer.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    plateau = ReduceLROnPlateau("val_loss", factor=0.5, patience=0, min_delta=10.0)
    _, trainer = run(digits, 3, callbacks=[plateau], scheduler=False)
    # epoch 1 sets the best value; epochs 2 and 3 do not improve by 10 and each halve the rate after them
    assert trainer.history["lr"] == pytest.approx([0.05, 0.05, 0.025])


def test_history_plot_and_filter_grid(digits, tmp_path):
    _, trainer = run(digits, 2)
    path = plot_history(trainer.history, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        plot_history({}, tmp_path / "x.png")
    grid = filter_grid(np.random.default_rng(0).normal(size=(6, 1, 5, 5)))
    assert grid.shape == (3, 2 * 6 + 1, 3 * 6 + 1) and 0 <= grid.min() and grid.max() <= 1


def test_tensorboard_event_file(tmp_path):
    pytest.importorskip("tensorboardX")
    tc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    x = np.random.default_rng(0).random((16, 1, 8, 8)).astype(np.float32)
    y = np.arange(16) % 3
    trainer = Trainer(model, optim.Adam(model.parameters()), callbacks=[TensorBoard(tmp_path / "tb")],
                      progress=False, batch_size=8)
    trainer.fit((x, y), 2, (x, y))
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 1000  # scalars, histograms and a filter image


def test_mean_iou():
    confusion = np.array([[3, 1], [0, 4]])
    assert mean_iou(confusion) == pytest.approx((3 / 4 + 4 / 5) / 2)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the diverging run overflows on purpose
def test_bad_trainer_input(digits):
    model = mlp()
    with pytest.raises(ValueError, match="metrics"):
        Trainer(model, None, metrics=("f1",))
    with pytest.raises(TypeError, match=r"needs an optimizer to train, e.g. Trainer\(model, optim.Adam"):
        Trainer(model)
    with pytest.raises(ValueError, match="optimizer=None"):
        Trainer(model, None).fit(digits[:2], 1)
    with pytest.raises(ValueError, match="updates none of this model's parameters"):
        Trainer(model, optim.SGD(mlp().parameters(), lr=0.1))
    with pytest.raises(ValueError, match="epochs"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1)).fit(digits[:2], 0)
    with pytest.raises(TypeError, match="DataLoader"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1)).fit([1, 2, 3], 1)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        Trainer(model, optim.SGD(model.parameters(), lr=1e30), progress=False).fit(digits[:2], 1)


# ----------------------------------------------------------- CNNs that learn
def test_resnet20_learns_synthetic_shapes(device):
    tc.manual_seed(0)
    x, y = make_shapes(96, 16, seed=0)
    model = models.CifarResNet(8, num_classes=3, in_channels=1, width=8)  # the ResNet-20 design, n = 1
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=3e-3), progress=False, device=device)
    history = trainer.fit(DataLoader((x, y), 16, shuffle=True, seed=0), 4)
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert history["accuracy"][-1] > history["accuracy"][0] and history["accuracy"][-1] > 0.6


def test_unet_learns_segmentation_of_synthetic_shapes(device):
    tc.manual_seed(0)
    x, masks = make_shapes(64, 16, "segmentation", seed=0)
    model = models.unet_small(in_channels=1, num_classes=4, base_channels=8, depth=2)
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=3e-3), metrics=("accuracy", "iou"),
                      progress=False, device=device)
    history = trainer.fit(DataLoader((x, masks), 8, shuffle=True, seed=0), 6)
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["iou"][-1] > history["iou"][0] + 0.2
    assert trainer.predict(x[:2]).shape == (2, 4, 16, 16)


@pytest.mark.skipif(not HAVE_MNIST, reason=f"real MNIST test set not found at {MNIST_DIR}")
def test_lenet5_learns_real_mnist():
    x, y = load_mnist(MNIST_DIR, "test")
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1500], order[8000:8500]
    tc.manual_seed(0)
    model = models.lenet5()
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=3e-3), progress=False, seed=0)
    trainer.fit((x[train], y[train]), 2)
    assert trainer.evaluate((x[test], y[test]))["accuracy"] > 0.85


# ----------------------------------------------------------- Keras and Lightning habits
def test_fit_takes_keras_arguments(digits):
    x, y, xt, yt = digits
    tc.manual_seed(0)
    model = mlp()
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=3e-3), progress=False, seed=0)
    history = trainer.fit(x, y, epochs=2, batch_size=64, validation_split=0.1)
    assert history.epoch == [0, 1] and history["val_accuracy"][-1] > 0.5
    # validation_split holds out the last 10% before shuffling, as Keras: the same numbers as passing it
    cut = int(len(x) * 0.9)
    tc.manual_seed(0)
    same = mlp()
    again = Trainer(same, optim.Adam(same.parameters(), lr=3e-3), progress=False, seed=0)
    again.fit(x[:cut], y[:cut], epochs=2, batch_size=64, validation_data=(x[cut:], y[cut:]))
    assert again.history.history == history.history
    # this library's positional order still works: fit(data, epochs, validation_data)
    trainer.fit((x, y), 3, (xt, yt), initial_epoch=2)
    assert trainer.history.epoch == [0, 1, 2] and "val_loss" in trainer.history.history
    with pytest.raises(ValueError, match="not both"):
        trainer.fit(x, y, epochs=1, validation_data=(xt, yt), validation_split=0.2)
    with pytest.raises(ValueError, match="own batch size"):
        trainer.fit(DataLoader((x, y), 32), epochs=1, batch_size=64)
    with pytest.raises(TypeError, match="not a DataLoader"):
        trainer.fit(DataLoader((x, y), 32), epochs=1, validation_split=0.1)
    with pytest.raises(ValueError, match="leaves no training samples"):
        trainer.fit(x[:1], y[:1], epochs=1, validation_split=0.5)
    with pytest.raises(TypeError, match="must be arrays of inputs and targets"):
        trainer.fit(x, 3)
    with pytest.raises(TypeError, match="epochs given twice"):
        trainer.fit((x, y), 2, epochs=3)
    with pytest.raises(TypeError, match="already holds the targets"):
        trainer.fit((x, y), y)
    # the module-level shortcut takes the same arguments
    from tinygrad_cnn.training import fit

    model = mlp()
    history = fit(model, optim.Adam(model.parameters()), x, y, epochs=1, batch_size=128, progress=False)
    assert len(history) == 1


def test_history_prints_as_a_table():
    from tinygrad_cnn.training import History

    assert repr(History()) == "History(no epochs trained yet)"
    history = History()
    for epoch in range(12):
        history.append(epoch, {"loss": 1.0 / (epoch + 1), "val_accuracy": 0.5 + epoch / 100})
    lines = repr(history).splitlines()
    assert lines[0] == "History: 12 epochs"
    assert lines[1].split() == ["epoch", "loss", "val_accuracy"]
    assert lines[2].split() == ["1", "1", "0.5"] and lines[-1].split() == ["12", "0.08333", "0.61"]
    assert len(lines) == 2 + 5 + 1 + 5 and lines[7].split() == ["..."]


def _fresh_numba_layer():
    """A layer whose forward calls a Numba function compiled for the first time in this test
    (no cache): the Trainer must notice the compilation as a first run's would be."""
    from numba import njit

    @njit(cache=False)
    def scale(a, factor):  # a new function object: compiles on its first call
        return a * factor

    class Scale(nn.Module):
        def forward(self, x):
            return Tensor(scale(x.numpy(), np.float32(1.0))) * 0 + x

    return Scale()


def test_first_run_compilation_is_announced_and_left_out_of_the_timings(digits, capsys, monkeypatch):
    import tinygrad_cnn.training.compilation as compilation

    x, y, _, _ = digits
    tc.manual_seed(0)
    model = nn.Sequential(_fresh_numba_layer(), nn.Linear(64, 10))
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), progress=True, seed=0, batch_size=100)
    real_on_end = compilation.CompileWatch.on_end

    def slow_compile(self, event):  # make the compilation take a measurable second
        if getattr(self._depth, "value", 1) == 1:
            self._started_at -= 1.0
        real_on_end(self, event)

    monkeypatch.setattr(compilation.CompileWatch, "on_end", slow_compile)
    trainer.fit(x[:600], y[:600], epochs=2)
    err = capsys.readouterr().err
    assert err.count("compiling the Numba kernels for this machine: first run only, typically") == 1
    assert re.search(r"compiled 1 Numba kernel in \d+ s; the next runs load them from the cache", err), err
    assert trainer.compile_seconds >= 1.0
    estimate = [line for line in err.splitlines() if line.startswith("estimated time: ")]
    assert len(estimate) == 1 and "per epoch (6 batches of 100 at" in estimate[0]
    assert "for the 2 epochs of this run" in estimate[0]
    per_batch = float(estimate[0].split(" at ")[1].split(" s each")[0])
    assert per_batch < 0.5, f"the compile second leaked into the estimate: {estimate[0]}"
    # a second fit of the same model compiles nothing and says nothing about it
    trainer.fit(x[:600], y[:600], epochs=3, initial_epoch=2)
    assert "compiling" not in capsys.readouterr().err


def test_a_slow_model_says_how_long_an_epoch_will_take_before_the_epoch_ends(digits, capsys):
    import time

    class Slow(nn.Module):
        def forward(self, x):
            time.sleep(1.0)
            return x

    x, y, _, _ = digits
    model = nn.Sequential(Slow(), nn.Linear(64, 10))
    seen = []
    watcher = LambdaCallback(on_batch_end=lambda batch, logs: seen.append(capsys.readouterr().err))
    Trainer(model, optim.SGD(model.parameters(), lr=0.1), callbacks=[watcher], batch_size=100).fit(
        x[:300], y[:300], epochs=1)
    # a batch of a second or more: the estimate comes right after the second one (the first loads
    # the kernels, not typical), not after the epoch
    assert not any("estimated" in text for text in seen[:1])
    assert re.search(r"estimated time: 3\.\d s per epoch \(3 batches of 100 at 1\.\d s each", seen[1]), seen
    assert not any("estimated" in text for text in seen[2:])


def test_the_estimate_leaves_out_the_first_batch_that_loads_the_kernels(digits, capsys):
    """A warm run's first batch loads its kernels from Numba's cache (0.5 s for LeNet-5 where
    later batches take 0.01 s): counting it made the estimate ten times too long."""
    import time

    class SlowFirst(nn.Module):
        calls = 0

        def forward(self, x):
            SlowFirst.calls += 1
            if SlowFirst.calls == 1:
                time.sleep(1.0)
            return x

    x, y, _, _ = digits
    model = nn.Sequential(SlowFirst(), nn.Linear(64, 10))
    Trainer(model, optim.SGD(model.parameters(), lr=0.1), batch_size=50).fit(x[:500], y[:500], epochs=1)
    (estimate,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("estimated")]
    per_batch = float(estimate.split(" at ")[1].split(" s each")[0])
    assert per_batch < 0.2, estimate


def test_fit_refuses_a_zero_batch_size_and_empty_data(digits):
    x, y, _, _ = digits
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        trainer.fit(x[:50], y[:50], batch_size=0)  # it fell back to 32 before
    with pytest.raises(ValueError, match="the training data hold no samples"):
        trainer.fit(x[:0], y[:0])  # it reported an epoch of loss 0 before
