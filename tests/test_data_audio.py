"""Tests for asd_utils.data.audio on WAV files written in tmp_path."""

import warnings

import numpy as np
import pytest
import soundfile as sf

from asd_utils.data import DataError, fix_length, load_audio, load_batch

SR = 16000


def _tone(n, freq=440.0, sr=SR, amp=0.5):
    t = np.arange(n) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_load_audio_mono_16k(tmp_path):
    wave = _tone(1600)
    path = tmp_path / "a.wav"
    sf.write(path, wave, SR, subtype="FLOAT")
    out = load_audio(path)
    assert out.dtype == np.float32 and out.shape == (1600,)
    np.testing.assert_array_equal(out, wave)


def test_load_audio_pcm16_scaled_to_unit_range(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.array([0, 16384, -32768], dtype=np.int16), SR, subtype="PCM_16")
    np.testing.assert_allclose(load_audio(path), [0.0, 0.5, -1.0])


def test_multichannel_file_is_refused_unless_converting(tmp_path):
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, size=(800, 3)).astype(np.float32)
    path = tmp_path / "multi.wav"
    sf.write(path, stereo, SR, subtype="FLOAT")
    with pytest.raises(DataError, match=r"multi\.wav: 3 channel\(s\) at 16000 Hz; expected mono audio at 16000 Hz"):
        load_audio(path)
    with pytest.raises(DataError, match=r"multi\.wav: .*asd_utils\.data\.convert"):
        load_batch([path], n_samples=800)
    out = load_audio(path, convert=True)  # downmix: the mean of the channels
    assert out.shape == (800,)
    np.testing.assert_allclose(out, stereo.mean(axis=1), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(load_batch([path], n_samples=800, convert=True)[0], out)


def test_other_rate_is_refused_unless_converting(tmp_path):
    path = tmp_path / "clip_44k.wav"
    sf.write(path, _tone(44100, sr=44100), 44100, subtype="FLOAT")  # 1 s at 44.1 kHz
    with pytest.raises(DataError, match=r"clip_44k\.wav: 1 channel\(s\) at 44100 Hz; expected mono audio at 16000 Hz"):
        load_audio(path)


def test_resample_warns_and_has_right_length(tmp_path):
    path = tmp_path / "clip_44k.wav"
    sf.write(path, _tone(44100, sr=44100), 44100, subtype="FLOAT")  # 1 s at 44.1 kHz
    with pytest.warns(UserWarning) as record:
        out = load_audio(path, convert=True)
    message = str(record[0].message)
    assert "clip_44k.wav" in message and "44100" in message
    assert out.dtype == np.float32
    assert out.shape == (16000,)
    # the 440 Hz tone survives resampling: spectral peak at 440 Hz (1 Hz bins for 1 s)
    assert abs(int(np.argmax(np.abs(np.fft.rfft(out)))) - 440) <= 1


def test_no_warning_at_target_rate(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(100), SR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(path)


def test_load_audio_other_rate_and_n_samples(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(1000), SR, subtype="FLOAT")
    with pytest.raises(DataError, match="expected mono audio at 8000 Hz"):
        load_audio(path, sample_rate=8000)
    with pytest.warns(UserWarning, match="16000"):
        out = load_audio(path, sample_rate=8000, convert=True)
    assert out.shape == (500,)
    out = load_audio(path, n_samples=2500)
    assert out.shape == (2500,)
    np.testing.assert_array_equal(out[1000:2000], out[:1000])  # tiled
    out = load_audio(path, n_samples=2500, mode="pad")
    assert np.all(out[1000:] == 0)
    with pytest.raises(DataError, match="a.wav"):
        load_audio(path, n_samples=2500, mode="crop")


def test_corrupt_wav_raises(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(DataError, match="broken.wav") as err:
        load_audio(path)
    assert "decode" in str(err.value)


def test_empty_wav_raises(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(DataError, match="empty.wav") as err:
        load_audio(path)
    assert "0 samples" in str(err.value)


def test_missing_wav_raises(tmp_path):
    with pytest.raises(DataError, match="ghost.wav"):
        load_audio(tmp_path / "ghost.wav")


def test_non_finite_wav_raises(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], dtype=np.float32), SR, subtype="FLOAT")
    with pytest.raises(DataError, match="nan.wav"):
        load_audio(path)


def test_fix_length_modes():
    wave = np.array([1, 2, 3], dtype=np.float32)
    np.testing.assert_array_equal(fix_length(wave, 7, "tile"), [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(fix_length(wave, 5, "pad"), [1, 2, 3, 0, 0])
    for mode in ("tile", "pad", "crop"):
        out = fix_length(wave, 2, mode)
        np.testing.assert_array_equal(out, [1, 2])
        assert out.dtype == np.float32
    out = fix_length(wave, 3)
    out[0] = 9
    assert wave[0] == 1  # a copy
    with pytest.raises(DataError, match="shorter"):
        fix_length(wave, 4, "crop")
    with pytest.raises(DataError, match="empty"):
        fix_length(np.zeros(0, dtype=np.float32), 4)
    with pytest.raises(ValueError, match="mode"):
        fix_length(wave, 4, "stretch")
    with pytest.raises(ValueError, match="positive"):
        fix_length(wave, 0)
    with pytest.raises(ValueError, match="1-D"):
        fix_length(np.zeros((2, 3)), 4)


def _write_clips(tmp_path, lengths):
    paths = []
    for i, n in enumerate(lengths):
        path = tmp_path / f"clip_{i}.wav"
        sf.write(path, np.full(n, (i + 1) / 10, dtype=np.float32), SR, subtype="FLOAT")
        paths.append(path)
    return paths


@pytest.mark.parametrize("num_workers", [0, 3])
def test_load_batch_order_shape_and_values(tmp_path, num_workers):
    paths = _write_clips(tmp_path, [100, 300, 250, 80, 400])
    batch = load_batch(paths, n_samples=200, num_workers=num_workers)
    assert batch.shape == (5, 200) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[:, 0], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)
    assert np.all(batch == batch[:, :1])  # tiled constant clips stay constant


def test_load_batch_pad_mode_and_progress(tmp_path, capsys):
    paths = _write_clips(tmp_path, [100, 300])
    batch = load_batch(paths, n_samples=200, mode="pad", progress=True)
    assert np.all(batch[0, 100:] == 0) and np.all(batch[1] != 0)
    assert "loading audio" in capsys.readouterr().err


def test_load_batch_empty_and_bad_arguments(tmp_path):
    assert load_batch([], n_samples=10).shape == (0, 10)
    with pytest.raises(ValueError, match="n_samples"):
        load_batch([], n_samples=0)
    with pytest.raises(ValueError, match="mode"):
        load_batch([], n_samples=10, mode="loop")


def test_load_batch_error_names_file(tmp_path):
    paths = _write_clips(tmp_path, [100])
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"not audio at all")
    for workers in (0, 2):
        with pytest.raises(DataError, match="corrupt.wav"):
            load_batch([paths[0], bad], n_samples=50, num_workers=workers)
