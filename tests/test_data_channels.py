"""Tests of the two-channel DCASE 2026 layout: detection, the channel setting, loading, notes, caches."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from dcase2026_fixture import DEV_MACHINE, EVAL_MACHINE, EVAL_TRUTH, make_dcase2026_root, stereo_clip

from asd_utils import paths
from asd_utils.data import (
    CHANNEL_ENV,
    LAYOUT_MARKER,
    DataError,
    channel_note,
    current_channel,
    discover,
    is_two_channel_layout,
    load_audio,
    load_batch,
    two_channel_root,
    use_channel,
)
from asd_utils.data.audio import far_channel_noise
from asd_utils.data.channels import from_two_channels
from asd_utils.data.layout import write_layout_marker
from asd_utils.signal.noise_aware import denoise_near

SR = 16000


@pytest.fixture
def root(tmp_path):
    return make_dcase2026_root(tmp_path)


@pytest.fixture(autouse=True)
def _no_channel_env(monkeypatch):
    monkeypatch.delenv(CHANNEL_ENV, raising=False)


def _stereo_file(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, SR, subtype="FLOAT")
    return path


def test_layout_found_by_folder_name_and_by_marker(tmp_path):
    clip = tmp_path / "dcase2026t2" / "dev_data" / "raw" / "fan" / "train" / "a.wav"
    assert two_channel_root(clip) == tmp_path / "dcase2026t2"
    other = tmp_path / "my_copy" / "dev_data" / "raw" / "fan" / "train" / "a.wav"
    assert not is_two_channel_layout(other)
    (tmp_path / "my_copy").mkdir()
    write_layout_marker(tmp_path / "my_copy")
    assert (tmp_path / "my_copy" / LAYOUT_MARKER).is_file()
    assert two_channel_root(other) == tmp_path / "my_copy"
    # a folder of machine folders named like the UTurtle/Zenodo unpacking: <DCASE2026_Task2>/dev/<machine>/train
    assert is_two_channel_layout(tmp_path / "DCASE2026_Task2" / "dev" / "fan" / "train" / "a.wav")


def test_layout_name_only_counts_near_the_machine_folders(tmp_path):
    # a compendium cloned under ~/dcase2026/...: its mono data/synth_smoke is no 2026 root
    clip = tmp_path / "dcase2026" / "compendium" / "data" / "synth_smoke" / "dev_data" / "raw" / "fan" / "train"
    clip = clip / "a.wav"
    assert not is_two_channel_layout(clip)


def test_load_audio_channels_of_a_two_channel_clip(root):
    path = next((root / "dev_data" / "raw" / DEV_MACHINE / "train").glob("*.wav"))
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(load_audio(path), data[:, 0])  # default: near
    np.testing.assert_array_equal(load_audio(path, channel="near"), data[:, 0])
    np.testing.assert_array_equal(load_audio(path, channel="far"), data[:, 1])
    np.testing.assert_allclose(load_audio(path, channel="mean"), data.mean(axis=1), atol=1e-7)
    np.testing.assert_allclose(load_audio(path, channel="noise_aware"), denoise_near(data[:, 0], data[:, 1]),
                               atol=1e-6)
    with pytest.raises(ValueError, match="channel 'left': expected one of near, far, mean, noise_aware"):
        load_audio(path, channel="left")


def test_run_setting_comes_from_the_environment(root, monkeypatch):
    path = next((root / "dev_data" / "raw" / DEV_MACHINE / "train").glob("*.wav"))
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    assert current_channel() == "near"
    with use_channel("far"):
        assert current_channel() == "far"
        np.testing.assert_array_equal(load_audio(path), data[:, 1])
        batch = load_batch([path, path], n_samples=100)
        np.testing.assert_array_equal(batch[1], data[:100, 1])
    assert current_channel() == "near"
    monkeypatch.setenv(CHANNEL_ENV, "both")
    with pytest.raises(ValueError, match="ASD_CHANNEL='both'"):
        current_channel()


def test_stereo_file_outside_a_2026_root_stays_an_error(tmp_path):
    path = _stereo_file(tmp_path / "dcase2025t2" / "dev_data" / "raw" / "fan" / "train" / "x.wav",
                        stereo_clip("x", False))
    with pytest.raises(DataError, match=r"x\.wav: 2 channel\(s\) at 16000 Hz; expected mono audio") as err:
        load_audio(path)
    assert LAYOUT_MARKER in str(err.value)  # says how a 2026 root is recognised


def test_mono_or_three_channel_file_in_a_2026_root_is_an_error(root):
    mono = root / "dev_data" / "raw" / DEV_MACHINE / "train" / "section_00_source_train_normal_0099_x_1.wav"
    sf.write(mono, np.zeros(1600, dtype=np.float32), SR)
    with pytest.raises(DataError, match=r"0099_x_1\.wav: 1 channel\(s\); expected two \(channel 0 near, channel 1"):
        load_audio(mono)
    three = _stereo_file(mono.with_name("three.wav"), np.zeros((1600, 3), dtype=np.float32))
    with pytest.raises(DataError, match="3 channel"):
        load_audio(three)


def test_wrong_rate_in_a_2026_root(root):
    path = root / "dev_data" / "raw" / DEV_MACHINE / "train" / "slow.wav"
    sf.write(path, stereo_clip("slow", False), 8000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"slow\.wav: 8000 Hz; expected 16000 Hz"):
        load_audio(path)
    with pytest.warns(UserWarning, match="resampling"):
        wave = load_audio(path, convert=True, channel="far")
    assert wave.shape == (32000,)


def test_from_two_channels_shape_error():
    with pytest.raises(DataError, match=r"clip\.wav: audio of shape \(10, 3\)"):
        from_two_channels(np.zeros((10, 3)), "near", name="clip.wav")


def test_discover_the_real_naming_and_blinded_ground_truth(root):
    index = discover(root)
    assert sorted(index.machine.unique()) == [DEV_MACHINE, EVAL_MACHINE]
    dev_test = index[(index.machine == DEV_MACHINE) & (index.split == "test")]
    assert len(dev_test) == 8 and set(dev_test.label) == {"normal", "anomaly"}
    assert index[index.machine == DEV_MACHINE].attribute_dict.iloc[0] == {"car": "A1", "spd": "28V"}
    blinded = index[(index.machine == EVAL_MACHINE) & (index.split == "test")].sort_values("file_name")
    assert list(zip(blinded.label, blinded.domain)) == EVAL_TRUTH
    waves = load_batch(index.path, n_samples=SR)
    assert waves.shape == (len(index), SR)


def test_channel_note(root, tmp_path):
    index = discover(root)
    assert channel_note(index.path) == "channel near of two-channel DCASE 2026 clips"
    assert channel_note(index.path, "noise_aware") == "channel noise_aware of two-channel DCASE 2026 clips"
    mono = tmp_path / "mono" / "dev_data" / "raw" / "fan" / "train" / "a.wav"
    assert channel_note([mono]) == ""


def test_cache_dir_keeps_each_channel_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("ASD_HOME", str(tmp_path))
    near = paths.cache_dir("smoke", "01", create=False)
    with use_channel("noise_aware"):
        other = paths.cache_dir("smoke", "01", create=False)
    assert near == tmp_path / "cache" / "smoke" / "01"
    assert other == tmp_path / "cache" / "channel_noise_aware" / "smoke" / "01"


def test_far_channel_as_noise_source(root, tmp_path):
    paths = sorted((root / "dev_data" / "raw" / DEV_MACHINE / "train").glob("*.wav"))[:2]
    with use_channel("near"):  # the run's setting does not matter
        noise = far_channel_noise(paths, n_samples=8000)
    far0, _ = sf.read(paths[0], dtype="float32", always_2d=True)
    np.testing.assert_array_equal(noise[0], far0[:8000, 1])
    mono = _stereo_file(tmp_path / "plain" / "dev_data" / "raw" / "fan" / "train" / "m.wav", np.zeros(100))
    with pytest.raises(DataError, match=r"m\.wav: not in a two-channel DCASE 2026 root"):
        far_channel_noise([mono], n_samples=100)
