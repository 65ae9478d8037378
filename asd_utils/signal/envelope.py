"""Hilbert envelope and envelope spectrum (the classic bearing-diagnosis tool).

A fault that strikes ``f`` times per second excites a structural resonance; the resonance's
amplitude is modulated at ``f``. Band-pass around the resonance, take the Hilbert envelope, and
its spectrum shows a line at ``f`` and its harmonics, whatever the carrier frequency.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from asd_utils.signal.filters import bandpass


def hilbert_envelope(x) -> np.ndarray:
    """``(..., samples)`` real signal -> ``(..., samples)`` float64 magnitude of its analytic signal."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] == 0:
        raise ValueError("cannot take the envelope of an empty signal (0 samples)")
    return np.abs(sps.hilbert(x, axis=-1))


def envelope_spectrum(x, sample_rate: float, *, band: tuple[float, float] | None = None,
                      order: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude spectrum of the (optionally band-passed) signal's Hilbert envelope.

    Args:
        x: ``(..., samples)`` real signal.
        sample_rate: Hz.
        band: ``(low_hz, high_hz)`` band-pass applied first (around a resonance), or None.
        order: Butterworth order of the band-pass.

    Returns:
        ``freqs`` ``(samples // 2 + 1,)`` in Hz and ``magnitude`` ``(..., samples // 2 + 1)``: the
        one-sided |rfft| of the mean-removed, Hann-windowed envelope, scaled by ``2 / sum(window)``
        so that an envelope component ``a * cos(2 pi f t)`` gives a peak of about ``a`` at ``f``.
    """
    x = np.asarray(x, dtype=np.float64)
    if band is not None:
        x = bandpass(x, sample_rate, band[0], band[1], order=order)
    env = hilbert_envelope(x)
    env = env - env.mean(axis=-1, keepdims=True)
    n = env.shape[-1]
    window = np.hanning(n) if n > 1 else np.ones(1)
    magnitude = np.abs(np.fft.rfft(env * window, axis=-1)) * (2.0 / window.sum())
    return np.fft.rfftfreq(n, d=1.0 / sample_rate), magnitude


def dominant_frequency(freqs, magnitude, *, fmin: float | None = None,
                       fmax: float | None = None) -> np.ndarray:
    """Frequency (Hz) of the largest magnitude within ``[fmin, fmax]``.

    Args:
        freqs: ``(F,)`` Hz, as returned by :func:`envelope_spectrum`.
        magnitude: ``(..., F)``.
        fmin, fmax: search range in Hz (default: the whole axis except 0 Hz).

    Returns:
        ``(...)`` float64 array of frequencies.
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if magnitude.shape[-1] != freqs.shape[0]:
        raise ValueError(f"magnitude has {magnitude.shape[-1]} bins but freqs has {freqs.shape[0]}")
    lo = freqs[1] if fmin is None and len(freqs) > 1 else (fmin if fmin is not None else freqs[0])
    hi = freqs[-1] if fmax is None else fmax
    mask = (freqs >= lo) & (freqs <= hi)
    if not mask.any():
        raise ValueError(f"no frequency bin between {lo} Hz and {hi} Hz")
    idx = np.flatnonzero(mask)
    return freqs[idx[np.argmax(magnitude[..., idx], axis=-1)]]
