"""Intermittent machine faults, the same four mechanisms for every machine type.

A real fault seldom sounds all the time: a spalled race or a cracked tooth knocks while the
damaged spot is loaded, a dry contact rubs in bursts, a loose part changes the modulation of the
sound while it rattles, a seal squeals now and then. Each fault here is therefore an *episode*
process (on/off, :func:`episode_gate`) times a mechanism, added to (or modulating) the normal
machine sound. Nothing depends on the machine type, so the same faults apply to machine types
nobody has met. Where a fault rings, rubs or squeals is a property of the machine (its housing
resonance, its contact band, its shaft rate), so those frequencies are drawn once per machine type
from physically plausible ranges (:func:`fault_signature`) and vary only a little from clip to clip.

Conventions: ``x`` is the normal machine sound ``(n,)`` at ``sr`` Hz; ``severity`` in (0, 1];
every function returns a new ``(n,)`` float64 array and takes its random generator explicitly.
"""

from __future__ import annotations

import numpy as np

from asd_utils.synth import sound_models as sm

FAULT_KINDS: tuple[str, ...] = ("impacts", "rubbing", "modulation", "squeal")

FAULT_NOTES: dict[str, str] = {
    "impacts": "periodic impacts (a spall or cracked tooth) ringing a structural resonance, in episodes",
    "rubbing": "bursts of band-limited friction noise, pulsing at a rotation-like rate",
    "modulation": "episodes of amplitude modulation of the whole machine sound (looseness, misalignment)",
    "squeal": "intermittent narrow-band squeal with a wandering pitch (dry seal, belt or flange)",
}

# Level (dB) of an additive fault relative to the machine sound while an episode is on, at
# severity 0 and 1; and the modulation depth range. Set from the realism statistics of real
# DCASE recordings (papers/synthetic_realism.md), never from a method's score. The squeal, a tone
# that fills one or two mel bands, was set 4 dB below rubbing until setting 5 of the paper; at
# SNRs down to -6 dB its episodes were then mostly masked (its log-mel-std probe per fault kind
# lay below the other additive faults'), so it now has rubbing's range.
FAULT_LEVEL_DB: dict[str, tuple[float, float]] = {
    "impacts": (-8.0, 2.0), "rubbing": (-10.0, 0.0), "squeal": (-10.0, 0.0)}
MODULATION_DEPTH: tuple[float, float] = (0.5, 1.0)
# Episode process: mean duration of an episode (s) and share of time the fault is on.
EPISODE_SECONDS: tuple[float, float] = (0.2, 0.8)
DUTY: tuple[float, float] = (0.05, 0.25)
# A periodic fault shows only over whole periods: an episode lasts at least this many periods of
# the fault's own rate (three impacts, rub pulses or modulation cycles; a damaged part that is
# loaded shows on several revolutions in a row). Without it, a fault at 2 Hz in an episode of
# 0.2 s shows less than half a period. 3 rather than 2: the nearer of the two to the real
# references' log-mel-std probe (papers/synthetic_realism.md, settings 6 and 7).
EPISODE_MIN_PERIODS: float = 3.0
# the signature key of each fault's rate (squeal has none: it is a tone)
RATE_KEYS: dict[str, str] = {"impacts": "impact_rate_hz", "rubbing": "rub_rate_hz", "modulation": "mod_rate_hz"}


# Ranges of a machine's fault signature (Hz), drawn log-uniformly once per machine type. Rates
# stay below ~10 Hz: at the hop of 32 ms that DCASE front ends use, faster fluctuations average
# out within a frame, and rotating machines' defect rates of a few Hz to tens of Hz are common.
SIGNATURE_RANGES: dict[str, tuple[float, float]] = {
    "resonance_hz": (800.0, 5000.0),   # structural mode the impacts ring
    "impact_rate_hz": (2.0, 12.0),     # impacts per second (one per revolution of the damaged part)
    "rub_band_hz": (1000.0, 5000.0),   # centre of the one-octave friction band
    "rub_rate_hz": (2.0, 10.0),        # rubbing pulses per second
    "mod_rate_hz": (1.0, 8.0),         # amplitude-modulation rate of looseness
    "squeal_hz": (1500.0, 6000.0),     # squeal fundamental
}
CLIP_JITTER = 0.05  # relative clip-to-clip variation of the signature (speed, temperature, load)


def fault_signature(rng: np.random.Generator) -> dict[str, float]:
    """One machine's fault frequencies, log-uniform in :data:`SIGNATURE_RANGES` (keys as there)."""
    return {k: float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) for k, (lo, hi) in SIGNATURE_RANGES.items()}


