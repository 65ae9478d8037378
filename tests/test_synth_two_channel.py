"""Tests of asd_utils.synth.two_channel: DCASE 2026-style synthetic roots (near, far)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from asd_utils.data import LAYOUT_MARKER, discover, is_two_channel_layout, load_audio
from asd_utils.synth import sound_models as sm
from asd_utils.synth.generate import get_profile, plan_machine, render_job, to_pcm16
from asd_utils.synth.two_channel import (
    FarMicrophone,
    ensure_two_channel_dataset,
    far_microphone,
    machine_durations,
    render_two_channel,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_channel") / "synth_tiny"  # no 'dcase2026' in the name: the marker decides
    return ensure_two_channel_dataset("smoke", out, seed=3, machines=["valve"], workers=1, progress=False)


def test_root_layout_manifest_and_marker(root):
    manifest = json.loads((root / "synth_manifest.json").read_text())
    assert manifest["layout"] == "dcase2026" and manifest["channels"] == ["near", "far"]
    assert manifest["durations_s"] == {"valve": 2.0}  # smoke: the first type keeps the profile's 2 s
    assert (root / LAYOUT_MARKER).is_file()
    machine = root / "dev_data" / "raw" / "valve"
    assert sorted(p.name for p in machine.iterdir()) == ["attributes_00.csv", "test", "train"]  # no supplemental
    index = discover(root)
    prof = get_profile("smoke")
    assert len(index) == prof.train_source + prof.train_target + 4 * prof.test_per_cell
    assert all(is_two_channel_layout(p) for p in index.path)
    info = sf.info(index.path.iloc[0])
    assert (info.channels, info.samplerate, info.frames) == (2, 16000, 32000)
    # reused, not regenerated, when asked again
    assert ensure_two_channel_dataset("smoke", root, seed=3, machines=["valve"], workers=1, progress=False) == root


def test_near_channel_is_the_mono_clip(root):
    no_supplemental = replace(get_profile("smoke"), supplemental_clean=0, supplemental_noise=0)
    job = plan_machine("valve", "valve", no_supplemental, 3)[0]
    path = root / job.relpath
    pcm, _ = sf.read(path, dtype="int16", always_2d=True)
    np.testing.assert_array_equal(pcm[:, 0], to_pcm16(render_job(job, 2.0)["mix"]))
    np.testing.assert_array_equal(load_audio(path, channel="near"), pcm[:, 0].astype(np.float32) / 32768.0)


def test_far_channel_is_the_machine_delayed_and_attenuated_plus_louder_factory():
    job = plan_machine("valve", "valve", get_profile("smoke"), 3)[0]
    parts = render_job(job, 1.2)
    mic = FarMicrophone(near_m=0.5, far_m=3.93, noise_gain_db=3.0, noise_coherence=0.3, noise_delay_s=0.005)
    delay = int(round(mic.machine_delay_s * 16000))
    assert delay == 160 and mic.machine_gain_db == pytest.approx(-17.91, abs=0.01)  # 10 ms, 20 log10(0.5/3.93)
    stereo = render_two_channel(job, 1.2, mic)
    np.testing.assert_allclose(stereo[:, 0], parts["mix"])
    machine_far = np.concatenate([np.zeros(delay), parts["clean"][:-delay]]) * 10 ** (mic.machine_gain_db / 20)
    background_far = stereo[:, 1] - machine_far
    gain_db = 20 * np.log10(sm.rms(background_far) / sm.rms(parts["noise"]))
    assert gain_db == pytest.approx(3.0, abs=0.5)  # the factory is louder at the far microphone
    near_snr = sm.rms(parts["clean"]) / sm.rms(parts["noise"])
    far_snr = sm.rms(machine_far) / sm.rms(background_far)
    assert 20 * np.log10(near_snr / far_snr) == pytest.approx(17.91 + 3.0, abs=0.6)
    silent = FarMicrophone(near_m=0.5, far_m=3.93, noise_gain_db=-400.0, noise_coherence=0.3, noise_delay_s=0.005)
    np.testing.assert_allclose(render_two_channel(job, 1.2, silent)[:, 1], machine_far, atol=1e-12)


def test_microphones_and_lengths():
    mic = far_microphone(0, "fan")
    assert mic == far_microphone(0, "fan") and mic != far_microphone(1, "fan")
    assert 0.5 <= mic.near_m <= 1.0 and 2.0 <= mic.far_m <= 4.0 and 1.0 <= mic.noise_gain_db <= 4.0
    assert -18.1 < mic.machine_gain_db < -6.0
    assert machine_durations("full", ["a", "b", "c", "d"]) == {"a": 6.0, "b": 10.0, "c": 16.0, "d": 6.0}
    assert machine_durations("default", ["a", "b", "c"]) == {"a": 5.0, "b": 8.333, "c": 13.333}
