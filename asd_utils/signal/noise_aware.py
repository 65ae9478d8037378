"""Noise-aware front end for two-channel (near, far) clips: far-referenced spectral subtraction.

DCASE 2026 Task 2 records every clip with a microphone near the machine and one far from it; the
far one hears relatively more factory noise and less machine (task paper, Nishida et al., arXiv
2606.01578). The official 2026 baseline reads only the near channel. This module goes beyond it:
it uses the far channel as a noise reference and removes that noise from the near channel by
power spectral subtraction (Boll 1979; over-subtraction and spectral floor after Berouti et al.
1979), keeping the near channel's phase, so the output is again a waveform and every front end
downstream (log-mel, Kaldi fbank, |FFT|, a pretrained encoder's own preprocessing) sees it.

For one clip, with ``P(f, t) = |STFT_near(f, t)|^2`` and the far channel's per-band noise
estimate ``N(f) = mean_t |STFT_far(f, t)|^2`` (its time average: the factory noise is the
stationary part of what the far microphone hears), the cleaned power is

    P'(f, t) = max(P(f, t) - alpha * N(f), beta * P(f, t))

with over-subtraction factor ``alpha`` = :data:`OVERSUBTRACTION` (2.0) and spectral floor
``beta`` = :data:`SPECTRAL_FLOOR` (0.01, i.e. -20 dB of the near power). The near STFT is scaled
by ``sqrt(P' / P)`` and inverted. On a stationary Gaussian noise with the same level at both
microphones, the expected remaining noise power is :func:`expected_noise_gain` (``alpha`` 2,
``beta`` 0.01: 0.141, i.e. -8.5 dB per STFT bin); a component well above the noise keeps its level.
Only the clip's own two channels enter: a clip's output never depends on other clips.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import istft, stft

__all__ = [
    "OVERSUBTRACTION", "SPECTRAL_FLOOR", "N_FFT", "HOP", "expected_noise_gain", "far_noise_estimate",
    "subtract_noise_power", "denoise_near",
]

OVERSUBTRACTION = 2.0   # alpha: multiples of the far-channel noise estimate removed from the near power
SPECTRAL_FLOOR = 0.01   # beta: the cleaned power never falls below this fraction of the near power
N_FFT = 1024            # 64 ms at 16 kHz, the window of the DCASE baseline's log-mel
HOP = 256               # Hann window at 75 % overlap: exact resynthesis when nothing is subtracted


def expected_noise_gain(oversubtraction: float = OVERSUBTRACTION, floor: float = SPECTRAL_FLOOR) -> float:
    """E[max(X - alpha, beta X)] for X ~ Exp(1): the fraction of a Gaussian noise's power per STFT
    bin left by :func:`subtract_noise_power` when the noise estimate equals the true noise power.

    (The power of a complex Gaussian STFT coefficient is exponential with mean N.) Closed form with
    ``x0 = alpha / (1 - beta)``: ``beta (1 - (1 + x0) e^-x0) + e^-x0 (1 + x0 - alpha)``.
    """
    alpha, beta = float(oversubtraction), float(floor)
    if not 0.0 <= beta < 1.0 or alpha < 0.0:
        raise ValueError(f"oversubtraction {alpha} >= 0 and floor {beta} in [0, 1) expected")
    x0 = alpha / (1.0 - beta)
    e = math.exp(-x0)
    return beta * (1.0 - (1.0 + x0) * e) + e * (1.0 + x0 - alpha)


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:

    _, _, spec = stft(x, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary="zeros", padded=True,
                      axis=-1)
    return spec


def far_noise_estimate(far: np.ndarray, *, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Per-band noise power of the far channel: ``(..., samples)`` -> ``(..., n_fft // 2 + 1)``, the
    time average of ``|STFT(far)|^2`` (scipy's ``stft`` scaling)."""
    spec = _stft(np.asarray(far, dtype=np.float64), n_fft, hop)
    return np.mean(np.abs(spec) ** 2, axis=-1)


def subtract_noise_power(power: np.ndarray, noise: np.ndarray, *, oversubtraction: float = OVERSUBTRACTION,
                         floor: float = SPECTRAL_FLOOR) -> np.ndarray:
    """``max(P - alpha N, beta P)``: power ``(..., F, T)``, noise ``(..., F)`` -> ``(..., F, T)``."""
    power = np.asarray(power, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)[..., None]
    return np.maximum(power - float(oversubtraction) * noise, float(floor) * power)


def denoise_near(near: np.ndarray, far: np.ndarray, *, oversubtraction: float = OVERSUBTRACTION,
                 floor: float = SPECTRAL_FLOOR, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """The near channel with the far channel's noise estimate subtracted (module docstring).

    Args:
        near, far: ``(samples,)`` or ``(batch, samples)`` waveforms of the same shape (any rate; the
            STFT sizes are in samples: 1024/256 = 64/16 ms at 16 kHz).
        oversubtraction: ``alpha``; floor: ``beta`` (fraction of the near power kept at least).

    Returns:
        float32 array of the shape of ``near``: the near phase with the cleaned magnitude.
    """

    near = np.asarray(near, dtype=np.float64)
    far = np.asarray(far, dtype=np.float64)
    if near.shape != far.shape or near.ndim not in (1, 2) or near.shape[-1] == 0:
        raise ValueError(f"near {near.shape} and far {far.shape}: expected equal (samples,) or (batch, samples)")
    n = near.shape[-1]
    if n < n_fft:  # too short for one window: pad, then cut back
        pad = [(0, 0)] * (near.ndim - 1) + [(0, n_fft - n)]
        near, far = np.pad(near, pad), np.pad(far, pad)
    spec = _stft(near, n_fft, hop)
    power = np.abs(spec) ** 2
    cleaned = subtract_noise_power(power, far_noise_estimate(far, n_fft=n_fft, hop=hop),
                                   oversubtraction=oversubtraction, floor=floor)
    gain = np.sqrt(np.divide(cleaned, power, out=np.ones_like(power), where=power > 0))
    _, wave = istft(spec * gain, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary=True,
                    time_axis=-1, freq_axis=-2)
    wave = wave[..., :n]
    if wave.shape[-1] < n:
        wave = np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, n - wave.shape[-1])])
    return np.ascontiguousarray(wave, dtype=np.float32)
