"""torchvision-format weights: names and shapes equal torchvision's, the safetensors reader
against bytes laid out by hand from the specification (and the ``safetensors`` package when
installed), ``.pth`` files from PyTorch loading into our models with the same outputs.

The oracle for the names is tests/data/torchvision_state_dicts.json, written by
tests/data/make_torchvision_state_dicts.py from torchvision 0.28.0's own model definitions
(not from our code). Where torchvision itself can be imported, a further test loads the
weights of torchvision's models into ours and compares the outputs.
"""

import json
import struct
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn import Tensor, models, nn, no_grad, pretrained
from tinygrad_cnn.nn import init

DATA = Path(__file__).parent / "data"
TORCHVISION = json.loads((DATA / "torchvision_state_dicts.json").read_text())["models"]
OURS = {
    "resnet18": models.resnet18, "resnet50": models.resnet50, "vgg11": models.vgg11,
    "vgg16": models.vgg16, "vgg11_bn": lambda: models.vgg11(batch_norm=True),
    "alexnet": models.alexnet, "densenet121": models.densenet121,
}


@pytest.fixture
def no_init(monkeypatch):
    """Skip the random initialisation (it sets values, never names or shapes): VGG's 120M
    weights would otherwise take seconds to draw."""
    for name in ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "zeros_", "ones_"):
        monkeypatch.setattr(init, name, lambda tensor, *args, **kwargs: tensor)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_state_dict_names_and_shapes_are_torchvisions(name, no_init):
    ours = [[key, list(value.shape)] for key, value in OURS[name]().state_dict().items()]
    assert ours == TORCHVISION[name]  # the same names, shapes and order


def header_file(path, header: dict, data: bytes, pad: bytes = b"") -> None:
    encoded = json.dumps(header).encode() + pad
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def test_safetensors_reader_on_bytes_laid_out_by_hand(tmp_path):
    f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.0)
    i64 = struct.pack("<2q", -7, 2**40)
    bf16 = struct.pack("<2H", 0x3F80, 0xC040)  # 1.0 and -3.0: the top halves of their float32 bits
    f16 = struct.pack("<e", 0.25)
    data = f32 + i64 + bf16 + f16
    o = np.cumsum([0, len(f32), len(i64), len(bf16), len(f16)]).tolist()
    header = {"__metadata__": {"format": "pt"},
              "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [o[0], o[1]]},
              "n": {"dtype": "I64", "shape": [2], "data_offsets": [o[1], o[2]]},
              "b": {"dtype": "BF16", "shape": [2], "data_offsets": [o[2], o[3]]},
              "h": {"dtype": "F16", "shape": [], "data_offsets": [o[3], o[4]]},
              "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [o[4], o[4]]}}
    path = tmp_path / "hand.safetensors"
    header_file(path, header, data, pad=b"   ")
    got = pretrained.read_safetensors(path)
    assert list(got) == ["w", "n", "b", "h", "e"]
    np.testing.assert_array_equal(got["w"], [[1.0, -2.0], [0.5, 3.0]])
    assert got["n"].dtype == np.int64 and got["n"].tolist() == [-7, 2**40]
    assert got["b"].dtype == np.float32 and got["b"].tolist() == [1.0, -3.0]
    assert got["h"].shape == () and float(got["h"]) == 0.25
    assert got["e"].shape == (0, 3)


def test_safetensors_round_trip_and_alignment(tmp_path):
    rng = np.random.default_rng(0)
    tensors = OrderedDict([("a.weight", rng.normal(size=(3, 2, 5)).astype(np.float32)),
                           ("a.count", np.array(5, dtype=np.int64)), ("mask", np.array([True, False])),
                           ("x", rng.normal(size=7)), ("small", np.arange(3, dtype=np.uint8))])
    path = tmp_path / "w.safetensors"
    pretrained.save_safetensors(tensors, path, metadata={"source": "test"})
    raw = path.read_bytes()
    assert int.from_bytes(raw[:8], "little") % 8 == 0
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"] == {"source": "test"} and header["a.weight"]["dtype"] == "F32"
    got = pretrained.read_safetensors(path)
    for name, value in tensors.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape
        np.testing.assert_array_equal(got[name], value)


@pytest.mark.parametrize("header,data,message", [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "needs 8 bytes"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "cover 4 of the 8"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "gap at byte 0"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "overlaps"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "outside the 8"),
    ({"w": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}, b"\0", "dtype 'Q4'"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}, b"", "invalid shape"),
    ({"w": [1, 2]}, b"", "needs dtype"),
])
def test_safetensors_reader_refuses_broken_files(tmp_path, header, data, message):
    path = tmp_path / "bad.safetensors"
    header_file(path, header, data)
    with pytest.raises(ValueError, match=message):
        pretrained.read_safetensors(path)


