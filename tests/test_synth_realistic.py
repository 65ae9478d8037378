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
    # 16 s: the level is set over the samples where the gate is above 0.5 and read here where it
    # is 1; a few sparse impacts of random strength on the 20 ms ramps would skew a short clip
    x = sm.band_noise(16 * SR, SR, rng, 100.0, 6000.0)
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


def test_episodes_of_a_periodic_fault_last_whole_periods(monkeypatch):
    # the floor lifts every on-duration; the off-durations keep the long-run share of time on
    rng = np.random.default_rng(4)
    gate = faults.episode_gate(200 * 2000, 200, rng, duty=0.2, mean_on_s=0.5, min_on_s=1.0)
    on = (gate > 0.5).astype(int)
    starts, ends = np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1)
    ends = ends[ends > starts[0]][: len(starts) - 1]
    lengths = (ends - starts[: len(ends)]) / 200.0
    assert lengths.min() >= 1.0 - 0.02  # ramps of 20 ms at 200 Hz
    # mean on-duration: floor + mean * exp(-floor / mean) = 1 + 0.5 * exp(-2) = 1.068 s
    assert lengths.mean() == pytest.approx(1.0 + 0.5 * np.exp(-2.0), rel=0.05)
    assert gate.mean() == pytest.approx(0.2, abs=0.02)
    # apply_fault asks for EPISODE_MIN_PERIODS periods of the fault's own rate (squeal: none)
    seen = {}

    def spy(n, sr, rng, duty, mean_on_s, ramp_s=0.02, min_on_s=0.0):
        seen[kind] = min_on_s
        return np.ones(n)

    monkeypatch.setattr(faults, "episode_gate", spy)
    x = np.random.default_rng(5).standard_normal(SR)
    for kind in faults.FAULT_KINDS:
        faults.apply_fault(x, SR, kind, 0.5, np.random.default_rng(6), _signature())
    periods = faults.EPISODE_MIN_PERIODS
    assert seen == pytest.approx({"impacts": periods / 5.0, "rubbing": periods / 4.0, "modulation": periods / 3.0,
                                  "squeal": 0.0})


def test_soften_hall_keeps_the_clip_draws_and_moves_the_presets():
    from asd_utils.synth.machines import HALLS
    from asd_utils.synth.realistic import soften_hall

    # a hall-B clip: levels = preset x factor, brown and tilt = preset + offset, clank rate = preset
    env = dict(HALLS["B"], hum=0.2 * 1.2, machine=0.3 * 0.9, clank=0.8 * 1.1, babble=0.12 * 0.8,
               brown=0.4 + 0.1, tilt=-0.5 + 0.2)
    half = soften_hall(env, "B", "A", 0.5)
    # halfway presets of A and B, times the clip's own factors / plus its own offsets
    assert half["hum"] == pytest.approx(0.175 * 1.2) and half["machine"] == pytest.approx(0.275 * 0.9)
    assert half["clank"] == pytest.approx(0.7 * 1.1) and half["babble"] == pytest.approx(0.06 * 0.8)
    assert half["brown"] == pytest.approx(0.425) and half["tilt"] == pytest.approx(-0.05)
    assert half["clank_rate"] == pytest.approx(0.225) and half["machine_hz"] == pytest.approx((24.0, 50.0))
    assert half["hum_hz"] == 60.0  # the mains frequency is the clip's hall's
    source = soften_hall(env, "B", "A", 0.0)
    assert source["babble"] == 0.0 and source["hum"] == pytest.approx(0.15 * 1.2)
    assert soften_hall(env, "B", "A", 1.0) == env and soften_hall(env, "A", "A", 0.5) == env


def test_microphone_move_contrast_and_envelope_unchanged():
    from dataclasses import replace

    from asd_utils.synth import machines

    x = np.zeros(1024)
    x[100] = 1.0
    y = x.copy()
    y[117] = 0.5 * 0.2  # reflection 1.1 ms (17 samples at 16 kHz) later, at half of 0.2
    np.testing.assert_allclose(machines._mic(x, SR, "2", 0.5), sm.spectral_tilt(y, SR, -0.5), atol=1e-12)
    np.testing.assert_array_equal(machines._mic(x, SR, "1", 0.5), x)
    # contrast 1 is the envelope world's microphone, bit for bit
    attrs = {"car": "A1", "spd": "31", "mic": "2"}
    model = machines.get_machine("ToyCar")
    a = model.render(attrs, None, 0.0, SR, SR, np.random.default_rng(7))
    b = replace(model, mic_contrast=1.0).render(attrs, None, 0.0, SR, SR, np.random.default_rng(7))
    c = replace(model, mic_contrast=0.5).render(attrs, None, 0.0, SR, SR, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_realistic_manifest_carries_its_revision():
    from asd_utils.synth.realistic import REVISION

    assert expected_manifest("smoke", 0, variant="realistic")["realistic_revision"] == REVISION
    assert "realistic_revision" not in expected_manifest("smoke", 0, variant="envelope")


def test_fault_floor_rerenders_the_roots_clips_and_matches_the_realism_report(tmp_path):
    from asd_utils.synth import fault_floor, realism

    root = ensure_dataset("smoke", tmp_path / "r", 0, machines=["valve"], variant="realistic", progress=False,
                          workers=1)
    jobs = [j for j in plan_machine("valve", "valve", PROFILES["smoke"], 0, "realistic") if j.split == "test"]
    normals = [j for j in jobs if j.label == "normal"]
    # a normal clip rendered again without a fault is the written clip, bit for bit
    written = realism.features_of_files([str(root / j.relpath) for j in normals])["logmel_mean"]
    np.testing.assert_array_equal(fault_floor.fault_free_levels(normals, PROFILES["smoke"]), written)
    table = fault_floor.floor_table(root)
    report, _ = realism.realism_table(root)
    assert list(table.columns) == list(fault_floor.COLUMNS) and table["machine"].tolist() == ["valve"]
    row = table.iloc[0]
    assert row["anomaly_shift_over_spread"] == pytest.approx(report.loc["anomaly_shift_over_spread", "valve"])
    assert row["fault_free_shift_over_spread"] == pytest.approx(row["fault_free_shift_db"] / row["band_spread_db"])
    assert row["fault_free_shift_db"] != pytest.approx(row["anomaly_shift_db"])
