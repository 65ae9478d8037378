"""Plan, render and write the synthetic DCASE-format dataset.

Layout written under ``OUT`` (DCASE 2025 Task 2 development set conventions)::

    OUT/dev_data/raw/<machine>/train/section_00_<source|target>_train_normal_<nnnn>_<attrs>.wav
    OUT/dev_data/raw/<machine>/test/section_00_<source|target>_test_<normal|anomaly>_<nnnn>_<attrs>.wav
    OUT/dev_data/raw/<machine>/supplemental/section_00_source_supplemental_<clean|noise>_<nnnn>_<attrs>.wav
    OUT/dev_data/raw/<machine>/attributes_00.csv
    OUT/ground_truth_attributes.csv   true attributes of the types that hide them (noAttribute)
    OUT/synth_metadata.csv            every clip's recipe: anomaly kind, severity, SNR, hall
    OUT/README.md                     what each type, attribute, shift and anomaly is
    OUT/synth_manifest.json           generator version, profile, seed, names, counts

Determinism: each clip's recipe and audio come from a random generator seeded by
``(seed, machine type, split, index)`` alone, so the output is byte-identical for a given seed
whatever the number of worker processes or the order in which clips are rendered.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import re
import shutil
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from asd_utils import paths
from asd_utils.storage.atomic import file_lock
from asd_utils.synth import realistic
from asd_utils.synth import sound_models as sm
from asd_utils.synth.machines import MACHINE_TYPES, get_machine
from asd_utils.synth.readme import write_readme

GENERATOR_VERSION = "1.1.0"  # 1.1: one supplemental kind per type; mixed clip lengths
SAMPLE_RATE = 16000
SECTION = "00"
LEVEL_DBFS = -26.0  # RMS level of a mixed clip before its random gain jitter
# "envelope": each type's own anomalies colouring the clip, +-2 dB levels (the original world);
# "realistic": intermittent general faults, rooms, low SNRs, level-normalised clips (realistic.py),
# the default: its realism statistics and the autoencoder's scores are the nearer to real DCASE
# recordings (papers/synthetic_realism.md)
VARIANTS: tuple[str, ...] = ("envelope", "realistic")
DEFAULT_VARIANT = "realistic"
VARIANT_ENV = "ASD_SYNTH_VARIANT"  # a run's choice (runner --synth-variant), inherited by its kernels

_SPLIT_CODE = {"train": 1, "test": 2, "supplemental": 3}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


@dataclass(frozen=True)
class Profile:
    """Sizes of one dataset profile (counts are per machine type)."""

    duration: float          # clip length (s)
    train_source: int
    train_target: int
    test_per_cell: int       # per (source|target) x (normal|anomaly)
    supplemental_clean: int
    supplemental_noise: int
    # mixed clip lengths (s): () = every clip lasts `duration`; else each type's training and
    # supplemental clips take one of them (from its name) and its test clips cycle through all
    durations: tuple[float, ...] = ()


# default: the test set of a DCASE development machine type (50 clips per domain and label, as in
# DCASE 2023-2025), so that the realism statistics, AUCs and intervals are read at the clip count
# of the real references; the training set and clip length stay small for time.
PROFILES: dict[str, Profile] = {
    "smoke": Profile(2.0, 12, 4, 4, 2, 2, durations=(1.5, 2.0, 3.0)),
    "default": Profile(5.0, 160, 8, 50, 10, 10),
    "full": Profile(10.0, 990, 10, 50, 50, 50),
}


def get_profile(profile: str) -> Profile:
    if profile not in PROFILES:
        raise ValueError(f"unknown synthetic dataset profile {profile!r}; expected one of {', '.join(PROFILES)}")
    return PROFILES[profile]


@dataclass(frozen=True)
class ClipJob:
    """Everything needed to render one clip (picklable, cheap)."""

    key: str                 # canonical machine type
    machine: str             # folder name (renamed with --names)
    split: str
    domain: str
    label: str               # normal | anomaly | clean | noise
    ordinal: int             # index within the split, part of the RNG seed
    clip_id: int             # 4-digit id in the file name
    attrs: tuple             # ((key, value), ...)
    anomaly: str | None
    severity: float
    snr_db: float
    gain_db: float
    env: tuple               # background parameters ((key, value), ...)
    hall: str
    hidden: bool
    seed: int
    variant: str = "envelope"

    @property
    def attribute_string(self) -> str:
        return "_".join(f"{k}_{v}" for k, v in self.attrs)

    @property
    def file_name(self) -> str:
        attrs = "noAttribute" if self.hidden else self.attribute_string
        return f"section_{SECTION}_{self.domain}_{self.split}_{self.label}_{self.clip_id:04d}_{attrs}.wav"

    @property
    def relpath(self) -> str:
        return f"dev_data/raw/{self.machine}/{self.split}/{self.file_name}"


def _type_code(key: str) -> int:
    return zlib.crc32(key.encode("utf-8"))


def clip_rng(seed: int, key: str, split: str, ordinal: int, stream: int = 0) -> np.random.Generator:
    """Random generator of one clip, derived from (seed, machine type, split, index, stream)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _type_code(key), _SPLIT_CODE[split],
                                                         int(ordinal), int(stream)]))


