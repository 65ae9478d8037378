"""The realistic variant: intermittent general faults, rooms, level-normalised clips, one switch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from asd_utils.synth import DEFAULT_VARIANT, VARIANTS, ensure_dataset, expected_manifest, faults, read_manifest
from asd_utils.synth import sound_models as sm
from asd_utils.synth.generate import PROFILES, plan_machine, render_job
from asd_utils.synth.realistic import microphone_response, room_impulse_response

SR = 16000


def _signature():
    return {"resonance_hz": 2000.0, "impact_rate_hz": 5.0, "rub_band_hz": 2000.0, "rub_rate_hz": 4.0,
            "mod_rate_hz": 3.0, "squeal_hz": 3000.0}


def test_default_variant_is_one_constant_and_envelope_plans_unchanged():
    assert DEFAULT_VARIANT in VARIANTS and set(VARIANTS) == {"envelope", "realistic"}
    assert expected_manifest("smoke", 0)["variant"] == DEFAULT_VARIANT
    assert expected_manifest("smoke", 0, variant="realistic")["variant"] == "realistic"
    with pytest.raises(ValueError, match="variant 'loud'"):
        expected_manifest("smoke", 0, variant="loud")
    envelope = plan_machine("fan", "fan", PROFILES["smoke"], 0, "envelope")
    realistic = plan_machine("fan", "fan", PROFILES["smoke"], 0, "realistic")
    # same clips (names, attributes, domains); only the recipe differs
    assert [j.relpath for j in envelope] == [j.relpath for j in realistic]
    assert {j.variant for j in envelope} == {"envelope"} and {j.variant for j in realistic} == {"realistic"}
    kinds = {j.anomaly for j in realistic if j.label == "anomaly"}
    assert kinds <= set(faults.FAULT_KINDS) and {j.anomaly for j in realistic if j.label != "anomaly"} == {None}


def test_episode_gate_duty_and_never_silent():
    rng = np.random.default_rng(0)
    gate = faults.episode_gate(200 * 600, 200, rng, duty=0.2, mean_on_s=0.5)
    assert gate.mean() == pytest.approx(0.2, abs=0.03)
    on = np.diff((gate > 0.5).astype(int))
    assert (on == 1).sum() == pytest.approx(600 * 0.2 / 0.5, rel=0.2)  # episodes of 0.5 s on average
    for seed in range(20):  # a short clip with rare episodes still holds one
        short = faults.episode_gate(SR, SR, np.random.default_rng(seed), duty=0.02, mean_on_s=0.2)
        assert short.max() == 1.0


@pytest.mark.parametrize("kind", ["impacts", "rubbing", "squeal"])
def test_additive_fault_only_while_on_and_at_its_level(kind):
    rng = np.random.default_rng(1)
    x = sm.band_noise(4 * SR, SR, rng, 100.0, 6000.0)
    gate = faults.episode_gate(len(x), SR, np.random.default_rng(2), duty=0.3, mean_on_s=0.5)
    y = getattr(faults, kind)(x, SR, np.random.default_rng(3), 1.0, gate, _signature())
    off, on = gate == 0.0, gate == 1.0
    np.testing.assert_array_equal(y[off], x[off])
    level = 20 * np.log10(sm.rms((y - x)[on]) / sm.rms(x))
    assert level == pytest.approx(faults.FAULT_LEVEL_DB[kind][1], abs=0.5)


def test_modulation_keeps_level_and_modulates_at_its_rate():
    x = np.ones(4 * SR)
    gate = np.ones(4 * SR)
    y = faults.modulation(x, SR, np.random.default_rng(0), 1.0, gate, _signature())
    assert sm.rms(y) == pytest.approx(1.0)
    spectrum = np.abs(np.fft.rfft(y - y.mean()))
    freqs = np.fft.rfftfreq(len(y), 1.0 / SR)
    assert freqs[np.argmax(spectrum)] == pytest.approx(3.0, abs=0.3)
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.apply_fault(x, SR, "hum", 0.5, np.random.default_rng(0), _signature())
    with pytest.raises(ValueError, match="lacks"):
        faults.apply_fault(x, SR, "impacts", 0.5, np.random.default_rng(0), {"resonance_hz": 1.0})


def test_room_and_microphone():
    ir = room_impulse_response(SR, 0.5, 6.0, np.random.default_rng(0))
    assert ir[0] == 1.0 and len(ir) == SR // 2
    assert 10 * np.log10(1.0 / np.sum(ir[1:] ** 2)) == pytest.approx(6.0, abs=1e-6)
    tail = ir[1:] ** 2  # energy decay: about 60 dB over rt60 (from the first to the last 50 ms)
    drop = 10 * np.log10(tail[: SR // 20].mean() / tail[-SR // 20:].mean())
    assert drop == pytest.approx(60.0 * 0.45 / 0.5, abs=4.0)
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(SR) / SR)
    eq = [0.0, 0.0, 0.0, 0.0, 6.0, 0.0, 0.0, 0.0]  # +6 dB at 1 kHz
    assert sm.rms(microphone_response(tone, SR, eq)) / sm.rms(tone) == pytest.approx(10 ** (6 / 20), rel=1e-3)


def test_realistic_root(tmp_path):
    root = ensure_dataset("smoke", tmp_path / "r", 0, machines=["bearing", "valve"], variant="realistic",
                          progress=False, workers=1)
    assert read_manifest(root)["variant"] == "realistic"
    meta = pd.read_csv(root / "synth_metadata.csv", keep_default_na=False)
    test = meta[meta["split"] == "test"]
    assert set(test.loc[test["label"] == "anomaly", "anomaly_kind"]) <= set(faults.FAULT_KINDS)
    assert (test.loc[test["label"] == "normal", "anomaly_kind"] == "").all()
    assert test["snr_db"].between(-6.0, 6.0).all()
    levels = []
    for row in test.itertuples():
        wave, sr = sf.read(root / "dev_data" / "raw" / row.machine / "test" / row.file_name)
        levels.append(20 * np.log10(sm.rms(wave)))
    assert np.std(levels) < 0.15 and np.mean(levels) == pytest.approx(-26.0, abs=0.1)
    # a root of one variant is never reused as the other
    envelope = ensure_dataset("smoke", root, 0, machines=["bearing", "valve"], variant="envelope",
                              progress=False, workers=1)
    assert read_manifest(envelope)["variant"] == "envelope"
    assert "anomaly_kind" in pd.read_csv(envelope / "synth_metadata.csv").columns


def test_realistic_render_is_deterministic():
    job = [j for j in plan_machine("gearbox", "gearbox", PROFILES["smoke"], 3, "realistic")
           if j.label == "anomaly"][0]
    a, b = render_job(job, 2.0), render_job(job, 2.0)
    np.testing.assert_array_equal(a["mix"], b["mix"])
    np.testing.assert_allclose(a["clean"] + a["noise"], a["mix"])
    snr = 20 * np.log10(sm.rms(a["clean"]) / sm.rms(a["noise"]))
    assert snr == pytest.approx(job.snr_db, abs=1e-6)


def test_a_run_chooses_its_world_through_the_environment_and_each_world_has_its_own_folder(monkeypatch):
    from asd_utils.run import runner
    from asd_utils.synth.generate import VARIANT_ENV, check_variant, default_root

    monkeypatch.delenv(VARIANT_ENV, raising=False)
    assert check_variant(None) == DEFAULT_VARIANT == "realistic"
    assert default_root("smoke").name == "synth_smoke"
    assert default_root("smoke", "envelope").name == "synth_smoke_envelope"
    monkeypatch.setenv(VARIANT_ENV, "envelope")
    assert check_variant(None) == "envelope" and default_root("smoke").name == "synth_smoke_envelope"
    assert expected_manifest("smoke", 0)["variant"] == "envelope"
    monkeypatch.setenv(VARIANT_ENV, "nonsense")
    with pytest.raises(ValueError, match="unknown synthetic dataset variant 'nonsense'"):
        check_variant(None)
    assert runner.make_parser().parse_args(["--synth-variant", "envelope"]).synth_variant == "envelope"
