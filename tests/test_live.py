"""The live view: its messages (schema and contents against oracles), endpoints, the server
under slow, closed and misbehaving pages, pause/resume, and that training is not disturbed.

The browser itself is tested in test_live_browser.py. Tests that need the ``live`` extra
(starlette, uvicorn, websockets; httpx for Starlette's TestClient) skip without it.

Longer than 500 lines: one section per part of the view (messages, endpoints, server
misbehaviour, controls, training undisturbed), sharing one set of fixtures that start a
server; splitting would copy the fixtures.
"""

import base64
import contextlib
import json
import os
import re
import socket
import sys
import threading
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tinygrad_cnn.kernels import get_backend, set_backend, use_backend

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, nn, optim
from tinygrad_cnn.data import load_digits
from tinygrad_cnn.live.protocol import (
    CLIENT_TYPES,
    MAX_CLIENT_MESSAGE,
    SERVER_TYPES,
    array_record,
    decode_record,
    parse_client_message,
)
from tinygrad_cnn.live.snapshot import ModelMirror, copy_weights, predictions_message
from tinygrad_cnn.live.state import Cursor, LiveState
from tinygrad_cnn.training import Callback, LambdaCallback, Trainer, filter_grid

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "tinygrad_cnn" / "live" / "static"


def have_live() -> bool:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
        import websockets  # noqa: F401
    except ImportError:
        return False
    try:  # Starlette's TestClient runs on httpx2 (newer Starlette) or httpx
        import httpx2  # noqa: F401
    except ImportError:
        try:
            import httpx  # noqa: F401
        except ImportError:
            return False
    return True


if not have_live() and os.environ.get("TINYGRAD_CNN_REQUIRE_LIVE"):  # CI: these must run, not skip
    raise RuntimeError("TINYGRAD_CNN_REQUIRE_LIVE is set but the live extra or httpx2 is not installed")
needs_live = pytest.mark.skipif(not have_live(), reason="the live extra is not installed: "
                                "pip install '.[live]' httpx2")


@pytest.fixture(scope="module")
def digits():
    x, y, xt, yt = load_digits(seed=0)
    return x[:320], y[:320], xt[:40], yt[:40]


def tiny_cnn(dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 10))


def quantum(record: dict) -> float:
    """The largest error of an array record: half a grey level."""
    return (record["max"] - record["min"]) / 510 + 1e-6 * max(1.0, abs(record["max"]), abs(record["min"]))


# ------------------------------------------------------------------ message schema
RECORD = {"shape": list, "min": float, "max": float, "data": str}
SCHEMA = {
    "hello": {"protocol": int, "run": int, "model": (dict, type(None)), "backend": (str, type(None)),
              "device": (str, type(None)), "epochs": int,
              "batches": int, "classes": (list, type(None)), "task": str, "interval_s": float},
    "status": {"state": str, "epoch": int, "epochs": int, "batch": int, "batches": int, "step": int,
               "images_seen": int, "images_per_s": (float, int), "elapsed_s": (float, int), "selected": int},
    "metrics": {"train": list, "val": list, "sample": list},
    "images": {"images": list},
    "predictions": {"step": int, "x": float, "predicted": (list, type(None)), "probability": list,
                    "correct": list, "loss": (float, type(None)), "accuracy": (float, type(None))},
    "activations": {"step": int, "image": int, "layers": list},
    "filters": {"step": int, "layer": str, "shape": list, "grid": dict},
}


def check_record(record: dict) -> np.ndarray:
    for key, kind in RECORD.items():
        assert isinstance(record[key], kind if kind is not float else (float, int)), (key, record[key])
    values = decode_record(record)
    assert values.shape == tuple(record["shape"])
    return values


