"""Intermittent machine faults, the same four mechanisms for every machine type.

A real fault seldom sounds all the time: a spalled race or a cracked tooth knocks while the
damaged spot is loaded, a dry contact rubs in bursts, a loose part changes the modulation of the
sound while it rattles, a seal squeals now and then. Each fault here is therefore an *episode*
process (on/off, :func:`episode_gate`) times a mechanism, added to (or modulating) the normal
machine sound. Nothing depends on the machine type, so the same faults apply to machine types
nobody has met; their frequencies are drawn per clip from physically plausible ranges.

Conventions: ``x`` is the normal machine sound ``(n,)`` at ``sr`` Hz; ``severity`` in (0, 1];
every function returns a new ``(n,)`` float64 array and takes its random generator explicitly.
"""

from __future__ import annotations

import numpy as np

from . import sound_models as sm

FAULT_KINDS: tuple[str, ...] = ("impacts", "rubbing", "modulation", "squeal")

FAULT_NOTES: dict[str, str] = {
    "impacts": "periodic impacts (a spall or cracked tooth) ringing a structural resonance, in episodes",
    "rubbing": "bursts of band-limited friction noise, pulsing at a rotation-like rate",
    "modulation": "episodes of amplitude modulation of the whole machine sound (looseness, misalignment)",
    "squeal": "intermittent narrow-band squeal with a wandering pitch (dry seal, belt or flange)",
}

# Level (dB) of an additive fault relative to the machine sound while an episode is on, at
# severity 0 and 1; and the modulation depth range. Set from the realism statistics of real
# DCASE recordings (papers/synthetic_realism.md), never from a method's score.
FAULT_LEVEL_DB: dict[str, tuple[float, float]] = {
    "impacts": (-14.0, -4.0), "rubbing": (-16.0, -6.0), "squeal": (-20.0, -10.0)}
MODULATION_DEPTH: tuple[float, float] = (0.25, 0.7)
# Episode process: mean duration of an episode (s) and share of time the fault is on.
EPISODE_SECONDS: tuple[float, float] = (0.3, 1.2)
DUTY: tuple[float, float] = (0.2, 0.5)


def episode_gate(n: int, sr: int, rng: np.random.Generator, duty: float, mean_on_s: float,
                 ramp_s: float = 0.02) -> np.ndarray:
    """0..1 gate ``(n,)`` of an alternating on/off renewal process with exponential durations.

    On-durations have mean ``mean_on_s`` (s), off-durations ``mean_on_s * (1 - duty) / duty``, so
    the long-run share of time on is ``duty``. The process starts in a random phase, and at least
    one episode always falls inside the clip (a faulty clip is never silent about its fault).
    """
    duration = n / sr
    mean_off = mean_on_s * (1.0 - duty) / duty
    t = -rng.uniform(0.0, mean_on_s + mean_off)
    starts, ends = [], []
    while t < duration:
        t += rng.exponential(mean_off)
        on = max(rng.exponential(mean_on_s), 2 * ramp_s)
        starts.append(t)
        ends.append(t + on)
        t += on
    starts, ends = np.array(starts), np.array(ends)
    inside = (ends > 0) & (starts < duration)
    if not inside.any():
        start = rng.uniform(0.0, max(duration - mean_on_s, 0.0))
        starts, ends = np.array([start]), np.array([start + mean_on_s])
    return sm.envelope_from_events(n, sr, starts, ends, ramp=ramp_s)


def _level_db(kind: str, severity: float) -> float:
    lo, hi = FAULT_LEVEL_DB[kind]
    return lo + (hi - lo) * float(severity)


def _add_during(x: np.ndarray, part: np.ndarray, gate: np.ndarray, rel_db: float) -> np.ndarray:
    """``x + part * gate`` with ``part`` scaled to ``rel_db`` dB re ``x``'s RMS while the gate is on."""
    on = gate > 0.5
    ref = sm.rms(part[on]) if on.any() else sm.rms(part)
    return x + part * gate * (sm.rms(x) / ref * sm.db_to_gain(rel_db))


