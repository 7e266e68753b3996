"""The first run compiles the Numba kernels: say so, and keep it out of the speed shown.

Numba compiles a kernel to machine code the first time it is called with a new signature and
writes the result to its cache (``kernels/numba/__pycache__``, or ``NUMBA_CACHE_DIR``); a later
process finds it there and loads it in milliseconds. How to tell which of the two happens:

* a dispatcher's ``signatures`` are the versions compiled or loaded in this process, its
  ``stats.cache_hits`` / ``stats.cache_misses`` count loads from and misses of the disk cache;
* on disk, one ``<function>-<line>.pyXY.nbi`` index per kernel lists the cached signatures
  for each CPU (and is ignored when the source file changed), beside ``.nbc`` machine code;
* Numba fires the event ``"numba:compile"`` only on a cache miss, right before it compiles
  (``numba.core.dispatcher.Dispatcher.compile``), never when it loads from the cache.

:class:`CompileWatch` listens to that event: the first compilation prints one notice (so the
first ``tinygrad-cnn train`` does not sit silent at "0/45"), the progress bar shows what is
being compiled, and the seconds spent compiling are counted apart so that the speed and the
time estimates only measure training. Measured on 2 cores, from an empty cache (session 3:
serial kernels on a share pool, the 16-channel convolutions ahead-of-time C): LeNet-5's first
step compiles 7 kernels in 8.9 s, ResNet-20's 11 kernels in 14.5 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

TYPICAL_SECONDS = "10-20 s"  # the measurements above; a slower CPU takes longer


def _kernel_name(dispatcher) -> str:
    module = dispatcher.py_func.__module__.rsplit(".", 1)[-1]
    return f"{module}.{dispatcher.py_func.__name__}"


class CompileWatch:
    """``with CompileWatch(notify) as watch: ...`` counts Numba compilations inside the block.

    ``notify(message)`` is called once, when the first kernel starts compiling, and
    ``progress(message)`` (if given) after every kernel. ``watch.seconds`` is the wall time
    spent compiling so far and ``watch.kernels`` the kernels compiled (nested helpers that a
    kernel compiles along with it are part of its time, not counted twice)."""

    def __init__(self, notify: Callable[[str], None], progress: Callable[[str], None] | None = None) -> None:
        self.notify, self.progress = notify, progress
        self.seconds = 0.0
        self.kernels: list[str] = []
        self._depth = threading.local()
        self._started_at = 0.0
        self._context = None

    # numba.core.event.Listener's interface
    def on_start(self, event) -> None:
        depth = getattr(self._depth, "value", 0)
        self._depth.value = depth + 1
        if depth:
            return
        self._started_at = time.perf_counter()
        if not self.kernels:
            dispatcher = event.data["dispatcher"]
            cache = getattr(getattr(dispatcher, "stats", None), "cache_path", None)
            where = f" in {cache}" if cache else ""
            self.notify(f"compiling the Numba kernels for this machine: first run only, typically "
                        f"{TYPICAL_SECONDS} (cached{where} for the next runs)")

    def on_end(self, event) -> None:
        self._depth.value = getattr(self._depth, "value", 1) - 1
        if self._depth.value:
            return
        self.seconds += time.perf_counter() - self._started_at
        self.kernels.append(_kernel_name(event.data["dispatcher"]))
        if self.progress is not None:
            self.progress(f"compiled {len(self.kernels)} kernels ({self.seconds:.0f} s)")

    def __enter__(self) -> CompileWatch:
        try:
            from numba.core import event
        except ImportError:  # no Numba: nothing is ever compiled
            return self
        listener = self

        class _Listener(event.Listener):
            def on_start(self, ev) -> None:
                listener.on_start(ev)

            def on_end(self, ev) -> None:
                listener.on_end(ev)

        self._context = event.install_listener("numba:compile", _Listener())
        self._context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)
            self._context = None

    def summary(self) -> str:
        """One line for after the run: what was compiled, how long it took."""
        n = len(self.kernels)
        return (f"compiled {n} Numba kernel{'s' if n != 1 else ''} in {self.seconds:.0f} s; the next runs "
                f"load them from the cache")


def duration_text(seconds: float) -> str:
    """``"0.4 s"``, ``"45 s"``, ``"2.7 min"``, ``"1.3 h"``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
