"""The anomaly-information diagnostic (probes/probe_anomaly_information.py): its linear probe and its
untrained reference features."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asd_utils.features.logmel import log_mel

SCRIPT = Path(__file__).resolve().parents[1] / "probes" / "probe_anomaly_information.py"


def load_probe_module():
    spec = importlib.util.spec_from_file_location("probe_anomaly_information", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_separates_informative_features_and_not_noise():
    probe = load_probe_module()
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    noise = rng.standard_normal((100, 20))
    informative = noise.copy()
    informative[:, 3] += 3.0 * labels  # one direction carries the label
    # the best possible AUC for a 3-sigma shift is Phi(3 / sqrt(2)) = 0.983; a probe fitted on 80
    # clips per fold, with 19 pure-noise dimensions, gets close to it but not above
    auc = probe.probe_auc(informative, labels)
    assert 0.88 < auc < 0.99
    assert abs(probe.probe_auc(noise, labels) - 0.5) < 0.15


def test_log_mel_statistics_are_the_baseline_log_mel_mean_and_std(tmp_path):
    probe = load_probe_module()
    rng = np.random.default_rng(1)
    paths = []
    for i in range(2):
        wave = (0.1 * rng.standard_normal(16000)).astype(np.float32)
        paths.append(str(tmp_path / f"clip_{i}.wav"))
        sf.write(paths[-1], wave, 16000, subtype="FLOAT")
    stats = probe.log_mel_statistics(paths)
    assert stats.shape == (2, 256)
    mel = log_mel(sf.read(paths[1], dtype="float32")[0], n_mels=128, n_fft=1024, hop_length=512)
    mel = mel.double().reshape(128, -1).numpy()
    np.testing.assert_allclose(stats[1, :128], mel.mean(axis=1), rtol=1e-5)  # float32 sums
    np.testing.assert_allclose(stats[1, 128:], mel.std(axis=1, ddof=1), rtol=1e-5)
    rows = probe.reference_features(paths)
    np.testing.assert_array_equal(rows[probe.REFERENCE], stats)
    np.testing.assert_allclose(rows[probe.REFERENCE_MEAN][1], mel.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(rows[probe.REFERENCE_STD][1], mel.std(axis=1, ddof=1), rtol=1e-5)


def test_cache_lookup_takes_the_newest_file_with_one_row_per_test_clip(tmp_path):
    import os

    probe = load_probe_module()
    folder = tmp_path / "06_x" / "training" / "three_subnet_a"
    folder.mkdir(parents=True)
    older, newer, newest = (folder / f"embeddings_test_{i}.npz" for i in range(3))
    np.savez(older, embeddings=np.zeros((5, 4)))
    np.savez(newer, embeddings=np.ones((5, 4)))
    np.savez(newest, embeddings=np.ones((7, 4)))  # another root's test set
    for age, path in enumerate((newest, newer, older)):
        os.utime(path, (1e9 - age, 1e9 - age))
    path, array = probe.newest_matching(tmp_path, "06_*/training/three_subnet_*/embeddings_test_*.npz",
                                        "embeddings", 5)
    assert path == newer and array.shape == (5, 4) and array[0, 0] == 1.0
    assert probe.newest_matching(tmp_path, "06_*/training/three_subnet_*/embeddings_test_*.npz",
                                 "embeddings", 9) is None


def test_blinded_test_clips_are_refused_with_the_root_named(tmp_path):
    import pytest

    probe = load_probe_module()
    root = tmp_path / "blinded_root"
    wave = (0.1 * np.random.default_rng(2).standard_normal(16000)).astype(np.float32)
    for name, split in (("section_00_source_train_normal_0000_a_1.wav", "train"),
                        ("section_00_source_train_normal_0001_a_1.wav", "train"),
                        ("section_00_0000.wav", "test"), ("section_00_0001.wav", "test")):
        folder = root / "dev_data" / "raw" / "fan" / split
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / name, wave, 16000)
    with pytest.raises(ValueError, match=r"blinded_root: 2 test clips carry no normal/anomaly label"):
        probe.main(["--data-root", str(root), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def load_training_probe_module():
    import sys

    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("probe_three_subnet_training",
                                                  SCRIPT.parent / "probe_three_subnet_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_training_probe_measures_the_untrained_and_the_trained_network(tmp_path):
    """The smoke profile end to end: one row per requested epoch, with the settings recorded;
    epoch 0 is the untrained network; the run refuses epochs beyond the
    profile's training length."""
    import json

    import pytest

    module = load_training_probe_module()
    assert module.main(["--profile", "smoke", "--epochs", "0", "1", "--out", str(tmp_path), "--label", "t"]) == 0
    report = json.loads((tmp_path / "probe_three_subnet_training_t.json").read_text())
    assert report["stft_remove_temporal_mean"] is False and report["profile"] == "smoke"
    rows = report["rows"]
    assert [row["epoch"] for row in rows] == [0, 1]
    for row in rows:
        # the mean probe AUC is the mean over the machine types' probes
        probes = [value for key, value in row.items() if key.startswith("probe ") and key != "probe_mean"]
        assert len(probes) >= 2 and row["probe_mean"] == pytest.approx(np.mean(probes), abs=2e-4)  # 4 decimals
    # one epoch of training changes the network: its embeddings give other numbers than epoch 0's
    assert rows[0]["training_accuracy"] != rows[1]["training_accuracy"] or \
        rows[0]["kmeans_official"] != rows[1]["kmeans_official"]
    assert "Synthetic data" in (tmp_path / "probe_three_subnet_training_t.md").read_text()
    with pytest.raises(SystemExit, match="up to 1"):
        module.main(["--profile", "smoke", "--epochs", "2", "--out", str(tmp_path)])


