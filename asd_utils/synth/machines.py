"""Seven synthetic machine types, each a small physical sound model.

Longer than 500 lines: seven machine models side by side, each a short physical recipe, so
that they can be compared at a glance.

A :class:`MachineModel` knows its operating attributes per domain, its anomaly kinds, its factory
background per domain, and how to render one clean clip (the machine alone, unit RMS) from
``(attributes, anomaly, severity)`` and a random generator. The generator (``generate.py``) mixes
the clean clip with the background at a random SNR.

Conventions: ``sr`` in Hz, ``n`` in samples, attributes are ``dict[str, str]`` in name order.
Every anomaly is scaled by ``severity`` in (0, 1] times the type's ``anomaly_gain`` (the
calibration knob) and the clean clip is RMS-normalised after the anomaly is added, so anomalies
change the spectro-temporal shape, never the overall level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asd_utils.synth import sound_models as sm

# Factory halls: background presets. Source and target domains of a type use one or the other.
HALLS: dict[str, dict] = {
    "A": {"brown": 0.25, "hum_hz": 50.0, "hum": 0.15, "machine_hz": (18.0, 40.0), "machine": 0.25,
          "clank_rate": 0.15, "clank": 0.6, "tilt": 0.0, "babble": 0.0},
    "B": {"brown": 0.4, "hum_hz": 60.0, "hum": 0.2, "machine_hz": (30.0, 60.0), "machine": 0.3,
          "clank_rate": 0.3, "clank": 0.8, "tilt": -0.5, "babble": 0.12},
}


def _choice(rng: np.random.Generator, values):
    return values[int(rng.integers(len(values)))]


def _add(base: np.ndarray, part: np.ndarray, rel_db: float) -> np.ndarray:
    """``base`` plus ``part`` scaled to ``rel_db`` dB relative to ``base``'s RMS."""
    return base + part * (sm.rms(base) / sm.rms(part) * sm.db_to_gain(rel_db))


def _sev_db(severity: float, gain: float, lo_db: float, hi_db: float) -> float:
    """Level (dB) of an additive anomaly: ``lo_db`` at severity 0, ``hi_db`` at 1, shifted by gain."""
    return lo_db + (hi_db - lo_db) * severity + 20.0 * np.log10(max(gain, 1e-3))


