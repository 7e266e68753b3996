"""Training checkpoints: everything needed to continue a run exactly, in one atomic ``.npz``.

A checkpoint holds the model's ``state_dict`` (keys ``model.<name>``), the optimizer's
state arrays (``optimizer.state.<i>.<key>``), and a JSON header (``meta``, stored as uint8
bytes so no pickle is ever needed) with the epoch, the optimizer's hyper-parameters, the
scheduler's state, the library's random-generator state, the history so far and free-form
information such as the model's name. It is written with :func:`tinygrad_cnn.save`, so a
crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict

import numpy as np

from tinygrad_cnn import random as tc_random
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.optim.optimizer import Optimizer
from tinygrad_cnn.serialization import load, save

FORMAT = "tinygrad_cnn-checkpoint-1"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint header")


def save_checkpoint(path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None,
                    scheduler=None, epoch: int = 0, history: dict | None = None,
                    info: dict | None = None) -> None:
    """Write model, optimizer and scheduler state plus the RNG state and ``info`` to ``path``."""
    arrays: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, tensor in model.state_dict().items():
        arrays[f"model.{name}"] = tensor.numpy()
    rng = tc_random.generator().bit_generator.state  # PCG64: 128-bit ints, kept as strings
    meta: dict = {"format": FORMAT, "epoch": int(epoch), "history": history or {}, "info": info or {},
                  "rng": {**rng, "state": {k: str(v) for k, v in rng["state"].items()}}}
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars = {}
        for index, entries in state["state"].items():
            for key, value in entries.items():
                if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
                    arrays[f"optimizer.state.{index}.{key}"] = np.asarray(
                        value.get() if hasattr(value, "get") else value)
                else:
                    scalars[f"{index}.{key}"] = value
        meta["optimizer"] = {"type": type(optimizer).__name__, "param_groups": state["param_groups"],
                             "scalars": scalars}
    if scheduler is not None:
        meta["scheduler"] = {"type": type(scheduler).__name__, **scheduler.state_dict()}
    header = json.dumps(meta, default=_json_default).encode()
    arrays["meta"] = np.frombuffer(header, dtype=np.uint8)
    save(arrays, path)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, OrderedDict, dict]:
    """``(meta, model_state, optimizer_arrays)`` of a checkpoint; a file that is not one of
    ours raises ``ValueError`` naming it."""
    state = load(path)
    if "meta" not in state:
        raise ValueError(f"{path} is an .npz file but not a tinygrad_cnn training checkpoint (no 'meta')")
    try:
        meta = json.loads(state.pop("meta").numpy().astype(np.uint8).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: corrupt checkpoint header: {error}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {meta.get('format')!r}, expected {FORMAT}")
    model_state = OrderedDict((k[len("model."):], v) for k, v in state.items() if k.startswith("model."))
    optim_arrays = {k[len("optimizer.state."):]: v for k, v in state.items()
                    if k.startswith("optimizer.state.")}
    return meta, model_state, optim_arrays


def load_checkpoint(path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None,
                    scheduler=None, restore_rng: bool = True) -> dict:
    """Restore a checkpoint into ``model`` (and ``optimizer``, ``scheduler``, the RNG);
    returns its header (``epoch``, ``history``, ``info``). A checkpoint of another model
    raises ``ValueError`` and leaves the model unchanged."""
    meta, model_state, optim_arrays = read_checkpoint(path)
    try:
        model.load_state_dict(model_state)
    except ValueError as error:
        name = meta.get("info", {}).get("model")
        which = f" (it was saved from model '{name}')" if name else ""
        raise ValueError(
            f"checkpoint {path} does not fit this {type(model).__name__}{which}: {error}"
        ) from None
    if optimizer is not None and "optimizer" in meta:
        saved = meta["optimizer"]
        if saved["type"] != type(optimizer).__name__:
            raise ValueError(f"checkpoint {path} holds {saved['type']} state, not {type(optimizer).__name__}")
        state: dict[int, dict] = {}
        for key, tensor in optim_arrays.items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = tensor.numpy().copy()
        for key, value in saved["scalars"].items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in saved["param_groups"]]
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(meta["scheduler"])
    if restore_rng and "rng" in meta:
        rng = dict(meta["rng"])
        rng["state"] = {k: int(v) for k, v in rng["state"].items()}
        tc_random.generator().bit_generator.state = rng
    return meta
