"""Small building blocks shared by the trained-from-scratch models."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018) as in Wilkinghoff's ssl4asd models.

    ``y = x * sigmoid(W2 relu(W1 mean(x)))`` where the mean runs over every axis after the
    channel axis and ``W1 (C // ratio, C)``, ``W2 (C, C // ratio)`` have no bias.

    Args:
        channels: ``C``.
        ratio: reduction ratio (16 in ssl4asd); the bottleneck has ``max(1, C // ratio)`` units.
        dims: 1 for ``(B, C, L)`` inputs, 2 for ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, ratio: int = 16, dims: int = 2):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {dims}")
        self.dims = dims
        hidden = max(1, channels // ratio)
        self.reduce = nn.Linear(channels, hidden, bias=False)
        self.expand = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.dims + 2:
            raise ValueError(f"expected a {self.dims + 2}-D input (B, C, ...), got shape {tuple(x.shape)}")
        squeezed = x.mean(dim=tuple(range(2, x.dim())))  # (B, C)
        gate = torch.sigmoid(self.expand(F.relu(self.reduce(squeezed))))
        return x * gate.view(*gate.shape, *([1] * self.dims))


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """(left, right) zero padding that gives ``ceil(length / stride)`` outputs (Keras ``'same'``)."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


class SameConv1d(nn.Conv1d):
    """``nn.Conv1d`` with Keras-style ``'same'`` padding for any stride: ``ceil(L / stride)`` outputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = same_padding(x.shape[-1], self.kernel_size[0], self.stride[0])
        return super().forward(F.pad(x, (left, right)))