def test_safetensors_reader_refuses_truncated_and_non_json(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x05\0\0")
    with pytest.raises(ValueError, match="no header length"):
        pretrained.read_safetensors(path)
    path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(ValueError, match="does not fit"):
        pretrained.read_safetensors(path)
    path.write_bytes(struct.pack("<Q", 4) + b"{no}")
    with pytest.raises(ValueError, match="not valid JSON"):
        pretrained.read_safetensors(path)
    entry = b'{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    twice = b'{"w":' + entry + b',"w":' + entry + b"}"
    path.write_bytes(struct.pack("<Q", len(twice)) + twice + b"\0")
    with pytest.raises(ValueError, match="'w' twice"):
        pretrained.read_safetensors(path)


def test_safetensors_agrees_with_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(1)
    tensors = {"conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
               "bn.num_batches_tracked": np.array(3, dtype=np.int64), "half": np.ones(5, np.float16)}
    st.save_file(tensors, tmp_path / "theirs.safetensors")
    ours = pretrained.read_safetensors(tmp_path / "theirs.safetensors")
    pretrained.save_safetensors(tensors, tmp_path / "ours.safetensors")
    theirs = st.load_file(tmp_path / "ours.safetensors")
    for name, value in tensors.items():
        np.testing.assert_array_equal(ours[name], value)
        np.testing.assert_array_equal(theirs[name], value)


def small_ours():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def small_torch(torch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 1, 8, 8) * 2 + 1)  # running statistics that are not the defaults
    return model.eval()


def test_pth_files_load_into_our_models_and_convert(tmp_path):
    torch = pytest.importorskip("torch")
    theirs = small_torch(torch)
    x = np.random.default_rng(2).normal(size=(5, 1, 8, 8)).astype(np.float32)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    files = {"plain.pth": theirs.state_dict(),
             "checkpoint.pt": {"state_dict": theirs.state_dict(), "epoch": 3},
             "parallel.pth": {f"module.{k}": v for k, v in theirs.state_dict().items()}}
    for name, content in files.items():
        torch.save(content, tmp_path / name)
        model = pretrained.load_pretrained(small_ours(), tmp_path / name).eval()
        with no_grad():
            np.testing.assert_allclose(model(Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
        assert int(model[1].num_batches_tracked.item()) == 1
    for suffix in (".safetensors", ".npz"):
        names = pretrained.convert_weights(tmp_path / "plain.pth", tmp_path / f"converted{suffix}")
        assert names == list(theirs.state_dict())
        model = pretrained.load_pretrained(small_ours(), tmp_path / f"converted{suffix}").eval()
        with no_grad():
            np.testing.assert_allclose(model(Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert pretrained.main([str(tmp_path / "plain.pth"), str(tmp_path / "cli.safetensors")]) == 0
    assert list(pretrained.read_weights(tmp_path / "cli.safetensors")) == list(theirs.state_dict())


def test_strict_loading_names_what_is_wrong(tmp_path):
    state = {k: v.numpy() for k, v in small_ours().state_dict().items()}
    state["9.bias"] = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"unexpected keys \['9.bias'\]"):
        pretrained.load_pretrained(small_ours(), state)
    del state["9.bias"]
    state.pop("0.weight")
    with pytest.raises(ValueError, match=r"missing keys \['0.weight'\]"):
        pretrained.load_pretrained(small_ours(), state)
    with pytest.raises(ValueError, match="not a .pth"):
        (tmp_path / "w.h5").write_bytes(b"x")
        pretrained.read_weights(tmp_path / "w.h5")
    with pytest.raises(FileNotFoundError):
        pretrained.read_weights(tmp_path / "missing.safetensors")


def test_pth_without_torch_says_how_to_convert(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    (tmp_path / "w.pth").write_bytes(b"PK")
    with pytest.raises(ImportError, match="python -m tinygrad_cnn.pretrained"):
        pretrained.read_weights(tmp_path / "w.pth")


def test_legacy_densenet_names_load(tmp_path):
    model = models.densenet_small(num_classes=3)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    # torchvision's old DenseNet files: 'denselayer1.norm.1.weight' for 'denselayer1.norm1.weight'
    legacy = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) >= 3 and parts[-3].startswith("denselayer") and parts[-2][-1] in "12" \
                and parts[-2][:-1] in ("norm", "conv") and parts[-1] != "num_batches_tracked":
            key = ".".join(parts[:-2] + [parts[-2][:-1], parts[-2][-1], parts[-1]])
        legacy[key] = value
    assert any(".norm.1." in k for k in legacy) and any(".conv.2." in k for k in legacy)
    np.savez(tmp_path / "legacy.npz", **legacy)
    fresh = pretrained.load_pretrained(models.densenet_small(num_classes=3), tmp_path / "legacy.npz")
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key])


def import_torchvision():
    pytest.importorskip("torch")
    sys.path.insert(0, str(DATA))
    try:
        from make_torchvision_state_dicts import import_torchvision as load
    finally:
        sys.path.pop(0)
    try:
        return load()
    except ImportError:
        pytest.skip("torchvision is not installed")


@pytest.mark.parametrize("name,size", [("resnet18", 32), ("alexnet", 64), ("densenet121", 32)])
def test_torchvision_weights_give_torchvisions_outputs(name, size, tmp_path, no_init):
    import torch

    torchvision = import_torchvision()
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(num_classes=7).eval()
    torch.save(theirs.state_dict(), tmp_path / f"{name}.pth")
    ours = OURS[name]()
    head = "fc" if name.startswith("resnet") else "classifier"
    if name == "densenet121":
        ours.classifier = nn.Linear(1024, 7)
    else:  # replace the head: the last Linear of the classifier
        parent = ours if head == "fc" else ours.classifier
        last = "fc" if head == "fc" else str(len(parent) - 1)
        setattr(parent, last, nn.Linear(getattr(parent, last).in_features, 7))
    pretrained.load_pretrained(ours, tmp_path / f"{name}.pth").eval()
    x = np.random.default_rng(3).normal(size=(2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with no_grad():
        np.testing.assert_allclose(ours(Tensor(x)).numpy(), expected, rtol=2e-3, atol=2e-4)
