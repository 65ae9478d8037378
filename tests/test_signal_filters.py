"""The lead's signal module as report 002 uses it: high-pass response, AM-tone envelope spectrum."""

from __future__ import annotations

import numpy as np

from asd_utils.signal import dominant_frequency, envelope_spectrum, highpass

SR = 16000


def _tone(freq: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return np.sin(2 * np.pi * freq * t)


def _gain_db(x: np.ndarray, y: np.ndarray) -> float:
    core = slice(len(x) // 4, 3 * len(x) // 4)  # away from the edges
    return 20 * np.log10(np.sqrt(np.mean(y[core] ** 2)) / np.sqrt(np.mean(x[core] ** 2)))


def test_highpass_attenuates_50_hz_and_passes_1_khz():
    cutoff = 200.0  # a cut-off between the mains hum and the 1 kHz band
    hum, tone = _tone(50.0), _tone(1000.0)
    assert _gain_db(hum, highpass(hum, SR, cutoff)) <= -20.0
    assert abs(_gain_db(tone, highpass(tone, SR, cutoff))) <= 1.0


def test_highpass_at_the_notebook_cutoff():
    # the notebook's 1 kHz cut-off: 50 Hz gone, 4 kHz untouched, 1 kHz at about -6 dB (two passes of -3 dB)
    hum, tone, cut = _tone(50.0), _tone(4000.0), _tone(1000.0)
    assert _gain_db(hum, highpass(hum, SR, 1000.0)) <= -60.0
    assert abs(_gain_db(tone, highpass(tone, SR, 1000.0))) <= 0.1
    assert abs(_gain_db(cut, highpass(cut, SR, 1000.0)) + 6.02) <= 0.3


def test_envelope_spectrum_of_an_am_tone_peaks_at_the_modulation_frequency():
    t = np.arange(4 * SR) / SR
    f_mod, depth = 7.0, 0.5
    x = (1 + depth * np.cos(2 * np.pi * f_mod * t)) * np.sin(2 * np.pi * 3000.0 * t)
    freqs, mag = envelope_spectrum(x, SR, band=(2000.0, 4000.0))
    peak = dominant_frequency(freqs, mag, fmin=0.5, fmax=100.0)
    assert abs(float(peak) - f_mod) <= freqs[1]
    # the line's height is about the modulation amplitude
    k = int(np.argmin(np.abs(freqs - f_mod)))
    assert abs(mag[k] - depth) < 0.05
