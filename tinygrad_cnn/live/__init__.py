"""``tinygrad_cnn.live``: watch a network learn in the browser, as ConvNetJS shows it.

``LiveView`` is a Trainer callback that serves a page (``tinygrad-cnn train --live``) with the
curves, every layer's activation maps, the first layer's filters and the test predictions,
updated while training runs. The files, top to bottom:

    protocol.py   the JSON messages between the training process and the page (the schema)
    state.py      what the page may be shown, shared by the three threads under one lock
    snapshot.py   the pictures, computed on a private copy of the model
    callback.py   LiveView: the training thread's side, and the snapshot worker
    server.py     the Starlette app and the uvicorn thread
    static/       the page: index.html, live.js (plain canvas, no library), live.css

Needs the ``live`` extra: ``pip install 'tinygrad_cnn[live]'``.
"""

from tinygrad_cnn.live.callback import LiveView, check_dependencies
from tinygrad_cnn.live.protocol import PROTOCOL

__all__ = ["LiveView", "check_dependencies", "PROTOCOL"]
