"""Tests of the synthetic DCASE-format dataset (asd_utils.synth)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asd_utils.synth import (
    MACHINE_TYPES,
    PROFILES,
    bearing_frequencies,
    ensure_dataset,
    expected_manifest,
    generate_dataset,
    get_machine,
    read_manifest,
)
from asd_utils.synth import sound_models as sm
from asd_utils.synth.__main__ import main as cli_main
from asd_utils.synth.generate import clip_duration, get_profile, plan_machine, supplemental_kind

NAME_RE = re.compile(
    r"^section_(?P<section>\d{2})_(?P<domain>source|target)_(?P<split>train|test)_(?P<label>normal|anomaly)"
    r"_(?P<idx>\d{4})_(?P<attrs>noAttribute|(?:[A-Za-z0-9.-]+_[A-Za-z0-9.-]+)(?:_[A-Za-z0-9.-]+_[A-Za-z0-9.-]+)*)\.wav$"
)
SUPP_RE = re.compile(r"^section_00_source_supplemental_(?P<kind>clean|noise)_(?P<idx>\d{4})_(?P<attrs>\S+)\.wav$")
HIDDEN = {"bearing", "slider", "ToyTrain"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "smoke"
    generate_dataset(out, "smoke", seed=0, workers=2, progress=False)
    return out


def test_layout_counts_and_names(smoke_root):
    prof = PROFILES["smoke"]
    raw = smoke_root / "dev_data" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(MACHINE_TYPES)
    for machine in MACHINE_TYPES:
        ids = []
        cells = {}
        for split in ("train", "test"):
            for wav in (raw / machine / split).glob("*.wav"):
                m = NAME_RE.match(wav.name)
                assert m, wav.name
                assert m["split"] == split and m["section"] == "00"
                assert (m["attrs"] == "noAttribute") == (machine in HIDDEN), wav.name
                ids.append(int(m["idx"]))
                key = (split, m["domain"], m["label"])
                cells[key] = cells.get(key, 0) + 1
        assert cells[("train", "source", "normal")] == prof.train_source
        assert cells[("train", "target", "normal")] == prof.train_target
        assert ("train", "source", "anomaly") not in cells
        for d in ("source", "target"):
            for lab in ("normal", "anomaly"):
                assert cells[("test", d, lab)] == prof.test_per_cell
        supp = list((raw / machine / "supplemental").glob("*.wav"))
        kinds = [SUPP_RE.match(p.name)["kind"] for p in supp]
        # one kind per type, as DCASE 2025 (asd_utils.synth.generate.supplemental_kind)
        assert kinds == [supplemental_kind(machine)] * (prof.supplemental_clean + prof.supplemental_noise)
        ids += [int(SUPP_RE.match(p.name)["idx"]) for p in supp]
        assert len(set(ids)) == len(ids)  # unique ids ...
        assert sorted(ids) != list(range(min(ids), min(ids) + len(ids)))  # ... and not contiguous
        # attributes_00.csv lists every clip as <machine>/<split>/<name>
        with open(raw / machine / "attributes_00.csv") as handle:
            rows = list(csv.reader(handle))
        assert rows[0][:3] == ["file_name", "d1p", "d1v"]
        listed = {r[0] for r in rows[1:]}
        on_disk = {f"{machine}/{p.parent.name}/{p.name}" for p in (raw / machine).glob("*/*.wav")}
        assert listed == on_disk
        if machine in HIDDEN:
            assert all(r[1] == "noAttribute" for r in rows[1:])
        else:
            for r in rows[1:]:
                name = Path(r[0]).name
                assert "_".join(r[1:]) == (NAME_RE.match(name) or SUPP_RE.match(name))["attrs"]


def test_audio_format_and_level(smoke_root):
    wav = next((smoke_root / "dev_data" / "raw" / "fan" / "train").glob("*.wav"))
    info = sf.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
    assert info.frames * 1.0 / 16000 in PROFILES["smoke"].durations
    x, _ = sf.read(str(wav))
    assert 0.01 < np.sqrt(np.mean(x**2)) < 0.2 and np.max(np.abs(x)) < 1.0


def test_hidden_attributes_ground_truth(smoke_root):
    with open(smoke_root / "ground_truth_attributes.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["machine"] for r in rows} == HIDDEN
    for r in rows:
        assert r["file_name"].endswith("_noAttribute.wav") and r["attributes"] != "noAttribute"
        split = r["file_name"].split("_")[3]
        assert (smoke_root / "dev_data" / "raw" / r["machine"] / split / r["file_name"]).exists()
    bearing = {r["attributes"] for r in rows if r["machine"] == "bearing"}
    assert all(re.fullmatch(r"vel_\d+_loc_[AB]", a) for a in bearing)
    manifest = read_manifest(smoke_root)
    assert manifest == expected_manifest("smoke", 0)
    assert "synthetic" in (smoke_root / "README.md").read_text().lower()


def test_deterministic_and_independent_of_workers(smoke_root, tmp_path):
    """Same seed -> byte-identical WAVs, whatever the worker count or the subset of types."""
    other = generate_dataset(tmp_path / "again", "smoke", seed=0, machines=["bearing", "valve"], workers=1,
                             progress=False)
    for machine in ("bearing", "valve"):
        a = {p.relative_to(smoke_root): _sha(p) for p in (smoke_root / "dev_data/raw" / machine).rglob("*.wav")}
        b = {p.relative_to(other): _sha(p) for p in (other / "dev_data/raw" / machine).rglob("*.wav")}
        assert a == b and len(a) > 0
    third = generate_dataset(tmp_path / "seed1", "smoke", seed=1, machines=["valve"], workers=1, progress=False)
    assert {p.name for p in (third / "dev_data/raw/valve/train").glob("*.wav")} != {
        p.name for p in (smoke_root / "dev_data/raw/valve/train").glob("*.wav")}


def test_discover_reads_the_dataset(smoke_root):
    data = pytest.importorskip("asd_utils.data")
    index = data.discover(smoke_root)
    assert set(index["machine"]) == set(MACHINE_TYPES)
    supp = index[index["split"] == "supplemental"]
    assert set(supp["supplemental_kind"]) == {"clean", "noise"}


def test_cli_names_rename(tmp_path, capsys):
    out = tmp_path / "renamed"
    assert cli_main([str(out), "--profile", "smoke", "--types", "fan,valve", "--names", "AirBlower,Pump-7",
                     "--workers", "1", "--quiet"]) == 0
    raw = out / "dev_data" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["AirBlower", "Pump-7"]
    assert (raw / "AirBlower" / "attributes_00.csv").read_text().splitlines()[1].startswith("AirBlower/")
    assert read_manifest(out)["names"] == {"fan": "AirBlower", "valve": "Pump-7"}
    assert "AirBlower" in (out / "README.md").read_text()
    with pytest.raises(SystemExit):
        cli_main([str(tmp_path / "bad"), "--profile", "smoke", "--names", "a,b"])


def test_ensure_dataset_reuses_and_regenerates(tmp_path):
    root = tmp_path / "data" / "synth"
    kw = {"machines": ["valve"], "workers": 1, "progress": False}
    assert ensure_dataset("smoke", root, 0, **kw) == root
    marker = root / "marker.txt"
    marker.write_text("kept")
    ensure_dataset("smoke", root, 0, **kw)
    assert marker.exists()  # manifest matches: reused
    ensure_dataset("smoke", root, 1, **kw)
    assert not marker.exists() and read_manifest(root)["seed"] == 1  # seed changed: regenerated
    marker.write_text("kept")
    manifest = json.loads((root / "synth_manifest.json").read_text())
    manifest["generator_version"] = "0.0.0"
    (root / "synth_manifest.json").write_text(json.dumps(manifest))
    ensure_dataset("smoke", root, 1, **kw)
    assert not marker.exists() and read_manifest(root) == expected_manifest("smoke", 1, machines=["valve"])
    leftovers = [p.name for p in root.parent.iterdir() if p.name.startswith(".synth.") and "lock" not in p.name]
    assert leftovers == []  # no partial or old folder left behind


def test_bearing_outer_race_envelope_peak_at_bpfo():
    sr, n = 16000, 32000
    model = get_machine("bearing")
    attrs = {"vel": "10", "loc": "A"}
    x = model.render(attrs, "outer_race", 1.0, n, sr, np.random.default_rng(3))
    bpfo = bearing_frequencies(model.shaft_hz(attrs))["BPFO"]
    freqs, mag = sm.envelope_spectrum(x, sr, 2000.0, 7000.0)
    band = (freqs > 20) & (freqs < 300)
    peak = freqs[band][np.argmax(mag[band])]
    assert abs(peak - bpfo) < 0.03 * bpfo, (peak, bpfo)
    normal = model.render(attrs, None, 0.0, n, sr, np.random.default_rng(3))
    f2, m2 = sm.envelope_spectrum(normal, sr, 2000.0, 7000.0)
    near = np.abs(freqs - bpfo) < 2.0
    assert mag[near].max() > 3 * m2[near].max()


def test_fan_blade_pass_frequency_in_spectrum():
    sr, n = 16000, 32000
    x = get_machine("fan").render({"mdl": "A", "spd": "1800"}, None, 0.0, n, sr, np.random.default_rng(0))
    mag = np.abs(np.fft.rfft(x * np.hanning(n)))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    bpf = 5 * 1800 / 60.0  # 5 blades x 30 Hz = 150 Hz
    band = (freqs > 60) & (freqs < 1000)
    peak = freqs[band][np.argmax(mag[band])]
    assert abs(peak - bpf) < 3.0, peak


def test_anomalies_keep_the_level_and_change_the_sound():
    sr, n = 16000, 16000
    for key in MACHINE_TYPES:
        model = get_machine(key)
        attrs = model.sample_attributes("source", np.random.default_rng(0))
        normal = model.render(attrs, None, 0.0, n, sr, np.random.default_rng(1))
        assert np.isclose(sm.rms(normal), 1.0)
        for kind in model.anomalies:
            anomalous = model.render(attrs, kind, 1.0, n, sr, np.random.default_rng(1))
            assert np.isclose(sm.rms(anomalous), 1.0) and not np.allclose(anomalous, normal), (key, kind)
        with pytest.raises(ValueError, match="unknown anomaly"):
            model.render(attrs, "nonsense", 1.0, n, sr, np.random.default_rng(1))


def test_one_supplemental_kind_per_type_and_mixed_lengths_in_smoke():
    """DCASE 2025: a type ships clean clips or noise-only clips, never both; the smoke profile holds
    both kinds across its types and clips of several lengths, mixed within every test cell."""
    prof = PROFILES["smoke"]
    kinds = {key: supplemental_kind(key) for key in MACHINE_TYPES}
    assert set(kinds.values()) == {"clean", "noise"}
    assert supplemental_kind("AnUnseenType") in ("clean", "noise")
    lengths_seen = set()
    for key in MACHINE_TYPES:
        jobs = plan_machine(key, key, prof, seed=0)
        assert {j.label for j in jobs if j.split == "supplemental"} == {kinds[key]}
        train = {clip_duration(prof, j) for j in jobs if j.split != "test"}
        assert len(train) == 1  # a type's training and supplemental clips share one length
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                cell = {clip_duration(prof, j) for j in jobs
                        if (j.split, j.domain, j.label) == ("test", domain, label)}
                assert len(cell) > 1, (key, domain, label, cell)
        lengths_seen |= {clip_duration(prof, j) for j in jobs}
    assert lengths_seen == set(prof.durations)
    assert not PROFILES["default"].durations  # the default profile keeps its one length


def test_default_test_set_has_the_size_of_a_dcase_development_type():
    """DCASE 2023-2025 development sets hold 50 test clips per domain x label per machine type (200 in
    all); the default profile plans exactly that, balanced over domains and labels, for every type."""
    for machine in ("ToyCar", "valve"):
        jobs = [j for j in plan_machine(machine, machine, get_profile("default"), 0, "realistic") if j.split == "test"]
        cells = {}
        for job in jobs:
            cells[(job.domain, job.label)] = cells.get((job.domain, job.label), 0) + 1
        assert len(jobs) == 200
        assert cells == {(d, lab): 50 for d in ("source", "target") for lab in ("normal", "anomaly")}
