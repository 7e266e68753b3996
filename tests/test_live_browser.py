"""The live view end to end, in a real browser: ``tinygrad-cnn train --live`` in a subprocess and
headless Chromium (Debian's ``chromium``, driven by Playwright's Python package; never a
browser downloaded by Playwright) on its page.

The page must draw the curve as batches finish and every layer's activation maps; clicking
another test image must show that image's maps; pause must stop training and resume go on;
after training, and after the server has stopped, the page keeps the final state. A
screenshot is saved (to ``$TINYGRAD_CNN_LIVE_SCREENSHOT`` too, when set: that is how
docs/live_view.png is made).
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TINYGRAD_CNN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]



def missing() -> str | None:
    """Why the test cannot run here, or None."""
    for module, install in (("playwright.sync_api", "pip install playwright"), ("starlette", LIVE),
                            ("uvicorn", LIVE), ("websockets", LIVE)):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed: {install}"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM}: apt-get install chromium"
    return None


LIVE = "pip install '.[live]'"
if missing():
    if os.environ.get("TINYGRAD_CNN_REQUIRE_LIVE"):  # CI: a browser test that skips is a failure
        raise RuntimeError(f"TINYGRAD_CNN_REQUIRE_LIVE is set but {missing()}")
    pytest.skip(missing(), allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402 - after the skips

EPOCHS, BATCHES = 3, 30
# --limit counts the training images before the validation split: 600 images, a fifth held out,
# leave 480 to train on, 30 batches of 16
LIMIT, VAL_SPLIT = 600, 0.2


def start_training(tmp_path: Path):
    """``tinygrad-cnn train --live`` on port 0; returns the process, its output lines, the URL."""
    command = [sys.executable, "-m", "tinygrad_cnn", "train", "--live", "--port", "0",
               "--epochs", str(EPOCHS), "--limit", str(LIMIT), "--val-split", str(VAL_SPLIT),
               "--batch-size", "16", "--no-progress",
               "--backend", "reference", "--output", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Ctrl+C in a terminal reaches a command whose SIGINT is the default; a test run started in
    # the background of a script (`bash .ci/run &`) ignores SIGINT, and a child would inherit that
    # (Python then never raises KeyboardInterrupt, and the command lingers on)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert process.poll() is None, f"train --live exited early: {''.join(seen)}"
            continue
        seen.append(line)
        match = re.search(r"live view: (http://127\.0\.0\.1:\d+/)", line)
        if match:
            return process, lines, seen, match.group(1)
    process.kill()
    raise AssertionError(f"no live view address printed: {''.join(seen)}")


def data_url(page, selector: str) -> str:
    return page.eval_on_selector(selector, "canvas => canvas.toDataURL()")


def texts(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")


def wait(page, condition: str, seconds: float = 60) -> None:
    """Wait for a JavaScript condition (a function: the page's CSP forbids evaluating strings)."""
    page.wait_for_function(f"() => {condition}", timeout=seconds * 1000)


POINTS = "Number(document.getElementById('loss-chart').dataset.points)"
STATE = "document.body.dataset.state"
INPUT_MAP, CONV_MAP = "#network .layer:first-child canvas.map", "#network .layer:nth-child(2) canvas.map"
SIXTH = "#grid .tile:nth-child(6)"


def watch(page, process, lines, seen, tmp_path: Path) -> None:
    console_errors = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    # the curve grows as batches finish, and every layer's maps are drawn
    wait(page, f"{POINTS} >= 20", 120)
    # pause stops training; resume lets it go on (first, while most of the 90 batches are
    # still to come: later, a fast run could finish between reading the state and the click)
    assert page.evaluate(STATE) == "training", page.evaluate(STATE)
    page.click("#pause")
    wait(page, f"{STATE} === 'paused' || {STATE} === 'finished'")
    assert page.evaluate(STATE) == "paused", "training finished before the pause click was handled"
    points = page.evaluate(POINTS)
    time.sleep(1.0)
    assert page.evaluate(POINTS) == points and page.text_content("#pause") == "Resume"
    page.click("#pause")
    wait(page, f"{STATE} !== 'paused'")
    wait(page, "document.querySelectorAll('#network canvas.map[data-drawn]').length >= 20"
               " && document.querySelectorAll('#grid .tile').length >= 8")
    layers = texts(page, "#network .layer .name")
    assert layers[:2] == ["Input input", "Conv2d features.0"] and layers[-1] == "Softmax softmax"
    assert "backend reference · device cpu" in page.text_content("#run")
    # click another test image: the maps become that image's
    first_input, first_conv = data_url(page, INPUT_MAP), data_url(page, CONV_MAP)
    assert page.eval_on_selector("#network", "n => n.dataset.image") == "0"
    page.click(SIXTH)
    wait(page, "document.getElementById('network').dataset.image === '5'")
    assert page.eval_on_selector(SIXTH, "tile => tile.classList.contains('selected')")
    shown_input = data_url(page, INPUT_MAP)
    assert shown_input != first_input and shown_input == data_url(page, f"{SIXTH} canvas")  # that very image
    assert data_url(page, CONV_MAP) != first_conv
    # the end: every batch on the curve, each prediction captioned, the wrong ones marked
    wait(page, f"{STATE} === 'finished'", 180)
    wait(page, f"{POINTS} === {EPOCHS * BATCHES}")
    assert all(re.fullmatch(r"\d (\d+)%( \(is \d\))?", c) for c in texts(page, "#grid figcaption"))
    assert all("(is " in c for c in texts(page, "#grid .tile.wrong figcaption"))
    page.screenshot(path=str(tmp_path / "live_view.png"))
    if os.environ.get("TINYGRAD_CNN_LIVE_SCREENSHOT"):
        page.screenshot(path=os.environ["TINYGRAD_CNN_LIVE_SCREENSHOT"])
    assert not console_errors, console_errors  # (after the server stops, refused reconnects are errors)
    # once the command says it lingers, Ctrl+C ends it; the page keeps the final state
    while not any("shows the final state" in line for line in seen):
        seen.append(lines.get(timeout=60))
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    wait(page, "document.getElementById('connection').textContent.includes('final state')")
    assert page.evaluate(POINTS) == EPOCHS * BATCHES
    assert len(page.query_selector_all("#network canvas.map[data-drawn]")) >= 20


def test_watch_lenet_learn_in_chromium(tmp_path):
    process, lines, seen, url = start_training(tmp_path)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1300})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            watch(page, process, lines, seen, tmp_path)
            browser.close()
        assert not errors, errors
        while not lines.empty():
            seen.append(lines.get())
        assert any("test accuracy" in line for line in seen), seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
