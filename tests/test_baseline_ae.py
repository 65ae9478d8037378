import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from clip_independence import assert_clip_independent

from asd_utils.methods.baseline_ae import (
    DOMAINS,
    AEConfig,
    AutoencoderBaseline,
    BaselineAE,
    clip_vectors,
    holdout_split,
    invert_covariance,
    mahalanobis_clip_scores,
    residual_covariances,
    run_autoencoder_baseline,
)

# Made by running the official nttcslab/dcase2023_task2_baseline_ae code (scripts/make_ae_golden.py).
GOLDEN = Path(__file__).parent / "fixtures" / "ae_official_tiny.npz"


def test_architecture_is_the_official_one():
    model = BaselineAE(AEConfig())
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [
        (640, 128), (128, 128), (128, 128), (128, 128), (128, 8),
        (8, 128), (128, 128), (128, 128), (128, 128), (128, 640),
    ]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == 9 and all(n.momentum == 0.01 and n.eps == 1e-3 for n in norms)
    assert AEConfig().validation_split == 0.1


# -- the golden fixture: the official code on a tiny machine type (n_mels 16) -------------------
@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN))


def _official_model(golden) -> AutoencoderBaseline:
    """Our baseline holding the official AENet's trained weights (encoder/decoder -> one Sequential)."""
    config = AEConfig(n_mels=16, batch_size=int(golden["batch_size"]))
    baseline = AutoencoderBaseline(config, progress=False)
    baseline.model_ = BaselineAE(config)
    state = {}
    for key, value in golden.items():
        if key.startswith(("param:encoder.", "param:decoder.")):
            part, index, name = key.removeprefix("param:").split(".")
            state[f"net.{int(index) + (15 if part == 'decoder' else 0)}.{name}"] = torch.from_numpy(value)
    baseline.model_.load_state_dict(state)  # strict: every official tensor has its place
    baseline.model_.eval()
    return baseline


def _official_covariance_batches(golden, baseline):
    vectors = torch.from_numpy(golden["train_vectors"])
    is_target = torch.from_numpy(golden["train_is_target"])
    order = torch.from_numpy(golden["cov_order"])
    size = int(golden["batch_size"])
    return [(baseline._flat_residuals(vectors[order[s : s + size]]), is_target[order[s : s + size]])
            for s in range(0, len(order), size)]