def check_message(message: dict) -> None:
    """``message`` has exactly the keys of its type in the protocol docstring, of those types."""
    kind = message["type"]
    assert kind in SERVER_TYPES
    expected = SCHEMA[kind]
    assert set(message) == {"type", *expected}, (kind, sorted(message))
    for key, types in expected.items():
        types = types if isinstance(types, tuple) else (types,)
        if float in types:
            types = (*types, int)
        assert isinstance(message[key], types), (kind, key, message[key])
    if kind == "metrics":
        for points in message.values():
            if isinstance(points, list):
                assert all(len(p) == 3 and isinstance(p[0], float) for p in points)
    if kind == "images":
        for image in message["images"]:
            assert set(image) == {"index", "label", "pixels"}
            assert len(check_record(image["pixels"]).shape) == 3
    if kind == "activations":
        for layer in message["layers"]:
            assert set(layer) == {"name", "type", "description", "parameters", "shape", "maps"}
            check_record(layer["maps"])
    if kind == "filters":
        assert check_record(message["grid"]).shape[0] == 3


# ------------------------------------------------------------------ protocol
@given(arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)),
              elements=st.floats(-1e4, 1e4, width=32)))
def test_array_record_round_trips_to_half_a_grey_level(values):
    record = array_record(values)
    json.dumps(record, allow_nan=False)
    assert len(base64.b64decode(record["data"])) == values.size
    assert record["min"] == values.min() and record["max"] == values.max()
    np.testing.assert_allclose(decode_record(record), values, rtol=0, atol=quantum(record))


def test_array_record_of_a_constant_and_of_non_finite_values():
    record = array_record(np.full((2, 3), 7.5))
    np.testing.assert_array_equal(decode_record(record), np.full((2, 3), 7.5))
    record = array_record(np.array([np.nan, np.inf, -np.inf, 1.0]))
    assert json.dumps(record, allow_nan=False) and record["max"] == 1.0


def test_client_messages_are_checked():
    assert parse_client_message('{"type": "select", "image": 3}', 4) == {"type": "select", "image": 3}
    assert parse_client_message('{"type": "pause", "extra": 1}', 4) == {"type": "pause"}
    assert parse_client_message('{"type": "resume"}', 0) == {"type": "resume"}
    bad = [None, b'{"type": "pause"}', "x" * (MAX_CLIENT_MESSAGE + 1), "not json", "[1]", '"pause"',
           '{"type": "eval", "code": "1"}', '{"type": "select"}', '{"type": "select", "image": 4}',
           '{"type": "select", "image": -1}', '{"type": "select", "image": true}',
           '{"type": "select", "image": "1"}', '{"type": "select", "image": 1.0}']
    for text in bad:
        with pytest.raises(ValueError):
            parse_client_message(text, 4)
    assert set(CLIENT_TYPES) == {"select", "pause", "resume"}


# ------------------------------------------------------------------ shared state
def test_state_sends_each_page_what_is_new_and_only_the_newest_pictures():
    state = LiveState()
    hello = {"model": {"name": "m", "parameters": 1}, "backend": "reference", "device": "cpu", "epochs": 2,
             "batches": 3, "classes": None, "task": "classification", "interval_s": 0.5}
    state.start_run(hello, [{"index": 0, "label": 1, "pixels": array_record(np.zeros((1, 2, 2)))}])
    page = Cursor()
    first = [json.loads(t) for t in state.updates(page)]
    assert [m["type"] for m in first] == ["hello", "images", "status"]
    assert first[0]["run"] == 1 and first[2]["state"] == "waiting"
    for m in first:
        check_message(m)
    assert state.updates(page) == []  # nothing new
    state.add_point("train", 1 / 3, 2.5, None)
    state.add_point("train", 2 / 3, float("nan"), 0.5)
    state.add_point("val", 1.0, 2.0, 0.25)
    (metrics,) = [json.loads(t) for t in state.updates(page)]
    assert metrics == {"type": "metrics", "train": [[1 / 3, 2.5, None], [2 / 3, None, 0.5]],
                       "val": [[1.0, 2.0, 0.25]], "sample": []}
    state.add_point("train", 1.0, 1.5, 0.75)
    assert json.loads(state.updates(page)[0])["train"] == [[1.0, 1.5, 0.75]]  # only the new point
    # a page that reads slowly gets the newest picture, not a queue of old ones
    state.set_pictures(filters={"n": 1})
    state.set_pictures(filters={"n": 2})
    assert [json.loads(t) for t in state.updates(page)] == [{"type": "filters", "n": 2}]
    # a late page gets the whole curve; a new run makes every page start again from hello
    late = Cursor()
    late_metrics = [json.loads(t) for t in state.updates(late) if '"metrics"' in t[:20]]
    assert len(late_metrics[0]["train"]) == 3
    state.start_run(hello, [])
    again = [json.loads(t) for t in state.updates(page)]
    assert [m["type"] for m in again] == ["hello", "images", "status"] and again[0]["run"] == 2
    assert json.loads(state.snapshot_text())["messages"][0]["type"] == "hello"