@dataclass
class MachineModel:
    """Base class. Subclasses set the class attributes and implement :meth:`render_clean`."""

    key: str = ""
    hidden: bool = False
    anomalies: tuple[str, ...] = ()
    # domain -> attribute -> allowed values; attribute order is the file-name order.
    attribute_values: dict = field(default_factory=dict)
    halls: dict = field(default_factory=lambda: {"source": "A", "target": "A"})
    snr_db: dict = field(default_factory=lambda: {"source": (2.0, 10.0), "target": (2.0, 10.0)})
    anomaly_gain: float = 1.0
    shift: str = ""          # one-line description of the domain shift (README)
    description: str = ""    # one-line description of the sound model (README)
    anomaly_notes: dict = field(default_factory=dict)
    attribute_notes: dict = field(default_factory=dict)
    # strength of a microphone-position change (1: the envelope world's; see :func:`_mic`)
    mic_contrast: float = 1.0

    # ----------------------------------------------------------------- sampling
    def sample_attributes(self, domain: str, rng: np.random.Generator) -> dict[str, str]:
        """Draw one operating condition of ``domain`` ('source' or 'target')."""
        return {k: str(_choice(rng, v)) for k, v in self.attribute_values[domain].items()}

    def sample_anomaly(self, rng: np.random.Generator) -> tuple[str, float]:
        """Draw an anomaly kind and a severity in [0.25, 1]."""
        return str(_choice(rng, self.anomalies)), float(rng.uniform(0.25, 1.0))

    def background_env(self, domain: str, rng: np.random.Generator) -> dict:
        """Background parameters for one clip of ``domain`` (the hall preset, randomly varied)."""
        env = dict(HALLS[self.halls[domain]])
        for k in ("hum", "machine", "clank", "babble"):
            env[k] = env[k] * float(rng.uniform(0.6, 1.4))
        env["brown"] = float(np.clip(env["brown"] + rng.uniform(-0.15, 0.15), 0.0, 1.0))
        env["tilt"] = env["tilt"] + float(rng.uniform(-0.5, 0.5))
        return env

    def sample_snr(self, domain: str, rng: np.random.Generator) -> float:
        lo, hi = self.snr_db[domain]
        return float(rng.uniform(lo, hi))

    # ----------------------------------------------------------------- rendering
    def render_clean(self, attrs: dict[str, str], anomaly: str | None, severity: float,
                     n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def render(self, attrs, anomaly, severity, n, sr, rng) -> np.ndarray:
        """Clean machine sound, ``(n,)`` float64 with unit RMS."""
        if anomaly is not None and anomaly not in self.anomalies:
            raise ValueError(f"{self.key}: unknown anomaly {anomaly!r}; expected one of {self.anomalies}")
        return sm.normalize_rms(self.render_clean(attrs, anomaly, severity, n, sr, rng))


def _mic(x: np.ndarray, sr: int, mic: str, contrast: float = 1.0) -> np.ndarray:
    """Microphone position: position 2 is farther, with a floor reflection (1.1 ms later, amplitude
    ``0.2 * contrast``) and duller highs (``-1.0 * contrast`` dB/octave around 1 kHz); ``x`` ``(n,)``."""
    if mic == "1":
        return x
    delay = int(0.0011 * sr)
    y = x.copy()
    y[delay:] += 0.2 * contrast * x[:-delay]
    return sm.spectral_tilt(y, sr, -1.0 * contrast)


# --------------------------------------------------------------------------- ToyCar
@dataclass
class ToyCar(MachineModel):
    key: str = "ToyCar"
    anomalies: tuple[str, ...] = ("gear_damage", "axle_imbalance", "brush_wear", "tire_damage")
    attribute_values: dict = field(default_factory=lambda: {
        "source": {"car": ["A1", "A2", "B1"], "spd": [28, 31, 34], "mic": [1]},
        "target": {"car": ["A1", "A2", "B1"], "spd": [28, 31, 34], "mic": [2]},
    })
    halls: dict = field(default_factory=lambda: {"source": "A", "target": "B"})
    snr_db: dict = field(default_factory=lambda: {"source": (2.0, 10.0), "target": (2.0, 10.0)})
    shift: str = "microphone moved from position 1 to 2 (reflection, duller highs) and another factory hall"
    description: str = ("toy car on a roller: DC-motor whine (harmonics of the rotor rate, 7 Hz per volt),"
                        " gear mesh tone with sidebands, tyre rolling noise modulated at the wheel rate")
    attribute_notes: dict = field(default_factory=lambda: {
        "car": "car model (gear teeth and motor timbre)", "spd": "motor voltage (V), sets motor speed",
        "mic": "microphone position"})
    anomaly_notes: dict = field(default_factory=lambda: {
        "gear_damage": "a chipped gear tooth clicks once per gear revolution",
        "axle_imbalance": "bent axle: the whole sound is amplitude-modulated at the wheel rate",
        "brush_wear": "worn motor brushes: bursts of high-frequency crackle",
        "tire_damage": "flat spot on a tyre: a low thump once per wheel revolution"})

    MODELS = {"A1": (12, [1.0, 0.35, 0.6, 0.2, 0.12, 0.3, 0.08, 0.05]),
              "A2": (14, [1.0, 0.5, 0.4, 0.3, 0.1, 0.2, 0.1, 0.05]),
              "B1": (10, [0.7, 0.6, 0.8, 0.15, 0.2, 0.35, 0.05, 0.1])}

    def render_clean(self, attrs, anomaly, severity, n, sr, rng):
        teeth, amps = self.MODELS[attrs["car"]]
        f_m = sm.speed_curve(n, sr, rng, 7.0 * float(attrs["spd"]), jitter=0.012, rate_hz=0.8)
        ph = sm.phase_from_freq(f_m, sr)
        t = np.arange(n) / sr
        duration = n / sr
        whine = sm.harmonic_sum(ph, np.array(amps) * rng.uniform(0.85, 1.15, len(amps)), rng)
        mesh = sm.harmonic_sum(ph * teeth, [0.25, 0.08, 0.03], rng)
        mesh *= 1.0 + 0.08 * np.sin(ph + rng.uniform(0, 6.28))
        f_w = float(np.mean(f_m)) / 25.0
        wheel_ph = 2 * np.pi * f_w * t + rng.uniform(0, 6.28)
        rolling = sm.band_noise(n, sr, rng, 400.0, 5000.0, exponent=0.5) * (1.0 + 0.25 * np.sin(wheel_ph))
        x = whine + mesh + 0.35 * rolling
        g = self.anomaly_gain
        if anomaly == "gear_damage":
            times = sm.periodic_times(duration, float(np.mean(f_m)) / 4.0, rng, jitter=0.01)
            clicks = sm.ring(sm.impulses(n, sr, times), sr, [2300.0, 3900.0], [0.004, 0.003])
            x = _add(x, clicks, _sev_db(severity, g, -24.0, -12.0))
        elif anomaly == "axle_imbalance":
            depth = (0.08 + 0.22 * severity) * g
            x = x * (1.0 + depth * np.sin(wheel_ph + 0.7))
        elif anomaly == "brush_wear":
            times = sm.poisson_times(duration, 400.0, rng)
            crackle = sm.bandpass(sm.impulses(n, sr, times, rng.standard_normal(len(times))), sr, 3000, 7500)
            gate = np.clip(sm.slow_fluctuation(n, sr, rng, rate_hz=3.0), 0.0, None)
            x = _add(x, crackle * gate, _sev_db(severity, g, -28.0, -16.0))
        elif anomaly == "tire_damage":
            times = sm.periodic_times(duration, f_w, rng, jitter=0.01)
            thumps = sm.ring(sm.impulses(n, sr, times), sr, [180.0, 420.0], [0.02, 0.012])
            x = _add(x, thumps, _sev_db(severity, g, -20.0, -8.0))
        return _mic(x, sr, attrs["mic"], self.mic_contrast)


# --------------------------------------------------------------------------- ToyTrain
@dataclass
class ToyTrain(MachineModel):
    key: str = "ToyTrain"
    hidden: bool = True
    anomalies: tuple[str, ...] = ("wheel_flat", "rail_squeal", "motor_looseness")
    attribute_values: dict = field(default_factory=lambda: {
        "source": {"train": ["A", "B"], "spd": [5, 6, 7], "mic": [1]},
        "target": {"train": ["A", "B"], "spd": [8], "mic": [1]},
    })
    halls: dict = field(default_factory=lambda: {"source": "A", "target": "B"})
    snr_db: dict = field(default_factory=lambda: {"source": (2.0, 10.0), "target": (2.0, 10.0)})
    shift: str = "faster train (speed level 8 vs 5-7) in another factory hall; attributes hidden"
    description: str = ("toy train on a track: motor whine proportional to speed, wheel rolling noise,"
                        " and click bursts when the axles cross rail joints (rate set by speed)")
    attribute_notes: dict = field(default_factory=lambda: {
        "train": "train model (axle layout, motor timbre)", "spd": "speed level (0.08 m/s per step)",
        "mic": "microphone position"})
    anomaly_notes: dict = field(default_factory=lambda: {
        "wheel_flat": "a flat spot on a wheel thumps once per wheel revolution",
        "rail_squeal": "intermittent flange squeal (narrow 2.5-4.5 kHz tone)",
        "motor_looseness": "loose motor mount rattles at half the motor rate"})

    AXLES = {"A": [0.0, 0.03, 0.13, 0.16], "B": [0.0, 0.035, 0.07, 0.19, 0.225]}

    def render_clean(self, attrs, anomaly, severity, n, sr, rng):
        duration = n / sr
        v = 0.08 * float(attrs["spd"]) * rng.uniform(0.97, 1.03)
        f_m = sm.speed_curve(n, sr, rng, 400.0 * v, jitter=0.01, rate_hz=0.5)
        ph = sm.phase_from_freq(f_m, sr)
        amps = [1.0, 0.4, 0.5, 0.15, 0.1] if attrs["train"] == "A" else [0.8, 0.6, 0.3, 0.3, 0.15]
        x = 0.6 * sm.harmonic_sum(ph, amps, rng)
        x += 0.25 * (v / 0.5) * sm.band_noise(n, sr, rng, 800.0, 6000.0, exponent=0.5)
        joints = sm.periodic_times(duration, v / 0.25, rng, jitter=0.02)
        offsets = np.array(self.AXLES[attrs["train"]]) / v
        click_times = (joints[:, None] + offsets[None, :]).ravel()
        clicks = sm.impulses(n, sr, click_times, rng.uniform(0.6, 1.0, size=click_times.size))
        x += 6.0 * sm.ring(clicks, sr, [1500.0, 3200.0, 5100.0], [0.008, 0.005, 0.003], [1.0, 0.6, 0.3])
        g = self.anomaly_gain
        if anomaly == "wheel_flat":
            times = sm.periodic_times(duration, v / (np.pi * 0.02), rng, jitter=0.005)
            thumps = sm.ring(sm.impulses(n, sr, times), sr, [350.0, 800.0], [0.015, 0.01])
            x = _add(x, thumps, _sev_db(severity, g, -23.0, -11.0))
        elif anomaly == "rail_squeal":
            f0 = rng.uniform(2500.0, 4500.0)
            f = f0 * (1.0 + 0.01 * sm.slow_fluctuation(n, sr, rng, rate_hz=2.0))
            gate = np.clip(sm.slow_fluctuation(n, sr, rng, rate_hz=1.0) + 0.3, 0.0, None)
            squeal = np.sin(sm.phase_from_freq(f, sr)) * gate
            x = _add(x, squeal, _sev_db(severity, g, -29.0, -17.0))
        elif anomaly == "motor_looseness":
            times = sm.periodic_times(duration, float(np.mean(f_m)) / 2.0, rng, jitter=0.03)
            hits = sm.impulses(n, sr, times, rng.uniform(0.0, 1.0, size=len(times)) ** 2)
            rattle = sm.bandpass(sm.ring(hits, sr, [900.0, 1700.0], [0.004, 0.003]), sr, 600, 2500)
            x = _add(x, rattle, _sev_db(severity, g, -25.0, -13.0))
        return _mic(x, sr, attrs["mic"], self.mic_contrast)


# --------------------------------------------------------------------------- bearing
BEARING_GEOMETRY = {"balls": 9, "d_over_D": 0.28}


def bearing_frequencies(shaft_hz: float, balls: int = 9, d_over_D: float = 0.28) -> dict[str, float]:
    """Characteristic defect frequencies (Hz) of a rolling bearing (zero contact angle).

    BPFO = N/2 f (1 - d/D), BPFI = N/2 f (1 + d/D), BSF = D/(2d) f (1 - (d/D)^2), FTF = f/2 (1 - d/D).
    """
    r = d_over_D
    return {"BPFO": balls / 2 * shaft_hz * (1 - r), "BPFI": balls / 2 * shaft_hz * (1 + r),
            "BSF": shaft_hz / (2 * r) * (1 - r * r), "FTF": shaft_hz / 2 * (1 - r)}


@dataclass
class Bearing(MachineModel):
    key: str = "bearing"
    hidden: bool = True
    anomalies: tuple[str, ...] = ("outer_race", "inner_race", "ball_defect")
    attribute_values: dict = field(default_factory=lambda: {
        "source": {"vel": [6, 10, 14], "loc": ["A", "B"]},
        "target": {"vel": [16], "loc": ["A", "B"]},
    })
    snr_db: dict = field(default_factory=lambda: {"source": (3.0, 11.0), "target": (3.0, 11.0)})
    shift: str = "higher rotation velocity (vel 16 vs 6-14); same hall; attributes hidden"
    description: str = ("rolling bearing on a driven shaft (2 Hz per vel step): shaft harmonics, drive hum,"
                        " and random rolling-contact impacts that ring the housing resonance"
                        " (3.0 kHz at location A, 4.4 kHz at B)")
    attribute_notes: dict = field(default_factory=lambda: {
        "vel": "rotation velocity (shaft rate = 2 Hz x vel)", "loc": "sensor location (housing resonance)"})
    anomaly_notes: dict = field(default_factory=lambda: {
        "outer_race": "outer-race spall: impacts at BPFO = 3.24 x shaft rate ringing the resonance",
        "inner_race": "inner-race spall: impacts at BPFI = 5.76 x shaft rate, modulated by the load zone",
        "ball_defect": "ball spall: impacts at 2 x BSF, modulated at the cage rate FTF"})

    RESONANCE = {"A": 3000.0, "B": 4400.0}

    def shaft_hz(self, attrs) -> float:
        return 2.0 * float(attrs["vel"])

    def render_clean(self, attrs, anomaly, severity, n, sr, rng):
        duration = n / sr
        f_r = self.shaft_hz(attrs) * rng.uniform(0.99, 1.01)
        res = self.RESONANCE[attrs["loc"]] * rng.uniform(0.97, 1.03)
        f = sm.speed_curve(n, sr, rng, f_r, jitter=0.003, rate_hz=0.3)
        ph = sm.phase_from_freq(f, sr)
        x = sm.harmonic_sum(ph, [0.5, 0.25, 0.1], rng)
        x += 0.4 * sm.harmonic_sum(sm.phase_from_freq(np.full(n, 100.0), sr), [1.0, 0.3, 0.2], rng)
        rate = 250.0 + 12.0 * f_r
        times = sm.poisson_times(duration, rate, rng)
        roll = sm.impulses(n, sr, times, rng.exponential(1.0, size=len(times)))
        contact = sm.ring(roll, sr, [res, 1.9 * res], [0.002, 0.001], [1.0, 0.3])
        x += 0.6 * sm.normalize_rms(contact) + 0.3 * sm.band_noise(n, sr, rng, 200.0, 7000.0, exponent=1.0)
        g = self.anomaly_gain
        if anomaly is not None:
            fr = bearing_frequencies(float(np.mean(f)), **BEARING_GEOMETRY)
            t = np.arange(n) / sr
            if anomaly == "outer_race":
                times = sm.periodic_times(duration, fr["BPFO"], rng, jitter=0.004)
                amps = np.ones_like(times)
            elif anomaly == "inner_race":
                times = sm.periodic_times(duration, fr["BPFI"], rng, jitter=0.004)
                phase0 = rng.uniform(0, 2 * np.pi)
                amps = (0.5 + 0.5 * np.cos(2 * np.pi * f_r * times + phase0)) ** 2
            else:  # ball_defect
                times = sm.periodic_times(duration, 2.0 * fr["BSF"], rng, jitter=0.006)
                phase0 = rng.uniform(0, 2 * np.pi)
                amps = 0.3 + 0.7 * (0.5 + 0.5 * np.cos(2 * np.pi * fr["FTF"] * times + phase0))
            spall = sm.ring(sm.impulses(n, sr, times, amps), sr, [res, 1.5 * res], [0.005, 0.003], [1.0, 0.6])
            del t
            x = _add(x, spall, _sev_db(severity, g, -16.0, -4.0))
        return x


# --------------------------------------------------------------------------- fan
@dataclass
class Fan(MachineModel):
    key: str = "fan"
    anomalies: tuple[str, ...] = ("imbalance", "blade_damage", "bearing_wear")
    attribute_values: dict = field(default_factory=lambda: {
        "source": {"mdl": ["A", "B"], "spd": [1500, 1650, 1800]},
        "target": {"mdl": ["A", "B"], "spd": [1950]},
    })
    halls: dict = field(default_factory=lambda: {"source": "A", "target": "B"})
    snr_db: dict = field(default_factory=lambda: {"source": (2.0, 10.0), "target": (2.0, 10.0)})
    shift: str = "higher fan speed (1950 rpm vs 1500-1800) in another factory hall"
    description: str = ("axial fan: blade-pass tone (blades x rpm/60) with harmonics, broadband flow noise"
                        " slightly modulated at the blade-pass rate, and motor hum")
    attribute_notes: dict = field(default_factory=lambda: {
        "mdl": "fan model: A has 5 blades, B has 7", "spd": "rotation speed (rpm)"})
    anomaly_notes: dict = field(default_factory=lambda: {
        "imbalance": "mass imbalance: a 1x shaft tone and amplitude modulation at the shaft rate",
        "blade_damage": "one damaged blade: a pulse once per revolution (shaft-rate harmonics)",
        "bearing_wear": "worn motor bearing: high-frequency grinding and impacts near 3.5 kHz"})

    BLADES = {"A": 5, "B": 7}

    def render_clean(self, attrs, anomaly, severity, n, sr, rng):
        duration = n / sr
        blades = self.BLADES[attrs["mdl"]]
        f_r = sm.speed_curve(n, sr, rng, float(attrs["spd"]) / 60.0, jitter=0.006, rate_hz=0.4)
        ph = sm.phase_from_freq(f_r, sr)
        bpf = sm.harmonic_sum(ph * blades, [1.0, 0.45, 0.25, 0.15, 0.08, 0.05], rng)
        flow = sm.band_noise(n, sr, rng, 150.0, 6000.0, exponent=1.0)
        flow *= 1.0 + 0.15 * np.sin(ph * blades + rng.uniform(0, 6.28))
        level = float(attrs["spd"]) / 1500.0
        x = 0.8 * bpf + 0.9 * level * flow
        x += 0.2 * sm.harmonic_sum(sm.phase_from_freq(np.full(n, 100.0), sr), [1.0, 0.4], rng)
        x += 0.03 * np.sin(ph)
        g = self.anomaly_gain
        if anomaly == "imbalance":
            depth = (0.05 + 0.2 * severity) * g
            x = x * (1.0 + depth * np.sin(ph + 1.0))
            x = _add(x, sm.harmonic_sum(ph, [1.0, 0.6, 0.4], rng), _sev_db(severity, g, -16.0, -6.0))
        elif anomaly == "blade_damage":
            pulse = np.exp(-0.5 * (np.angle(np.exp(1j * (ph - rng.uniform(0, 6.28)))) / 0.15) ** 2)
            part = sm.bandpass(pulse * sm.band_noise(n, sr, rng, 100.0, 3000.0) + pulse, sr, 80.0, 3000.0)
            x = _add(x, part, _sev_db(severity, g, -18.0, -6.0))
        elif anomaly == "bearing_wear":
            times = sm.poisson_times(duration, 60.0, rng)
            hits = sm.ring(sm.impulses(n, sr, times, rng.exponential(1.0, len(times))), sr, [3500.0], [0.003])
            grind = sm.band_noise(n, sr, rng, 2500.0, 5000.0) * (1 + 0.5 * sm.slow_fluctuation(n, sr, rng, rate_hz=4))
            part = sm.normalize_rms(hits) + 0.7 * grind
            x = _add(x, part, _sev_db(severity, g, -26.0, -14.0))
        return x


# --------------------------------------------------------------------------- gearbox
@dataclass
class Gearbox(MachineModel):
    key: str = "gearbox"
    anomalies: tuple[str, ...] = ("tooth_damage", "misalignment", "wear")
    attribute_values: dict = field(default_factory=lambda: {
        "source": {"volt": ["1.0", "1.3", "1.6"], "wt": [0, 30, 80]},
        "target": {"volt": ["1.0", "1.3", "1.6"], "wt": [150]},
    })
    snr_db: dict = field(default_factory=lambda: {"source": (2.0, 10.0), "target": (2.0, 10.0)})
    shift: str = "heavier load weight (150 g vs 0-80 g): louder mesh, more housing noise, speed droop"
    description: str = ("DC motor driving a 19-tooth pinion: shaft harmonics, gear-mesh harmonics with"
                        " shaft-rate sidebands, motor hum, mesh-modulated noise ringing two housing modes")
    attribute_notes: dict = field(default_factory=lambda: {
        "volt": "motor voltage (shaft rate = 15 Hz per volt)", "wt": "load weight (g) on the output shaft"})
    anomaly_notes: dict = field(default_factory=lambda: {
        "tooth_damage": "a cracked pinion tooth: an impact and a mesh dip once per input-shaft revolution",
        "misalignment": "shaft misalignment: 2x shaft tone and mesh modulated at twice the shaft rate",
        "wear": "worn flanks: noisy mesh (noise modulated at the mesh rate) and stronger high mesh orders"})

    TEETH = 19

    def render_clean(self, attrs, anomaly, severity, n, sr, rng):
        duration = n / sr
        wt = float(attrs["wt"])
        load = 1.0 + wt / 400.0
        f_s = sm.speed_curve(n, sr, rng, 15.0 * float(attrs["volt"]) * (1.0 - wt / 2500.0),
                             jitter=0.006, rate_hz=0.5)
        ph = sm.phase_from_freq(f_s, sr)
        mesh_ph = ph * self.TEETH
        side = 1.0 + 0.05 * np.sin(ph + rng.uniform(0, 6.28)) + 0.03 * np.sin(ph * 19 / 41 + 1.0)
        mesh = load * side * sm.harmonic_sum(mesh_ph, [1.0, 0.5, 0.3, 0.12, 0.06], rng)
        x = 0.7 * mesh + sm.harmonic_sum(ph, [0.3, 0.15, 0.05], rng)
        x += 0.3 * sm.harmonic_sum(sm.phase_from_freq(np.full(n, 100.0), sr), [1.0, 0.5, 0.2], rng)
        mesh_noise = sm.band_noise(n, sr, rng, 300.0, 6000.0) * (1.0 + 0.5 * np.sin(mesh_ph))
        x += 0.25 * load * sm.normalize_rms(sm.ring(mesh_noise, sr, [1100.0, 2700.0], [0.01, 0.006]))
        g = self.anomaly_gain
        if anomaly == "tooth_damage":
            times = sm.periodic_times(duration, float(np.mean(f_s)), rng, jitter=0.004)
            hits = sm.ring(sm.impulses(n, sr, times), sr, [1100.0, 2700.0, 4100.0], [0.01, 0.006, 0.003])
            x = _add(x, hits, _sev_db(severity, g, -20.0, -8.0))
        elif anomaly == "misalignment":
            depth = (0.08 + 0.25 * severity) * g
            x = x + 0.7 * mesh * depth * np.sin(2 * ph + rng.uniform(0, 6.28))
            x = _add(x, np.sin(2 * ph), _sev_db(severity, g, -19.0, -9.0))
        elif anomaly == "wear":
            noisy = sm.band_noise(n, sr, rng, 400.0, 4000.0) * (1.0 + np.sin(mesh_ph)) ** 2
            high = sm.harmonic_sum(mesh_ph, [0.0, 0.0, 0.5, 0.5, 0.4, 0.3], rng)
            x = _add(x, sm.normalize_rms(noisy) + 0.5 * sm.normalize_rms(high), _sev_db(severity, g, -21.0, -9.0))
        return x


# --------------------------------------------------------------------------- slider
@dataclass
class Slider(MachineModel):
    key: str = "slider"
    hidden: bool = True
    anomalies: tuple[str, ...] = ("rail_friction", "looseness", "timing_fault")
    attribute_values: dict = field(default_factory=lambda: {
        "source": {"vel": [300, 400, 600], "ac": [1, 2]},
        "target": {"vel": [500], "ac": [1, 2]},
    })
    snr_db: dict = field(default_factory=lambda: {"source": (3.0, 11.0), "target": (3.0, 11.0)})
    shift: str = "an unseen stroke velocity (500 mm/s; source 300, 400, 600); same hall; attributes hidden"
    description: str = ("linear slide: back-and-forth strokes of 0.25 m with servo whine proportional to the"
                        " velocity, rail friction noise while moving, and an end-stop clank at each stop")
    attribute_notes: dict = field(default_factory=lambda: {
        "vel": "stroke velocity (mm/s)", "ac": "acceleration (m/s^2): ramps at stroke start and end"})
    anomaly_notes: dict = field(default_factory=lambda: {
        "rail_friction": "dry rail: stick-slip squeal (2-4 kHz) and louder friction noise while moving",
        "looseness": "loose carriage: rattling impacts after each stop",
        "timing_fault": "irregular controller timing: hesitations mid-stroke and uneven pauses"})

    def _profile(self, n, sr, rng, v_max, acc, timing_fault, severity):
        """Velocity (m/s) per sample and stop times (s) of back-and-forth strokes."""
        length = 0.25
        duration = n / sr
        t_ramp = v_max / acc
        t_move = length / v_max + t_ramp
        vel = np.zeros(n)
        stops = []
        t0 = -rng.uniform(0.0, t_move + 0.3)
        t = np.arange(n) / sr
        while t0 < duration:
            pause = rng.uniform(0.15, 0.3)
            tm = t_move
            if timing_fault:
                pause *= rng.uniform(0.3, 1.0 + 2.0 * severity)
            rel = t - t0
            shape = np.clip(np.minimum(rel, tm - rel) / t_ramp, 0.0, 1.0) * (rel >= 0) * (rel <= tm)
            if timing_fault and rng.uniform() < 0.5 + 0.5 * severity:
                mid = rng.uniform(0.3, 0.7) * tm
                width = 0.04 + 0.08 * severity
                shape = shape * (1.0 - 0.9 * np.exp(-0.5 * ((rel - mid) / width) ** 2))
            vel += v_max * shape
            stops.append(t0 + tm)
            t0 += tm + pause
        return vel, np.array(stops)

    def render_clean(self, attrs, anomaly, severity, n, sr, rng):
        v_max = float(attrs["vel"]) / 1000.0 * rng.uniform(0.97, 1.03)
        acc = float(attrs["ac"]) * 2.0
        g = self.anomaly_gain
        vel, stops = self._profile(n, sr, rng, v_max, acc, anomaly == "timing_fault", min(severity * g, 1.5))
        speed = vel / 0.5
        f = 600.0 * np.maximum(vel, 0.02) + 60.0
        whine = sm.harmonic_sum(sm.phase_from_freq(f, sr), [1.0, 0.5, 0.3, 0.2], rng) * np.clip(speed, 0.05, None)
        friction = sm.band_noise(n, sr, rng, 1000.0, 5000.0, exponent=0.5) * speed
        clank = sm.ring(sm.impulses(n, sr, stops, acc / 4.0 * rng.uniform(0.8, 1.2, len(stops))),
                        sr, [900.0, 2300.0], [0.04, 0.02])
        x = 0.5 * whine + 0.4 * friction + 3.0 * clank + 0.02 * sm.band_noise(n, sr, rng, 50, 8000)
        if anomaly == "rail_friction":
            f0 = rng.uniform(2000.0, 4000.0)
            squeal_f = f0 * (1.0 + 0.02 * sm.slow_fluctuation(n, sr, rng, rate_hz=8.0))
            squeal = np.sin(sm.phase_from_freq(squeal_f, sr)) * speed * (1 + 0.8 * np.sin(2 * np.pi * 37.0 *
                                                                                          np.arange(n) / sr))
            part = sm.normalize_rms(squeal) + sm.normalize_rms(friction)
            x = _add(x, part, _sev_db(severity, g, -24.0, -12.0))
        elif anomaly == "looseness":
            times = (stops[:, None] + np.cumsum(rng.uniform(0.02, 0.06, size=(len(stops), 4)), axis=1)).ravel()
            hits = sm.impulses(n, sr, times, rng.uniform(0.3, 1.0, len(times)))
            rattle = sm.ring(hits, sr, [650.0, 1500.0, 3300.0], [0.01, 0.006, 0.003])
            x = _add(x, rattle, _sev_db(severity, g, -26.0, -14.0))
        return x


# --------------------------------------------------------------------------- valve
@dataclass
class Valve(MachineModel):
    key: str = "valve"
    anomalies: tuple[str, ...] = ("leak", "sticking", "timing_fault", "contamination")
    attribute_values: dict = field(default_factory=lambda: {
        "source": {"pat": ["00", "01", "02"], "panel": ["open", "half"]},
        "target": {"pat": ["00", "01", "02"], "panel": ["closed"]},
    })
    halls: dict = field(default_factory=lambda: {"source": "A", "target": "B"})
    snr_db: dict = field(default_factory=lambda: {"source": (3.0, 11.0), "target": (3.0, 11.0)})
    shift: str = "enclosure panel closed (muffled, a boxy resonance) in another factory hall"
    description: str = ("solenoid valve switched in a repeating pattern: an opening click, flow hiss while"
                        " open, a closing clack and an exhaust puff")
    attribute_notes: dict = field(default_factory=lambda: {
        "pat": "switching pattern (sequence of open/closed durations)",
        "panel": "enclosure panel state (open, half, closed)"})
    anomaly_notes: dict = field(default_factory=lambda: {
        "leak": "seat leak: faint hiss while the valve is closed",
        "sticking": "sticky plunger: late closing with chatter (extra clicks)",
        "timing_fault": "controller timing fault: events shifted and durations uneven",
        "contamination": "debris in the orifice: a whistle tone during the flow"})

    PATTERNS = {"00": [(0.3, 0.5)], "01": [(0.15, 0.2), (0.4, 0.6)], "02": [(0.2, 0.25), (0.2, 0.25), (0.6, 0.8)]}

    def _schedule(self, duration, pattern, rng, jitter):
        events = []
        t = -rng.uniform(0.0, sum(a + b for a, b in pattern))
        k = 0
        while t < duration:
            on, off = pattern[k % len(pattern)]
            on *= 1.0 + jitter * rng.standard_normal()
            off *= 1.0 + jitter * rng.standard_normal()
            events.append((t, t + max(on, 0.03)))
            t += max(on, 0.03) + max(off, 0.03)
            k += 1
        return np.array(events)

    def render_clean(self, attrs, anomaly, severity, n, sr, rng):
        duration = n / sr
        g = self.anomaly_gain
        jitter = 0.03 + (0.25 * severity * g if anomaly == "timing_fault" else 0.0)
        ev = self._schedule(duration, self.PATTERNS[attrs["pat"]], rng, jitter)
        opens, closes = ev[:, 0], ev[:, 1]
        if anomaly == "sticking":
            closes = closes + rng.uniform(0.02, 0.02 + 0.06 * severity, len(closes))
        gate = sm.envelope_from_events(n, sr, opens + 0.005, closes, ramp=0.03)
        hiss = sm.band_noise(n, sr, rng, 800.0, 7000.0, exponent=0.3)
        x = 0.5 * hiss * gate
        x += 4.0 * sm.ring(sm.impulses(n, sr, opens, rng.uniform(0.8, 1.0, len(opens))), sr,
                           [2200.0, 4500.0], [0.008, 0.004])
        x += 6.0 * sm.ring(sm.impulses(n, sr, closes, rng.uniform(0.8, 1.0, len(closes))), sr,
                           [1400.0, 3100.0], [0.015, 0.008])
        puff_gate = sm.envelope_from_events(n, sr, closes, closes + 0.06, ramp=0.01)
        x += 0.3 * sm.band_noise(n, sr, rng, 200.0, 3000.0) * puff_gate
        x += 0.01 * sm.band_noise(n, sr, rng, 50.0, 8000.0)
        if anomaly == "leak":
            leak = sm.band_noise(n, sr, rng, 2000.0, 7000.0) * (1.0 - gate)
            x = _add(x, leak, _sev_db(severity, g, -26.0, -14.0))
        elif anomaly == "sticking":
            chatter_t = (closes[:, None] + np.cumsum(rng.uniform(0.008, 0.02, (len(closes), 3)), axis=1)).ravel()
            chat = sm.ring(sm.impulses(n, sr, chatter_t, rng.uniform(0.2, 0.6, len(chatter_t))), sr,
                           [1400.0, 3100.0], [0.01, 0.005])
            x = _add(x, chat, _sev_db(severity, g, -20.0, -8.0))
        elif anomaly == "contamination":
            whistle = np.sin(2 * np.pi * rng.uniform(3000, 5000) * np.arange(n) / sr) * gate
            x = _add(x, whistle, _sev_db(severity, g, -26.0, -14.0))
        panel = attrs["panel"]
        if panel == "half":
            x = sm.lowpass(x, sr, 5000.0) + 0.3 * sm.resonator(x, sr, 900.0, 4.0)
        elif panel == "closed":
            x = sm.lowpass(x, sr, 5500.0) + 0.3 * sm.resonator(x, sr, 700.0, 5.0)
        return x


MACHINE_TYPES: tuple[str, ...] = ("ToyCar", "ToyTrain", "bearing", "fan", "gearbox", "slider", "valve")

_CLASSES = {"ToyCar": ToyCar, "ToyTrain": ToyTrain, "bearing": Bearing, "fan": Fan, "gearbox": Gearbox,
            "slider": Slider, "valve": Valve}


def get_machine(key: str) -> MachineModel:
    """Return a fresh model of machine type ``key`` (one of :data:`MACHINE_TYPES`)."""
    if key not in _CLASSES:
        raise ValueError(f"unknown synthetic machine type {key!r}; expected one of {MACHINE_TYPES}")
    return _CLASSES[key]()
