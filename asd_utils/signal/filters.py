"""Zero-phase Butterworth filters along the last axis.

Both filters run forward and backward (``scipy.signal.sosfiltfilt``), so the phase is zero and the
magnitude response is the square of the Butterworth response of the given order: a 4th-order
high-pass at ``fc`` attenuates by about ``2 * 10 * log10(1 + (fc / f)**8)`` dB below ``fc``.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps


def _check_rate(sample_rate: float) -> float:
    if not np.isfinite(sample_rate) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    return float(sample_rate)


def _check_cutoff(cutoff_hz: float, nyquist: float, name: str) -> float:
    if not 0 < cutoff_hz < nyquist:
        raise ValueError(f"{name} must lie strictly between 0 Hz and the Nyquist frequency "
                         f"{nyquist:g} Hz, got {cutoff_hz}")
    return float(cutoff_hz)


def _apply(sos: np.ndarray, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] == 0:
        raise ValueError("cannot filter an empty signal (0 samples)")
    # sosfiltfilt pads by 3 * (2 * sections + 1) samples; shorter inputs get the longest pad allowed.
    padlen = min(3 * (2 * len(sos) + 1), x.shape[-1] - 1)
    return sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen)


def highpass(x, sample_rate: float, cutoff_hz: float, *, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth high-pass.

    Args:
        x: ``(..., samples)`` real signal.
        sample_rate: Hz.
        cutoff_hz: -3 dB frequency of one pass (-6 dB after the forward-backward pass), Hz.
        order: Butterworth order of one pass.

    Returns:
        ``(..., samples)`` float64 filtered signal.
    """
    nyquist = _check_rate(sample_rate) / 2
    sos = sps.butter(order, _check_cutoff(cutoff_hz, nyquist, "cutoff_hz"), btype="highpass",
                     fs=sample_rate, output="sos")
    return _apply(sos, x)


def bandpass(x, sample_rate: float, low_hz: float, high_hz: float, *, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass between ``low_hz`` and ``high_hz`` (Hz); shapes as :func:`highpass`."""
    nyquist = _check_rate(sample_rate) / 2
    low = _check_cutoff(low_hz, nyquist, "low_hz")
    high = _check_cutoff(high_hz, nyquist, "high_hz")
    if low >= high:
        raise ValueError(f"low_hz ({low_hz}) must be below high_hz ({high_hz})")
    sos = sps.butter(order, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    return _apply(sos, x)
