"""Synthetic DCASE 2026-style roots: two-channel clips, a microphone near and one far from the machine.

Layout and names are those of the DCASE 2026 Task 2 development set (the 2025 names; no
``supplemental`` folder), with the marker :data:`asd_utils.data.layout.LAYOUT_MARKER` at the top::

    OUT/dev_data/raw/<machine>/{train,test}/section_00_<domain>_<split>_<label>_<nnnn>_<attrs>.wav
    OUT/dev_data/raw/<machine>/attributes_00.csv, OUT/synth_manifest.json, OUT/README.md, ...

Each clip is the mono generator's clip (:func:`asd_utils.synth.generate.render_job`) seen by two
microphones of one machine type's fixed set-up (:class:`FarMicrophone`):

- channel 0, near: the mono clip itself, machine + factory background (as in DCASE 2026, "the
  signal in the left channel is equivalent to the previous mono");
- channel 1, far: the same machine sound delayed (longer path; 343 m/s) and attenuated (spherical
  spreading over the longer distance), plus the same factory louder by ``noise_gain_db``, made of
  the near background (delayed, share ``noise_coherence``) and an independent rendering of the
  same hall (the rest), so the far channel is a noise reference that is not a copy of the near one.

The set-up is a plausible physical assumption (distances of a few metres in a hall), not a fit to
real 2026 recordings, which the compendium does not have: numbers measured on this data say
nothing about DCASE 2026. Clip lengths follow the task's 6, 10 and 16 s (machine types in turn) in
the ``full`` profile; in the CPU profiles the shortest is the profile's clip length and the others
keep the task's proportions (x 5/3, x 8/3).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from asd_utils import paths
from asd_utils.data.layout import write_layout_marker
from asd_utils.synth import sound_models as sm
from asd_utils.synth.generate import (
    SAMPLE_RATE,
    ClipJob,
    _write_tables,
    clip_rng,
    ensure_generated,
    expected_manifest,
    get_profile,
    plan_machine,
    render_job,
    to_pcm16,
    write_all,
)
from asd_utils.synth.readme import dataset_readme

__all__ = ["FarMicrophone", "TWO_CHANNEL_VERSION", "LENGTH_RATIOS", "FULL_LENGTHS_S", "machine_durations",
           "far_microphone", "render_two_channel", "expected_two_channel_manifest", "generate_two_channel_dataset",
           "ensure_two_channel_dataset", "default_two_channel_root"]

TWO_CHANNEL_VERSION = "1.0.0"
SPEED_OF_SOUND = 343.0            # m/s
FULL_LENGTHS_S = (6.0, 10.0, 16.0)  # DCASE 2026 clip lengths (Zenodo record 20437238)
LENGTH_RATIOS = (1.0, 5 / 3, 8 / 3)  # the same proportions in the CPU-sized profiles, shortest = the profile's
_GEOMETRY_STREAM = 3
_FAR_NOISE_STREAM = 4


@dataclass(frozen=True)
class FarMicrophone:
    """Where the two microphones of one machine type stand (drawn once per type and seed).

    near_m / far_m: machine-to-microphone distances (m); noise_gain_db: how much louder the
    factory is at the far microphone (dB); noise_coherence: share (0-1, amplitude) of the far
    background that is the near background delayed by ``noise_delay_s``.
    """

    near_m: float
    far_m: float
    noise_gain_db: float
    noise_coherence: float
    noise_delay_s: float

    @property
    def machine_delay_s(self) -> float:
        """Extra travel time of the machine sound to the far microphone (s)."""
        return (self.far_m - self.near_m) / SPEED_OF_SOUND

    @property
    def machine_gain_db(self) -> float:
        """Level of the machine at the far microphone relative to the near one (dB, 1/r spreading)."""
        return float(20.0 * np.log10(self.near_m / self.far_m))


def far_microphone(seed: int, key: str) -> FarMicrophone:
    """The microphone set-up of machine type ``key`` (deterministic in ``seed`` and ``key``): near
    0.5-1 m, far 2-4 m from the machine, factory 1-4 dB louder at the far one."""
    rng = clip_rng(seed, key, "train", 10**6 + 1, stream=_GEOMETRY_STREAM)
    return FarMicrophone(near_m=round(float(rng.uniform(0.5, 1.0)), 3), far_m=round(float(rng.uniform(2.0, 4.0)), 3),
                         noise_gain_db=round(float(rng.uniform(1.0, 4.0)), 3),
                         noise_coherence=round(float(rng.uniform(0.2, 0.5)), 3),
                         noise_delay_s=round(float(rng.uniform(0.002, 0.010)), 4))


def machine_durations(profile: str, keys: Sequence[str]) -> dict[str, float]:
    """Clip length (s) of each machine type: 6, 10, 16 s in turn (``full``), else the profile's
    length times 1, 5/3, 8/3 (the shortest clip never falls below the profile's length, which the
    notebooks' crops are sized for)."""
    base = get_profile(profile).duration
    lengths = FULL_LENGTHS_S if profile == "full" else tuple(round(base * r, 3) for r in LENGTH_RATIOS)
    return {key: lengths[i % len(lengths)] for i, key in enumerate(keys)}


def _delay(x: np.ndarray, samples: int) -> np.ndarray:
    out = np.zeros_like(x)
    out[samples:] = x[: len(x) - samples] if samples else x
    return out


def render_two_channel(job: ClipJob, duration: float, mic: FarMicrophone,
                       sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One clip as ``(samples, 2)`` float64: column 0 near (= the mono clip), column 1 far."""
    parts = render_job(job, duration, sample_rate)
    clean, noise = parts["clean"], parts["noise"]
    n = clean.shape[0]
    machine_far = _delay(clean, int(round(mic.machine_delay_s * sample_rate))) * sm.db_to_gain(mic.machine_gain_db)
    env = {k: (tuple(v) if isinstance(v, tuple) else v) for k, v in job.env}
    fresh = sm.factory_background(n, sample_rate, clip_rng(job.seed, job.key, job.split, job.ordinal,
                                                           stream=_FAR_NOISE_STREAM), env)
    level = sm.rms(noise)
    rho = mic.noise_coherence
    background_far = rho * _delay(noise, int(round(mic.noise_delay_s * sample_rate))) \
        + np.sqrt(1.0 - rho ** 2) * fresh * level / max(sm.rms(fresh), 1e-12)
    far = machine_far + background_far * sm.db_to_gain(mic.noise_gain_db)
    return np.stack([clean + noise, far], axis=1)


def _write_job(args) -> str:
    out_root, job, duration, mic = args
    stereo = render_two_channel(job, duration, mic)
    path = Path(out_root) / job.relpath
    sf.write(str(path), to_pcm16(stereo), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return job.relpath


def expected_two_channel_manifest(profile: str, seed: int = 0, names: Sequence[str] | None = None,
                                  machines: Sequence[str] | None = None, variant: str | None = None) -> dict:
    """The manifest of a finished two-channel generation (the mono one's, no supplemental clips,
    plus the layout, the channel roles, each type's clip length and microphone set-up)."""
    manifest = expected_manifest(profile, seed, names, machines, variant)
    sizes = dict(manifest["profile_sizes"], supplemental_clean=0, supplemental_noise=0)
    durations = machine_durations(profile, list(manifest["names"]))
    manifest.update({
        "profile_sizes": sizes,
        "counts": {name: {"train": c["train"], "test": c["test"]} for name, c in manifest["counts"].items()},
        "layout": "dcase2026", "channels": ["near", "far"], "two_channel_version": TWO_CHANNEL_VERSION,
        "durations_s": {manifest["names"][k]: d for k, d in durations.items()},
        "microphones": {manifest["names"][k]: asdict(far_microphone(seed, k)) for k in manifest["names"]},
    })
    return manifest


def generate_two_channel_dataset(out: str | os.PathLike, profile: str = "smoke", seed: int = 0, *,
                                 names: Sequence[str] | None = None, machines: Sequence[str] | None = None,
                                 workers: int = 2, progress: bool = True, variant: str | None = None) -> Path:
    """Write a two-channel root into ``out`` (must be empty or absent); prefer
    :func:`ensure_two_channel_dataset`, which is atomic. Arguments as ``generate_dataset``."""
    out = Path(out)
    manifest = expected_two_channel_manifest(profile, seed, names, machines, variant)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output folder {out} is not empty")
    prof = replace(get_profile(profile), supplemental_clean=0, supplemental_noise=0)
    durations = machine_durations(profile, list(manifest["names"]))
    args = []
    for key, name in manifest["names"].items():
        mic = far_microphone(seed, key)
        for job in plan_machine(key, name, prof, seed, manifest["variant"]):
            (out / job.relpath).parent.mkdir(parents=True, exist_ok=True)
            args.append((str(out), job, durations[key], mic))
    write_all(_write_job, args, f"synth {profile} (two-channel)", workers, progress)
    _write_tables(out, [a[1] for a in args])
    (out / "README.md").write_text(_readme(manifest))
    write_layout_marker(out)
    (out / "synth_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def _readme(manifest: dict) -> str:

    lines = [
        "# Synthetic DCASE 2026-style root: two channels (near, far)", "",
        "**Synthetic data.** Every WAV is two-channel, 16 kHz, 16-bit: channel 0 the microphone near the machine,"
        " channel 1 the far one, as in DCASE 2026 Task 2. Near = the mono generator's clip; far = the same"
        " machine delayed and attenuated by the longer path, plus the same factory, louder (module"
        " `asd_utils.synth.two_channel`). There is no `supplemental/` folder (the 2026 layout has none).", "",
        "| machine | clip length (s) | near (m) | far (m) | machine at far (dB) | delay (ms) | factory at far (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, mic in manifest["microphones"].items():
        fm = FarMicrophone(**mic)
        lines.append(f"| {name} | {manifest['durations_s'][name]:g} | {fm.near_m:g} | {fm.far_m:g} | "
                     f"{fm.machine_gain_db:+.1f} | {1000 * fm.machine_delay_s:.1f} | {fm.noise_gain_db:+.1f} |")
    lines += ["", "The description of the mono clips (channel 0) follows.", "", dataset_readme(manifest)]
    return "\n".join(lines) + "\n"


def default_two_channel_root(profile: str) -> Path:
    """``data/synth_<profile>_dcase2026`` (its name also marks it as a 2026 root)."""

    return paths.data_dir(f"synth_{profile}_dcase2026", create=False)


def ensure_two_channel_dataset(profile: str = "smoke", root: str | os.PathLike | None = None, seed: int = 0, *,
                               names: Sequence[str] | None = None, machines: Sequence[str] | None = None,
                               workers: int = 2, progress: bool = True, variant: str | None = None) -> Path:
    """The two-channel root, generated when missing or stale (reuse, atomic rename and locking as
    :func:`asd_utils.synth.ensure_dataset`; ``variant`` as there)."""
    root = Path(root) if root is not None else default_two_channel_root(profile)
    return ensure_generated(root, expected_two_channel_manifest(profile, seed, names, machines, variant),
                            lambda tmp: generate_two_channel_dataset(tmp, profile, seed, names=names,
                                                                     machines=machines, workers=workers,
                                                                     progress=progress, variant=variant))
