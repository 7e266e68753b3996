"""Pretrained weights in torchvision's format: ``.pth`` (with PyTorch), ``.safetensors`` and
``.npz`` (without it).

Transfer learning starts from a network someone else trained on a big dataset ("stand on
the shoulders of giants"). Our ResNet, VGG, AlexNet and DenseNet name every weight as
torchvision does (``layer1.0.conv1.weight``, ``features.0.weight``, ...) and store it in
the same layout (convolution kernels (K, C, kH, kW), dense weights (out, in), batch-norm
buffers), so torchvision's state dicts load into them strictly, name for name::

    model = models.resnet18()
    pretrained.load_pretrained(model, "resnet18.safetensors")   # or .npz, or .pth with torch
    model.fc = nn.Linear(512, 5)                                 # a new head for your classes

* :func:`read_weights` reads a file into named numpy arrays: ``.pth``/``.pt``/``.bin``
  through ``torch.load(weights_only=True)`` (no code runs), ``.safetensors`` with the
  reader below, ``.npz`` with numpy (no pickle).
* :func:`convert_weights` turns a ``.pth`` into ``.safetensors`` or ``.npz`` where torch is
  installed, for machines without it: ``python -m tinygrad_cnn.pretrained in.pth out.safetensors``.
* :func:`read_safetensors` / :func:`save_safetensors`: the safetensors format, written from
  its specification: 8 bytes, the little-endian length N of a JSON header; N bytes of JSON
  mapping each name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the
  data that follows, which the tensors tile without gaps) and an optional ``"__metadata__"``
  of strings; then the raw little-endian, row-major data.
* :func:`torchvision_names` renames the legacy keys of torchvision's DenseNet files
  (``denselayer1.norm.1.weight`` -> ``denselayer1.norm1.weight``), as torchvision does
  when it loads them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tinygrad_cnn.serialization import save as save_npz
from tinygrad_cnn.tensor import Tensor

# safetensors dtype names -> numpy (little-endian); BF16 has no numpy type: widened to float32
SAFETENSORS_DTYPES = {
    "BOOL": np.dtype("bool"), "U8": np.dtype("u1"), "I8": np.dtype("i1"), "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}


def _native(dtype: np.dtype) -> np.dtype:
    """The same dtype in this machine's byte order (single bytes have none)."""
    return dtype if dtype.byteorder == "|" else dtype.newbyteorder("=")


_NAME_OF_DTYPE = {_native(v): k for k, v in SAFETENSORS_DTYPES.items() if k != "BF16"}
MAX_HEADER = 100 * 1024 * 1024  # the specification's limit on the JSON header
TORCH_SUFFIXES = (".pth", ".pt", ".bin")
_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12])\.(weight|bias|running_mean|running_var)$")


# ---------------------------------------------------------------- safetensors
def read_safetensors(path: str | os.PathLike) -> OrderedDict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file, in file order, as numpy arrays (BF16 -> float32).

    Every rule of the format is checked; a file that breaks one raises ``ValueError`` naming
    the file and what is wrong (a truncated download, a header that lies about sizes)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        start = f.read(8)
        if len(start) < 8:
            raise ValueError(f"{path}: not a safetensors file ({size} bytes, no header length)")
        header_size = int.from_bytes(start, "little")
        if not 2 <= header_size <= min(MAX_HEADER, size - 8):
            raise ValueError(f"{path}: header length {header_size} does not fit a file of {size} bytes")
        raw = f.read(header_size)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: the safetensors header is not valid JSON: {error}") from None
    except KeyError as error:
        raise ValueError(f"{path}: the safetensors header names {error} twice") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the safetensors header must be a JSON object")
    header.pop("__metadata__", None)
    data_start, data_size = 8 + header_size, size - 8 - header_size
    entries = [(name, _parse_entry(path, name, entry, data_size)) for name, entry in header.items()]
    _check_tiling(path, entries, data_size)
    mapped = np.memmap(path, dtype=np.uint8, mode="r") if data_size else None
    tensors: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, (kind, shape, begin, _) in entries:
        stored = SAFETENSORS_DTYPES[kind]
        count = math.prod(shape)
        flat = (np.frombuffer(mapped, dtype=stored, count=count, offset=data_start + begin)
                if count else np.zeros(0, stored))
        if kind == "BF16":  # the upper 16 bits of a float32
            array = (flat.astype(np.uint32) << 16).view(np.float32)
        else:
            array = flat.astype(_native(stored))
        tensors[name] = array.reshape(shape)
    del mapped
    return tensors


def _unique_keys(pairs: list) -> dict:
    """A JSON object that may not repeat a name (json.loads would keep the last silently)."""
    names = [name for name, _ in pairs]
    for name in names:
        if names.count(name) > 1:
            raise KeyError(name)
    return dict(pairs)


