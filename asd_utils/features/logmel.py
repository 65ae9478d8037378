"""Log-mel features of the official DCASE baseline, batched in torch.

``log_mel`` reproduces the official baseline's ``20 / power * log10(max(librosa.feature.melspectrogram(
y, sr=16000, n_fft=1024, hop_length=512, n_mels=128, power=2.0), sys.float_info.epsilon))``
(``datasets/loader_common.py:file_to_vectors`` of ``nttcslab/dcase2023_task2_baseline_ae``:
centred frames, zero padding, Slaney mel filters as librosa builds them) for a whole batch at once.
"""

from __future__ import annotations

import functools
import sys

import librosa
import numpy as np
import torch

#: Floor of the mel power before the logarithm: the official ``np.maximum(mel, sys.float_info.epsilon)``
#: (the float64 machine epsilon, 2.2e-16, i.e. -156.5 dB; representable in float32).
MEL_FLOOR = sys.float_info.epsilon


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> torch.Tensor:
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return torch.from_numpy(basis.astype(np.float32))  # (n_mels, n_fft // 2 + 1)


def mel_power(
    waves: torch.Tensor | np.ndarray,
    *,
    sample_rate: int = 16000,
    n_fft: int = 1024,
    hop_length: int = 512,
    n_mels: int = 128,
    power: float = 2.0,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> torch.Tensor:
    """Mel power spectrogram.

    waves: (batch, samples) or (samples,) float at ``sample_rate`` Hz.
    Returns (batch, n_mels, frames) float32 (or (n_mels, frames) for 1-D input), frames =
    1 + samples // hop_length (centred, zero-padded as librosa's default).
    """
    x = torch.as_tensor(waves, dtype=torch.float32)
    single = x.ndim == 1
    if single:
        x = x[None]
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float32, device=x.device)
    spec = torch.stft(
        x, n_fft=n_fft, hop_length=hop_length, window=window, center=True, pad_mode="constant",
        return_complex=True,
    )
    magnitude = spec.abs() ** power  # (batch, n_fft//2+1, frames)
    mel = torch.matmul(_mel_basis(sample_rate, n_fft, n_mels, fmin, fmax).to(x.device), magnitude)
    return mel[0] if single else mel


def log_mel(waves, **kwargs) -> torch.Tensor:
    """Baseline log-mel in dB: ``20 / power * log10(max(mel, MEL_FLOOR))`` as the official baseline
    (a floor, not an added epsilon: bins above the floor are untouched). Same shapes as
    :func:`mel_power`; keyword arguments are those of :func:`mel_power`."""
    power = kwargs.get("power", 2.0)
    return 20.0 / power * torch.log10(torch.clamp_min(mel_power(waves, **kwargs), MEL_FLOOR))


def stack_frames(logmel: torch.Tensor, n_frames: int = 5) -> torch.Tensor:
    """Concatenate ``n_frames`` consecutive frames into one vector per position.

    logmel: (batch, n_mels, frames) -> (batch, frames - n_frames + 1, n_mels * n_frames), with
    the vector laid out frame by frame (``[frame t mels, frame t+1 mels, ...]``) as the baseline.
    """
    if logmel.ndim == 2:
        logmel = logmel[None]
    batch, n_mels, frames = logmel.shape
    if frames < n_frames:
        raise ValueError(f"clip has {frames} frames, fewer than the {n_frames} frames to stack")
    windows = logmel.unfold(dimension=2, size=n_frames, step=1)  # (batch, mels, positions, n_frames)
    return windows.permute(0, 2, 3, 1).reshape(batch, frames - n_frames + 1, n_frames * n_mels)