def test_domain_scaling_divides_each_domain_by_its_training_only_scale():
    """Hand-worked on unit vectors in the plane: cosine distance = 1 - cos(angle difference)."""
    import sys

    import pytest

    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("probe_domain_scaling", SCRIPT.parent / "probe_domain_scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def unit(degrees):
        radians = np.deg2rad(np.asarray(degrees, dtype=np.float64))
        return np.stack([np.cos(radians), np.sin(radians)], axis=1)

    source_angles, target_angles = np.array([0.0, 4.0, 10.0, 18.0]), np.array([90.0, 100.0, 130.0])
    train = unit(np.concatenate([source_angles, target_angles]))
    domains = np.array(["source"] * 4 + ["target"] * 3)
    queries = np.array([50.0, 95.0, 7.0])
    # 2 clips per half and 8 clusters: the centres of each half are its own clips
    kmeans = {"n_clusters": 8, "metric": "cosine", "n_init": 1}
    halves = np.array_split(np.random.default_rng(0).permutation(4), 2)
    held_out = [1 - np.cos(np.deg2rad(np.abs(source_angles[h][:, None] - source_angles[f][None]).min(axis=1)))
                for f, h in ((halves[0], halves[1]), (halves[1], halves[0]))]
    source_scale = np.median(np.concatenate(held_out))
    target_scale = 1 - np.cos(np.deg2rad(10.0))  # leave-one-out gaps 10, 10 and 30 degrees
    to_source = 1 - np.cos(np.deg2rad(np.abs(queries[:, None] - source_angles[None]).min(axis=1)))
    to_target = 1 - np.cos(np.deg2rad(np.abs(queries[:, None] - target_angles[None]).min(axis=1)))
    expected = np.minimum(to_source / source_scale, to_target / target_scale)

    scores = module.domain_scaled_scores(train, domains, unit(queries), kmeans)
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-12)
    # each clip is scored alone: dropping the other test clips changes nothing
    np.testing.assert_allclose(module.domain_scaled_scores(train, domains, unit(queries[1:2]), kmeans), expected[1:2],
                               rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="got 4 and 1"):
        module.domain_scaled_scores(train[:5], domains[:5], unit(queries), kmeans)
