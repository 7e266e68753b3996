"""Synthetic 1-D signals with events buried in noise, and the tools of event detection.

The course's 1-D examples (a seismometer recording an earthquake's arrival, an accelerometer
on a bearing that starts to ring, a wearable sensor catching a movement) share one task:
find *when* something happens in a long noisy recording, and *what* it is. Here:

* :func:`event_waveform`: the clean shape of one event, one of ``SIGNAL_CLASSES``:
  ``"spike"`` (a Ricker wavelet, an impulsive arrival), ``"ringing"`` (a suddenly excited,
  exponentially damped oscillation, as an impact on a machine) and ``"chirp"`` (a burst
  whose frequency rises, under a smooth envelope);
* :func:`make_signal_events`: N recordings (N, 1, L) of Gaussian noise with events of random
  shape, sign, amplitude, duration and arrival time added, and the true arrival times and
  classes, the same for the same seed;
* :func:`event_targets`: per-step training targets, "which event arrived a moment ago";
* :func:`sliding_windows`: the windows a sliding-window detector looks at;
* :func:`threshold_runs` and :func:`match_events`: turn a detector's score curve into
  detections, and count them against the true arrivals within a tolerance.

Arrays are numpy (float32 signals, int64 times and labels); times are sample indices.
"""

from __future__ import annotations

import numpy as np

from tinygrad_cnn.nn.functional.checks import int_tuple, is_int, positive_int
from tinygrad_cnn.tensor import Tensor

SIGNAL_CLASSES = ("spike", "ringing", "chirp")


def _class_index(fn: str, kind) -> int:
    if isinstance(kind, str) and kind in SIGNAL_CLASSES:
        return SIGNAL_CLASSES.index(kind)
    if is_int(kind) and 0 <= kind < len(SIGNAL_CLASSES):
        return int(kind)
    raise ValueError(f"{fn}: kind must be one of {SIGNAL_CLASSES} or an index below {len(SIGNAL_CLASSES)}, "
                     f"got {kind!r}")


def event_waveform(kind, length: int = 32, stretch: float = 1.0) -> np.ndarray:
    """The clean waveform of one event, float64 (length,), peak |value| 1, starting at sample 0
    (its arrival) and close to 0 at the end. ``stretch`` > 1 makes it slower (longer).

    With u = t / stretch (t the sample index):

    * spike: Ricker wavelet (1 - 2 a²) exp(-a²), a = (u - 8) / 2.5: a sharp, symmetric
      pulse centred 8 stretched samples after the arrival (an *impulsive* arrival);
    * ringing: sin(2 pi u / 6) exp(-u / 12) for u >= 0: starts at once, period 6, decays;
    * chirp: sin(2 pi (u / 16 + 3 u² / 1024)) sin²(pi u / 32) for u < 32: the frequency climbs
      from 1/16 to 1/4 cycles per sample under a Hann window (an *emergent* arrival, growing
      out of the noise), then silence.
    """
    index = _class_index("event_waveform", kind)
    length = positive_int("event_waveform", "length", length)
    if not isinstance(stretch, (int, float)) or isinstance(stretch, bool) or not stretch > 0:
        raise ValueError(f"event_waveform: stretch must be a positive number, got {stretch!r}")
    u = np.arange(length) / float(stretch)
    if index == 0:
        a = (u - 8.0) / 2.5
        wave = (1 - 2 * a**2) * np.exp(-(a**2))
    elif index == 1:
        wave = np.sin(2 * np.pi * u / 6) * np.exp(-u / 12)
    else:
        phase = 2 * np.pi * (u / 16 + 3 * u**2 / 1024)
        wave = np.where(u < 32, np.sin(phase) * np.sin(np.pi * u / 32) ** 2, 0.0)
    peak = np.abs(wave).max()
    return wave / peak if peak > 0 else wave


def _range(fn: str, name: str, value, low: float, high: float) -> tuple[float, float]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{fn}: {name} must be a (low, high) pair of numbers, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not low <= lo <= hi <= high:
        raise ValueError(f"{fn}: {name} {value!r} must satisfy {low} <= low <= high <= {high}")
    return lo, hi


