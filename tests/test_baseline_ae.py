import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from asd_utils.baseline_ae import (
    AEConfig,
    AutoencoderBaseline,
    BaselineAE,
    _mahalanobis_mean,
    clip_vectors,
    run_autoencoder_baseline,
)


def test_architecture_is_the_official_one():
    model = BaselineAE(AEConfig())
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [
        (640, 128), (128, 128), (128, 128), (128, 128), (128, 8),
        (8, 128), (128, 128), (128, 128), (128, 128), (128, 640),
    ]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == 9 and all(n.momentum == 0.01 and n.eps == 1e-3 for n in norms)


def test_mahalanobis_mean_equals_formula():
    rng = np.random.default_rng(0)
    residuals = torch.from_numpy(rng.standard_normal((2, 3, 4)))
    a = rng.standard_normal((4, 4))
    cov_inv = torch.from_numpy(a @ a.T + np.eye(4))
    expected = [np.mean([np.sqrt(r @ cov_inv.numpy() @ r) for r in clip]) for clip in residuals.numpy()]
    np.testing.assert_allclose(_mahalanobis_mean(residuals, cov_inv).numpy(), expected, rtol=1e-12)


def _vectors(n_clips, seed):
    rng = np.random.default_rng(seed)
    waves = 0.1 * rng.standard_normal((n_clips, 16000)).astype(np.float32)
    return clip_vectors(waves, AEConfig())


def test_mse_score_is_mean_squared_residual_and_mahala_is_min_over_domains():
    vectors = _vectors(12, 0)
    model = AutoencoderBaseline(AEConfig(epochs=2), progress=False).fit(vectors, ["source"] * 9 + ["target"] * 3)
    scores = model.score(vectors[:3])
    with torch.inference_mode():
        flat = vectors[:3].reshape(-1, 640)
        residual = (flat - model.model_(flat)).reshape(3, -1, 640)
    np.testing.assert_allclose(scores["mse"], (residual**2).mean(dim=(1, 2)).numpy(), rtol=1e-5)
    per_domain = np.stack([_mahalanobis_mean(residual, inv).numpy() for inv in model.cov_inv_.values()])
    np.testing.assert_allclose(scores["mahala"], per_domain.min(axis=0), rtol=1e-6)
    assert set(model.cov_inv_) == {"source", "target"}


def test_training_reduces_loss_and_is_deterministic():
    vectors = _vectors(8, 1)
    a = AutoencoderBaseline(AEConfig(epochs=4), seed=3, progress=False).fit(vectors, ["source"] * 8)
    b = AutoencoderBaseline(AEConfig(epochs=4), seed=3, progress=False).fit(vectors, ["source"] * 8)
    assert a.loss_history_[-1] < a.loss_history_[0]
    assert a.loss_history_ == b.loss_history_
    restored = AutoencoderBaseline.from_state(a.state())
    np.testing.assert_allclose(restored.score(vectors)["mahala"], a.score(vectors)["mahala"])


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
    assert np.isfinite(first["scores"]["AE-MAHALA"]).all()
    # touching a training clip invalidates the cached model
    import os
    os.utime(tmp_path / "train_0.wav", ns=(1, 1))
    run_autoencoder_baseline(index, AEConfig(epochs=2), cache_dir=cache, progress=False)
    assert len(list(cache.glob("ae_*.pt"))) == 2


def test_run_requires_train_and_test_clips():
    index = pd.DataFrame(dict(path=["a"], machine=["m"], section=["00"], split=["train"], domain=["source"],
                              is_anomaly=[0.0]))
    with pytest.raises(ValueError, match="needs train and test clips; got 1 train, 0 test"):
        run_autoencoder_baseline(index, AEConfig(epochs=1), progress=False)