def _check_names(keys: Sequence[str], names: Sequence[str] | None) -> list[str]:
    if names is None:
        return list(keys)
    names = [str(n).strip() for n in names]
    if len(names) != len(keys):
        raise ValueError(f"--names needs {len(keys)} names (for {', '.join(keys)}), got {len(names)}: {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"--names must be unique, got {names}")
    for n in names:
        if not _NAME_RE.match(n):
            raise ValueError(f"machine name {n!r} must be letters, digits and '-' only")
    return names


def supplemental_kind(key: str) -> str:
    """The one kind of supplemental clip a machine type ships, ``clean`` or ``noise``, as in DCASE
    2025; fixed by a hash of the type's name, so a renamed or unseen type gets one too."""
    return "clean" if _type_code(key) % 2 == 0 else "noise"


def clip_duration(profile: Profile, job: ClipJob) -> float:
    """Length of one clip in seconds (:attr:`Profile.durations`): a type's training and
    supplemental clips share one length; its test clips cycle through all of them by ordinal, so
    every test cell (domain x label) mixes lengths and a length says nothing of the label."""
    if not profile.durations:
        return profile.duration
    base = _type_code(job.key) % len(profile.durations)
    offset = job.ordinal if job.split == "test" else 0
    return float(profile.durations[(base + offset) % len(profile.durations)])


def check_variant(variant: str | None) -> str:
    """``variant`` (None: ``$ASD_SYNTH_VARIANT`` when set, else :data:`DEFAULT_VARIANT`), validated
    against :data:`VARIANTS`."""
    if variant is None:
        variant = os.environ.get(VARIANT_ENV, "").strip() or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise ValueError(f"unknown synthetic dataset variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return variant


def plan_machine(key: str, name: str, profile: Profile, seed: int, variant: str | None = None) -> list[ClipJob]:
    """All clip jobs of one machine type, in a fixed order (``variant``: see :data:`VARIANTS`)."""
    model = get_machine(key)
    cells: list[tuple[str, str, str]] = []
    cells += [("train", "source", "normal")] * profile.train_source
    cells += [("train", "target", "normal")] * profile.train_target
    for domain in ("source", "target"):
        for label in ("normal", "anomaly"):
            cells += [("test", domain, label)] * profile.test_per_cell
    # DCASE 2025: a type ships supplemental clips of one kind only
    cells += [("supplemental", "source", supplemental_kind(key))] * (profile.supplemental_clean
                                                                     + profile.supplemental_noise)
    id_rng = clip_rng(seed, key, "train", 10**6)
    ids = id_rng.choice(10000, size=len(cells), replace=False)
    jobs = []
    ordinals = {s: 0 for s in _SPLIT_CODE}
    for (split, domain, label), clip_id in zip(cells, ids):
        ordinal = ordinals[split]
        ordinals[split] += 1
        rng = clip_rng(seed, key, split, ordinal)
        attrs = model.sample_attributes(domain, rng)
        anomaly, severity = model.sample_anomaly(rng)
        if label != "anomaly":
            anomaly, severity = None, 0.0
        env = model.background_env(domain, rng)
        env_items = tuple((k, tuple(v) if isinstance(v, (list, tuple)) else float(v)) for k, v in env.items())
        jobs.append(ClipJob(
            key=key, machine=name, split=split, domain=domain, label=label, ordinal=ordinal,
            clip_id=int(clip_id), attrs=tuple(attrs.items()), anomaly=anomaly, severity=round(severity, 4),
            snr_db=round(model.sample_snr(domain, rng), 3), gain_db=round(float(rng.uniform(-2.0, 2.0)), 3),
            env=env_items, hall=model.halls[domain], hidden=model.hidden, seed=int(seed)))
    if check_variant(variant) == "realistic":  # its own random stream: the plan above is unchanged
        signature = realistic.fault_signature(clip_rng(seed, key, "train", 10**6, stream=5))
        jobs = [realistic.adapt_job(j, clip_rng(seed, key, j.split, j.ordinal, stream=4), signature) for j in jobs]
    return jobs


def render_job(job: ClipJob, duration: float, sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Render one clip; returns ``{'clean', 'noise', 'mix'}`` float64 arrays of equal length.

    The parts are scaled so that ``mix = clean + noise`` at the clip's final level.
    """
    model = get_machine(job.key)
    n = int(round(duration * sample_rate))
    rng_machine = clip_rng(job.seed, job.key, job.split, job.ordinal, stream=1)
    rng_noise = clip_rng(job.seed, job.key, job.split, job.ordinal, stream=2)
    if job.variant == "realistic":
        rng_fault = clip_rng(job.seed, job.key, job.split, job.ordinal, stream=3)
        clean, noise = realistic.render_parts(job, n, sample_rate, rng_machine, rng_noise, rng_fault)
    else:
        clean = model.render(dict(job.attrs), job.anomaly, job.severity, n, sample_rate, rng_machine)
        env = {k: (tuple(v) if isinstance(v, tuple) else v) for k, v in job.env}
        noise = sm.factory_background(n, sample_rate, rng_noise, env) * sm.db_to_gain(-job.snr_db)
    scale = sm.db_to_gain(LEVEL_DBFS + job.gain_db) / sm.rms(clean + noise)
    clean, noise = clean * scale, noise * scale
    return {"clean": clean, "noise": noise, "mix": clean + noise}


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float waveform in [-1, 1] -> int16 PCM (clipped, rounded)."""
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def _write_job(args) -> str:
    out_root, job, duration = args
    parts = render_job(job, duration)
    wave = parts["mix"] if job.split != "supplemental" else parts[job.label]
    path = Path(out_root) / job.relpath
    sf.write(str(path), to_pcm16(wave), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return job.relpath


def expected_manifest(profile: str, seed: int = 0, names: Sequence[str] | None = None,
                      machines: Sequence[str] | None = None, variant: str | None = None) -> dict:
    """The manifest a finished generation with these arguments writes (used to validate reuse)."""
    prof = get_profile(profile)
    keys = list(machines) if machines is not None else list(MACHINE_TYPES)
    for k in keys:
        get_machine(k)
    names = _check_names(keys, names)
    per = {"train": prof.train_source + prof.train_target, "test": 4 * prof.test_per_cell,
           "supplemental": prof.supplemental_clean + prof.supplemental_noise}
    manifest = {
        "generator": "asd_utils.synth", "generator_version": GENERATOR_VERSION, "profile": profile,
        "seed": int(seed), "sample_rate": SAMPLE_RATE, "duration_s": prof.duration,
        "names": dict(zip(keys, names)), "profile_sizes": {**asdict(prof), "durations": list(prof.durations)},
        "counts": {name: dict(per) for name in names}, "synthetic": True, "variant": check_variant(variant),
    }
    if manifest["variant"] == "realistic":  # the envelope world's manifest stays as it was
        manifest["realistic_revision"] = realistic.REVISION
    return manifest


def _csv_text(rows: list[list], header: list[str] | None = None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _write_tables(out: Path, jobs: list[ClipJob]) -> None:
    by_machine: dict[str, list[ClipJob]] = {}
    for job in jobs:
        by_machine.setdefault(job.machine, []).append(job)
    for machine, mjobs in by_machine.items():
        n_attr = max(len(j.attrs) for j in mjobs)
        header = ["file_name"] + [c for i in range(1, (1 if mjobs[0].hidden else n_attr) + 1)
                                  for c in (f"d{i}p", f"d{i}v")]
        rows = []
        for j in mjobs:
            fname = f"{machine}/{j.split}/{j.file_name}"
            rows.append([fname, "noAttribute", ""] if j.hidden else [fname] + [x for kv in j.attrs for x in kv])
        (out / "dev_data" / "raw" / machine / f"attributes_{SECTION}.csv").write_text(_csv_text(rows, header))
    gt = [[j.machine, j.file_name, j.attribute_string] for j in jobs if j.hidden]
    (out / "ground_truth_attributes.csv").write_text(_csv_text(gt, ["machine", "file_name", "attributes"]))
    meta = [[j.machine, j.key, j.split, j.file_name, j.domain, j.label, j.anomaly or "", j.severity,
             j.snr_db, j.gain_db, j.hall, j.attribute_string] for j in jobs]
    (out / "synth_metadata.csv").write_text(_csv_text(
        meta, ["machine", "machine_type", "split", "file_name", "domain", "label", "anomaly_kind", "severity",
               "snr_db", "gain_db", "hall", "attributes"]))


def generate_dataset(out: str | os.PathLike, profile: str = "smoke", seed: int = 0, *,
                     names: Sequence[str] | None = None, machines: Sequence[str] | None = None,
                     workers: int = 2, progress: bool = True, variant: str | None = None) -> Path:
    """Write the synthetic dataset into folder ``out`` (created; must be empty or absent).

    ``names`` renames the machine types (same order as ``machines``, default
    :data:`MACHINE_TYPES`); ``machines`` restricts generation to some types. ``workers`` > 1 renders
    in that many processes. Returns ``out``. Prefer :func:`ensure_dataset`, which is atomic.
    """
    out = Path(out)
    manifest = expected_manifest(profile, seed, names, machines, variant)
    prof = get_profile(profile)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output folder {out} is not empty")
    jobs = [job for key, name in manifest["names"].items()
            for job in plan_machine(key, name, prof, seed, manifest["variant"])]
    for job in jobs:
        (out / job.relpath).parent.mkdir(parents=True, exist_ok=True)
    write_all(_write_job, [(str(out), job, clip_duration(prof, job)) for job in jobs], f"synth {profile}", workers,
              progress)
    _write_tables(out, jobs)

    write_readme(out, manifest)
    (out / "synth_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def write_all(write_job, args: list, desc: str, workers: int, progress: bool) -> None:
    """``write_job(a)`` for every ``a`` of ``args``, in ``workers`` processes when > 1, with a bar."""
    bar = _progress(len(args), desc, progress)
    if workers > 1:
        with multiprocessing.get_context().Pool(workers) as pool:
            for _ in pool.imap_unordered(write_job, args, chunksize=8):
                bar.update(1)
    else:
        for a in args:
            write_job(a)
            bar.update(1)
    bar.close()


def _progress(total: int, desc: str, enabled: bool):
    return tqdm(total=total, desc=desc, unit="clip", disable=not enabled)


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The manifest of a generated dataset, or None when absent or unreadable."""
    path = Path(root) / "synth_manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def default_root(profile: str, variant: str | None = None) -> Path:
    """Default folder of a profile's dataset: ``asd_utils.paths.synthetic_root`` (``full``:
    data/synth_full); a variant other than :data:`DEFAULT_VARIANT` gets its own folder
    (``data/synth_<profile>_<variant>``), so switching back and forth regenerates nothing."""

    root = paths.data_dir("synth_full", create=False) if profile == "full" else paths.synthetic_root(profile)
    variant = check_variant(variant)
    return root if variant == DEFAULT_VARIANT else root.with_name(f"{root.name}_{variant}")


def ensure_dataset(profile: str = "default", root: str | os.PathLike | None = None, seed: int = 0, *,
                   names: Sequence[str] | None = None, machines: Sequence[str] | None = None,
                   workers: int = 2, progress: bool = True, variant: str | None = None) -> Path:
    """Return the folder of the synthetic dataset, generating it when missing or stale.

    ``root`` defaults to ``asd_utils.paths.synthetic_root(profile)``. The dataset is reused when its
    ``synth_manifest.json`` equals the expected one (generator version, profile, seed, names,
    counts, variant); otherwise it is generated into a temporary sibling folder and renamed into place, so
    an interrupted generation is never mistaken for a finished one. A lock file next to ``root``
    serialises concurrent callers.
    """
    variant = check_variant(variant)
    root = Path(root) if root is not None else default_root(profile, variant)
    return ensure_generated(root, expected_manifest(profile, seed, names, machines, variant),
                            lambda tmp: generate_dataset(tmp, profile, seed, names=names, machines=machines,
                                                         workers=workers, progress=progress, variant=variant))


def ensure_generated(root: Path, expected: dict, generate) -> Path:
    """``root`` when its manifest equals ``expected``; else ``generate(tmp)`` into a temporary sibling
    renamed into place, under a lock next to ``root`` (see :func:`ensure_dataset`)."""
    if read_manifest(root) == expected:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(root.parent / f".{root.name}.lock"):
        if read_manifest(root) == expected:  # another process finished it meanwhile
            return root
        for stale in root.parent.glob(f".{root.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root.parent / f".{root.name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            generate(tmp)
            old = None
            if root.exists() or root.is_symlink():
                old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(root, old)
            os.rename(tmp, root)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root
