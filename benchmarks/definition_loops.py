"""The forward ops written as the formula, one output element at a time, in plain Python.

The benchmark's "loops" baseline for the issue's target "compiled kernels at least 100x faster
than the reference loops". The library's ``reference`` backend is not this: it loops over the
kernel taps (or pooling windows) but lets numpy vectorise over batch, channels and pixels, so
the tutorials can train on it. These loops are what a from-scratch course implementation
looks like before any vectorising, and what the compiled kernels replace.

Each function takes one image (C, H, W) (batch norm: a batch, since its statistics span the
batch) and returns float64 results; the benchmark times one image and multiplies by N.
"""

from __future__ import annotations

import numpy as np


def conv2d_one_image(x: np.ndarray, w: np.ndarray, padding: int) -> np.ndarray:
    """y[k, i, j] = sum_{c, m, n} w[k, c, m, n] * x[c, i + m - p, j + n - p] (0 outside x)."""
    channels, height, width = x.shape
    out_channels, _, kh, kw = w.shape
    oh, ow = height + 2 * padding - kh + 1, width + 2 * padding - kw + 1
    xs, ws = x.tolist(), w.tolist()  # Python floats: what a plain loop works on
    y = [[[0.0] * ow for _ in range(oh)] for _ in range(out_channels)]
    for k in range(out_channels):
        for i in range(oh):
            for j in range(ow):
                total = 0.0
                for c in range(channels):
                    for m in range(kh):
                        row = i + m - padding
                        if 0 <= row < height:
                            for n in range(kw):
                                col = j + n - padding
                                if 0 <= col < width:
                                    total += xs[c][row][col] * ws[k][c][m][n]
                y[k][i][j] = total
    return np.array(y)


def max_pool2d_one_image(x: np.ndarray, size: int) -> np.ndarray:
    """y[c, i, j] = max over the size x size window at (i*size, j*size)."""
    channels, height, width = x.shape
    xs = x.tolist()
    y = [[[0.0] * (width // size) for _ in range(height // size)] for _ in range(channels)]
    for c in range(channels):
        for i in range(height // size):
            for j in range(width // size):
                best = xs[c][i * size][j * size]
                for m in range(size):
                    for n in range(size):
                        best = max(best, xs[c][i * size + m][j * size + n])
                y[c][i][j] = best
    return np.array(y)


def batch_norm_batch(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """y = (x - mean_c) / sqrt(var_c + eps), statistics over (n, h, w) per channel (weight 1,
    bias 0, training mode: the biased variance)."""
    n_batch, channels, height, width = x.shape
    xs = x.tolist()
    count = n_batch * height * width
    y = [[[[0.0] * width for _ in range(height)] for _ in range(channels)] for _ in range(n_batch)]
    for c in range(channels):
        total = 0.0
        for b in range(n_batch):
            for i in range(height):
                for j in range(width):
                    total += xs[b][c][i][j]
        mean = total / count
        squares = 0.0
        for b in range(n_batch):
            for i in range(height):
                for j in range(width):
                    squares += (xs[b][c][i][j] - mean) ** 2
        scale = 1.0 / (squares / count + eps) ** 0.5
        for b in range(n_batch):
            for i in range(height):
                for j in range(width):
                    y[b][c][i][j] = (xs[b][c][i][j] - mean) * scale
    return np.array(y)
