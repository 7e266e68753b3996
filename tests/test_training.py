"""End to end: a small network learns scikit-learn's real 8x8 handwritten digits."""

import numpy as np

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, nn, optim
from tinygrad_cnn.cli import main
from tinygrad_cnn.data import load_digits


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


def test_main_job_runs(capsys):
    assert main(["train", "--epochs", "3"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["train", "--epochs", "0"]) == 2
