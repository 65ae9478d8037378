"""Realism statistics (asd_utils.synth.realism): each statistic on a hand-built case whose answer
is known, and the command line writing its files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from asd_utils.data import DataError
from asd_utils.features.logmel import log_mel
from asd_utils.synth import realism

SR = 16000


def noise_at_dbfs(rng: np.random.Generator, level_dbfs: float, seconds: float = 2.0) -> np.ndarray:
    """White noise whose RMS is exactly ``level_dbfs`` (0 dBFS = RMS 1.0)."""
    wave = rng.standard_normal(int(seconds * SR))
    return wave / np.sqrt(np.mean(wave**2)) * 10 ** (level_dbfs / 20)


def test_rms_dbfs_of_known_levels_and_spread():
    rng = np.random.default_rng(0)
    levels = np.array([-20.0, -22.0, -24.0])
    feats = realism.clip_features(np.stack([noise_at_dbfs(rng, lv) for lv in levels]))
    np.testing.assert_allclose(feats["rms_dbfs"], levels, atol=1e-4)
    values, _ = realism.group_statistics(feats, np.array([0.0, 0.0, 1.0]), np.array(["source"] * 3, object))
    assert values["rms_dbfs"] == pytest.approx(-22.0, abs=1e-4)
    assert values["rms_spread_db"] == pytest.approx(2.0, abs=1e-4)  # std (ddof 1) of -20, -22, -24
    # a full-scale sine reads -3.01 dBFS
    sine = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)
    assert realism.rms_dbfs(sine[None])[0] == pytest.approx(-3.0103, abs=1e-3)


def test_durations_and_mixed_lengths_keep_the_order(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i, seconds in enumerate([2.0, 1.0, 2.0, 3.0]):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, noise_at_dbfs(rng, -30.0 - i, seconds).astype(np.float32), SR, subtype="FLOAT")
        paths.append(str(path))
    feats = realism.features_of_files(paths, batch_size=1)
    np.testing.assert_allclose(feats["duration_s"], [2.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(feats["rms_dbfs"], [-30.0, -31.0, -32.0, -33.0], atol=1e-3)
    assert feats["logmel_mean"].shape == (4, 128) and feats["modulation"].shape == (4, 40)


def test_band_spread_and_anomaly_and_domain_shift_from_gains():
    # The same noise at known gains: every band level moves by exactly the gain in dB, so the
    # per-band spread is the std of the gains and each shift the difference of the mean gains.
    rng = np.random.default_rng(2)
    base = noise_at_dbfs(rng, -30.0)
    normal_gains = np.array([0.0, 2.0, 4.0, 6.0])  # source: 0, 2; target: 4, 6
    anomaly_gains = np.array([1.0, 3.0])
    gains = np.r_[normal_gains, anomaly_gains]
    waves = np.stack([base * 10 ** (g / 20) for g in gains])
    labels = np.array([0, 0, 0, 0, 1, 1], float)
    domains = np.array(["source", "source", "target", "target", "source", "target"], object)
    feats = realism.clip_features(waves)
    values, notes = realism.band_level_statistics(feats["logmel_mean"], labels, domains)
    assert notes == []
    assert values["band_spread_db"] == pytest.approx(np.std(normal_gains, ddof=1), abs=1e-3)
    assert values["anomaly_shift_db"] == pytest.approx(abs(2.0 - 3.0), abs=1e-3)
    assert values["anomaly_shift_over_spread"] == pytest.approx(1.0 / np.std(normal_gains, ddof=1), abs=1e-3)
    assert values["domain_shift_db"] == pytest.approx(4.0, abs=1e-3)


def test_anomaly_shift_in_one_band():
    # band levels by hand: 128 bands, normals spread in band 0 only; anomalies 6 dB up in band 10
    rng = np.random.default_rng(3)
    normals = np.zeros((20, 128))
    normals[:, 0] = rng.normal(0, 1, 20)
    anomalies = normals.copy()
    anomalies[:, 10] += 6.0
    levels = np.vstack([normals, anomalies])
    labels = np.r_[np.zeros(20), np.ones(20)]
    values, _ = realism.band_level_statistics(levels, labels, np.array(["source"] * 40, object))
    assert values["anomaly_shift_db"] == pytest.approx(6.0 / 128)
    assert values["band_spread_db"] == pytest.approx(np.std(normals[:, 0], ddof=1) / 128)
    assert np.isnan(values["domain_shift_db"])


def test_frame_change_on_hand_built_log_mel():
    alternating = np.tile([0.0, 6.0], 50)[None, None, :].repeat(4, axis=1)  # (1 clip, 4 bands, 100 frames)
    assert realism.frame_change_db(alternating)[0] == pytest.approx(6.0)
    ramp = np.arange(100, dtype=float)[None, None, :] * 0.5
    assert realism.frame_change_db(ramp)[0] == pytest.approx(0.5)
    # on audio: a gain does not change it (log-mel differences cancel the level); a noise whose
    # level jumps by 10 dB every 0.1 s changes more from frame to frame than the same noise steady
    noise = noise_at_dbfs(np.random.default_rng(4), -20.0)
    jumps = np.where(np.floor(np.arange(noise.size) / (0.1 * SR)) % 2 == 0, 1.0, 10 ** (-10 / 20))
    change = realism.clip_features(np.stack([noise, 0.01 * noise, noise * jumps]))["frame_change"]
    assert change[1] == pytest.approx(change[0], abs=1e-3)
    assert change[2] > change[0] + 1.0


def test_modulation_feature_finds_a_known_am_rate():
    rng = np.random.default_rng(5)
    seconds, rate_hz = 10.0, 3.0
    t = np.arange(int(seconds * SR)) / SR
    carrier = rng.standard_normal(t.size)
    modulated = carrier * (1 + 0.9 * np.sin(2 * np.pi * rate_hz * t))
    mel = log_mel(modulated[None].astype(np.float32)).numpy().astype(float)
    freqs, power = realism.modulation_spectrum(mel)
    assert freqs[1] == pytest.approx(realism.FRAME_RATE_HZ / mel.shape[-1])
    peak = freqs[1:][np.argmax(power[0].mean(axis=0)[1:])]
    assert peak == pytest.approx(rate_hz, abs=0.15)
    feats = realism.clip_features(np.stack([modulated, carrier]))["modulation"]
    feats = feats.reshape(2, realism.MODULATION_MEL_GROUPS, -1)
    band = 2  # 2-4 Hz holds 3 Hz
    # in every mel group, the 2-4 Hz band dominates for the modulated clip and is >= 10 dB above the
    # unmodulated clip there; elsewhere the two clips stay within a few dB of each other
    assert np.all(np.argmax(feats[0], axis=1) == band)
    assert np.all(feats[0, :, band] - feats[1, :, band] > 10.0)
    assert np.all(np.abs(feats[0, :, 0] - feats[1, :, 0]) < 6.0)


def test_probes_std_only_anomalies():
    # Anomalies differ only in temporal behaviour: the same level on average in dB (a +-3 dB square
    # wave in 0.5 s steps around it) while normals are steady; every clip has a random level (1 dB
    # std) so the mean over time carries nothing about the label.
    rng = np.random.default_rng(6)
    n, seconds = 30, 2.0
    t = np.arange(int(seconds * SR)) / SR
    square_db = np.where(np.floor(t / 0.5) % 2 == 0, 3.0, -3.0)
    waves, labels = [], []
    for label in (0, 1):
        for _ in range(n):
            wave = noise_at_dbfs(rng, -30.0 + rng.normal(0, 1.0), seconds)
            if label:
                wave = wave * 10 ** (square_db / 20)
            waves.append(wave)
            labels.append(label)
    feats = realism.clip_features(np.stack(waves))
    labels = np.array(labels, float)
    values, notes = realism.group_statistics(feats, labels, np.array(["source"] * len(labels), object))
    assert values["probe_auc_logmel_std"] > 0.95
    assert 0.3 < values["probe_auc_logmel_mean"] < 0.7
    assert values["probe_auc_modulation"] > 0.9
    assert values["anomaly_shift_over_spread"] < 0.5
    assert any("domain shift" in note for note in notes)


def test_probe_auc_separable_and_random():
    rng = np.random.default_rng(7)
    labels = np.r_[np.zeros(25), np.ones(25)]
    separable = rng.normal(size=(50, 4)) + 3.0 * labels[:, None]
    assert realism.probe_auc(separable, labels) > 0.99
    assert 0.25 < realism.probe_auc(rng.normal(size=(50, 4)), labels) < 0.75


def test_probe_rows_empty_with_reason_without_labels():
    rng = np.random.default_rng(8)
    feats = realism.clip_features(np.stack([noise_at_dbfs(rng, -30.0 - i) for i in range(6)]))
    values, notes = realism.group_statistics(feats, np.full(6, np.nan), np.array([None] * 6, object))
    for key in ("probe_auc_logmel_mean", "probe_auc_logmel_std", "probe_auc_logmel_both",
                "probe_auc_modulation", "anomaly_shift_db", "domain_shift_db"):
        assert np.isnan(values[key]), key
    assert values["rms_spread_db"] == pytest.approx(np.std(-30.0 - np.arange(6), ddof=1), abs=1e-3)
    assert any("probe rows left empty: 0 normal and 0 anomalous" in note for note in notes)
    assert any("taken over all clips" in note for note in notes)


def write_root(root, rng, *, blinded: bool = False):
    """A DCASE-layout root: two machine types, 6 test clips each per domain x label."""
    for machine, level in (("pump", -30.0), ("fan", -40.0)):
        (root / "dev_data" / "raw" / machine / "train").mkdir(parents=True)
        test = root / "dev_data" / "raw" / machine / "test"
        test.mkdir(parents=True)
        sf.write(root / "dev_data" / "raw" / machine / "train" / "section_00_source_train_normal_0000_a_1.wav",
                 noise_at_dbfs(rng, level, 1.0).astype(np.float32), SR)
        i = 0
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                for _ in range(6):
                    name = (f"section_00_{i:04d}.wav" if blinded
                            else f"section_00_{domain}_test_{label}_{i:04d}_a_1.wav")
                    sf.write(test / name, noise_at_dbfs(rng, level, 1.0).astype(np.float32), SR, subtype="FLOAT")
                    i += 1


def test_cli_writes_markdown_csv_and_json(tmp_path, capsys):
    root = tmp_path / "root"
    write_root(root, np.random.default_rng(9))
    out = tmp_path / "out"
    assert realism.main([str(root), "--out", str(out), "--name", "toy"]) == 0
    printed = capsys.readouterr().out
    assert "Realism statistics: toy" in printed and "probe AUC, log-mel std over time" in printed
    tidy = pd.read_csv(out / "realism_toy.csv")
    assert set(tidy["group"]) == {"fan", "pump"}
    assert set(tidy["statistic"]) == set(realism.STATISTICS)
    level = tidy.set_index(["group", "statistic"])["value"]
    assert level["fan", "rms_dbfs"] == pytest.approx(-40.0, abs=1e-3)
    assert level["pump", "rms_dbfs"] == pytest.approx(-30.0, abs=1e-3)
    assert level["pump", "clips"] == 24
    payload = json.loads((out / "realism_toy.json").read_text())
    assert payload["counts"]["pump"] == {"source_anomaly": 6, "source_normal": 6,
                                         "target_anomaly": 6, "target_normal": 6}
    assert 0.0 <= payload["statistics"]["pump"]["probe_auc_logmel_mean"] <= 1.0
    markdown = (out / "realism_toy.md").read_text()
    assert "| statistic" in markdown and "mean over types" in markdown
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_cli_on_blinded_root_states_why_rows_are_empty(tmp_path, capsys):
    root = tmp_path / "blind"
    write_root(root, np.random.default_rng(10), blinded=True)
    assert realism.main([str(root), "--out", str(tmp_path), "--name", "blind"]) == 0
    payload = json.loads((tmp_path / "realism_blind.json").read_text())
    assert payload["statistics"]["fan"]["probe_auc_logmel_std"] is None
    assert any("probe rows left empty" in note for note in payload["notes"]["fan"])
    assert "Notes:" in (tmp_path / "realism_blind.md").read_text()


def test_missing_split_and_bad_clip_are_clear_errors(tmp_path, capsys):
    with pytest.raises(DataError, match="does not exist"):
        realism.realism_table(tmp_path / "nowhere")
    root = tmp_path / "root"
    write_root(root, np.random.default_rng(11))
    assert realism.main([str(root), "--split", "supplemental", "--out", str(tmp_path)]) == 2
    assert "no supplemental clips" in capsys.readouterr().err
    bad = root / "dev_data" / "raw" / "fan" / "test" / "section_00_source_test_normal_0099_a_1.wav"
    sf.write(bad, np.zeros((SR, 2), np.float32), SR)
    with pytest.raises(DataError, match="section_00_source_test_normal_0099_a_1.wav: 2 channel"):
        realism.realism_table(root)


def test_clips_too_short_for_the_modulation_bands():
    # 0.5 s clips: 16 frames, frequency step 1.95 Hz, so no bin lies in 0.5-1 Hz; that band is NaN and
    # the modulation probe is left empty with a reason, while the log-mel probes still run
    rng = np.random.default_rng(12)
    waves = np.stack([noise_at_dbfs(rng, -30.0 + rng.normal(), 0.5) for _ in range(12)])
    feats = realism.clip_features(waves)
    assert np.all(np.isnan(feats["modulation"].reshape(12, realism.MODULATION_MEL_GROUPS, -1)[:, :, 0]))
    labels = np.r_[np.zeros(6), np.ones(6)]
    values, notes = realism.group_statistics(feats, labels, np.array(["source"] * 12, object))
    assert np.isnan(values["probe_auc_modulation"])
    assert 0.0 <= values["probe_auc_logmel_mean"] <= 1.0
    assert any("probe_auc_modulation left empty" in note for note in notes)


def test_a_type_with_several_sections_gets_one_column_per_section(tmp_path):
    rng = np.random.default_rng(13)
    test = tmp_path / "pump" / "test"
    test.mkdir(parents=True)
    for section, level in (("00", -30.0), ("01", -36.0)):
        for i in range(3):
            sf.write(test / f"section_{section}_source_test_normal_{i:04d}_a_1.wav",
                     noise_at_dbfs(rng, level, 0.5).astype(np.float32), SR, subtype="FLOAT")
    table, details = realism.realism_table(tmp_path)
    assert list(table.columns) == ["pump s00", "pump s01"]
    assert table.loc["rms_dbfs", "pump s01"] == pytest.approx(-36.0, abs=1e-3)
    assert details["counts"]["pump s00"] == {"source_normal": 3}