# ------------------------------------------------------------------ pictures
def test_mirror_records_every_layer_as_the_model_computes_it(digits):
    tc.manual_seed(0)
    model = tiny_cnn()
    x = digits[0][:5]
    mirror = ModelMirror(model, max_maps=3)
    mirror.load(copy_weights(model))
    logits = mirror.run(x, keep=2)
    with tc.no_grad(), use_backend("reference"):
        expected = model(Tensor(x)).numpy()
        conv = model[0](Tensor(x[2:3])).numpy()[0]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    assert [name for name, _, _ in mirror.records] == ["0", "1", "2", "3", "4", "5"]
    np.testing.assert_allclose(mirror.records[0][2], conv, rtol=1e-5, atol=1e-6)
    layers = mirror.activations_message(x[2], logits[2], None)
    assert [layer["type"] for layer in layers] == ["Input", "Conv2d", "ReLU", "MaxPool2d", "Dropout",
                                                    "Flatten", "Linear", "Softmax"]
    conv_layer = layers[1]
    assert conv_layer["shape"] == [4, 8, 8] and conv_layer["maps"]["shape"] == [3, 8, 8]  # max_maps
    assert conv_layer["parameters"] == 4 * 9 + 4
    np.testing.assert_allclose(decode_record(conv_layer["maps"]), conv[:3], atol=quantum(conv_layer["maps"]))
    np.testing.assert_allclose(decode_record(layers[0]["maps"]), x[2], atol=quantum(layers[0]["maps"]))
    probabilities = decode_record(layers[-1]["maps"])
    np.testing.assert_allclose(probabilities, F.softmax(Tensor(expected[2:3]), dim=1).numpy()[0],
                               atol=quantum(layers[-1]["maps"]))
    assert layers[5]["maps"]["shape"] == [64]  # the units of a dense layer: all, flattened
    filters = mirror.filters_message()
    assert filters["layer"] == "0" and filters["shape"] == [4, 1, 3, 3]
    np.testing.assert_allclose(decode_record(filters["grid"]), filter_grid(model[0].weight.numpy()),
                               atol=quantum(filters["grid"]))
    # the model the trainer trains is neither patched nor shared
    assert all("forward" not in module.__dict__ for module in model.modules())
    model[0].weight.data += 1.0
    assert not np.allclose(mirror.model[0].weight.numpy(), model[0].weight.numpy())


def test_copied_weights_do_not_move_with_training(digits):
    tc.manual_seed(0)
    model = tiny_cnn()
    weights = copy_weights(model)
    before = {k: v.copy() for k, v in weights.items()}
    Trainer(model, optim.SGD(model.parameters(), lr=0.5), progress=False, batch_size=32).fit(digits[:2], 1)
    assert all(np.array_equal(weights[k], before[k]) for k in weights)
    assert not np.array_equal(model[0].weight.numpy(), before["0.weight"])