def _parse_entry(path: str, name: str, entry, data_size: int) -> tuple[str, tuple[int, ...], int, int]:
    where = f"{path}: tensor '{name}'"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise ValueError(f"{where} needs dtype, shape and data_offsets, got {entry!r}")
    kind, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if kind not in SAFETENSORS_DTYPES:
        raise ValueError(f"{where} has dtype {kind!r}; supported: {', '.join(SAFETENSORS_DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"{where} has an invalid shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        raise ValueError(f"{where} has data_offsets {offsets!r} outside the {data_size} data bytes")
    expected = math.prod(shape) * SAFETENSORS_DTYPES[kind].itemsize
    if offsets[1] - offsets[0] != expected:
        raise ValueError(f"{where}: shape {shape} of {kind} needs {expected} bytes, "
                         f"data_offsets {offsets} give {offsets[1] - offsets[0]}")
    return kind, tuple(shape), offsets[0], offsets[1]


def _check_tiling(path: str, entries, data_size: int) -> None:
    """The tensors' byte ranges must follow each other from 0 to the end, without holes or overlaps."""
    position = 0
    for name, (_, _, begin, end) in sorted(entries, key=lambda e: (e[1][2], e[1][3])):
        if begin != position:
            problem = ("overlaps the previous tensor" if begin < position
                       else f"leaves a gap at byte {position}")
            raise ValueError(f"{path}: tensor '{name}' (bytes {begin}-{end}) {problem}")
        position = end
    if position != data_size:
        raise ValueError(f"{path}: the tensors cover {position} of the {data_size} data bytes")


def save_safetensors(tensors: Mapping, path: str | os.PathLike,
                     metadata: Mapping[str, str] | None = None) -> None:
    """Write named arrays (or Tensors) as a ``.safetensors`` file (header padded with spaces to
    a multiple of 8 bytes, so every tensor's data starts 8-byte aligned)."""
    arrays, header, offset = [], {}, 0
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("save_safetensors: metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"save_safetensors: invalid tensor name {name!r}")
        array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)  # 0-d stays 0-d
        kind = _NAME_OF_DTYPE.get(_native(array.dtype))
        if kind is None:
            raise TypeError(f"save_safetensors: '{name}' has dtype {array.dtype}, "
                            "which safetensors cannot hold")
        data = array.astype(SAFETENSORS_DTYPES[kind], copy=False).tobytes(order="C")
        header[name] = {"dtype": kind, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        arrays.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for data in arrays:
            f.write(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------ any format
def read_torch_file(path: str | os.PathLike) -> OrderedDict[str, np.ndarray]:
    """A PyTorch ``.pth`` state dict (or a checkpoint holding one under ``"state_dict"`` or
    ``"model"``) as numpy arrays; needs torch. ``weights_only=True``: unpickling runs no code."""
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"reading {path} needs PyTorch (pip install torch==2.13.0); without it, convert the file "
            "where torch is installed: python -m tinygrad_cnn.pretrained in.pth out.safetensors"
        ) from None
    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    arrays: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                value = value.float()
            arrays[name] = value.numpy().copy()
    if not arrays:
        raise ValueError(f"{path} holds no tensors")
    return arrays


def read_weights(path: str | os.PathLike) -> OrderedDict[str, np.ndarray]:
    """Named arrays from a ``.pth``/``.pt``/``.bin`` (torch), ``.safetensors`` or ``.npz`` file.
    A ``module.`` prefix on every name (a model saved inside DataParallel) is removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_weights: no file at {path}")
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        arrays = read_torch_file(path)
    elif suffix == ".safetensors":
        arrays = read_safetensors(path)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            arrays = OrderedDict((name, archive[name]) for name in archive.files)
    else:
        raise ValueError(f"read_weights: {path} is not a .pth, .pt, .bin, .safetensors or .npz file")
    if arrays and all(k.startswith("module.") for k in arrays):
        arrays = OrderedDict((k[len("module."):], v) for k, v in arrays.items())
    return arrays


def torchvision_names(state: Mapping) -> OrderedDict:
    """The same entries with torchvision's legacy DenseNet names made current
    (``...denselayer3.conv.2.weight`` -> ``...denselayer3.conv2.weight``); others unchanged."""
    renamed: OrderedDict = OrderedDict()
    for name, value in state.items():
        match = _LEGACY_DENSENET.match(name)
        renamed[f"{match[1]}{match[2]}.{match[3]}" if match else name] = value
    return renamed


def load_pretrained(model, weights, strict: bool = True):
    """Load torchvision-format weights (a file path or a name -> array mapping) into ``model``
    and return it. ``strict`` (the default): every name must match, none may be extra, and
    every shape must agree, else ``ValueError`` lists the names at fault and nothing changes."""
    state = read_weights(weights) if isinstance(weights, (str, os.PathLike)) else weights
    if not isinstance(state, Mapping):
        raise TypeError(f"load_pretrained: weights must be a path or a mapping, got {type(weights).__name__}")
    model.load_state_dict(torchvision_names(state), strict=strict)
    return model


def convert_weights(source: str | os.PathLike, target: str | os.PathLike) -> list[str]:
    """Read ``source`` (any format :func:`read_weights` reads) and write ``target`` as
    ``.safetensors`` or ``.npz``; returns the tensor names written."""
    arrays = torchvision_names(read_weights(source))
    suffix = Path(target).suffix.lower()
    if suffix == ".safetensors":
        save_safetensors(arrays, target, metadata={"converted_from": Path(source).name})
    elif suffix == ".npz":
        save_npz(arrays, target)
    else:
        raise ValueError(f"convert_weights: the target must end in .safetensors or .npz, got {target}")
    return list(arrays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tinygrad_cnn.pretrained",
        description="Convert torchvision/PyTorch weights (.pth) to .safetensors or .npz.")
    parser.add_argument("source", help="a .pth/.pt/.bin, .safetensors or .npz file")
    parser.add_argument("target", help="the file to write: .safetensors or .npz")
    args = parser.parse_args(argv)
    names = convert_weights(args.source, args.target)
    print(f"wrote {len(names)} tensors to {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
