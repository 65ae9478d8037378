"""asd_utils.data.convert: a DCASE tree of stereo / 44.1 kHz clips becomes one the strict loaders read."""

import numpy as np
import pytest
import soundfile as sf

from asd_utils.data import DataError, discover, load_audio
from asd_utils.data.convert import convert_tree, main

SR = 16000


def _write_tree(root):
    rng = np.random.default_rng(0)
    machine = root / "dev_data" / "raw" / "fan"
    for split in ("train", "test"):
        (machine / split).mkdir(parents=True)
    stereo_44k = (0.3 * rng.standard_normal((44100, 2))).astype(np.float32)
    mono_16k = (0.3 * rng.standard_normal(SR)).astype(np.float32)
    loud_stereo = np.stack([np.full(SR, 0.9), np.full(SR, 0.95)], axis=1).astype(np.float32)
    files = {
        machine / "train" / "section_00_source_train_normal_0000_a_1.wav": (stereo_44k, 44100, "PCM_16"),
        machine / "train" / "section_00_target_train_normal_0001_a_2.wav": (mono_16k, SR, "PCM_16"),
        machine / "test" / "section_00_source_test_anomaly_0000_a_1.wav": (loud_stereo, SR, "PCM_24"),
    }
    for path, (wave, rate, subtype) in files.items():
        sf.write(path, wave, rate, subtype=subtype)
    (machine / "attributes_00.csv").write_text("file_name,d1p,d1v\nfan/train/x.wav,a,1\n")
    return files


def test_converted_tree_loads_strictly_and_equals_converting_on_load(tmp_path):
    source, target = tmp_path / "src", tmp_path / "out"
    files = _write_tree(source)
    with pytest.raises(DataError, match="expected mono audio at 16000 Hz"):
        load_audio(next(iter(files)))

    counts = convert_tree(source, target, progress=False)
    assert counts == {"converted": 2, "copied": 2}  # 2 WAVs converted; the mono 16 kHz WAV and the CSV copied
    for path, (_, _, subtype) in files.items():
        out = target / path.relative_to(source)
        info = sf.info(str(out))
        assert (info.channels, info.samplerate, info.subtype) == (1, SR, subtype)
        with pytest.warns(UserWarning) if sf.info(str(path)).samplerate != SR else _no_warning():
            expected = load_audio(path, convert=True)
        np.testing.assert_allclose(load_audio(out), expected, atol=2.0 / 2**15)  # PCM_16 quantisation
    unchanged = target / "dev_data/raw/fan/train/section_00_target_train_normal_0001_a_2.wav"
    assert unchanged.read_bytes() == (source / unchanged.relative_to(target)).read_bytes()
    assert (target / "dev_data/raw/fan/attributes_00.csv").read_text().startswith("file_name,d1p")
    assert len(discover(target)) == len(discover(source)) == 3


def test_clipping_pcm_is_written_as_float(tmp_path):
    source, target = tmp_path / "src", tmp_path / "out"
    path = source / "loud.wav"
    source.mkdir()
    # a near-full-scale square wave: halving its rate rings past 1.0 (Gibbs)
    square = np.tile(np.r_[np.full(8, 0.99997), np.full(8, -0.99997)], 2000)
    sf.write(path, np.stack([square, square], axis=1), 32000, subtype="PCM_16")
    convert_tree(source, target, progress=False)
    out = target / "loud.wav"
    assert sf.info(str(out)).subtype == "FLOAT"
    assert np.max(np.abs(load_audio(out))) > 1.0  # nothing wrapped around or was clipped


def test_refuses_a_non_empty_or_nested_target_and_a_missing_source(tmp_path, capsys):
    source = tmp_path / "src"
    _write_tree(source)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("x")
    with pytest.raises(DataError, match="busy: folder is not empty"):
        convert_tree(source, busy, progress=False)
    with pytest.raises(DataError, match="lies inside the source"):
        convert_tree(source, source / "converted", progress=False)
    with pytest.raises(DataError, match="missing: folder not found"):
        convert_tree(tmp_path / "missing", tmp_path / "out", progress=False)
    assert main([str(tmp_path / "missing"), str(tmp_path / "out2")]) == 2
    assert "folder not found" in capsys.readouterr().err
    assert main([str(source), str(tmp_path / "out3")]) == 0
    assert "2 WAV file(s) converted to mono 16000 Hz, 2 file(s) copied unchanged" in capsys.readouterr().out


def _no_warning():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def guard():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield

    return guard()