def make_signal_events(n: int = 1000, length: int = 256, events_per_signal: int = 1, noise: float = 0.3,
                       amplitude=(1.0, 2.0), stretch=(0.8, 1.25), event_length: int = 40,
                       min_gap: int | None = None, arrival_range=None, classes=None, seed: int = 0):
    """``n`` recordings of ``length`` samples: white Gaussian noise (standard deviation
    ``noise``) with ``events_per_signal`` events added, each of a random class of
    ``SIGNAL_CLASSES``, a random sign, a peak amplitude uniform in ``amplitude`` and a
    duration scaled by a factor uniform in ``stretch`` (the waveform is cut at
    ``event_length`` samples, or at the end of the recording).

    Arrival times (the first sample of each event) are uniform integers in ``arrival_range``
    (inclusive; default (0, length - event_length), so every event ends inside the recording),
    sorted, and at least ``min_gap`` apart (default ``event_length``: events do not overlap).
    ``classes`` limits the classes drawn (names or indices; default all).

    Returns ``(signals, labels, arrivals)``: signals float32 (n, 1, length); labels (class
    indices) and arrivals int64 (n, events_per_signal), sorted by arrival per recording.
    The same ``seed`` gives the same data.
    """
    fn = "make_signal_events"
    n, length = positive_int(fn, "n", n), positive_int(fn, "length", length)
    events = int_tuple(fn, "events_per_signal", events_per_signal, 1, minimum=0)[0]
    event_length = positive_int(fn, "event_length", event_length)
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or noise < 0:
        raise ValueError(f"{fn}: noise must be a non-negative number, got {noise!r}")
    amp_lo, amp_hi = _range(fn, "amplitude", amplitude, 0.0, np.inf)
    stretch_lo, stretch_hi = _range(fn, "stretch", stretch, 1e-3, np.inf)
    gap = event_length if min_gap is None else int_tuple(fn, "min_gap", min_gap, 1, minimum=0)[0]
    if arrival_range is None:
        arrival_range = (0, length - event_length)
    first, last = int_tuple(fn, "arrival_range", arrival_range, 2, minimum=0)
    if not first <= last <= length - 1:
        raise ValueError(f"{fn}: arrival_range {arrival_range!r} must lie in [0, length - 1 = {length - 1}] "
                         "with low <= high (is event_length longer than the recording?)")
    slack = last - first - (events - 1) * gap
    if events and slack < 0:
        raise ValueError(f"{fn}: {events} events at least {gap} samples apart do not fit in arrival_range "
                         f"({first}, {last}); lower events_per_signal or min_gap, or lengthen the recording")
    allowed = (np.arange(len(SIGNAL_CLASSES)) if classes is None
               else np.array(sorted({_class_index(fn, c) for c in classes}), dtype=np.int64))
    if len(allowed) == 0:
        raise ValueError(f"{fn}: classes must name at least one of {SIGNAL_CLASSES}")

    rng = np.random.default_rng(seed)
    signals = rng.normal(0.0, noise, size=(n, 1, length))
    labels = allowed[rng.integers(0, len(allowed), size=(n, events))]
    # E sorted draws from [0, slack] plus i * gap: sorted arrivals at least `gap` apart
    offsets = np.sort(rng.integers(0, max(slack, 0) + 1, size=(n, events)), axis=1)
    arrivals = first + offsets + np.arange(events) * gap
    peaks = rng.uniform(amp_lo, amp_hi, size=(n, events)) * rng.choice([-1.0, 1.0], size=(n, events))
    stretches = rng.uniform(stretch_lo, stretch_hi, size=(n, events))
    for i in range(n):
        for j in range(events):
            start = arrivals[i, j]
            wave = event_waveform(int(labels[i, j]), event_length, float(stretches[i, j]))
            span = min(event_length, length - start)  # an event may run past the end: cut it
            signals[i, 0, start:start + span] += peaks[i, j] * wave[:span]
    return signals.astype(np.float32), labels.astype(np.int64), arrivals.astype(np.int64)


def event_targets(labels, arrivals, length: int, delay=(20, 44)) -> np.ndarray:
    """Per-step targets for a detector that answers "what arrived between ``delay[0]`` and
    ``delay[1]`` samples ago?": int64 (N, length), 0 where nothing did, 1 + class where an
    event of that class (``labels`` (N, E)) arrived at a time a (``arrivals`` (N, E)) with
    delay[0] <= t - a <= delay[1]. A causal detector must see part of an event before it can
    name it: delay[0] is its latency. (Where the windows of two events overlap, the later
    event wins.)"""
    fn = "event_targets"
    labels, arrivals = np.asarray(labels), np.asarray(arrivals)
    if labels.shape != arrivals.shape or labels.ndim != 2:
        raise ValueError(f"{fn}: labels and arrivals must both be (N, E), got shapes {labels.shape} "
                         f"and {arrivals.shape}")
    if labels.dtype.kind not in "iu" or arrivals.dtype.kind not in "iu":
        raise ValueError(f"{fn}: labels and arrivals must be integer arrays")
    length = positive_int(fn, "length", length)
    first, last = int_tuple(fn, "delay", delay, 2, minimum=0)
    if first > last:
        raise ValueError(f"{fn}: delay {delay!r} must be a (low, high) pair with low <= high")
    targets = np.zeros((len(labels), length), dtype=np.int64)
    order = np.argsort(arrivals, axis=1, kind="stable")
    for i in range(len(labels)):
        for j in order[i]:
            start, stop = max(arrivals[i, j] + first, 0), min(arrivals[i, j] + last + 1, length)
            targets[i, start:stop] = labels[i, j] + 1
    return targets


