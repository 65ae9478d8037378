"""The ``realistic`` variant: machines heard the way DCASE microphones hear them.

Measured on real DCASE recordings, an anomaly hardly moves a clip's average spectrum but changes
how the sound varies over time, clip-to-clip variation of normal sound is large next to it, and
clips are level-normalised (REFERENCES of the compendium, "Real DCASE audio"). The ``envelope``
variant (each type's own anomalies, mixed at -26 +- 2 dBFS) differs on each of these points. This
variant keeps each machine type's normal sound model and its domain shift (``machines.py``) and
changes what lies around it, for reasons of physics, by general mechanisms only:

* faults come and go within a clip (:mod:`.faults`: impacts, rubbing, modulation, squeal), the
  same four kinds for every type, their frequencies the machine type's own (drawn once per type);
* every clip has its own room (reverberation time, direct-to-reverberant ratio) and its own
  microphone placement (a smooth random frequency response), so normal clips differ;
* factory noise at signal-to-noise ratios down to those of real recordings (:data:`SNR_DB`);
* every clip is normalised to one RMS level (a residual jitter of :data:`GAIN_JITTER_DB`);
* the recording-setup part of a domain shift (another hall, a moved microphone) has
  :data:`SETUP_CONTRAST` times the envelope world's strength (:func:`soften_hall`,
  ``MachineModel.mic_contrast``); the machine's own operating conditions shift as there.

The per-clip draws live in :class:`~asd_utils.synth.generate.ClipJob` (``anomaly``, ``severity``,
``snr_db``, ``gain_db``, room keys in ``env``), so ``synth_metadata.csv`` holds the hidden truths.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import signal as _signal

from asd_utils.synth import sound_models as sm
from asd_utils.synth.faults import (
    DUTY,
    EPISODE_MIN_PERIODS,
    EPISODE_SECONDS,
    FAULT_KINDS,
    FAULT_LEVEL_DB,
    FAULT_NOTES,
    MODULATION_DEPTH,
    apply_fault,
    fault_signature,
    jitter_signature,
)
from asd_utils.synth.machines import HALLS, get_machine

__all__ = ["adapt_job", "fault_signature", "microphone_response", "render_parts", "room_impulse_response",
           "soften_hall"]

# Revision of this variant's recipe, written into a realistic root's manifest, so a root made by an
# earlier recipe is regenerated (1: faults, rooms, SNRs and levels; 2: the recording-setup
# contrast, the squeal's level, episodes of whole fault periods).
REVISION: int = 2

# Ranges drawn per clip (uniform). Chosen from realism statistics of real recordings (see
# papers/synthetic_realism.md), never from a method's score.
SNR_DB: tuple[float, float] = (-6.0, 6.0)           # machine (after the room) vs factory noise
GAIN_JITTER_DB: float = 0.15                         # residual level jitter, +- dB
RT60_S: tuple[float, float] = (0.15, 0.8)            # reverberation time of the room
DRR_DB: tuple[float, float] = (0.0, 12.0)            # direct-to-reverberant energy ratio
MIC_EQ_DB: float = 3.5                               # std of the microphone response per octave point
MIC_EQ_HZ: tuple[float, ...] = (63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
SEVERITY: tuple[float, float] = (0.25, 1.0)
# Strength of the recording-setup part of a domain shift (another factory hall, a moved
# microphone) relative to the envelope world's: at this variant's SNRs (down to -6 dB) the
# background fills most bands, and the envelope world's full hall change alone lifted the domain
# shift of the mean band level to 1.3 dB (valve) and 2.4 dB (ToyCar, with its microphone move),
# against 0.69 dB on real recordings (papers/synthetic_realism.md). The machine's own operating
# conditions (speed, load, panel) are unchanged.
SETUP_CONTRAST: float = 0.5
_HALL_SCALED = ("hum", "machine", "clank", "babble")   # drawn as preset level x a random factor
_HALL_OFFSET = ("brown", "tilt")                       # drawn as preset value + a random offset
_HALL_FIXED = ("clank_rate",)                          # the preset value


def soften_hall(env: dict, hall: str, home: str, contrast: float = SETUP_CONTRAST) -> dict:
    """A clip's background parameters ``env`` (drawn for ``hall`` by
    :meth:`~asd_utils.synth.machines.MachineModel.background_env`) moved to a hall that differs
    from the type's source hall ``home`` by ``contrast`` times the presets' difference.

    The clip's own random variation is kept: a scaled level keeps its random factor, an offset
    value its random offset; the distant machine's speed range is interpolated. The mains
    frequency stays the clip's hall's (a discrete property). ``contrast`` 1 (or ``hall == home``)
    returns ``env`` unchanged.
    """
    if hall == home or contrast == 1.0:
        return dict(env)
    a, b = HALLS[home], HALLS[hall]
    out = dict(env)
    for k in _HALL_SCALED:
        preset = a[k] + contrast * (b[k] - a[k])
        out[k] = preset * env[k] / b[k] if b[k] > 0 else preset
    for k in _HALL_OFFSET:
        out[k] = env[k] - (1.0 - contrast) * (b[k] - a[k])
    for k in _HALL_FIXED:
        out[k] = a[k] + contrast * (b[k] - a[k])
    out["machine_hz"] = tuple(float(x + contrast * (y - x)) for x, y in zip(a["machine_hz"], b["machine_hz"]))
    return out


def adapt_job(job, rng: np.random.Generator, signature: dict[str, float]):
    """The realistic recipe of one planned clip, drawn from ``rng``: a general fault kind, its
    severity and its frequencies (``signature``, the machine's, jittered; anomalies only), the SNR,
    the level jitter and the clip's room and microphone. Fault frequencies go in ``env`` as
    ``fault_<key>``."""
    anomaly, severity = None, 0.0
    env = soften_hall(dict(job.env), job.hall, get_machine(job.key).halls["source"])
    if job.label == "anomaly":
        anomaly = str(FAULT_KINDS[int(rng.integers(len(FAULT_KINDS)))])
        severity = round(float(rng.uniform(*SEVERITY)), 4)
        env.update({f"fault_{k}": round(v, 3) for k, v in jitter_signature(signature, rng).items()})
    env.update(rt60=round(float(rng.uniform(*RT60_S)), 4), drr_db=round(float(rng.uniform(*DRR_DB)), 3),
               mic_eq=tuple(np.round(rng.normal(0.0, MIC_EQ_DB, len(MIC_EQ_HZ)), 3).tolist()))
    return replace(job, anomaly=anomaly, severity=severity, variant="realistic",
                   snr_db=round(float(rng.uniform(*SNR_DB)), 3),
                   gain_db=round(float(rng.uniform(-GAIN_JITTER_DB, GAIN_JITTER_DB)), 3),
                   env=tuple(sorted(env.items())))


def room_impulse_response(sr: int, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A direct path plus an exponentially decaying, slightly low-passed noise tail ``(m,)``.

    The tail decays by 60 dB in ``rt60`` s and carries ``-drr_db`` dB of the direct path's energy.
    """
    m = int(rt60 * sr)
    t = np.arange(1, m) / sr
    tail = rng.standard_normal(m - 1) * 10.0 ** (-3.0 * t / rt60)
    tail = sm.lowpass(tail, sr, 6000.0)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail ** 2))
    return np.concatenate([[1.0], tail])