def test_predictions_against_an_explicit_computation():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 5.0]])
    labels = np.array([0, 2, 2, 2])
    p = predictions_message(logits, labels)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert p["predicted"] == [0, 1, 2, 2] and p["correct"] == [True, False, True, True]
    np.testing.assert_allclose(p["probability"], probs.max(1))
    assert p["accuracy"] == 0.75
    expected_loss = F.cross_entropy(Tensor(logits), Tensor(labels, dtype=np.int64)).item()
    assert p["loss"] == pytest.approx(expected_loss)
    # segmentation: fraction of the pixels right per image, nothing marked wrong
    scores = np.zeros((2, 2, 2, 2))
    scores[:, 1, 0, :] = 1.0  # predicts class 1 in the top row, class 0 below
    masks = np.array([[[1, 1], [0, 0]], [[1, 0], [1, 1]]])
    p = predictions_message(scores, masks)
    assert p["predicted"] is None and p["probability"] == [1.0, 0.25] and p["correct"] == [None, None]


def test_batch_logs_give_size_and_the_batch_accuracy(digits):
    tc.manual_seed(0)
    seen = []

    class Recording(Trainer):
        def train_step(self, x, y):
            loss, logits = super().train_step(x, y)
            seen.append((loss, (logits.argmax(1) == y.numpy()).mean(), len(logits)))
            return loss, logits

    logs = []
    model = tiny_cnn()
    trainer = Recording(model, optim.Adam(model.parameters()), progress=False, batch_size=48,
                        callbacks=[LambdaCallback(on_batch_end=lambda batch, l: logs.append(dict(l)))])
    trainer.fit(digits[:2], 1, digits[2:])
    assert [log["size"] for log in logs] == [48] * 6 + [32]
    for log, (loss, accuracy, size) in zip(logs, seen):
        assert log == {"loss": loss, "size": size, "accuracy": pytest.approx(accuracy)}
    assert trainer.train_loader.batch_size == 48 and len(trainer.validation_loader.dataset) == 40
    assert trainer.epochs == 1


# ------------------------------------------------------------------ server
@pytest.fixture
def live_view():
    from tinygrad_cnn.live import LiveView

    views = []

    def make(**options):
        options = {"port": 0, "verbose": False, "interval": 0.05, **options}
        views.append(LiveView(**options))
        return views[-1]

    yield make
    for view in views:
        view.close()


def fit(view, digits, epochs=2, dropout=0.0, callbacks=(), **options):
    tc.manual_seed(0)
    model = tiny_cnn(dropout)
    trainer = Trainer(model, optim.Adam(model.parameters(), 1e-2),
                      callbacks=([view] if view else []) + list(callbacks),
                      progress=False, batch_size=32, seed=0, **options)
    with use_backend("reference"):
        history = trainer.fit(digits[:2], epochs, digits[2:])
    return trainer, history