def jitter_signature(signature: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
    """The signature of one clip: every frequency times ``1 + CLIP_JITTER * N(0, 1)``."""
    return {k: float(v * (1.0 + CLIP_JITTER * rng.standard_normal())) for k, v in sorted(signature.items())}


def episode_gate(n: int, sr: int, rng: np.random.Generator, duty: float, mean_on_s: float,
                 ramp_s: float = 0.02, min_on_s: float = 0.0) -> np.ndarray:
    """0..1 gate ``(n,)`` of an alternating on/off renewal process with exponential durations.

    An on-duration is ``max(E, floor)``, ``E`` exponential with mean ``mean_on_s`` (s) and
    ``floor = max(2 * ramp_s, min_on_s)``; its mean is therefore
    ``on = floor + mean_on_s * exp(-floor / mean_on_s)``. Off-durations are exponential with mean
    ``on * (1 - duty) / duty``, so the long-run share of time on is ``duty``. The process starts in a
    random phase, and at least one episode (of ``max(mean_on_s, floor)`` s) always falls inside
    the clip (a faulty clip is never silent about its fault).
    """
    duration = n / sr
    floor = max(2 * ramp_s, min_on_s)
    mean_on = floor + mean_on_s * np.exp(-floor / mean_on_s)
    mean_off = mean_on * (1.0 - duty) / duty
    t = -rng.uniform(0.0, mean_on + mean_off)
    starts, ends = [], []
    while t < duration:
        t += rng.exponential(mean_off)
        on = max(rng.exponential(mean_on_s), floor)
        starts.append(t)
        ends.append(t + on)
        t += on
    starts, ends = np.array(starts), np.array(ends)
    inside = (ends > 0) & (starts < duration)
    if not inside.any():
        length = max(mean_on_s, floor)
        start = rng.uniform(0.0, max(duration - length, 0.0))
        starts, ends = np.array([start]), np.array([start + length])
    return sm.envelope_from_events(n, sr, starts, ends, ramp=ramp_s)


def _level_db(kind: str, severity: float) -> float:
    lo, hi = FAULT_LEVEL_DB[kind]
    return lo + (hi - lo) * float(severity)


def _add_during(x: np.ndarray, part: np.ndarray, gate: np.ndarray, rel_db: float) -> np.ndarray:
    """``x + part * gate`` with ``part`` scaled to ``rel_db`` dB re ``x``'s RMS while the gate is on."""
    on = gate > 0.5
    ref = sm.rms(part[on]) if on.any() else sm.rms(part)
    return x + part * gate * (sm.rms(x) / ref * sm.db_to_gain(rel_db))


def impacts(x, sr, rng, severity, gate, sig):
    """Impacts at ``impact_rate_hz`` (2 % period jitter), exponential strengths, ringing two modes
    at ``resonance_hz`` and 1.6 times it (decays 2-8 ms)."""
    n = len(x)
    times = sm.periodic_times(n / sr, sig["impact_rate_hz"], rng, jitter=0.02)
    hits = sm.impulses(n, sr, times, rng.exponential(1.0, len(times)))
    res = sig["resonance_hz"]
    part = sm.ring(hits, sr, [res, 1.6 * res], rng.uniform(0.002, 0.008, 2), [1.0, 0.5])
    return _add_during(x, part, gate, _level_db("impacts", severity))


def rubbing(x, sr, rng, severity, gate, sig):
    """One-octave band of noise centred at ``rub_band_hz``, pulsing (raised sine squared) at
    ``rub_rate_hz``: a dry contact rubbing once per revolution."""
    n = len(x)
    centre = sig["rub_band_hz"]
    noise = sm.band_noise(n, sr, rng, centre / np.sqrt(2.0), centre * np.sqrt(2.0))
    rate = sig["rub_rate_hz"]
    pulse = (0.5 + 0.5 * np.sin(2 * np.pi * rate * np.arange(n) / sr + rng.uniform(0, 2 * np.pi))) ** 2
    return _add_during(x, noise * pulse, gate, _level_db("rubbing", severity))


def modulation(x, sr, rng, severity, gate, sig):
    """Amplitude modulation of the whole machine sound at ``mod_rate_hz`` while an episode is on,
    depth from :data:`MODULATION_DEPTH` by severity; re-levelled so the clip's RMS is unchanged."""
    n = len(x)
    depth = MODULATION_DEPTH[0] + (MODULATION_DEPTH[1] - MODULATION_DEPTH[0]) * float(severity)
    rate = sig["mod_rate_hz"]
    am = 1.0 + depth * gate * np.sin(2 * np.pi * rate * np.arange(n) / sr + rng.uniform(0, 2 * np.pi))
    return sm.normalize_rms(x * am, sm.rms(x))


def squeal(x, sr, rng, severity, gate, sig):
    """A tone at ``squeal_hz`` with a slow 1 % pitch wander and its second harmonic."""
    n = len(x)
    f0 = sig["squeal_hz"]
    f = f0 * (1.0 + 0.01 * sm.slow_fluctuation(n, sr, rng, rate_hz=2.0))
    ph = sm.phase_from_freq(f, sr)
    part = np.sin(ph) + 0.3 * np.sin(2 * ph + rng.uniform(0, 2 * np.pi))
    return _add_during(x, part, gate, _level_db("squeal", severity))


_MECHANISMS = {"impacts": impacts, "rubbing": rubbing, "modulation": modulation, "squeal": squeal}


def apply_fault(x: np.ndarray, sr: int, kind: str, severity: float, rng: np.random.Generator,
                signature: dict[str, float]) -> np.ndarray:
    """The machine sound ``x`` ``(n,)`` with fault ``kind`` in episodes; returns ``(n,)``.

    ``signature``: the clip's fault frequencies (keys of :data:`SIGNATURE_RANGES`).
    The episode process (share of time on in :data:`DUTY`, mean episode length in
    :data:`EPISODE_SECONDS`) is drawn per clip from ``rng``; an episode of a periodic fault lasts
    at least :data:`EPISODE_MIN_PERIODS` periods of its rate (:data:`RATE_KEYS`).
    """
    if kind not in _MECHANISMS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
    if not 0.0 < severity <= 1.0:
        raise ValueError(f"fault severity must be in (0, 1], got {severity}")
    missing = set(SIGNATURE_RANGES) - set(signature)
    if missing:
        raise ValueError(f"fault signature lacks {sorted(missing)}")
    min_on_s = EPISODE_MIN_PERIODS / signature[RATE_KEYS[kind]] if kind in RATE_KEYS else 0.0
    gate = episode_gate(len(x), sr, rng, rng.uniform(*DUTY), rng.uniform(*EPISODE_SECONDS), min_on_s=min_on_s)
    return _MECHANISMS[kind](np.asarray(x, dtype=float), sr, rng, severity, gate, signature)
