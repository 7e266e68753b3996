"""Checkpoints: round trip, no pickle, atomic writes, clear errors."""

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_save_wants_a_state_dict(tmp_path):
    model = nn.Linear(2, 3)
    with pytest.raises(TypeError, match=r"got Linear \(save model.state_dict\(\), not the model\)"):
        tc.save(model, tmp_path / "model.npz")
    with pytest.raises(TypeError, match="expected a state dict .* got list"):
        tc.save([1, 2], tmp_path / "list.npz")
    assert not list(tmp_path.iterdir())


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


# ------------------------------------------------------------------ damaged and foreign files
def _npy_bytes(header: bytes, data: bytes) -> bytes:
    """A .npy member with this header text (padded as numpy pads it) and these data bytes."""
    header = header + b" " * ((-(10 + len(header) + 1)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def _zip(path, members: dict[str, bytes]):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:  # writestr computes correct CRCs: damage past the zip layer
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _one_value_error_naming(path) -> str:
    with pytest.raises(ValueError) as info:
        tc.load(path)
    assert str(path) in str(info.value), info.value
    return str(info.value)


def test_foreign_and_damaged_files_give_one_value_error_naming_them(tmp_path):
    np.save(tmp_path / "plain.npy", np.zeros(3))
    assert "single .npy array" in _one_value_error_naming(tmp_path / "plain.npy")
    (tmp_path / "empty.npz").write_bytes(b"")
    assert "empty" in _one_value_error_naming(tmp_path / "empty.npz")
    (tmp_path / "text.npz").write_text("weights = [1, 2, 3]\n")
    assert "not a zip archive" in _one_value_error_naming(tmp_path / "text.npz")
    _zip(tmp_path / "notes.npz", {"notes.txt": b"hello"})
    assert "'notes.txt' is not a numpy array" in _one_value_error_naming(tmp_path / "notes.npz")
    _zip(tmp_path / "model.pt", {"archive/data.pkl": b"\x80\x02}q\x00."})
    assert "PyTorch" in _one_value_error_naming(tmp_path / "model.pt")
    # a header that does not parse (numpy raises tokenize.TokenError / SyntaxError for these)
    unclosed = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,"
    _zip(tmp_path / "header.npz", {"w.npy": _npy_bytes(unclosed, b"\0" * 8)})
    assert "array 'w'" in _one_value_error_naming(tmp_path / "header.npz")
    _zip(tmp_path / "syntax.npz", {"w.npy": _npy_bytes(b"{'descr': '<f4' 'shape': }", b"\0" * 8)})
    assert "array 'w'" in _one_value_error_naming(tmp_path / "syntax.npz")
    # a header that claims far more data than the member holds (numpy would try to allocate it)
    _zip(tmp_path / "huge.npz", {"w.npy": _npy_bytes(
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", b"\0" * 8)})
    assert "holds" in _one_value_error_naming(tmp_path / "huge.npz")
    # a damaged directory entry whose comment length swallows the next entry: zipfile lists one
    # array fewer and says nothing (found by the fuzz test below)
    tc.save({"w": np.zeros(3), "b": np.ones(2), "meta": np.zeros(4, np.uint8)}, tmp_path / "swallowed.npz")
    raw = bytearray((tmp_path / "swallowed.npz").read_bytes())
    first = raw.find(b"PK\x01\x02")  # the first central-directory entry: 46 bytes, name, extra, comment

    def entry_size(at):
        return 46 + sum(int.from_bytes(raw[at + k : at + k + 2], "little") for k in (28, 30, 32))

    raw[first + 32 : first + 34] = entry_size(first + entry_size(first)).to_bytes(2, "little")
    (tmp_path / "swallowed.npz").write_bytes(bytes(raw))
    assert "lists 2 arrays where the archive declares 3" in _one_value_error_naming(
        tmp_path / "swallowed.npz")
    np.savez(tmp_path / "strings.npz", names=np.array(["conv", "fc"]))
    assert "not numbers" in _one_value_error_naming(tmp_path / "strings.npz")
    np.savez(tmp_path / "objects.npz", obj=np.array([{"a": 1}], dtype=object))
    assert "Python objects" in _one_value_error_naming(tmp_path / "objects.npz")


@st.composite
def _damage(draw, size: int):
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite"]))
    if kind == "truncate":
        return kind, draw(st.integers(0, size - 1)), b""
    start = draw(st.integers(0, size - 1))
    return kind, start, draw(st.binary(min_size=1, max_size=8))


@given(damage=st.data())
def test_a_damaged_checkpoint_loads_intact_or_raises_one_value_error(tmp_path_factory, damage):
    """Truncations and overwritten bytes anywhere in a real checkpoint: the file either still
    reads as exactly what was saved (damage where nothing is read) or raises ValueError
    naming it, never another exception."""
    folder = tmp_path_factory.mktemp("damaged")
    saved = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "step": np.int64(7),
             "meta": np.frombuffer(b'{"format": 1}', dtype=np.uint8)}
    tc.save(saved, folder / "good.npz")
    raw = bytearray((folder / "good.npz").read_bytes())
    kind, start, data = damage.draw(_damage(len(raw)))
    if kind == "truncate":
        raw = raw[:start]
    elif kind == "flip":
        raw[start] ^= data[0] or 1
    else:
        raw[start : start + len(data)] = data
    path = folder / "bad.npz"
    path.write_bytes(bytes(raw))
    try:
        loaded = tc.load(path)
    except ValueError as error:
        assert str(path) in str(error)
        return
    assert list(loaded) == list(saved)
    for name, value in saved.items():
        np.testing.assert_array_equal(loaded[name].numpy(), value)


# ------------------------------------------------------------------ file mode and interrupted saves
@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_checkpoint_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        tc.save({"w": np.zeros(2)}, tmp_path / "model.npz")
        (tmp_path / "other.txt").write_text("any file the user creates")
    finally:
        os.umask(old)
    mode = (tmp_path / "model.npz").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask == (tmp_path / "other.txt").stat().st_mode & 0o777


def _dead_pid() -> int:
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_save_removes_what_interrupted_saves_left_and_only_that(tmp_path):
    from tinygrad_cnn.serialization import _host

    target = tmp_path / "ckpt.npz"
    dead = tmp_path / f".ckpt.npz.tmp-{_host()}-{_dead_pid()}-0badc0de"
    alive = tmp_path / f".ckpt.npz.tmp-{_host()}-{os.getpid()}-0123abcd"  # a save in progress here
    remote = tmp_path / f".ckpt.npz.tmp-another-machine-{_dead_pid()}-0123abcd"  # on a shared folder
    other_target = tmp_path / f".other.npz.tmp-{_host()}-{_dead_pid()}-0badc0de"
    for leftover in (dead, alive, remote, other_target):
        leftover.write_bytes(b"half a checkpoint")
    tc.save({"w": np.ones(3)}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, alive.name, remote.name, other_target.name])
    np.testing.assert_array_equal(tc.load(target)["w"].numpy(), np.ones(3))


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_save_killed_with_sigkill_is_cleaned_up_by_the_next_save(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "ckpt.npz"
    writer = (f"import numpy as np, tinygrad_cnn as tc\nw = np.ones(8_000_000, np.float32)\n"
              f"while True:\n    tc.save({{'w': w}}, {str(target)!r})\n")
    process = subprocess.Popen([sys.executable, "-c", writer])
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".ckpt.npz.tmp-") for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and process.poll() is None, "the writer never started a save"
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert any(p.name.startswith(".ckpt.npz.tmp-") for p in tmp_path.iterdir())
    tc.save({"w": np.zeros(2)}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]
