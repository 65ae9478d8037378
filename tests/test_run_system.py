"""One system end to end, as notebooks 04 and 05 run it: ``nivic.run_system`` and ``xju.run_system`` on
smoke-size synthetic tones (training, cache, embeddings, the kNN back end)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asd_utils.config import load_config
from asd_utils.evaluation import metrics
from asd_utils.methods import nivic, xju
from asd_utils.methods.pipeline import score_sections

SR = 16000


def _tones(freqs, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    return np.stack([np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) + 0.05 * rng.normal(size=t.size)
                     for f in freqs]).astype(np.float32)


def _index(machine: str, domains, attributes, labels=None) -> pd.DataFrame:
    n = len(domains)
    rows = pd.DataFrame({"machine": machine, "section": "00", "domain": list(domains), "attributes": list(attributes),
                         "file_name": [f"{machine}_{i:02d}.wav" for i in range(n)]})
    if labels is not None:
        rows["is_anomaly"] = list(labels)
        rows["label"] = ["anomaly" if a else "normal" for a in labels]
    return rows


# -- notebook 04: NIVIC ------------------------------------------------------------------------------
def _nivic_cfg() -> dict:
    return {"sample_rate": SR, "crop_seconds": 0.25, "embed_hop_seconds": 0.125, "n_fft": 512, "hop_length": 256,
            "n_mels": 16, "fmin": 200.0, "fmax": 8000.0, "width": 0.125, "emb_dim": 16, "se_ratio": 4,
            "n_subclusters": 2, "statex_prob": 0.5, "featex_prob": 0.5, "loss_weights": [1.0, 0.0, 1.0],
            "trainable_centres": [False, True, True], "mixup_alpha": None, "mixup_prob": 0.5,
            "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 8, "epochs": 2, "embed_batch_size": 32,
            "final_bn_relu": True, "holdout_fraction": 0.25}


@pytest.fixture(scope="module")
def nivic_data():
    # machine "a": two attribute strings x source, plus 2 target clips; "h": hidden attributes (pseudo-labelled)
    train = pd.concat([_index("a", ["source"] * 8 + ["target"] * 2, ["x_1"] * 4 + ["x_2"] * 4 + ["x_1"] * 2),
                       _index("h", ["source"] * 8 + ["target"] * 2, ["noAttribute"] * 10)], ignore_index=True)
    waves_train = np.concatenate([_tones([600] * 4 + [900] * 4 + [700] * 2, 0.5, 0),
                                  _tones([2000] * 4 + [3000] * 4 + [2500] * 2, 0.5, 1)])
    test = pd.concat([_index("a", ["source", "target"] * 2, ["x_1"] * 4, [0, 0, 1, 1]),
                      _index("h", ["source", "target"] * 2, ["noAttribute"] * 4, [0, 0, 1, 1])], ignore_index=True)
    test["file_name"] = "test_" + test["file_name"]
    waves_test = np.concatenate([_tones([600, 700, 5000, 5500], 0.5, 2), _tones([2000, 2500, 500, 400], 0.5, 3)])
    hidden = train[train["machine"] == "h"]
    pseudo = pd.DataFrame({"machine": "h", "file_name": hidden["file_name"].to_numpy(),
                           "pseudo": ["source-0"] * 4 + ["source-1"] * 4 + ["target-0"] * 2})
    sim_rows = _index("a", ["source"] * 2, ["simulated"] * 2)
    sim_rows["file_name"] = ["sim_0.wav", "sim_1.wav"]
    return nivic.SystemData(train_index=train, test_index=test, waves_train=waves_train, waves_test=waves_test,
                            pseudo=pseudo, sim_rows=sim_rows, sim_waves=_tones([650, 850], 0.5, 4),
                            highpass_machines=["h"], highpass_cfg={"cutoff_hz": 1000.0, "order": 4})


@pytest.fixture(scope="module")
def nivic_full(nivic_data, tmp_path_factory):
    cache = tmp_path_factory.mktemp("nivic_runs")
    scoring = {"k": 1, "metric": "cosine", "separate_domains": True, "l2_normalise": True, "n_splits": 2}
    run = nivic.run_system("Full", nivic_data, _nivic_cfg(), scoring, cache_dir=cache, seed=0)
    return run, cache, scoring


def test_nivic_full_system_classes_and_shapes(nivic_data, nivic_full):
    run, _, _ = nivic_full
    # a: x_1/x_2 source + x_1 target = 3, h: pseudo source-0/source-1/target-0 = 3, simulated a/00/source = 1
    assert run.n_classes == 7
    assert run.n_fit + run.n_heldout == 20 + 2
    assert run.train_embeddings.shape == (20, 32) and run.test_embeddings.shape == (8, 32)  # two 16-d branches
    assert run.scores.test.shape == (8,) and run.scores.train.shape == (20,)
    assert set(nivic_data._filtered) == {("train", True), ("simulated", True), ("test", True)}
    assert run.options == nivic.system_options("Full")
    assert len(run.history) == 2


def test_nivic_scores_are_the_knn_back_end_of_the_returned_embeddings(nivic_data, nivic_full):
    run, _, scoring = nivic_full
    again = nivic.score(nivic_data.train_index, run.train_embeddings, nivic_data.test_index, run.test_embeddings,
                        scoring, seed=0)
    np.testing.assert_array_equal(again.test, run.scores.test)
    table = metrics.evaluate(nivic_data.test_index, run.scores.test)
    assert f"official score {100 * metrics.official_score(table):.2f} %" in run.summary(table)


def test_nivic_rerun_restores_from_the_cache_and_ablation_drops_classes(nivic_data, nivic_full):
    run, cache, scoring = nivic_full
    again = nivic.run_system("Full", nivic_data, _nivic_cfg(), scoring, cache_dir=cache, seed=0)
    np.testing.assert_array_equal(again.train_embeddings, run.train_embeddings)
    np.testing.assert_array_equal(again.scores.test, run.scores.test)
    plain = nivic.run_system("No pseudo-labels", nivic_data, {**_nivic_cfg(), "epochs": 1}, scoring, seed=0)
    assert plain.n_classes == 7 - 3 + 2  # the hidden type keeps one class per domain


# -- notebook 05: XJU --------------------------------------------------------------------------------
def test_xju_run_system_scores_with_and_without_smote_and_restores(tmp_path):
    cfg = load_config("05_xju", "smoke")
    train_cfg = {**cfg["training"], "total_steps": 2, "batch_size": 8}
    scoring = {"k": 1, "metric": "cosine", "smote_ratio": 0.5, "smote_neighbors": 3, "n_splits": 2}
    train = _index("m", ["source"] * 12 + ["target"] * 4, ["x_1"] * 6 + ["x_2"] * 6 + ["x_1"] * 4)
    waves = _tones([500] * 6 + [800] * 6 + [650] * 4, 0.5, 0)
    labels, classes = xju.class_labels(train)
    test = _index("m", ["source", "target"] * 3, ["x_1"] * 6, [0, 0, 0, 1, 1, 1])
    waves_test = _tones([500, 650, 800, 3000, 3500, 4000], 0.5, 1)
    kwargs = dict(model_cfg=cfg["model"], train_cfg=train_cfg, scoring_cfg=scoring, checkpoints={},
                  waves_fit=waves, labels=labels, classes=classes, train_index=train, test_index=test,
                  waves_test=waves_test, crop_samples=SR // 4, hop_samples=SR // 4, probe_machine="m",
                  cache_dir=tmp_path, seed=0)
    run = xju.run_system("EAT-FFT", **kwargs)
    assert list(run.scores) == ["EAT-FFT", "EAT-FFT no-SMOTE"]
    assert run.train_embeddings.shape[0] == 16 and run.test_embeddings.shape[0] == 6
    assert run.overview["SMOTE points (m)"] == 6 - 4  # ratio 0.5 of 12 source clips, minus the 4 target clips
    assert not run.overview["restored from cache"]
    assert set(run.accuracy) == {"all", "eat", "fft"}
    plain = score_sections(xju.make_scorer(scoring, smote=False, seed=0), train, run.train_embeddings, test,
                           run.test_embeddings, n_splits=2, seed=0)
    np.testing.assert_array_equal(plain.test, run.scores["EAT-FFT no-SMOTE"].test)
    again = xju.run_system("EAT-FFT", **kwargs)
    assert again.overview["restored from cache"]
    np.testing.assert_array_equal(again.scores["EAT-FFT"].test, run.scores["EAT-FFT"].test)