def sliding_windows(signal, size: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``size`` samples of ``signal`` (C, L) (or (L,), taken as one channel),
    ``step`` samples apart: ``(windows (W, C, size), starts (W,))`` with
    W = (L - size) // step + 1 and window i = signal[:, starts[i]:starts[i] + size].
    The windows are a read-only view (no copy); ``np.ascontiguousarray`` them to write."""
    x = signal.numpy() if isinstance(signal, Tensor) else np.asarray(signal)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"sliding_windows: signal must be (C, L) or (L,), got shape {np.shape(signal)}")
    size, step = positive_int("sliding_windows", "size", size), positive_int("sliding_windows", "step", step)
    if size > x.shape[1]:
        raise ValueError(f"sliding_windows: window size {size} is longer than the signal "
                         f"({x.shape[1]} samples)")
    windows = np.lib.stride_tricks.sliding_window_view(x, size, axis=1)[:, ::step]  # (C, W, size)
    return windows.transpose(1, 0, 2), np.arange(windows.shape[1], dtype=np.int64) * step


def threshold_runs(scores, threshold: float, min_length: int = 1,
                   max_gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The runs where a detector's score curve (L,) is above ``threshold``: ``(starts, ends)``
    int64, each run covering scores[start:end] (end exclusive). Runs separated by at most
    ``max_gap`` samples at or below the threshold are joined first (a score that dips for a
    moment in the middle of one event should not count it twice), then runs shorter than
    ``min_length`` samples are dropped. The trigger of a seismometer's event detector: it
    switches on when the score rises above the threshold and off when it falls back."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"threshold_runs: scores must be 1-D (L,), got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("threshold_runs: scores must be finite")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not np.isfinite(threshold):
        raise ValueError(f"threshold_runs: threshold must be a finite number, got {threshold!r}")
    min_length = positive_int("threshold_runs", "min_length", min_length)
    max_gap = int_tuple("threshold_runs", "max_gap", max_gap, 1, minimum=0)[0]
    above = np.concatenate([[False], s > threshold, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])  # alternating rises and falls
    starts, ends = edges[0::2], edges[1::2]
    if len(starts) > 1:
        joined = starts[1:] - ends[:-1] <= max_gap  # run i + 1 continues run i
        starts = np.concatenate([starts[:1], starts[1:][~joined]])
        ends = np.concatenate([ends[:-1][~joined], ends[-1:]])
    keep = ends - starts >= min_length
    return starts[keep].astype(np.int64), ends[keep].astype(np.int64)


def match_events(predicted, actual, tolerance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match predicted event times to actual ones, each used at most once, when they are at
    most ``tolerance`` samples apart: greedily, closest pairs first.

    Returns ``(pairs, unmatched_predicted, unmatched_actual)``: ``pairs`` (M, 2) of indices
    (into ``predicted``, into ``actual``), and the indices left over: false alarms and missed
    events. Precision = M / len(predicted), recall = M / len(actual)."""
    p = np.asarray(predicted, dtype=np.float64).reshape(-1)
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    if not (is_int(tolerance) and tolerance >= 0):
        raise ValueError(f"match_events: tolerance must be a non-negative int, got {tolerance!r}")
    if not (np.isfinite(p).all() and np.isfinite(a).all()):
        raise ValueError("match_events: event times must be finite")
    distance = np.abs(p[:, None] - a[None, :])
    candidates = np.argwhere(distance <= tolerance)
    order = np.lexsort((candidates[:, 1], candidates[:, 0], distance[tuple(candidates.T)]))
    used_p, used_a, pairs = set(), set(), []
    for i, j in candidates[order]:
        if i not in used_p and j not in used_a:
            used_p.add(i)
            used_a.add(j)
            pairs.append((i, j))
    pairs = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    return (pairs, np.setdiff1d(np.arange(len(p)), pairs[:, 0]).astype(np.int64),
            np.setdiff1d(np.arange(len(a)), pairs[:, 1]).astype(np.int64))