class Page:
    """A WebSocket client in a thread of its own, keeping every message it gets."""

    def __init__(self, view, origin=None) -> None:
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(view.url.replace("http://", "ws://") + "ws", origin=origin,
                                                   open_timeout=10))
        self.messages: list[dict] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for text in self.ws:
                self.messages.append(json.loads(text))
        except Exception:  # noqa: BLE001 - closed: the test looks at what arrived
            pass

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]

    def wait_for(self, condition, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    def close(self) -> None:
        self.stack.close()
        self.thread.join(5)


def wait_listeners(view, n: int) -> None:
    deadline = time.monotonic() + 10
    while view.state.listeners != n:
        assert time.monotonic() < deadline, f"{view.state.listeners} listeners, expected {n}"
        time.sleep(0.01)


@needs_live
def test_endpoints_headers_and_nothing_else(live_view, digits):
    from starlette.testclient import TestClient

    view = live_view(images=digits[2:])
    client = TestClient(view.app, base_url="http://127.0.0.1:8765")
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/static/live.js"' in page.text and "<script>" not in page.text
    assert client.get("/static/live.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/live.css").headers["content-type"].startswith("text/css")
    for path in ("/static/index.html", "/static/callback.py", "/static/..%2Fcallback.py",
                 "/static/../server.py", "/etc/passwd", "/api", "/ws"):
        assert client.get(path).status_code == 404, path
    assert client.get("/favicon.ico").status_code == 204
    assert client.post("/api/state").status_code == 405
    state = client.get("/api/state").json()
    assert [m["type"] for m in state["messages"]] == ["hello", "status"]  # before any training
    # another host name (DNS rebinding) is refused
    assert TestClient(view.app, base_url="http://evil.example").get("/").status_code == 400


def test_the_page_loads_nothing_from_elsewhere_and_runs_no_received_code():
    for name in ("index.html", "live.js", "live.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://|//cdn|@import|url\(", text), name
    js = (STATIC / "live.js").read_text()
    for forbidden in ("innerHTML", "outerHTML", "eval(", "new Function", "insertAdjacentHTML",
                      "document.write", "setTimeout(\"", "fetch("):
        assert forbidden not in js, forbidden


@needs_live
def test_websocket_commands_and_refusals(live_view, digits):
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    view = live_view(images=digits[2:])
    fit(view, digits, epochs=1)
    client = TestClient(view.app, base_url="http://127.0.0.1:8765")
    host = {"host": "127.0.0.1:8765"}  # the TestClient's WebSockets otherwise say "testserver"
    with client.websocket_connect("/ws", headers=host) as ws:
        kinds = [ws.receive_json()["type"] for _ in range(7)]
        assert kinds == ["hello", "images", "metrics", "status", "predictions", "activations", "filters"]
        ws.send_text(json.dumps({"type": "select", "image": 7}))
        message = ws.receive_json()
        while message["type"] != "activations":  # the selected image's maps come (training is over)
            message = ws.receive_json()
        assert view.state.selected == 7 and message["image"] == 7
        shown = message["layers"][0]["maps"]
        np.testing.assert_allclose(decode_record(shown), digits[2][7], atol=quantum(shown))
        ws.send_text('{"type": "select", "image": 40}')  # out of range: the connection is closed
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_text()
        assert closed.value.code == 1008
    with pytest.raises(WebSocketDisconnect):  # a page of another web site may not connect
        with client.websocket_connect("/ws", headers={**host, "origin": "http://evil.example"}) as ws:
            ws.receive_text()
    with pytest.raises(WebSocketDisconnect):  # nor one that names another host (DNS rebinding)
        with client.websocket_connect("/ws", headers={"host": "evil.example"}) as ws:
            ws.receive_text()
    with client.websocket_connect("/ws", headers={**host, "origin": "http://127.0.0.1:8765"}) as ws:
        assert ws.receive_json()["type"] == "hello"
    assert view.state.listeners == 0


@needs_live
def test_a_run_streams_schema_valid_messages_that_match_the_trainer(live_view, digits):
    view = live_view()
    page = Page(view)
    wait_listeners(view, 1)
    losses = []
    recorder = LambdaCallback(on_batch_end=lambda batch, logs: losses.append(logs["loss"]))
    tc.manual_seed(0)
    model = tiny_cnn()
    trainer = Trainer(model, optim.Adam(model.parameters(), 1e-2), callbacks=[recorder, view], progress=False,
                      batch_size=32, seed=0)
    with use_backend("reference"):
        history = trainer.fit(digits[:2], 2, digits[2:])
    page.wait_for(lambda: any(m["type"] == "status" and m["state"] == "finished" for m in page.messages))
    page.wait_for(lambda: sum(len(m["train"]) for m in page.of("metrics")) == 20)
    page.wait_for(lambda: any(m["step"] == 20 for m in page.of("predictions")))  # sent after the status
    page.close()
    for message in page.messages:
        check_message(message)
    hello = page.of("hello")[-1]
    assert hello["model"] == {"name": "Sequential", "parameters": model.num_parameters()}
    assert (hello["epochs"], hello["batches"]) == (2, 10)
    assert (hello["backend"], hello["device"]) == ("reference", "cpu")
    train = [p for m in page.of("metrics") for p in m["train"]]
    assert [p[0] for p in train] == pytest.approx([e + (b + 1) / 10 for e in range(2) for b in range(10)])
    assert [p[1] for p in train] == pytest.approx(losses)
    val = [p for m in page.of("metrics") for p in m["val"]]
    assert val == [[1.0, pytest.approx(history["val_loss"][0]), pytest.approx(history["val_accuracy"][0])],
                   [2.0, pytest.approx(history["val_loss"][1]), pytest.approx(history["val_accuracy"][1])]]
    final = page.of("status")[-1]
    assert (final["state"], final["step"], final["images_seen"], final["epoch"]) == ("finished", 20, 640, 2)
    # the shown images: 32 evenly spaced validation images, and the final predictions are the trainer's
    (images,) = page.of("images")
    indices = [image["index"] for image in images["images"]]
    assert indices == np.unique(np.linspace(0, 39, 32).round().astype(int)).tolist()
    assert [image["label"] for image in images["images"]] == digits[3][indices].tolist()
    with use_backend("reference"):
        logits = trainer.predict(digits[2][indices])
    predictions = page.of("predictions")[-1]
    assert predictions["step"] == 20 and predictions["predicted"] == logits.argmax(1).tolist()
    assert predictions["accuracy"] == pytest.approx((logits.argmax(1) == digits[3][indices]).mean())
    activations = page.of("activations")[-1]
    assert len(activations["layers"]) == 8 and activations["image"] == 0
    assert page.of("filters")[-1]["shape"] == [4, 1, 3, 3]
    samples = [p for m in page.of("metrics") for p in m["sample"]]
    assert samples and samples[-1][2] == pytest.approx(predictions["accuracy"])


class WaitForSnapshots(Callback):
    """Holds training at each batch's end until the live view's worker has drawn what it was
    given and is ready for more: snapshots then interleave with every batch, however loaded
    the machine (a fast loop on a busy machine otherwise ends before the worker gets a turn)."""

    def __init__(self, view) -> None:
        self.view = view

    def on_batch_end(self, batch, logs=None) -> None:
        assert self.view.worker.wait_idle(timeout=30), "the live view's worker did not finish a snapshot"
        ready = max(self.view.worker.next_allowed, self.view._next_snapshot)
        time.sleep(max(0.0, ready - time.perf_counter()))


@needs_live
def test_training_is_the_same_with_and_without_a_watched_live_view(live_view, digits):
    plain, plain_history = fit(None, digits, dropout=0.3)
    plain_state = {k: v.numpy().copy() for k, v in plain.model.state_dict().items()}
    plain_rng = tc.random.generator().bit_generator.state
    view = live_view(interval=0.001)
    page = Page(view)
    wait_listeners(view, 1)
    trainer, history = fit(view, digits, dropout=0.3, callbacks=[WaitForSnapshots(view)])
    page.close()
    # snapshots were taken while training ran: the first weights, those after each of the 20
    # batches (the last batch's may be the final state's), the final state
    assert view.worker.computed >= 21
    assert history.history == plain_history.history
    assert all(np.array_equal(v.numpy(), plain_state[k]) for k, v in trainer.model.state_dict().items())
    assert tc.random.generator().bit_generator.state == plain_rng  # the live view drew nothing


@needs_live
def test_no_snapshots_while_nobody_listens(live_view, digits):
    view = live_view(interval=0.001)
    fit(view, digits)
    assert view.worker.computed == 2  # the first weights and the final state, nothing between


@needs_live
def test_a_training_loop_without_loaders_gets_the_curves_only(live_view, capsys):
    view = live_view()
    model = tiny_cnn()
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), progress=False)
    Callback.set_trainer(view, trainer)  # a loop of its own: no train_loader, epochs unknown
    view.on_train_begin()
    for batch in range(3):
        view.on_batch_end(batch, {"loss": 1.0 / (batch + 1), "size": 4})
    view.on_train_end()
    assert "curves only" in capsys.readouterr().err
    messages = [json.loads(t) for t in view.state.updates(Cursor())]
    assert [m["type"] for m in messages] == ["hello", "images", "metrics", "status"]
    assert messages[1]["images"] == [] and [p[0] for p in messages[2]["train"]] == [1.0, 2.0, 3.0]
    assert messages[3]["state"] == "finished" and messages[3]["images_seen"] == 12


