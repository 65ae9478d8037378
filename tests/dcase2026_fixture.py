"""A hand-made tiny DCASE 2026 Task 2 root with the real layout and naming, for the tests.

``make_dcase2026_root(tmp_path)`` writes ``<tmp>/dcase2026t2/`` as the official baseline lays the
2026 data out (``data/dcase2026t2/{dev,eval}_data/raw/<machine>/...``):

- ``dev_data/raw/ToyCarEmu/``: train 4 source + 1 target normals, test 2 clips per
  source/target x normal/anomaly, names ``section_00_<domain>_<split>_<label>_<nnnn>_<attrs>.wav``,
  and ``attributes_00.csv``;
- ``eval_data/raw/ToyDrone/``: train 4 + 1 (attributes hidden, ``noAttribute``) and a blinded test
  folder ``section_00_0000.wav`` ... ``section_00_0007.wav``, whose labels and domains are in the
  evaluator's ``ground_truth_data/`` and ``ground_truth_domain/`` CSVs at the root.

Every WAV is 1 s, 16 kHz, two channels: channel 0 near = a 440 Hz machine tone + noise, channel 1
far = the tone delayed by 5 ms at a quarter of the amplitude + louder noise. An anomalous clip's
tone carries a 3rd harmonic. Attribute values are illustrative (the 2026 dev set's are not copied).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
DEV_MACHINE, EVAL_MACHINE = "ToyCarEmu", "ToyDrone"
DEV_ATTRS = {"source": "car_A1_spd_28V", "target": "car_B2_spd_31V"}
# blinded eval test clips: (label, domain) of section_00_0000.wav ... section_00_0007.wav
EVAL_TRUTH = [("anomaly", "source"), ("normal", "target"), ("normal", "source"), ("anomaly", "target"),
              ("normal", "source"), ("anomaly", "source"), ("normal", "target"), ("anomaly", "target")]


def stereo_clip(name: str, anomalous: bool, seconds: float = 1.0) -> np.ndarray:
    """(samples, 2) float32 near/far clip, deterministic in ``name``."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.2 * np.sin(2 * np.pi * 440 * t)
    if anomalous:
        tone = tone + 0.08 * np.sin(2 * np.pi * 1320 * t)
    far_tone = np.concatenate([np.zeros(80), tone[:-80]]) * 0.25
    near = tone + 0.02 * rng.standard_normal(t.size)
    far = far_tone + 0.04 * rng.standard_normal(t.size)
    return np.stack([near, far], axis=1).astype(np.float32)


def _write(path: Path, anomalous: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), stereo_clip(path.name, anomalous), SR, subtype="PCM_16")


def make_dcase2026_root(base: Path) -> Path:
    """Write the tiny root under ``base`` and return ``base / 'dcase2026t2'``."""
    root = Path(base) / "dcase2026t2"
    dev = root / "dev_data" / "raw" / DEV_MACHINE
    rows = ["file_name,d1p,d1v,d2p,d2v"]
    clip_id = 0
    for split, cells in (("train", [("source", "normal", 4), ("target", "normal", 1)]),
                         ("test", [(d, lab, 2) for d in ("source", "target") for lab in ("normal", "anomaly")])):
        for domain, label, count in cells:
            for _ in range(count):
                attrs = DEV_ATTRS[domain]
                name = f"section_00_{domain}_{split}_{label}_{clip_id:04d}_{attrs}.wav"
                _write(dev / split / name, label == "anomaly")
                car, spd = attrs.split("_")[1], attrs.split("_")[3]
                rows.append(f"{DEV_MACHINE}/{split}/{name},car,{car},spd,{spd}")
                clip_id += 1
    (dev / "attributes_00.csv").write_text("\n".join(rows) + "\n")
    ev = root / "eval_data" / "raw" / EVAL_MACHINE
    for i, domain in enumerate(["source"] * 4 + ["target"]):
        _write(ev / "train" / f"section_00_{domain}_train_normal_{i:04d}_noAttribute.wav", False)
    truth, domains = [], []
    for i, (label, domain) in enumerate(EVAL_TRUTH):
        name = f"section_00_{i:04d}.wav"
        _write(ev / "test" / name, label == "anomaly")
        truth.append(f"{name},{int(label == 'anomaly')}")
        domains.append(f"{name},{int(domain == 'target')}")
    for folder, lines in (("ground_truth_data", truth), ("ground_truth_domain", domains)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"ground_truth_{EVAL_MACHINE}_section_00_test.csv").write_text("\n".join(lines) + "\n")
    return root
