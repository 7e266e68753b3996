"""A causal dilated 1-D CNN for signals: what has just happened, at every time step.

    input (N, C, L)
    -> causal_conv_stack: per dilation d, causal conv k (left padding d (k - 1)), BN, ReLU
    -> 1x1 convolution to num_classes scores per time step        (N, num_classes, L)

Fully convolutional, like a segmentation network along time: trained on whole recordings
with one label per time step (what happened in the last R samples), it gives at every time t
the answer of a classifier of the window of R samples ending at t: a sliding-window detector
with step 1, computed as one convolution instead of one forward pass per window (the two are
equal as soon as t >= R - 1, with batch norm in evaluation mode). The output at the last step,
``model(windows)[:, :, -1]``, classifies windows of R samples or more.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive
from tinygrad_cnn.nn.causal import CausalConv1d, causal_conv_stack
from tinygrad_cnn.tensor import Tensor
from tinygrad_cnn.theory import receptive_field


class CausalCNN(nn.Module):
    """``CausalCNN(num_classes, in_channels=1, channels=16, kernel_size=3,
    dilations=(1, 2, 4, 8, 16), batch_norm=True)``: input (N, in_channels, L), any L >= 1.

    ``features`` is :func:`nn.causal_conv_stack`, ``classifier`` a 1x1 Conv1d;
    ``receptive_field`` = 1 + (kernel_size - 1) Σ dilations samples (63 by default).
    """

    def __init__(self, num_classes: int, in_channels: int = 1, channels: int = 16, kernel_size: int = 3,
                 dilations: Sequence[int] = (1, 2, 4, 8, 16), batch_norm: bool = True) -> None:
        super().__init__()
        check_positive("CausalCNN", num_classes=num_classes, in_channels=in_channels, channels=channels)
        self.features = causal_conv_stack(in_channels, channels, kernel_size, dilations, batch_norm)
        self.classifier = nn.Conv1d(channels, num_classes, 1)

    @property
    def receptive_field(self) -> int:
        """Input samples that one output step sees (from :func:`theory.receptive_field`)."""
        return receptive_field([m for m in self.features if isinstance(m, CausalConv1d)])[-1].size

    def forward(self, x: Tensor) -> Tensor:
        """Class scores (logits) at every time step, (N, num_classes, L); step t depends on
        x[..., :t + 1] only. ``model(x)[:, :, -1]`` classifies each signal of x as a whole."""
        if x.ndim != 3:
            raise ValueError(f"CausalCNN: expects signals (N, C, L), got shape {x.shape}")
        return self.classifier(self.features(x))