def raw_upgrade(port: int) -> socket.socket:
    """A WebSocket handshake by hand, from a page that then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    return sock


@needs_live
def test_slow_closed_and_misbehaving_pages_cannot_stall_or_crash_training(live_view, digits):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    view = live_view(interval=0.01)
    port = view.server.port
    url = view.url.replace("http://", "ws://") + "ws"
    never_reads = [raw_upgrade(port) for _ in range(3)]
    garbage = socket.create_connection(("127.0.0.1", port), timeout=5)
    garbage.sendall(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
    rude, clients = [], contextlib.ExitStack()
    for frame in (b"\x00\x01binary", "{not json", '{"type": "select", "image": 99}', "x" * 5000,
                  '{"type": "select", "image": "0; import os"}'):
        ws = clients.enter_context(connect(url, open_timeout=10))
        ws.send(frame)
        rude.append(ws)
    gone = clients.enter_context(connect(url, open_timeout=10))
    gone.socket.close()  # vanishes without a close frame
    good = Page(view)
    start = time.perf_counter()
    trainer, history = fit(view, digits, epochs=3)
    elapsed = time.perf_counter() - start
    good.wait_for(lambda: good.of("status") and good.of("status")[-1]["state"] == "finished")
    good.wait_for(lambda: sum(len(m["train"]) for m in good.of("metrics")) == 30)
    assert len(history) == 3 and elapsed < 120
    for ws in rude:  # closed by the server: a protocol error (1008) or a frame too large (1009)
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)  # what was sent before the bad frame was read, then the close
        assert ws.close_code in (1008, 1009), ws.close_code
    for sock in never_reads + [garbage]:
        sock.close()
    clients.close()
    good.close()
    from starlette.testclient import TestClient

    assert TestClient(view.app, base_url="http://127.0.0.1").get("/api/state").status_code == 200


@needs_live
def test_a_page_that_never_reads_is_dropped_after_the_send_timeout(live_view, monkeypatch):
    from tinygrad_cnn.live import server

    monkeypatch.setattr(server, "SEND_TIMEOUT", 0.5)
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 1, 64, 64), dtype=np.float32), np.arange(64) % 10
    view = live_view(images=(x, y), num_images=64)
    tc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 5, stride=4), nn.Flatten(), nn.Linear(2 * 15 * 15, 10))
    with use_backend("reference"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), callbacks=[view], progress=False,
                batch_size=64).fit((x, y), 1)
    # small kernel buffers for the connections it accepts, so that the ~0.4 MB of pictures waiting
    # for the page cannot all be buffered (Linux would grow them to megabytes on the loopback)
    view.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    sock = raw_upgrade(view.server.port)
    wait_listeners(view, 1)
    wait_listeners(view, 0)  # its send timed out: the server let it go
    sock.close()


@needs_live
def test_pause_and_resume_from_the_page_and_resume_when_it_leaves(live_view, digits):
    view = live_view(interval=0.05)
    page = Page(view)
    wait_listeners(view, 1)
    tc.manual_seed(0)
    x = np.concatenate([digits[0]] * 4)
    y = np.concatenate([digits[1]] * 4)
    model = tiny_cnn()
    trainer = Trainer(model, optim.Adam(model.parameters()), callbacks=[view], progress=False, batch_size=8,
                      seed=0)
    errors = []

    def train():
        try:
            with use_backend("reference"):
                trainer.fit((x, y), 4)
        except Exception as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    thread = threading.Thread(target=train)
    thread.start()
    page.wait_for(lambda: view.state.status()["state"] == "training")
    page.ws.send('{"type": "pause"}')
    page.wait_for(lambda: view.state.status()["state"] == "paused")
    step = view.state.status()["step"]
    time.sleep(0.3)
    assert view.state.status()["step"] == step and thread.is_alive()  # training waits while paused
    page.wait_for(lambda: any(m["type"] == "status" and m["state"] == "paused" for m in page.messages))
    page.ws.send('{"type": "resume"}')
    page.wait_for(lambda: view.state.status()["step"] > step)
    page.ws.send('{"type": "pause"}')
    page.wait_for(lambda: view.state.status()["state"] == "paused")
    page.close()  # the page that paused is gone: training goes on by itself
    thread.join(60)
    assert not thread.is_alive() and not errors
    assert view.state.status()["state"] == "finished" and view.state.status()["step"] == 4 * 160


@needs_live
def test_port_in_use_and_bad_arguments(live_view):
    from tinygrad_cnn.live import LiveView

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    with pytest.raises(OSError, match=f"port {port} on 127.0.0.1 is already in use.*--port"):
        LiveView(port=port, verbose=False)
    busy.close()
    for options, message in [({"port": -1}, "port"), ({"port": 70000}, "port"), ({"port": "80"}, "port"),
                             ({"host": ""}, "host"), ({"interval": 0}, "interval"),
                             ({"cpu_share": 0}, "cpu_share"), ({"cpu_share": 1.5}, "cpu_share"),
                             ({"num_images": 0}, "num_images"), ({"images": np.zeros((2, 8, 8))}, "images"),
                             ({"images": (np.zeros((2, 1, 8, 8), np.float32), [1])}, "labels")]:
        with pytest.raises(ValueError, match=message):
            LiveView(**{"port": 0, "verbose": False, **options})
    with pytest.raises(OSError, match="cannot listen on host"):
        LiveView(port=0, host="no-such-host.invalid", verbose=False)


def test_without_the_live_extra_a_clear_error(monkeypatch, capsys):
    from tinygrad_cnn.cli import main
    from tinygrad_cnn.live import LiveView, check_dependencies

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'tinygrad_cnn\[live\]'.*missing: uvicorn"):
        check_dependencies()
    with pytest.raises(ImportError, match="live"):
        LiveView(port=0, verbose=False)
    assert main(["train", "--live", "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tinygrad_cnn[live]" in err[0], err


@needs_live
def test_cli_train_live_serves_then_stops(tmp_path, capsys):
    from tinygrad_cnn.cli import main

    backend = get_backend()
    try:
        code = main(["train", "--live", "--port", "0", "--live-linger", "0", "--epochs", "1", "--limit", "64",
                     "--no-progress", "--backend", "reference", "--output", str(tmp_path)])
    finally:
        set_backend(backend)
    out = capsys.readouterr().out
    assert code == 0, out
    url = re.search(r"live view: (http://127\.0\.0\.1:(\d+)/)", out)
    assert url and "shows the final state" in out and "test accuracy" in out
    with pytest.raises(OSError):  # the server has stopped with the command
        socket.create_connection(("127.0.0.1", int(url.group(2))), timeout=2)
    assert main(["train", "--live", "--live-linger", "-1", "--no-progress"]) == 2


def test_the_page_is_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["tinygrad_cnn.live.static"]
    files = [p.name for p in STATIC.iterdir() if p.is_file() and p.suffix != ".py"]
    assert sorted(files) == ["index.html", "live.css", "live.js"]
    assert all(any(fnmatch(name, pattern) for pattern in patterns) for name in files)
    assert "recursive-include tinygrad_cnn/live/static" in (ROOT / "MANIFEST.in").read_text()
    from tinygrad_cnn.live.server import FILES, read_static

    assert set(read_static()) == set(FILES) and (STATIC / "__init__.py").is_file()
