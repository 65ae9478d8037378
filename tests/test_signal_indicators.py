"""Condition indicators, wavelet packet entropy and bearing frequencies on signals with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asd_utils.signal import envelope_spectrum
from asd_utils.signal.bearing import (
    BearingGeometry,
    bearing_frequencies,
    harmonic_amplitudes,
    line_amplitude,
    line_prominence,
    rotation_frequency,
    sideband_amplitude,
)
from asd_utils.signal.indicators import (
    crest_factor,
    kurtosis,
    rms,
    skewness,
    stft_energy_concentration,
    time_domain_indicators,
)
from asd_utils.signal.mechanism import IndicatorExtractor
from asd_utils.signal.wavelet import (
    band_temporal_entropy,
    wavelet_packet_coefficients,
    wavelet_packet_energies,
    wavelet_packet_energy_entropy,
)

SR = 16000


def sine(freq=100.0, seconds=2.0, amplitude=1.0, phase=0.0):
    t = np.arange(int(SR * seconds)) / SR
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def impulse_train(rate_hz, *, seconds=2.0, resonance_hz=3000.0, decay_s=0.002, noise=0.05, seed=0):
    """Impacts every 1 / rate_hz seconds, each ringing a damped resonance, plus white noise."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    x = np.zeros(n)
    x[(np.arange(0, seconds, 1.0 / rate_hz) * SR).astype(int)] = 1.0
    t = np.arange(int(10 * decay_s * SR)) / SR
    ring = np.exp(-t / decay_s) * np.sin(2 * np.pi * resonance_hz * t)
    return np.convolve(x, ring)[:n] + noise * rng.standard_normal(n)


def test_sine_has_textbook_values():
    x = sine(amplitude=2.0)  # a whole number of periods, the peak on a sample
    assert rms(x) == pytest.approx(2.0 / math.sqrt(2), rel=1e-6)
    assert crest_factor(x) == pytest.approx(math.sqrt(2), rel=1e-4)
    assert kurtosis(x) == pytest.approx(1.5, rel=1e-6)
    assert skewness(x) == pytest.approx(0.0, abs=1e-9)
    values = time_domain_indicators(x)
    assert values["rms_db"] == pytest.approx(20 * math.log10(math.sqrt(2)), abs=1e-6)


def test_gaussian_noise_kurtosis_is_three_and_indicators_batch():
    x = np.random.default_rng(0).standard_normal((4, 200_000))
    k = kurtosis(x)
    assert k.shape == (4,)
    np.testing.assert_allclose(k, 3.0, atol=0.05)
    np.testing.assert_allclose(skewness(x), 0.0, atol=0.02)
    assert (crest_factor(x) > 3.5).all()
    # a batch row equals the row alone
    assert kurtosis(x[2]) == pytest.approx(k[2])


def test_impulses_raise_kurtosis_and_crest_factor_above_noise():
    noise = np.random.default_rng(1).standard_normal(2 * SR) * 0.1
    impacts = impulse_train(20.0)
    assert kurtosis(impacts) > 6.0 > kurtosis(noise)
    assert crest_factor(impacts) > crest_factor(noise)


def test_constant_signal_does_not_divide_by_zero():
    x = np.zeros(1000)
    assert (rms(x), crest_factor(x), kurtosis(x), skewness(x)) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="samples > 0"):
        rms(np.zeros((2, 0)))


def test_envelope_spectrum_of_an_impulse_train_peaks_at_the_impact_rate():
    for rate in (37.0, 91.0):
        x = impulse_train(rate, resonance_hz=4000.0)
        freqs, mag = envelope_spectrum(x, SR, band=(2000.0, 6000.0))
        search = (freqs > 5) & (freqs < 150)
        assert freqs[search][np.argmax(mag[search])] == pytest.approx(rate, abs=0.6)
        # the plain spectrum has nothing at the rate: the carrier is the resonance
        spectrum = np.abs(np.fft.rfft(x))
        assert np.argmax(spectrum) * SR / len(x) > 2000
        # the extractor finds the same line
        table = IndicatorExtractor(envelope_band=(2000.0, 6000.0), envelope_range=(5.0, 150.0)).transform(x[None])
        assert table.loc[0, "envelope_peak_hz"] == pytest.approx(rate, abs=0.6)
        assert table.loc[0, "envelope_peak_db"] > 15.0


def test_wavelet_entropy_of_a_tone_is_below_that_of_white_noise():
    tone = sine(1000.0)
    noise = np.random.default_rng(2).standard_normal(2 * SR)
    h_tone = wavelet_packet_energy_entropy(tone, level=4)
    h_noise = wavelet_packet_energy_entropy(noise, level=4)
    assert h_tone < 0.4 < 0.95 < h_noise <= 1.0
    energies = wavelet_packet_energies(sine(500.0), level=3)
    assert energies.shape == (8,)
    # 500 Hz lies in the first of eight 1 kHz bands, 5.5 kHz in the sixth (frequency order)
    assert np.argmax(energies) == 0
    assert np.argmax(wavelet_packet_energies(sine(5500.0), level=3)) == 5
    # the energy of an orthogonal packet decomposition is (almost) the signal's
    assert energies.sum() == pytest.approx(np.sum(sine(500.0) ** 2), rel=0.02)
    # a precomputed decomposition gives the same numbers
    nodes = wavelet_packet_coefficients(noise, level=4)
    assert wavelet_packet_energy_entropy(coefficients=nodes) == pytest.approx(h_noise)
    with pytest.raises(ValueError, match="too deep"):
        wavelet_packet_energies(np.ones(64), level=8)