def impacts(x, sr, rng, severity, gate):
    """Impacts at 4-25 per second (jittered), exponential strengths, ringing two modes of a
    resonance drawn log-uniformly in 0.8-5 kHz (decays 2-8 ms)."""
    n = len(x)
    rate = rng.uniform(4.0, 25.0)
    times = sm.periodic_times(n / sr, rate, rng, jitter=0.02)
    hits = sm.impulses(n, sr, times, rng.exponential(1.0, len(times)))
    res = np.exp(rng.uniform(np.log(800.0), np.log(5000.0)))
    part = sm.ring(hits, sr, [res, 1.6 * res], rng.uniform(0.002, 0.008, 2), [1.0, 0.5])
    return _add_during(x, part, gate, _level_db("impacts", severity))


def rubbing(x, sr, rng, severity, gate):
    """One-octave band of noise centred log-uniformly in 1-5 kHz, pulsing (raised sine squared)
    at a rotation-like 5-30 Hz: a dry contact rubbing once per revolution."""
    n = len(x)
    centre = np.exp(rng.uniform(np.log(1000.0), np.log(5000.0)))
    noise = sm.band_noise(n, sr, rng, centre / np.sqrt(2.0), centre * np.sqrt(2.0))
    rate = rng.uniform(5.0, 30.0)
    pulse = (0.5 + 0.5 * np.sin(2 * np.pi * rate * np.arange(n) / sr + rng.uniform(0, 2 * np.pi))) ** 2
    return _add_during(x, noise * pulse, gate, _level_db("rubbing", severity))


def modulation(x, sr, rng, severity, gate):
    """Amplitude modulation of the whole machine sound at 2-15 Hz while an episode is on, depth
    from :data:`MODULATION_DEPTH` by severity; re-levelled so the clip's RMS is unchanged."""
    n = len(x)
    depth = MODULATION_DEPTH[0] + (MODULATION_DEPTH[1] - MODULATION_DEPTH[0]) * float(severity)
    rate = rng.uniform(2.0, 15.0)
    am = 1.0 + depth * gate * np.sin(2 * np.pi * rate * np.arange(n) / sr + rng.uniform(0, 2 * np.pi))
    return sm.normalize_rms(x * am, sm.rms(x))


def squeal(x, sr, rng, severity, gate):
    """A tone log-uniform in 1.5-6 kHz with a slow 1 % pitch wander and its second harmonic."""
    n = len(x)
    f0 = np.exp(rng.uniform(np.log(1500.0), np.log(6000.0)))
    f = f0 * (1.0 + 0.01 * sm.slow_fluctuation(n, sr, rng, rate_hz=2.0))
    ph = sm.phase_from_freq(f, sr)
    part = np.sin(ph) + 0.3 * np.sin(2 * ph + rng.uniform(0, 2 * np.pi))
    return _add_during(x, part, gate, _level_db("squeal", severity))


_MECHANISMS = {"impacts": impacts, "rubbing": rubbing, "modulation": modulation, "squeal": squeal}


def apply_fault(x: np.ndarray, sr: int, kind: str, severity: float, rng: np.random.Generator) -> np.ndarray:
    """The machine sound ``x`` ``(n,)`` with fault ``kind`` in episodes; returns ``(n,)``.

    The episode process (share of time on in :data:`DUTY`, mean episode length in
    :data:`EPISODE_SECONDS`) is drawn per clip from ``rng``.
    """
    if kind not in _MECHANISMS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
    if not 0.0 < severity <= 1.0:
        raise ValueError(f"fault severity must be in (0, 1], got {severity}")
    gate = episode_gate(len(x), sr, rng, rng.uniform(*DUTY), rng.uniform(*EPISODE_SECONDS))
    return _MECHANISMS[kind](np.asarray(x, dtype=float), sr, rng, severity, gate)
