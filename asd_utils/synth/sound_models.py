"""Vectorised numpy building blocks for the synthetic machine sounds.

Every function takes its random generator explicitly (``rng: numpy.random.Generator``) and returns
float64 arrays of ``n`` samples at ``sr`` Hz; nothing here touches global random state, so a clip
rendered from the same generator state is bit-identical on every run.

Units: frequencies in Hz, times in seconds, levels in dB where named ``*_db``.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as _signal

EPS = 1e-12


def rms(x: np.ndarray) -> float:
    """Root-mean-square of ``x`` (a small epsilon keeps it positive)."""
    return float(np.sqrt(np.mean(np.square(x)) + EPS))


def normalize_rms(x: np.ndarray, target: float = 1.0) -> np.ndarray:
    """Scale ``x`` to RMS ``target``."""
    return x * (target / rms(x))


def db_to_gain(db: float) -> float:
    """Amplitude gain for a level change of ``db`` decibels."""
    return float(10.0 ** (db / 20.0))


def colored_noise(n: int, rng: np.random.Generator, exponent: float = 1.0) -> np.ndarray:
    """Noise with power spectral density proportional to ``1 / f**exponent``, unit RMS.

    ``exponent`` 0 is white, 1 pink, 2 brown. Shaped in the frequency domain (one FFT pair).
    """
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    spectrum *= freqs ** (-exponent / 2.0)
    spectrum[0] = 0.0
    return normalize_rms(np.fft.irfft(spectrum, n))


def band_noise(n: int, sr: int, rng: np.random.Generator, low: float, high: float,
               *, exponent: float = 0.0) -> np.ndarray:
    """Noise limited to ``[low, high]`` Hz (smooth 1/8-octave edges), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    f = np.maximum(freqs, 1.0)
    edge = 0.09  # ~1/8 octave in log2 units
    lo = 1.0 / (1.0 + np.exp(-(np.log2(f) - np.log2(max(low, 1.0))) / edge))
    hi = 1.0 / (1.0 + np.exp((np.log2(f) - np.log2(high)) / edge))
    spectrum *= lo * hi * f ** (-exponent / 2.0)
    return normalize_rms(np.fft.irfft(spectrum, n))


def slow_fluctuation(n: int, sr: int, rng: np.random.Generator, *, rate_hz: float = 0.5) -> np.ndarray:
    """Smooth zero-mean random curve, unit RMS, changing on a time scale of ``1 / rate_hz`` s."""
    n_ctrl = max(int(np.ceil(n / sr * rate_hz)) + 2, 3)
    ctrl = rng.standard_normal(n_ctrl)
    pos = np.arange(n) * ((n_ctrl - 1) / max(n - 1, 1))
    i = np.minimum(pos.astype(np.int64), n_ctrl - 2)
    w = 0.5 - 0.5 * np.cos(np.pi * (pos - i))  # raised-cosine interpolation: smooth, no corners
    curve = ctrl[i] * (1.0 - w) + ctrl[i + 1] * w
    curve -= curve.mean()
    return curve / (np.std(curve) + EPS)


def speed_curve(n: int, sr: int, rng: np.random.Generator, mean_hz: float, *,
                jitter: float = 0.01, rate_hz: float = 0.5) -> np.ndarray:
    """Instantaneous rotation frequency (Hz) wandering by ``jitter`` (fraction) around ``mean_hz``."""
    return mean_hz * (1.0 + jitter * slow_fluctuation(n, sr, rng, rate_hz=rate_hz))


