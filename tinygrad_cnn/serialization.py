"""Checkpoints as ``.npz`` files: plain named arrays, no pickle.

``save`` writes to a temporary file in the same folder and renames it over the
target (``os.replace`` is atomic), so a crash mid-write leaves the previous
checkpoint intact, never a half-written one. A process killed mid-write (``kill -9``,
a power cut) cannot remove its temporary file; the next ``save`` to the same
checkpoint removes the ones whose writer is no longer running. The file gets the
mode any file the user creates gets (``0o666`` minus the umask).

``load`` refuses pickled objects, so opening a checkpoint cannot run code, and
reads every member's header before its data: a damaged or foreign file (a lone
``.npy``, a PyTorch ``.pt``, a truncated download, a flipped byte) raises one
``ValueError`` that names the file and what is wrong with it.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import socket
import struct
import tokenize
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from tinygrad_cnn.tensor import Tensor

NPY_MAGIC = b"\x93NUMPY"
# What numpy and zipfile raise on damaged bytes: a bad zip structure or CRC, a truncated
# stream, a header that does not parse (numpy reads it with ``ast.literal_eval``, hence
# SyntaxError and tokenize's TokenError), a dtype or shape that makes no sense.
DAMAGE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, TypeError, KeyError,
                 SyntaxError, tokenize.TokenError, OverflowError, MemoryError, UnicodeDecodeError,
                 NotImplementedError, RuntimeError)


# ------------------------------------------------------------------ save
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def _temporary_name(target: str) -> str:
    """``.<target>.tmp-<host>-<pid>-<random>``: which checkpoint it belongs to and who writes it."""
    return f".{target}.tmp-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Delete the temporary files that interrupted saves of ``path`` left beside it: those
    written on this machine by a process that is no longer running. Returns their paths.
    A save in progress in another process, or on another machine sharing the folder, is
    left alone."""
    path = os.path.abspath(os.fspath(path))
    folder, target = os.path.split(path)
    pattern = re.compile(rf"^\.{re.escape(target)}\.tmp-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-[0-9a-f]+$")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match is None or match["host"] != _host() or _running(int(match["pid"])):
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
        except FileNotFoundError:  # another process cleaned it up first
            pass
    return removed


def save(state_dict, path: str | os.PathLike) -> None:
    """Write a mapping of names to Tensors/arrays/numbers to ``path`` atomically."""
    if not hasattr(state_dict, "items"):
        hint = " (save model.state_dict(), not the model)" if hasattr(state_dict, "state_dict") else ""
        raise TypeError(f"save: expected a state dict (a mapping of names to tensors), got "
                        f"{type(state_dict).__name__}{hint}")
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"save: keys must be strings, got {name!r}")
        array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"save: '{name}' is not numeric data ({type(value).__name__})")
        arrays[name] = array
    path = os.path.abspath(os.fspath(path))
    folder, target = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = os.path.join(folder, _temporary_name(target))
    # os.open with 0o666 lets the umask decide the mode, as for any file the user creates
    # (tempfile.mkstemp would make it 0o600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------ load
def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member: its header checked against the bytes the archive holds, then its data."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(member)
        header_bytes = member.tell()
    if dtype.hasobject:
        raise ValueError("it holds Python objects (pickled data), which load refuses")
    if dtype.kind not in "biufc":
        raise ValueError(f"it holds {dtype} data, not numbers")
    expected = header_bytes + math.prod(shape) * dtype.itemsize
    if expected != info.file_size:
        raise ValueError(f"its header describes a {dtype} array of shape {shape} ({expected:,} bytes with "
                         f"the header) but it holds {info.file_size:,} bytes")
    with archive.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def _entries_declared(path: str) -> int | None:
    """How many members the zip's end-of-central-directory record declares (None: zip64 or not
    found). zipfile walks the central directory by its byte size, so a damaged entry (a comment
    length that swallows the next entry) would silently hide a member: compared with this count."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 22 - 65535))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    total = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    return None if total == 0xFFFF else total


def _read(path: str) -> OrderedDict[str, Tensor]:
    def invalid(reason: str) -> ValueError:
        return ValueError(f"load: {path} is not a valid checkpoint (.npz): {reason}")

    with open(path, "rb") as f:
        start = f.read(len(NPY_MAGIC))
    if start == NPY_MAGIC:
        raise invalid("it is a single .npy array, where a checkpoint is an archive of named arrays "
                      "(as tinygrad_cnn.save writes); read a .npy with numpy.load")
    if not zipfile.is_zipfile(path):
        raise invalid("the file is empty" if not start else "it is not a zip archive")
    state: OrderedDict[str, Tensor] = OrderedDict()
    with zipfile.ZipFile(path) as archive:
        declared = _entries_declared(path)
        if declared is not None and declared != len(archive.infolist()):
            raise invalid(f"its directory lists {len(archive.infolist())} arrays where the archive declares "
                          f"{declared}")
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                foreign = " (a PyTorch file?)" if info.filename.endswith(".pkl") else ""
                raise invalid(f"it is a zip archive whose member {info.filename!r} is not a numpy array "
                              f"(.npy){foreign}")
            name = info.filename[: -len(".npy")]
            if name in state:
                raise invalid(f"the array {name!r} appears twice")
            try:
                array = _read_member(archive, info)
            except DAMAGE_ERRORS as error:
                raise invalid(f"array {name!r}: {error or type(error).__name__}") from None
            state[name] = Tensor(array, dtype=array.dtype)
    return state


def load(path: str | os.PathLike) -> OrderedDict[str, Tensor]:
    """Read a checkpoint written by :func:`save` as an ordered dict of Tensors.

    Raises ``FileNotFoundError`` when there is no file, and ``ValueError`` naming the file
    for anything that is not an intact checkpoint."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint at {path}")
    try:
        return _read(path)
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"load: {path} is not a valid checkpoint (.npz): {error}") from None
    except DAMAGE_ERRORS as error:
        raise ValueError(f"load: {path} is not a valid checkpoint (.npz): "
                         f"{type(error).__name__}: {error}") from None
