"""The |FFT| embedding branch of Wilkinghoff's ASD models.

Used beside a spectrogram branch by report 002 (NIVIC, after Wilkinghoff, "Self-supervised learning
for anomalous sound detection", ICASSP 2024, public code ``wilkinghoff/ssl4asd``) and report 003
(XJU, after Wilkinghoff, "Design choices for learning embeddings from auxiliary tasks for domain
generalization in anomalous sound detection", ICASSP 2023). Structure, as in ssl4asd:

- ``|DFT|`` of the whole clip, first ``n_samples // 2`` bins, linear magnitude, float32;
- three strided 1-D convolutions without bias and Keras ``'same'`` padding, 128 channels,
  (kernel, stride) = (256, 64), (64, 32), (16, 4), each followed by ReLU (and squeeze-excitation
  in ssl4asd, report 002's model; the ICASSP 2023 paper that report 003 cites has none:
  ``squeeze_excitation=False``);
- flatten, four ``Linear(128, no bias) + BatchNorm + ReLU`` layers, a final ``Linear(out_dim)``.

``width`` scales the channel and hidden sizes (1.0 = the published model).

Precision: the whole branch runs in float32, also inside an autocast region. Linear magnitudes of
a 10 s clip at full scale reach ~1.6e5 in the DC bin, past float16's largest value (65,504), so
an fp16 convolution over them would overflow to inf.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asd_utils.models.blocks import SameConv1d, SqueezeExcitation

FFT_CONV_LAYERS = ((256, 64), (64, 32), (16, 4))  # (kernel, stride)


class FFTBranch(nn.Module):
    """``waves (B, n_samples) float32 -> (B, out_dim)`` embedding of the clip's amplitude spectrum.

    Args:
        n_samples: clip length in samples (fixed: the flattened size depends on it).
        out_dim: embedding size (128 in both reports).
        width: multiplier of the 128 channels / hidden units.
        squeeze_excitation: False drops the SE blocks (for ablations).
    """

    def __init__(self, n_samples: int, out_dim: int = 128, *, width: float = 1.0,
                 squeeze_excitation: bool = True):
        super().__init__()
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {n_samples}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.n_samples = int(n_samples)
        channels = max(2, int(round(128 * width)))
        hidden = max(2, int(round(128 * width)))
        layers: list[nn.Module] = []
        in_ch, length = 1, self.n_samples // 2
        for kernel, stride in FFT_CONV_LAYERS:
            layers += [SameConv1d(in_ch, channels, kernel, stride=stride, bias=False), nn.ReLU()]
            if squeeze_excitation:
                layers.append(SqueezeExcitation(channels, dims=1))
            in_ch, length = channels, math.ceil(length / stride)
        self.convs = nn.Sequential(*layers)
        self.flat_dim = channels * length
        dense: list[nn.Module] = []
        dims = [self.flat_dim] + [hidden] * 4
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            dense += [nn.Linear(d_in, d_out, bias=False), nn.BatchNorm1d(d_out), nn.ReLU()]
        dense.append(nn.Linear(hidden, out_dim, bias=False))
        self.dense = nn.Sequential(*dense)
        self.out_dim = int(out_dim)

    @staticmethod
    def amplitude_spectrum(waves: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, T // 2)`` magnitude of the clip's DFT (first half of the bins), float32."""
        n = waves.shape[-1]
        with torch.autocast(device_type=waves.device.type, enabled=False):
            return torch.fft.rfft(waves.float(), dim=-1).abs()[..., : n // 2]

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``(B, n_samples)`` -> ``(B, out_dim)`` float32, computed in float32 even under autocast."""
        if waves.dim() != 2 or waves.shape[1] != self.n_samples:
            raise ValueError(f"waves must be (batch, {self.n_samples}), got {tuple(waves.shape)}")
        with torch.autocast(device_type=waves.device.type, enabled=False):
            spectrum = self.amplitude_spectrum(waves).unsqueeze(1)  # (B, 1, T // 2)
            return self.dense(self.convs(spectrum).flatten(1))