def phase_from_freq(freq: np.ndarray, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Running phase (radians) of an instantaneous frequency track ``freq`` (Hz, per sample)."""
    return phase0 + 2.0 * np.pi * np.cumsum(freq) / sr


def harmonic_sum(phase: np.ndarray, amplitudes, rng: np.random.Generator,
                 orders=None) -> np.ndarray:
    """Sum of ``a_k * sin(order_k * phase + random phase)`` over the given harmonic orders."""
    amplitudes = np.asarray(amplitudes, dtype=float)
    orders = np.arange(1, len(amplitudes) + 1) if orders is None else np.asarray(orders, dtype=float)
    offsets = rng.uniform(0.0, 2.0 * np.pi, size=len(amplitudes))
    out = np.zeros_like(phase)
    for a, k, off in zip(amplitudes, orders, offsets):
        if a != 0.0:
            out += a * np.sin(k * phase + off)
    return out


def resonator(x: np.ndarray, sr: int, freq: float, q: float = 10.0) -> np.ndarray:
    """Two-pole band-pass resonance at ``freq`` Hz with quality factor ``q`` (peak gain 1)."""
    freq = float(np.clip(freq, 20.0, sr / 2.0 - 50.0))
    b, a = _signal.iirpeak(freq, q, fs=sr)
    return _signal.lfilter(b, a, x)


def lowpass(x: np.ndarray, sr: int, cutoff: float, order: int = 2) -> np.ndarray:
    """Butterworth low-pass at ``cutoff`` Hz."""
    sos = _signal.butter(order, min(cutoff, sr / 2.0 - 100.0), btype="low", fs=sr, output="sos")
    return _signal.sosfilt(sos, x)


def highpass(x: np.ndarray, sr: int, cutoff: float, order: int = 2) -> np.ndarray:
    """Butterworth high-pass at ``cutoff`` Hz."""
    sos = _signal.butter(order, cutoff, btype="high", fs=sr, output="sos")
    return _signal.sosfilt(sos, x)


def bandpass(x: np.ndarray, sr: int, low: float, high: float, order: int = 2) -> np.ndarray:
    """Butterworth band-pass between ``low`` and ``high`` Hz."""
    sos = _signal.butter(order, [low, min(high, sr / 2.0 - 100.0)], btype="band", fs=sr, output="sos")
    return _signal.sosfilt(sos, x)


def impulses(n: int, sr: int, times, amplitudes=1.0) -> np.ndarray:
    """Unit impulses at ``times`` (s) with ``amplitudes``, on an ``n``-sample grid (others dropped)."""
    times = np.asarray(times, dtype=float)
    amps = np.broadcast_to(np.asarray(amplitudes, dtype=float), times.shape)
    idx = np.round(times * sr).astype(np.int64)
    keep = (idx >= 0) & (idx < n)
    out = np.zeros(n)
    np.add.at(out, idx[keep], amps[keep])
    return out


def periodic_times(duration: float, rate_hz: float, rng: np.random.Generator, *,
                   jitter: float = 0.0) -> np.ndarray:
    """Event times (s) at ``rate_hz`` with a random start and relative period ``jitter``."""
    if rate_hz <= 0:
        return np.zeros(0)
    period = 1.0 / rate_hz
    count = int(np.ceil(duration * rate_hz)) + 2
    steps = period * (1.0 + jitter * rng.standard_normal(count))
    return rng.uniform(0.0, period) + np.concatenate([[0.0], np.cumsum(steps[:-1])])


def poisson_times(duration: float, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Event times (s) of a Poisson process of ``rate_hz`` events per second."""
    count = rng.poisson(max(rate_hz * duration, 0.0))
    return np.sort(rng.uniform(0.0, duration, size=count))


def ring(x: np.ndarray, sr: int, freqs, decays, gains=None) -> np.ndarray:
    """Excite damped modes: each impulse in ``x`` rings at ``freqs`` (Hz) decaying in ``decays`` (s).

    Implemented as a bank of two-pole resonators (one ``lfilter`` per mode).
    """
    freqs = np.atleast_1d(np.asarray(freqs, dtype=float))
    decays = np.broadcast_to(np.asarray(decays, dtype=float), freqs.shape)
    gains = np.ones_like(freqs) if gains is None else np.broadcast_to(np.asarray(gains, float), freqs.shape)
    out = np.zeros_like(x)
    for f, d, g in zip(freqs, decays, gains):
        f = float(np.clip(f, 20.0, sr / 2.0 - 50.0))
        r = np.exp(-1.0 / (d * sr))
        w = 2.0 * np.pi * f / sr
        out += g * _signal.lfilter([np.sin(w)], [1.0, -2.0 * r * np.cos(w), r * r], x)
    return out


def envelope_from_events(n: int, sr: int, starts, ends, *, ramp: float = 0.01) -> np.ndarray:
    """0/1 gate that is 1 between each ``starts[i]`` and ``ends[i]`` (s), with linear ramps."""
    t = np.arange(n) / sr
    gate = np.zeros(n)
    for s, e in zip(starts, ends):
        up = np.clip((t - s) / ramp, 0.0, 1.0)
        down = np.clip((e - t) / ramp, 0.0, 1.0)
        gate = np.maximum(gate, np.minimum(up, down))
    return gate


def spectral_tilt(x: np.ndarray, sr: int, db_per_octave: float, ref_hz: float = 1000.0) -> np.ndarray:
    """Apply a smooth spectral tilt of ``db_per_octave`` around ``ref_hz`` (FFT domain)."""
    n = len(x)
    spectrum = np.fft.rfft(x)
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), 20.0)
    spectrum *= 10.0 ** (db_per_octave * np.log2(f / ref_hz) / 20.0)
    return np.fft.irfft(spectrum, n)


