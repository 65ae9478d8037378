"""Tests of asd_utils.signal.noise_aware: far-referenced spectral subtraction on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from asd_utils.signal.noise_aware import (
    HOP,
    N_FFT,
    OVERSUBTRACTION,
    SPECTRAL_FLOOR,
    _stft,
    denoise_near,
    expected_noise_gain,
    far_noise_estimate,
    subtract_noise_power,
)

SR = 16000


def _db(ratio):
    return 10.0 * np.log10(ratio)


def _tone_amplitude(wave, freq):
    t = np.arange(wave.size) / SR
    a = 2 * np.mean(wave * np.sin(2 * np.pi * freq * t))
    b = 2 * np.mean(wave * np.cos(2 * np.pi * freq * t))
    return np.hypot(a, b), a * np.sin(2 * np.pi * freq * t) + b * np.cos(2 * np.pi * freq * t)


def test_expected_noise_gain_closed_form():
    # alpha 2, beta 0.01: x0 = 2/0.99; hand-computed 0.1413 (-8.50 dB)
    assert expected_noise_gain() == pytest.approx(0.14130, abs=2e-5)
    assert _db(expected_noise_gain()) == pytest.approx(-8.50, abs=0.01)
    assert expected_noise_gain(0.0, 0.0) == pytest.approx(1.0)  # nothing subtracted
    assert expected_noise_gain(1.0, 0.0) == pytest.approx(np.exp(-1.0))  # E[(X - 1)+] = e^-1
    # Monte Carlo of max(X - a, b X), X ~ Exp(1)
    x = np.random.default_rng(0).exponential(size=2_000_000)
    assert np.mean(np.maximum(x - 2.0, 0.01 * x)) == pytest.approx(expected_noise_gain(), rel=5e-3)
    with pytest.raises(ValueError):
        expected_noise_gain(2.0, 1.0)


def test_subtract_noise_power_by_hand():
    power = np.array([[10.0, 1.0], [4.0, 0.5]])  # (F=2, T=2)
    noise = np.array([2.0, 1.0])
    out = subtract_noise_power(power, noise, oversubtraction=2.0, floor=0.1)
    np.testing.assert_allclose(out, [[6.0, 0.1], [2.0, 0.05]])


def test_tone_survives_and_the_noise_falls_by_the_stated_amount():
    """Tone + white noise near, the same noise far (a hand-built case)."""
    rng = np.random.default_rng(1)
    n = 4 * SR
    t = np.arange(n) / SR
    noise = 0.1 * rng.standard_normal(n)
    tone = 0.1 * np.sin(2 * np.pi * 1000.0 * t)
    out = denoise_near(tone + noise, noise)
    amplitude, fitted = _tone_amplitude(out, 1000.0)
    assert abs(20 * np.log10(amplitude / 0.1)) < 0.2  # the tone keeps its level within 0.2 dB
    residual = out - fitted
    # in the STFT domain the noise power falls by the stated -8.5 dB (alpha 2, beta 0.01)
    p = np.abs(_stft(noise, N_FFT, HOP)) ** 2
    kept = subtract_noise_power(p, far_noise_estimate(noise))
    assert _db(kept.mean() / p.mean()) == pytest.approx(_db(expected_noise_gain()), abs=0.3)
    # in the resynthesised waveform it falls at least as much (overlap-add averages the frames)
    noise_drop = _db(np.mean(residual ** 2) / np.mean(noise ** 2))
    assert -11.0 < noise_drop < -8.2


def test_nothing_subtracted_reconstructs_the_near_channel():
    rng = np.random.default_rng(2)
    near = rng.standard_normal(SR)
    np.testing.assert_allclose(denoise_near(near, np.zeros(SR)), near, atol=1e-5)
    assert OVERSUBTRACTION == 2.0 and SPECTRAL_FLOOR == 0.01


def test_batch_rows_are_independent_and_short_clips_work():
    rng = np.random.default_rng(3)
    near, far = rng.standard_normal((3, 4000)), rng.standard_normal((3, 4000))
    batch = denoise_near(near, far)
    assert batch.shape == (3, 4000) and batch.dtype == np.float32
    for i in range(3):  # a clip's output depends on its own two channels only
        np.testing.assert_allclose(batch[i], denoise_near(near[i], far[i]), atol=1e-6)
    assert denoise_near(near[0, :300], far[0, :300]).shape == (300,)
    with pytest.raises(ValueError, match="expected equal"):
        denoise_near(near, far[:, :10])