def test_band_temporal_entropy_drops_for_bursts():
    rng = np.random.default_rng(3)
    steady = rng.standard_normal(2 * SR)
    bursts = steady * (np.arange(2 * SR) % 8000 < 400)
    assert band_temporal_entropy(steady, level=3).min() > 0.9
    assert band_temporal_entropy(bursts, level=3).max() < 0.8


def test_stft_energy_concentration_tone_noise_and_impacts():
    tone = sine(1000.0)
    noise = np.random.default_rng(4).standard_normal(2 * SR)
    assert stft_energy_concentration(tone) > 0.95
    assert stft_energy_concentration(noise) < 0.08
    assert stft_energy_concentration(impulse_train(5.0, noise=0.01)) > stft_energy_concentration(noise)


def test_bearing_frequencies_against_a_hand_computed_geometry():
    # deep-groove ball bearing 6205 (9 balls, d = 7.94 mm, D = 39.04 mm): the multipliers of the
    # Case Western Reserve University bearing data (BPFI 5.4152, BPFO 3.5848, FTF 0.39828 and the
    # ball-defect rate 2 x BSF = 4.7135 times the shaft rate)
    g = BearingGeometry(9, 7.94, 39.04)
    f = bearing_frequencies(29.95, g)
    r = 7.94 / 39.04
    assert f["BPFO"] == pytest.approx(4.5 * 29.95 * (1 - r))
    assert f["BPFO"] / 29.95 == pytest.approx(3.5848, abs=2e-4)
    assert f["BPFI"] / 29.95 == pytest.approx(5.4152, abs=2e-4)
    assert f["FTF"] / 29.95 == pytest.approx(0.39828, abs=1e-4)
    assert 2 * f["BSF"] / 29.95 == pytest.approx(4.7135, abs=2e-3)
    # contact angle shrinks r = d / D cos(phi)
    tilted = bearing_frequencies(10.0, BearingGeometry(9, 7.94, 39.04, contact_angle_deg=60.0))
    assert tilted["BPFO"] == pytest.approx(45.0 * (1 - r / 2))
    # the synthetic bearing (9 balls, d/D = 0.28): BPFO = 3.24 and BPFI = 5.76 times the shaft rate
    synth = bearing_frequencies(np.array([10.0, 20.0]), BearingGeometry.from_ratio(9, 0.28))
    np.testing.assert_allclose(synth["BPFO"], [32.4, 64.8])
    np.testing.assert_allclose(synth["BPFI"], [57.6, 115.2])
    with pytest.raises(ValueError, match="pitch_diameter"):
        BearingGeometry(9, 40.0, 39.0)


def test_lines_harmonics_sidebands_and_rotation_frequency():
    freqs = np.arange(0, 1000.5, 0.5)
    mag = np.full((2, len(freqs)), 0.01)
    for row, f0 in enumerate((23.0, 47.5)):
        for k, a in zip(range(1, 5), (0.2, 1.0, 0.8, 0.6)):  # weak fundamental, strong harmonics
            mag[row, np.argmin(np.abs(freqs - k * f0))] = a
    np.testing.assert_allclose(rotation_frequency(freqs, mag, fmin=10, fmax=100), [23.0, 47.5])
    np.testing.assert_allclose(harmonic_amplitudes(freqs, mag, np.array([23.0, 47.5]), 2), [[0.2, 1.0], [0.2, 1.0]])
    assert line_amplitude(freqs, mag[0], 46.4, tolerance_hz=1.0) == pytest.approx(1.0)
    assert line_amplitude(freqs, mag[0], 46.4, tolerance_hz=0.2) == pytest.approx(0.01)
    assert line_prominence(freqs, mag[0], 46.0) == pytest.approx(100.0)
    spec = np.full(len(freqs), 0.01)
    spec[np.argmin(np.abs(freqs - 300))] = 1.0
    spec[np.argmin(np.abs(freqs - 270))] = 0.3
    spec[np.argmin(np.abs(freqs - 330))] = 0.2
    assert sideband_amplitude(freqs, spec, 300.0, 30.0, 1) == pytest.approx(0.5)
    assert sideband_amplitude(freqs, spec, 300.0, 30.0, 2) == pytest.approx(0.52)  # + floor at 240, 360


def test_extractor_finds_a_shaft_rate_and_an_outer_race_fault():
    shaft = 20.0
    t = np.arange(5 * SR) / SR
    rng = np.random.default_rng(5)
    machine = (0.5 * np.sin(2 * np.pi * shaft * t) + 0.25 * np.sin(2 * np.pi * 2 * shaft * t + 1)
               + 0.1 * np.sin(2 * np.pi * 3 * shaft * t + 2) + 0.05 * rng.standard_normal(len(t)))
    geometry = {"n_elements": 9, "d_over_D": 0.28}
    bpfo = 3.24 * shaft
    faulty = machine + 0.3 * impulse_train(bpfo, seconds=5.0, resonance_hz=3000.0, noise=0.0)
    extractor = IndicatorExtractor(rotation_range=(10.0, 60.0), geometry=geometry)
    table = extractor.transform(np.stack([machine, faulty]))
    assert list(table.columns) == extractor.names and len(extractor.names) == 17
    np.testing.assert_allclose(table["rotation_hz"], shaft, atol=0.3)
    assert table.loc[1, "bpfo_db"] > table.loc[0, "bpfo_db"] + 10
    assert table.loc[1, "envelope_peak_hz"] == pytest.approx(bpfo, abs=0.5)
    assert table.loc[1, "kurtosis"] > table.loc[0, "kurtosis"]
    # each row depends on its clip alone
    alone = extractor.transform(faulty[None])
    np.testing.assert_allclose(alone.to_numpy()[0], table.to_numpy()[1])
    with pytest.raises(ValueError, match="samples >="):
        extractor.transform(np.zeros((2, 100)))