def microphone_response(x: np.ndarray, sr: int, eq_db) -> np.ndarray:
    """Apply a smooth frequency response: ``eq_db`` (dB) at :data:`MIC_EQ_HZ`, interpolated
    linearly over log frequency and held flat outside (FFT domain, zero phase)."""
    n = len(x)
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), MIC_EQ_HZ[0])
    gain_db = np.interp(np.log2(f), np.log2(MIC_EQ_HZ), np.asarray(eq_db, dtype=float))
    return np.fft.irfft(np.fft.rfft(x) * 10.0 ** (gain_db / 20.0), n)


def render_parts(job, n: int, sr: int, rng_machine, rng_noise, rng_fault) -> tuple[np.ndarray, np.ndarray]:
    """Machine part and noise part ``(n,)`` each of one realistic clip, at the job's SNR (before
    the common level normalisation, which the caller applies to both)."""
    env = dict(job.env)
    model = replace(get_machine(job.key), mic_contrast=SETUP_CONTRAST)
    machine = sm.normalize_rms(model.render_clean(dict(job.attrs), None, 0.0, n, sr, rng_machine))
    if job.anomaly is not None:
        signature = {k[len("fault_"):]: v for k, v in env.items() if k.startswith("fault_")}
        machine = apply_fault(machine, sr, job.anomaly, job.severity, rng_fault, signature)
    ir = room_impulse_response(sr, env["rt60"], env["drr_db"], rng_fault)
    machine = _signal.fftconvolve(machine, ir)[:n]
    noise = sm.factory_background(n, sr, rng_noise, env)
    machine = microphone_response(machine, sr, env["mic_eq"])
    noise = microphone_response(noise, sr, env["mic_eq"])
    noise *= sm.rms(machine) / sm.rms(noise) * sm.db_to_gain(-job.snr_db)
    return machine, noise


def readme_section() -> str:
    """Markdown for the dataset README of a ``realistic`` root: what differs from the per-type
    descriptions (which then describe the normal sound, attributes and domain shift only)."""
    lines = ["## Variant: realistic", "",
             "This root was generated with `--variant realistic`. Each type's normal sound, attributes and"
             " domain shift are as described below, except that a change of hall or of microphone position"
             f" between the domains has {SETUP_CONTRAST:g} times the strength given there (the hall's"
             " background levels, colour and clank rate lie that far from the source hall's; the microphone's"
             " reflection and high-frequency loss are scaled alike). The per-type anomalies listed there are"
             " **not** used. Instead every anomalous clip has one of four general faults, in episodes that come"
             f" and go ({DUTY[0]:g}-{DUTY[1]:g} of the time, episodes of {EPISODE_SECONDS[0]:g}-"
             f"{EPISODE_SECONDS[1]:g} s on average, and at least {EPISODE_MIN_PERIODS:g} periods of a periodic"
             " fault's rate); the fault's frequencies are the machine type's own (drawn once per type) with 5 %"
             " clip-to-clip variation:", ""]
    for kind, note in FAULT_NOTES.items():
        level = (f"depth {MODULATION_DEPTH[0]:g}-{MODULATION_DEPTH[1]:g}" if kind == "modulation" else
                 f"{FAULT_LEVEL_DB[kind][0]:g} to {FAULT_LEVEL_DB[kind][1]:g} dB re the machine while on")
        lines.append(f"- `{kind}`: {note} ({level}, by severity).")
    lines += ["", f"Every clip has its own room (RT60 {RT60_S[0]:g}-{RT60_S[1]:g} s, direct-to-reverberant ratio"
              f" {DRR_DB[0]:g}-{DRR_DB[1]:g} dB) and microphone response ({MIC_EQ_DB:g} dB standard deviation per"
              f" octave), factory noise at SNR {SNR_DB[0]:g} to {SNR_DB[1]:g} dB, and one RMS level"
              f" (jitter +-{GAIN_JITTER_DB:g} dB), so the SNR and gain ranges below do not apply."
              " `synth_metadata.csv` holds each clip's fault kind, severity and SNR.", ""]
    return "\n".join(lines)
