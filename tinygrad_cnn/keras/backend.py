"""Session-wide settings of the Keras front end: the image data format, layer names, epsilon.

Keras names layers after their class in snake case with a counter per name (``conv2d``,
``conv2d_1``, ...), so that the summary and the weights file of the course's code read the
same here; :func:`clear_session` starts the counters again.
"""

from __future__ import annotations

import re
from collections import defaultdict

DATA_FORMATS = ("channels_last", "channels_first")
_EPSILON = 1e-7  # Keras's fuzz factor: probabilities are clipped to [eps, 1 - eps] in losses
_state = {"data_format": "channels_last"}
_name_counts: defaultdict[str, int] = defaultdict(int)


def image_data_format() -> str:
    """``'channels_last'`` (NHWC, Keras's default) or ``'channels_first'`` (NCHW)."""
    return _state["data_format"]


def set_image_data_format(data_format: str) -> None:
    """The layout that layers created later assume when their ``data_format`` is None."""
    _state["data_format"] = standardize_data_format(data_format)


def standardize_data_format(data_format: str | None) -> str:
    """``None`` -> the session's format; otherwise one of DATA_FORMATS (checked)."""
    if data_format is None:
        return image_data_format()
    if not isinstance(data_format, str) or data_format.lower() not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}")
    return data_format.lower()


def epsilon() -> float:
    return _EPSILON


def snake_case(name: str) -> str:
    """Keras's class-to-layer-name rule: ``MaxPooling2D`` -> ``max_pooling2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """``base`` the first time, then ``base_1``, ``base_2``, ... (per session)."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def clear_session() -> None:
    """Forget the layer-name counters (the next Conv2D is ``conv2d`` again), as Keras."""
    _name_counts.clear()