def test_golden_covariances_equal_the_official_ones(golden):
    baseline = _official_model(golden)
    covariances = residual_covariances(_official_covariance_batches(golden, baseline), n_mels=16)
    for domain in DOMAINS:
        official = torch.from_numpy(golden[f"param:cov_{domain}"]).double()
        assert covariances[domain].shape == (16, 16)
        scale = official.abs().max()
        assert float((covariances[domain] - official).abs().max() / scale) < 1e-6
        # the official float32 inversion of the official covariance
        precision = invert_covariance(official)
        expected = torch.from_numpy(golden[f"inv_cov_{domain}"])
        assert precision.dtype == torch.float32
        torch.testing.assert_close(precision, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_golden_clip_scores_equal_the_official_ones(golden):
    baseline = _official_model(golden)
    test_vectors = torch.from_numpy(golden["test_vectors"])
    # with the official precision matrices: the scoring formula alone
    baseline.cov_inv_ = {d: torch.from_numpy(golden[f"inv_cov_{d}"]) for d in DOMAINS}
    scores = baseline.score(test_vectors)
    np.testing.assert_allclose(scores["mse"], golden["test_mse"], rtol=1e-6)
    np.testing.assert_allclose(scores["mahala"], golden["test_mahala"], rtol=1e-6)
    # end to end: our covariances and our inversion (float32 inversion amplifies 1e-7 differences)
    covariances = residual_covariances(_official_covariance_batches(golden, baseline), n_mels=16)
    baseline.cov_inv_ = {d: invert_covariance(c) for d, c in covariances.items()}
    np.testing.assert_allclose(baseline.score(test_vectors)["mahala"], golden["test_mahala"], rtol=5e-4)


def test_golden_fixture_tells_the_candidate_definitions_apart(golden):
    """The tolerances above would catch the non-official variants (this is what the test is for)."""
    baseline = _official_model(golden)
    residuals = baseline._residuals(torch.from_numpy(golden["test_vectors"])).double()
    precision = {d: torch.from_numpy(golden[f"inv_cov_{d}"]).double() for d in DOMAINS}
    frames = residuals.reshape(len(residuals), -1, 16)
    # mean of per-frame squared distances (instead of the distance of the mean frame)
    per_frame = torch.stack([torch.einsum("cfd,de,cfe->cf", frames, precision[d], frames).mean(1) for d in DOMAINS])
    assert np.all(np.abs(per_frame.min(0).values.numpy() / golden["test_mahala"] - 1) > 0.01)
    # mean of square-rooted distances
    rooted = torch.stack([torch.einsum("cfd,de,cfe->cf", frames, precision[d], frames).sqrt().mean(1) for d in DOMAINS])
    assert np.all(np.abs(rooted.min(0).values.numpy() / golden["test_mahala"] - 1) > 0.1)
    # one global centring instead of the official per-batch centring
    batches = _official_covariance_batches(golden, baseline)
    source = torch.cat([r[~t] for r, t in batches if len(r) > 1]).reshape(-1, 16).double()
    n_vectors = len(source) // 5
    centred = source - source.mean(0)
    global_cov = centred.T @ centred / (n_vectors - 1)
    official = torch.from_numpy(golden["param:cov_source"]).double()
    assert float((global_cov - official).abs().max() / official.abs().max()) > 1e-4
    # dividing by the number of frames instead of vectors
    assert float((global_cov * (n_vectors - 1) / (len(source) - 1) - official).abs().max()) > 0.5 * float(
        official.abs().max())


def test_holdout_matches_the_official_split_size(golden):
    n = len(golden["train_vectors"])
    assert len(golden["valid_index"]) == math.ceil(0.1 * n)
    train, valid = holdout_split(n, 0.1, torch.Generator().manual_seed(0))
    assert len(valid) == len(golden["valid_index"]) and len(train) == len(golden["train_index"])
    assert sorted(torch.cat([train, valid]).tolist()) == list(range(n))
    assert len(holdout_split(10, 0.0, torch.Generator())[1]) == 0
    with pytest.raises(ValueError, match="validation_split must be in"):
        holdout_split(10, 1.0, torch.Generator())


# -- formulas on hand-made numbers --------------------------------------------------------------
def test_mahalanobis_clip_score_is_the_official_mean_of_delta_p_delta():
    rng = np.random.default_rng(0)
    residuals = rng.standard_normal((3, 4, 2 * 6))  # 3 clips, 4 vectors of 2 frames x 6 mels
    a = rng.standard_normal((6, 6))
    precision = a @ a.T + np.eye(6)
    expected = []
    for clip in residuals:
        delta = clip.reshape(-1, 6)  # the official view(-1, block_size)
        expected.append(np.sum(delta @ precision @ delta.T) / len(delta) / len(delta))
    got = mahalanobis_clip_scores(torch.from_numpy(residuals), torch.from_numpy(precision)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_residual_covariances_per_batch_centring_and_vector_count():
    rng = np.random.default_rng(1)
    first = torch.from_numpy(rng.standard_normal((4, 2 * 3)))   # 4 vectors of 2 frames x 3 mels
    second = torch.from_numpy(rng.standard_normal((3, 2 * 3)) + 5.0)
    lone = torch.from_numpy(rng.standard_normal((1, 2 * 3)) + 100.0)  # one-vector batch: skipped
    is_target = [torch.tensor([False, False, True, True]), torch.tensor([False, False, False]), torch.tensor([True])]
    cov = residual_covariances(zip([first, second, lone], is_target), n_mels=3)

    def scatter(vectors):
        frames = vectors.numpy().reshape(-1, 3)
        centred = frames - frames.mean(0)
        return centred.T @ centred

    np.testing.assert_allclose(cov["source"].numpy(), (scatter(first[:2]) + scatter(second)) / (5 - 1), rtol=1e-12)
    np.testing.assert_allclose(cov["target"].numpy(), scatter(first[2:]) / (2 - 1), rtol=1e-12)
    only_source = residual_covariances([(first, torch.zeros(4, dtype=torch.bool))], n_mels=3)
    torch.testing.assert_close(only_source["target"], only_source["source"])
    with pytest.raises(ValueError, match="at least 2 source training vectors"):
        residual_covariances([(first, torch.ones(4, dtype=torch.bool))], n_mels=3)


def test_singular_covariance_is_a_clear_error():
    with pytest.raises(ValueError, match="singular"):
        invert_covariance(torch.zeros(4, 4, dtype=torch.float64))


# -- training -----------------------------------------------------------------------------------
def _vectors(n_clips, seed, seconds=1.0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    waves = [0.2 * np.sin(2 * np.pi * rng.uniform(200, 400) * t) + 0.02 * rng.standard_normal(t.size)
             for _ in range(n_clips)]
    return clip_vectors(np.stack(waves).astype(np.float32), AEConfig())


def test_holdout_is_left_out_of_training_and_of_the_covariances():
    vectors = _vectors(8, 0)  # 8 clips x 28 vectors
    config = AEConfig(epochs=1, batch_size=10_000)  # one batch: per-batch centring = global centring
    model = AutoencoderBaseline(config, progress=False).fit(vectors, ["source"] * 8)
    n = 8 * vectors.shape[1]
    assert model.n_validation_vectors_ == math.ceil(0.1 * n) and model.n_train_vectors_ == n - math.ceil(0.1 * n)
    flat = vectors.reshape(-1, 640)
    keep = torch.ones(n, dtype=torch.bool)
    keep[model.validation_index_] = False
    residuals = model._flat_residuals(flat)
    frames = residuals[keep].reshape(-1, 128).double()
    centred = frames - frames.mean(0)
    expected = (centred.T @ centred / (int(keep.sum()) - 1)).float()
    torch.testing.assert_close(model.cov_["source"], expected, rtol=1e-5, atol=1e-6)
    frames_all = residuals.reshape(-1, 128).double()
    centred_all = frames_all - frames_all.mean(0)
    with_validation = (centred_all.T @ centred_all / (n - 1)).float()
    assert not torch.allclose(model.cov_["source"], with_validation, rtol=1e-4)
    assert len(model.val_loss_history_) == 1 and np.isfinite(model.val_loss_history_[0])


def test_training_reduces_loss_and_is_deterministic():
    vectors = _vectors(8, 1)
    a = AutoencoderBaseline(AEConfig(epochs=4), seed=3, progress=False).fit(vectors, ["source"] * 6 + ["target"] * 2)
    b = AutoencoderBaseline(AEConfig(epochs=4), seed=3, progress=False).fit(vectors, ["source"] * 6 + ["target"] * 2)
    assert a.loss_history_[-1] < a.loss_history_[0]
    assert a.val_loss_history_[-1] < a.val_loss_history_[0]
    assert a.loss_history_ == b.loss_history_ and a.val_loss_history_ == b.val_loss_history_
    restored = AutoencoderBaseline.from_state(a.state())
    np.testing.assert_array_equal(restored.score(vectors)["mahala"], a.score(vectors)["mahala"])
    torch.testing.assert_close(restored.validation_index_, a.validation_index_)


def test_scores_are_mse_and_min_over_domain_precisions_and_clip_independent():
    vectors = _vectors(12, 2)
    model = AutoencoderBaseline(AEConfig(epochs=2), progress=False).fit(vectors, ["source"] * 8 + ["target"] * 4)
    assert set(model.cov_inv_) == {"source", "target"}
    assert all(p.shape == (128, 128) and p.dtype == torch.float32 for p in model.cov_inv_.values())
    test = _vectors(6, 3)
    scores = model.score(test)
    with torch.inference_mode():
        flat = test.reshape(-1, 640)
        residual = (flat - model.model_(flat)).reshape(6, -1, 640).double().numpy()
    np.testing.assert_allclose(scores["mse"], (residual**2).mean(axis=(1, 2)), rtol=1e-5)
    mean_frame = residual.reshape(6, -1, 128).mean(axis=1)
    per_domain = [np.einsum("cd,de,ce->c", mean_frame, model.cov_inv_[d].double().numpy(), mean_frame) for d in DOMAINS]
    np.testing.assert_allclose(scores["mahala"], np.min(per_domain, axis=0), rtol=1e-4)
    for key in ("mse", "mahala"):
        assert_clip_independent(lambda items, key=key: model.score(items)[key], test)


def test_fit_rejects_bad_shapes_and_domains():
    vectors = _vectors(3, 4)
    with pytest.raises(ValueError, match=r"expected vectors \(clips, positions, 640\)"):
        AutoencoderBaseline(AEConfig(epochs=1), progress=False).fit(vectors[:, :, :100], ["source"] * 3)
    with pytest.raises(ValueError, match="one 'source'/'target' domain per clip"):
        AutoencoderBaseline(AEConfig(epochs=1), progress=False).fit(vectors, ["source", "other", "source"])


# -- a data index end to end ----------------------------------------------------------------------
def _write(path, seed, anomalous=False):
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    wave = 0.2 * np.sin(2 * np.pi * 300 * t) + 0.02 * rng.standard_normal(t.size)
    if anomalous:
        wave += 0.2 * np.sin(2 * np.pi * 2500 * t)
    sf.write(path, wave.astype(np.float32), 16000)


def test_run_on_an_index_aligns_rows_and_reuses_the_cache(tmp_path):
    rows = []
    for i in range(10):
        domain = "target" if i >= 8 else "source"
        path = tmp_path / f"train_{i}.wav"
        _write(path, i)
        rows.append(dict(path=str(path), file_name=path.name, machine="pump", section="00", split="train",
                         domain=domain, is_anomaly=0.0))
    for i in range(8):
        path = tmp_path / f"test_{i}.wav"
        anomalous = i % 2 == 1
        _write(path, 100 + i, anomalous)
        rows.append(dict(path=str(path), file_name=path.name, machine="pump", section="00", split="test",
                         domain="source" if i < 4 else "target", is_anomaly=float(anomalous)))
    index = pd.DataFrame(rows)
    cache = tmp_path / "cache"
    first = run_autoencoder_baseline(index, AEConfig(epochs=2), cache_dir=cache, progress=False)
    assert len(list(cache.glob("ae_*.pt"))) == 1
    second = run_autoencoder_baseline(index, AEConfig(epochs=2), cache_dir=cache, progress=False)
    for system in first["scores"]:
        np.testing.assert_array_equal(first["scores"][system], second["scores"][system])
    assert first["scores"]["AE-MSE"].shape == (8,) and first["train_scores"]["AE-MAHALA"].shape == (10,)
    assert list(first["test_index"]["file_name"]) == [f"test_{i}.wav" for i in range(8)]
    history = first["loss_history"]
    assert list(history.columns) == ["machine", "epoch", "loss", "val_loss"] and len(history) == 2
    assert history["val_loss"].notna().all()
    # the key is the clips' content: touching a clip reuses the model, changing its sound does not
    os.utime(tmp_path / "train_0.wav", ns=(1, 1))
    run_autoencoder_baseline(index, AEConfig(epochs=2), cache_dir=cache, progress=False)
    assert len(list(cache.glob("ae_*.pt"))) == 1
    _write(tmp_path / "train_0.wav", 99)
    run_autoencoder_baseline(index, AEConfig(epochs=2), cache_dir=cache, progress=False)
    assert len(list(cache.glob("ae_*.pt"))) == 2


def test_run_requires_train_and_test_clips():
    index = pd.DataFrame(dict(path=["a"], machine=["m"], section=["00"], split=["train"], domain=["source"],
                              is_anomaly=[0.0]))
    with pytest.raises(ValueError, match="needs train and test clips; got 1 train, 0 test"):
        run_autoencoder_baseline(index, AEConfig(epochs=1), progress=False)


def test_a_machine_type_without_test_clips_is_trained_and_scored_on_training_clips_only(tmp_path):
    rows = []
    for machine in ("pump", "valve"):
        for i in range(10):
            path = tmp_path / f"{machine}_train_{i}.wav"
            _write(path, i + (50 if machine == "valve" else 0))
            rows.append(dict(path=str(path), file_name=path.name, machine=machine, section="00", split="train",
                             domain="target" if i >= 8 else "source", is_anomaly=0.0))
    for i in range(4):  # only pump has test clips
        path = tmp_path / f"pump_test_{i}.wav"
        _write(path, 100 + i, i % 2 == 1)
        rows.append(dict(path=str(path), file_name=path.name, machine="pump", section="00", split="test",
                         domain="source", is_anomaly=float(i % 2)))
    result = run_autoencoder_baseline(pd.DataFrame(rows), AEConfig(epochs=1), progress=False)
    assert result["scores"]["AE-MAHALA"].shape == (4,)
    assert np.isfinite(result["train_scores"]["AE-MAHALA"]).all() and len(result["train_scores"]["AE-MSE"]) == 20
    assert set(result["loss_history"]["machine"]) == {"pump", "valve"}
