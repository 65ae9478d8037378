"""Pooling of backbone hidden states (batch, tokens, dim) into clip embeddings.

Plain functions, differentiable, any float dtype and device. ``attentive_statistics_pool``
(AnoPatch) lives with its method, not here.
"""

from __future__ import annotations

import torch

__all__ = ["mean_pool", "max_pool", "cls_pool", "beats_patch_grid", "genrep_pool"]


def _check(h: torch.Tensor, fn: str) -> None:
    if h.dim() != 3:
        raise ValueError(f"{fn}: expected hidden states (batch, tokens, dim), got shape {tuple(h.shape)}")
    if h.shape[1] == 0:
        raise ValueError(f"{fn}: no tokens to pool (shape {tuple(h.shape)})")


def mean_pool(h: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, dim) -> (batch, dim): mean over tokens."""
    _check(h, "mean_pool")
    return h.mean(dim=1)


def max_pool(h: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, dim) -> (batch, dim): maximum over tokens, per channel."""
    _check(h, "max_pool")
    return h.amax(dim=1)


def cls_pool(h: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, dim) -> (batch, dim): the first token (EAT's CLS / utterance token)."""
    _check(h, "cls_pool")
    return h[:, 0]


def beats_patch_grid(h: torch.Tensor, n_freq_patches: int = 8) -> torch.Tensor:
    """(batch, tokens, dim) -> (batch, time_patches, n_freq_patches, dim).

    BEATs flattens its patch grid time-major: token ``t * n_freq_patches + f`` is time patch ``t``
    (16 frames = 160 ms) and frequency patch ``f`` (16 of the 128 mel bins, low to high).
    """
    _check(h, "beats_patch_grid")
    b, n, d = h.shape
    if n % n_freq_patches:
        raise ValueError(f"beats_patch_grid: {n} tokens is not a multiple of n_freq_patches={n_freq_patches}")
    return h.reshape(b, n // n_freq_patches, n_freq_patches, d)


def genrep_pool(h: torch.Tensor, n_freq_patches: int = 8) -> torch.Tensor:
    """GenRep pooling (Saengthong & Shinozaki, ICASSP 2025): (batch, tokens, dim) -> (batch, 8 * dim).

    The mean over time of each frequency patch's tokens, concatenated from the lowest frequency
    patch to the highest (``out[:, f * dim:(f + 1) * dim]`` is frequency patch ``f``).
    """
    grid = beats_patch_grid(h, n_freq_patches)
    return grid.mean(dim=1).flatten(1)