def factory_background(n: int, sr: int, rng: np.random.Generator, env: dict) -> np.ndarray:
    """Factory background noise, unit RMS.

    ``env`` keys (all optional): ``brown`` (0-1, share of brown vs pink noise), ``hum_hz`` (mains
    hum fundamental, 50 or 60), ``hum`` (its level), ``machine_hz`` (range (lo, hi) of a distant
    machine's rotation), ``machine`` (its level), ``clank_rate`` (clanks per second), ``clank``
    (clank level), ``tilt`` (dB/octave), ``babble`` (level of a 300-3000 Hz band of noise).
    """
    duration = n / sr
    brown = env.get("brown", 0.3)
    x = (1.0 - brown) * colored_noise(n, rng, 1.0) + brown * colored_noise(n, rng, 2.0)
    x = normalize_rms(highpass(x, sr, 25.0))
    hum_hz = env.get("hum_hz", 50.0)
    phase = phase_from_freq(np.full(n, hum_hz), sr)
    x += env.get("hum", 0.2) * harmonic_sum(phase, [1.0, 0.6, 0.5, 0.25, 0.15], rng,
                                            orders=[1, 2, 3, 4, 6]) / 1.4
    lo, hi = env.get("machine_hz", (20.0, 60.0))
    f_m = speed_curve(n, sr, rng, rng.uniform(lo, hi), jitter=0.004, rate_hz=0.3)
    am = 1.0 + 0.3 * slow_fluctuation(n, sr, rng, rate_hz=0.7)
    x += env.get("machine", 0.3) * am * harmonic_sum(
        phase_from_freq(f_m, sr), rng.uniform(0.2, 1.0, size=6) / np.arange(1, 7), rng)
    if env.get("babble", 0.0) > 0:
        x += env["babble"] * band_noise(n, sr, rng, 300.0, 3000.0) * (
            1.0 + 0.5 * slow_fluctuation(n, sr, rng, rate_hz=3.0))
    rate = env.get("clank_rate", 0.2)
    times = poisson_times(duration, rate, rng)
    if len(times):
        hits = impulses(n, sr, times, rng.uniform(0.3, 1.0, size=len(times)))
        modes = rng.uniform(400.0, 4000.0, size=3)
        x += env.get("clank", 1.0) * 8.0 * ring(hits, sr, modes, rng.uniform(0.02, 0.12, size=3),
                                                  rng.uniform(0.3, 1.0, size=3))
    if env.get("tilt", 0.0):
        x = spectral_tilt(x, sr, env["tilt"])
    return normalize_rms(x)


def envelope_spectrum(x: np.ndarray, sr: int, low: float, high: float):
    """Envelope spectrum used in bearing diagnostics: band-pass, Hilbert envelope, magnitude FFT.

    Returns ``(freqs (F,) Hz, magnitude (F,))``.
    """
    env = np.abs(_signal.hilbert(bandpass(x, sr, low, high, order=4)))
    env -= env.mean()
    mag = np.abs(np.fft.rfft(env * np.hanning(len(env))))
    return np.fft.rfftfreq(len(env), 1.0 / sr), mag
