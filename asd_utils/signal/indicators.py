"""Time-domain and time-frequency condition indicators of a vibration / machine-sound signal.

The classic indicators of machine condition monitoring, as the mechanism-based analysis of report
001 lists them: signal energy (RMS), impact intensity (crest factor), shape of the amplitude
distribution (kurtosis, skewness), and how much of the short-time Fourier transform's energy is
packed into a few time-frequency cells (an impact or a new tone concentrates it).

Every function takes ``x`` of shape ``(..., samples)`` (NumPy, any real dtype) and reduces the
last axis; the result has shape ``(...)``, float64.

Reference values: a sine has RMS ``A / sqrt(2)``, crest factor ``sqrt(2)``, kurtosis 1.5 and
skewness 0; Gaussian noise has crest factor ~3.5-4.5 (it grows with the length), kurtosis 3 and
skewness 0; a train of sharp impacts has a large crest factor and kurtosis.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TIME_DOMAIN_INDICATORS",
    "crest_factor",
    "kurtosis",
    "rms",
    "skewness",
    "stft_energy_concentration",
    "stft_power",
    "time_domain_indicators",
]

_TINY = 1e-20
TIME_DOMAIN_INDICATORS = ("rms_db", "crest_factor", "kurtosis", "skewness")


def _signal(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"expected a signal of shape (..., samples) with samples > 0, got shape {x.shape}")
    return x


def rms(x) -> np.ndarray:
    """Root mean square ``sqrt(mean(x**2))`` over the last axis, ``(...)``."""
    x = _signal(x)
    return np.sqrt(np.mean(x * x, axis=-1))


def crest_factor(x) -> np.ndarray:
    """Peak over RMS ``max|x| / rms(x)`` over the last axis, ``(...)`` (0 for an all-zero signal)."""
    x = _signal(x)
    r = rms(x)
    return np.where(r > 0, np.max(np.abs(x), axis=-1) / np.maximum(r, _TINY), 0.0)


def _central_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = x - x.mean(axis=-1, keepdims=True)
    c2 = c * c
    return c2.mean(axis=-1), (c2 * c).mean(axis=-1), (c2 * c2).mean(axis=-1)


def kurtosis(x) -> np.ndarray:
    """Pearson kurtosis ``m4 / m2**2`` (central moments, population form; *not* the excess), ``(...)``.

    Gaussian noise gives 3, a sine 1.5; impulsive signals give more. A constant signal gives 0.
    """
    m2, _, m4 = _central_moments(_signal(x))
    return np.where(m2 > 0, m4 / np.maximum(m2 * m2, _TINY), 0.0)


def skewness(x) -> np.ndarray:
    """Skewness ``m3 / m2**1.5`` (central moments, population form), ``(...)``; 0 for a constant."""
    m2, m3, _ = _central_moments(_signal(x))
    return np.where(m2 > 0, m3 / np.maximum(m2, _TINY) ** 1.5, 0.0)


def time_domain_indicators(x) -> dict[str, np.ndarray]:
    """``{"rms_db", "crest_factor", "kurtosis", "skewness"}``, each ``(...)``.

    ``rms_db = 20 log10(rms)`` (dB re full scale 1.0, floored at -200 dB), so that a level change
    is an additive shift the robust baseline can compare.
    """
    x = _signal(x)
    return {
        "rms_db": 20.0 * np.log10(np.maximum(rms(x), 1e-10)),
        "crest_factor": crest_factor(x),
        "kurtosis": kurtosis(x),
        "skewness": skewness(x),
    }


def stft_power(x, *, n_fft: int = 1024, hop_length: int = 512) -> np.ndarray:
    """Power ``|STFT|**2`` of Hann-windowed frames, ``(..., frames, n_fft // 2 + 1)``.

    Frames start every ``hop_length`` samples with no padding (a signal shorter than ``n_fft`` is
    zero-padded to one frame).
    """
    x = _signal(x)
    n_fft, hop_length = int(n_fft), int(hop_length)
    if n_fft < 2 or hop_length < 1:
        raise ValueError(f"n_fft must be >= 2 and hop_length >= 1, got {n_fft}, {hop_length}")
    if x.shape[-1] < n_fft:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (n_fft - x.shape[-1],))], axis=-1)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)[..., ::hop_length, :]
    spec = np.fft.rfft(frames * np.hanning(n_fft), axis=-1)
    return spec.real ** 2 + spec.imag ** 2


def stft_energy_concentration(x, *, n_fft: int = 1024, hop_length: int = 512,
                              top_fraction: float = 0.01) -> np.ndarray:
    """Share of the STFT energy held by the ``top_fraction`` most energetic time-frequency cells.

    Returns ``(...)`` in ``(0, 1]``: about ``top_fraction`` for white noise (energy spread
    evenly), close to 1 for a stationary tone (all energy in one frequency bin of every frame, i.e.
    ``1 / (n_fft // 2 + 1)`` of the cells) and high for isolated impacts. This is the
    "time-frequency aggregation" indicator: localised energy rises above its normal level.
    """
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    power = stft_power(x, n_fft=n_fft, hop_length=hop_length)
    flat = power.reshape(power.shape[:-2] + (-1,))
    k = max(1, int(round(top_fraction * flat.shape[-1])))
    top = np.partition(flat, flat.shape[-1] - k, axis=-1)[..., -k:]
    total = flat.sum(axis=-1)
    return np.where(total > 0, top.sum(axis=-1) / np.maximum(total, _TINY), 0.0)
