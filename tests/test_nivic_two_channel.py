"""Report 002's supplemental mixing on a DCASE 2026 root (``nivic.two_channel_supplemental``).

The 2026 layout has no supplemental clips; each training clip gives its near channel as a clean clip
and its far channel as a noise-only clip, shaped so that ``nivic.simulate_supplemental`` runs
unchanged. Checked on the hand-made root of ``tests/dcase2026_fixture.py`` (1 s clips, 16 kHz;
ToyCarEmu and ToyDrone, 5 training clips each).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from dcase2026_fixture import DEV_MACHINE, EVAL_MACHINE, make_dcase2026_root

from asd_utils.data import DataError, discover
from asd_utils.methods import nivic
from asd_utils.methods.pipeline import split_index

SR = 16000


@pytest.fixture(scope="module")
def train_index(tmp_path_factory) -> pd.DataFrame:
    root = make_dcase2026_root(tmp_path_factory.mktemp("dcase2026"))
    return split_index(discover(root))[0]


def _channels(path) -> np.ndarray:
    """(samples, 2) float32 as stored: column 0 near, column 1 far."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == SR and data.shape[1] == 2
    return data


def test_clean_rows_are_near_channels_and_noise_rows_far_channels(train_index):
    sup, clean, noise = nivic.two_channel_supplemental(train_index, n_samples=SR)
    n = len(train_index)
    assert n == 10
    assert clean.shape == noise.shape == (n, SR) and clean.dtype == noise.dtype == np.float32
    assert sup["supplemental_kind"].tolist() == ["clean"] * n + ["noise"] * n
    assert sup["channel"].tolist() == ["near"] * n + ["far"] * n
    assert (sup["split"] == "supplemental").all()
    for kind in ("clean", "noise"):  # both halves are the training rows, in their order
        half = sup[sup.supplemental_kind == kind].reset_index(drop=True)
        for column in ("path", "file_name", "machine", "section", "domain"):
            assert half[column].tolist() == train_index[column].tolist()
    for i, path in enumerate(train_index["path"]):
        stored = _channels(path)
        np.testing.assert_array_equal(clean[i], stored[:, 0])
        np.testing.assert_array_equal(noise[i], stored[:, 1])
    # the far channel is mostly noise but keeps a faint copy of the machine, 5 ms (80 samples) later
    near, far = clean[0].astype(np.float64), noise[0].astype(np.float64)
    lags = [float(np.dot(near[: SR - lag], far[lag:])) for lag in range(120)]
    assert int(np.argmax(lags)) == 80


def test_whole_clips_keep_their_length_or_are_tiled_to_the_window(train_index):
    _, clean, noise = nivic.two_channel_supplemental(train_index, n_samples=SR // 2, whole_clips=True)
    assert isinstance(noise, list) and [len(c) for c in noise] == [SR] * len(train_index)  # longer: unchanged
    np.testing.assert_array_equal(noise[3], _channels(train_index.path[3])[:, 1])
    _, clean, noise = nivic.two_channel_supplemental(train_index, n_samples=SR + SR // 4, whole_clips=True)
    far = _channels(train_index.path[3])[:, 1]
    np.testing.assert_array_equal(noise[3], np.concatenate([far, far[: SR // 4]]))  # shorter: tiled
    assert len(clean[3]) == SR + SR // 4


@pytest.mark.parametrize("whole_clips", [False, True])
def test_simulate_supplemental_accepts_them(train_index, whole_clips):
    sup, clean, noise = nivic.two_channel_supplemental(train_index, n_samples=SR, whole_clips=whole_clips)
    far_of = {name: np.asarray(w, dtype=np.float64) for name, w in zip(train_index.file_name, noise)}
    machine_of = dict(zip(train_index.file_name, train_index.machine))
    cfg = {"mixes_per_clean": 2, "snr_db": [5.0, 5.0], "noise_from": "same_section"}
    waves, rows = nivic.simulate_supplemental(sup, clean, noise, cfg, seed=0)
    assert len(waves) == 2 * len(train_index) and sorted(set(rows.machine)) == sorted([DEV_MACHINE, EVAL_MACHINE])
    assert (rows["attributes"] == nivic.SIMULATED_ATTRIBUTE).all()
    assert rows["domain"].tolist() == [d for d in train_index.sort_values("machine", kind="stable").domain
                                       for _ in range(2)]
    for k in (0, len(waves) - 1):  # mixture = near + g * far of a clip of the same type, at 5 dB
        clean_name, rest = rows.file_name[k][len("sim_"):].split("+")
        noise_name = rest.split("@")[0]
        assert machine_of[noise_name] == machine_of[clean_name] == rows.machine[k]
        near = np.asarray(clean[list(train_index.file_name).index(clean_name)], dtype=np.float64)
        residual = np.asarray(waves[k], dtype=np.float64) - near
        gain = np.dot(residual, far_of[noise_name]) / np.dot(far_of[noise_name], far_of[noise_name])
        np.testing.assert_allclose(residual, gain * far_of[noise_name], atol=1e-5)
        assert 10 * np.log10(np.mean(near ** 2) / np.mean(residual ** 2)) == pytest.approx(5.0, abs=0.01)
    # other_types (notebook 04's default): each type's near channels meet the other type's far channels
    _, other = nivic.simulate_supplemental(sup, clean, noise, {**cfg, "noise_from": "other_types"}, seed=0)
    assert len(other) == 2 * len(train_index)
    for name, machine in zip(other.file_name, other.machine):
        assert machine_of[name.split("+")[1].split("@")[0]] != machine


def test_a_root_without_two_channels_or_clips_is_refused(tmp_path, train_index):
    mono = tmp_path / "mono_root" / "dev_data" / "raw" / "fan" / "train" / "section_00_source_train_normal_0000_a_1.wav"
    mono.parent.mkdir(parents=True)
    sf.write(str(mono), np.zeros(SR, np.float32), SR)
    rows = pd.DataFrame({"path": [str(mono)], "file_name": [mono.name], "machine": ["fan"], "section": ["00"],
                         "domain": ["source"]})
    with pytest.raises(DataError, match="not in a two-channel DCASE 2026 root"):
        nivic.two_channel_supplemental(rows, n_samples=SR)
    with pytest.raises(ValueError, match="empty"):
        nivic.two_channel_supplemental(train_index.iloc[:0], n_samples=SR)
    with pytest.raises(ValueError, match="channel"):
        nivic.two_channel_supplemental(train_index, n_samples=SR, clean_channel="left")
