"""SpecAugment (Park et al., "SpecAugment: A simple data augmentation method for automatic speech
recognition", Interspeech 2019): time and frequency masking of a spectrogram during training.

Only the masking parts are implemented (time warping is left out, as in most audio fine-tuning
recipes). For every sample independently, ``n_time_masks`` times: a width ``t ~ U{0, ..., T}``
(``T = time_mask_param``, clipped to the number of frames) and a start ``t0 ~ U{0, ..., frames - t}``
are drawn and frames ``[t0, t0 + t)`` are set to ``mask_value``; likewise ``n_freq_masks`` masks of
width ``f ~ U{0, ..., F}`` (``F = freq_mask_param``) over the frequency bins. With probability
``1 - p`` a sample is left untouched. Masks are drawn from ``generator`` (or torch's global RNG).

The module is an identity in eval mode, so embeddings of a trained model never see a mask.

>>> aug = SpecAugment(time_mask_param=80, freq_mask_param=27)
>>> spec = aug(spec)            # (..., frames, bins), training mode
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SpecAugment", "mask_along"]


def mask_along(spec: torch.Tensor, axis: int, max_width: int, n_masks: int, mask_value: float,
               active: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero (``mask_value``) random bands of ``spec`` along ``axis`` (-2: frames, -1: bins).

    spec: ``(B, ..., frames, bins)``; active: ``(B,)`` bool, rows that get masks. Each of
    ``n_masks`` bands per row has width ``U{0, ..., min(max_width, size)}`` and a uniform start.
    Returns a new tensor (``spec`` is not modified).
    """
    size = spec.shape[axis]
    width_cap = min(int(max_width), size)
    if n_masks < 1 or width_cap < 1:
        return spec
    batch = spec.shape[0]
    position = torch.arange(size, device=spec.device)
    keep = torch.ones(batch, size, dtype=torch.bool, device=spec.device)
    for _ in range(int(n_masks)):
        width = torch.randint(0, width_cap + 1, (batch,), generator=generator).to(spec.device)
        start = (torch.rand(batch, generator=generator).to(spec.device) * (size - width + 1)).floor().long()
        band = (position[None, :] >= start[:, None]) & (position[None, :] < (start + width)[:, None])
        keep &= ~(band & active[:, None])
    shape = [batch] + [1] * (spec.dim() - 1)
    shape[axis] = size
    return torch.where(keep.view(shape), spec, torch.as_tensor(mask_value, dtype=spec.dtype, device=spec.device))


class SpecAugment(nn.Module):
    """Time and frequency masking of ``(B, ..., frames, bins)`` spectrograms in training mode.

    Args:
        time_mask_param: ``T``, the largest time-mask width in frames (10 ms fbank frames for
            BEATs/EAT).
        freq_mask_param: ``F``, the largest frequency-mask width in bins.
        n_time_masks, n_freq_masks: masks of each kind per sample.
        p: probability that a sample is augmented at all.
        mask_value: value written into the masked cells (0 = the dataset mean for the mean/std
            normalised fbanks of BEATs and EAT).
        generator: optional ``torch.Generator`` for the draws (None: torch's global RNG).
    """

    def __init__(self, time_mask_param: int = 80, freq_mask_param: int = 27, *, n_time_masks: int = 1,
                 n_freq_masks: int = 1, p: float = 1.0, mask_value: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        if time_mask_param < 0 or freq_mask_param < 0:
            raise ValueError(f"mask parameters must be >= 0, got T={time_mask_param}, F={freq_mask_param}")
        if n_time_masks < 0 or n_freq_masks < 0:
            raise ValueError(f"mask counts must be >= 0, got {n_time_masks}, {n_freq_masks}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.time_mask_param = int(time_mask_param)
        self.freq_mask_param = int(freq_mask_param)
        self.n_time_masks = int(n_time_masks)
        self.n_freq_masks = int(n_freq_masks)
        self.p = float(p)
        self.mask_value = float(mask_value)
        self.generator = generator

    def extra_repr(self) -> str:
        return (f"T={self.time_mask_param}, F={self.freq_mask_param}, masks=({self.n_time_masks}, "
                f"{self.n_freq_masks}), p={self.p}")

    def augment(self, spec: torch.Tensor) -> torch.Tensor:
        """Apply the masks regardless of the module's mode. spec: ``(B, ..., frames, bins)``."""
        if spec.dim() < 3:
            raise ValueError(f"SpecAugment expects (batch, ..., frames, bins), got shape {tuple(spec.shape)}")
        active = torch.rand(spec.shape[0], generator=self.generator).to(spec.device) < self.p
        out = mask_along(spec, -2, self.time_mask_param, self.n_time_masks, self.mask_value, active,
                         self.generator)
        return mask_along(out, -1, self.freq_mask_param, self.n_freq_masks, self.mask_value, active,
                          self.generator)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.augment(spec) if self.training else spec
