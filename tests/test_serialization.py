"""Checkpoints: round trip, no pickle, atomic writes, clear errors."""

import os

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, nn


def test_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    path = tmp_path / "model.npz"
    tc.save(model.state_dict(), path)
    loaded = tc.load(path)
    assert list(loaded) == list(model.state_dict())
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    other.load_state_dict(loaded)
    x = Tensor.randn(2, 3)
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    tc.save({"w": Tensor([1.0, 2.0])}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        tc.save({"w": Tensor([9.0, 9.0])}, path)
    np.testing.assert_array_equal(tc.load(path)["w"].numpy(), [1.0, 2.0])
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        tc.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a valid checkpoint"):
        tc.load(bad)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a valid checkpoint"):
        tc.load(pickled)
    with pytest.raises(TypeError, match="not numeric"):
        tc.save({"x": {"nested": 1}}, tmp_path / "x.npz")
