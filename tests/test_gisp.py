"""Tests of asd_utils.methods.gisp: TWFR, the statistical weighting, MemMixup, GenRep kNN scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asd_utils.methods import gisp
from asd_utils.scoring import GenRepKNN, memmixup


# -- TWFR / audio statistics ------------------------------------------------------------------
def test_gwrp_weights_limits():
    np.testing.assert_allclose(gisp.gwrp_weights(4, 1.0), [0.25] * 4)
    np.testing.assert_allclose(gisp.gwrp_weights(3, 0.0), [1.0, 0.0, 0.0])
    w = gisp.gwrp_weights(3, 0.5)
    np.testing.assert_allclose(w, np.array([1.0, 0.5, 0.25]) / 1.75)
    with pytest.raises(ValueError):
        gisp.gwrp_weights(3, 1.5)


def test_twfr_hand_case():
    # one band, frames [1, 3, 2] -> sorted [3, 2, 1]; r = 0.5 -> (3 + 1 + 0.25) / 1.75
    logmel = np.array([[[1.0, 3.0, 2.0]], [[0.0, 0.0, 6.0]]])
    out = gisp.twfr(logmel, 0.5)
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out[0, 0], (3 * 1 + 2 * 0.5 + 1 * 0.25) / 1.75)
    np.testing.assert_allclose(gisp.twfr(logmel, 1.0)[:, 0], [2.0, 2.0])  # mean
    np.testing.assert_allclose(gisp.twfr(logmel, 0.0)[:, 0], [3.0, 6.0])  # max
    np.testing.assert_allclose(gisp.twfr(logmel[0], 1.0), [2.0])  # 2-D input


def test_temporal_energy_quantiles_db():
    # two bands of equal power p per frame -> frame energy 10 log10(2 p)
    frames_db = np.array([0.0, 10.0, 20.0])
    logmel = np.stack([frames_db, frames_db])[None]
    out = gisp.temporal_energy_quantiles(logmel, [0.0, 0.5, 1.0])
    expected = frames_db + 10 * np.log10(2.0)
    np.testing.assert_allclose(out[0, :3], [expected[0], expected[1], expected[2]], atol=1e-9)
    np.testing.assert_allclose(out[0, 3], expected.std(), atol=1e-9)


def test_audio_statistics_follow_level_spectrum_and_time_profile():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000.0
    kwargs = dict(n_fft=512, hop_length=256, n_mels=32, gwrp_decay=0.9, time_quantiles=(0.1, 0.5, 0.9))
    noise = 0.1 * rng.normal(size=16000)
    waves = np.stack([noise, 2.0 * noise, np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 4000 * t),
                      np.concatenate([0.001 * noise[:8000], noise[8000:]])]).astype(np.float32)
    out = gisp.audio_statistics(waves, **kwargs)
    assert out.shape == (5, 32 + 3 + 1)
    # twice the amplitude: +10 log10(4) dB in every TWFR band and energy quantile; same spread
    gain = 10 * np.log10(4.0)
    np.testing.assert_allclose(out[1, :35] - out[0, :35], gain, atol=1e-3)
    assert out[1, 35] == pytest.approx(out[0, 35], abs=1e-3)
    # a tone's TWFR peaks in its own mel band: 1 kHz below 4 kHz
    assert np.argmax(out[2, :32]) < np.argmax(out[3, :32])
    # quiet first half: the 10 % energy quantile drops by ~60 dB, the median does not rise, the spread grows
    assert out[4, 32] < out[0, 32] - 40.0
    assert out[4, 35] > 10 * out[0, 35]
    # the same numbers as the two statistics applied to the module's log-mel
    from asd_utils.features.logmel import log_mel

    mel = log_mel(torch.as_tensor(waves), n_fft=512, hop_length=256, n_mels=32)
    np.testing.assert_allclose(out[:, :32], gisp.twfr(mel, 0.9), rtol=1e-12)
    np.testing.assert_allclose(out[:, 32:], gisp.temporal_energy_quantiles(mel, (0.1, 0.5, 0.9)), rtol=1e-12)


# -- distribution distance and weight ---------------------------------------------------------
def test_statistical_weight_monotone_and_bounded():
    z = np.linspace(-10, 10, 201)
    w = gisp.statistical_weight(z, alpha=0.5, clip=3.0)
    assert np.all(np.diff(w) > 0)
    assert gisp.statistical_weight(np.array(0.0), 0.5) == pytest.approx(1.0)
    assert w.max() <= np.exp(1.5) + 1e-12 and w.min() >= np.exp(-1.5) - 1e-12
    np.testing.assert_allclose(gisp.statistical_weight(z, 0.3, np.inf), np.exp(0.3 * z))
    np.testing.assert_allclose(gisp.statistical_weight(z, 0.0), 1.0)


def test_distribution_distance_monotone_in_distance():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 3))
    dd = gisp.DistributionDistance(n_components=1, covariance_type="full", n_folds=5).fit(train)
    direction = np.array([1.0, -1.0, 0.5]) / np.linalg.norm([1.0, -1.0, 0.5])
    probes = np.outer(np.linspace(0.0, 6.0, 13), direction) + train.mean(axis=0)
    z = dd.zscore(probes)
    assert np.all(np.diff(z) > 0)
    # out-of-fold training z-scores are standardised
    assert abs(dd.train_z_.mean()) < 1e-9 and dd.train_z_.std() == pytest.approx(1.0)
    # the weight is monotone in the distance too
    sw = gisp.StatisticalWeighting(alpha_audio=0.5, alpha_embedding=0.0, clip=3.0,
                                   audio={"n_components": 1, "n_folds": 5})
    sw.fit(train, None)
    w = sw.weights(probes, None)
    assert np.all(np.diff(w) > 0)
    assert sw.train_weights_.shape == (300,)


def test_distribution_distance_small_sample_fallback():
    rng = np.random.default_rng(1)
    dd = gisp.DistributionDistance(n_components=2, pca_dim=None).fit(rng.normal(size=(6, 20)))
    assert np.isfinite(dd.zscore(rng.normal(size=(3, 20)))).all()
    with pytest.raises(ValueError):
        gisp.DistributionDistance().fit(np.zeros((2, 3)))


# -- MemMixup -----------------------------------------------------------------------------------
def test_memmixup_sizes_and_values():
    source = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [100.0, 100.0]])
    target = np.array([[1.0, 0.0], [0.0, 9.0]])
    mixed, parent = memmixup(source, target, n_support=2, alpha=0.9)
    assert mixed.shape == (4, 2)
    np.testing.assert_array_equal(parent, [0, 0, 1, 1])
    # target 0's nearest sources: (0,0) then (10,0); target 1's: (0,10) then (0,0)
    expected = np.array([
        0.9 * target[0] + 0.1 * source[0],
        0.9 * target[0] + 0.1 * source[1],
        0.9 * target[1] + 0.1 * source[2],
        0.9 * target[1] + 0.1 * source[0],
    ])
    np.testing.assert_allclose(mixed, expected)
    # n_support larger than the source bank is capped
    mixed, parent = memmixup(source, target, n_support=10)
    assert mixed.shape == (8, 2) and parent.shape == (8,)


# -- GenRep kNN and the weighted score ----------------------------------------------------------
def test_weighted_score_equals_formula_hand_case():
    # 1-D embeddings; source bank {0, 1, 3}, target bank {10} (no MemMixup), k = 1
    emb = np.array([[0.0], [1.0], [3.0], [10.0], [12.0]])
    dom = ["source", "source", "source", "target", "target"]
    knn = GenRepKNN(k=1, n_mix_support=None).fit(emb, dom)
    # leave-one-out distances: source 0->1, 1->1, 3->2 ; target 10->2, 12->2
    np.testing.assert_allclose(knn.train_distances_, [1, 1, 2, 2, 2])
    knn.set_train_embeddings(emb)
    train_w = np.array([1.0, 2.0, 1.0, 1.0, 0.5])
    test = np.array([[5.0]])
    d = knn.distances(test)
    np.testing.assert_allclose(d, [[2.0, 5.0]])
    test_w = np.array([1.5])
    scores, train_scores = knn.normalised_min(d, test_w, train_w)
    # weighted LOO: source [1, 2, 2] -> mean 5/3, std sqrt(2/9); target [2, 1] -> mean 1.5, std 0.5
    m_s, s_s = 5 / 3, np.sqrt(2 / 9)
    m_t, s_t = 1.5, 0.5
    expected = min((1.5 * 2.0 - m_s) / s_s, (1.5 * 5.0 - m_t) / s_t)
    assert scores[0] == pytest.approx(expected)
    # training clip 0 (source): own column LOO 1, target column |0 - 10| = 10 -> weights 1
    expected_train0 = min((1.0 * 1 - m_s) / s_s, (1.0 * 10 - m_t) / s_t)
    assert train_scores[0] == pytest.approx(expected_train0)


def test_genrep_target_loo_excludes_own_mixups():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 4))
    tgt = rng.normal(size=(3, 4)) + 5.0
    emb = np.concatenate([src, tgt])
    dom = ["source"] * 50 + ["target"] * 3
    knn = GenRepKNN(k=1, n_mix_support=3, mix_alpha=0.9).fit(emb, dom)
    assert knn.target_bank_.shape == (3 + 9, 4)
    # own mix-ups lie at 0.1 * |t - s| from t; excluding them the LOO distance is larger
    own_mix = np.linalg.norm(knn.target_bank_[3:6] - tgt[0], axis=1).min()
    assert knn.train_distances_[50] > own_mix


def test_gisp_system_separates_anomalies_and_is_per_clip():
    rng = np.random.default_rng(0)
    n_src, n_tgt, d = 120, 6, 8
    train_emb = np.concatenate([rng.normal(size=(n_src, d)), rng.normal(size=(n_tgt, d)) + 3.0])
    train_audio = np.concatenate([rng.normal(size=(n_src, 5)), rng.normal(size=(n_tgt, 5)) + 0.5])
    dom = ["source"] * n_src + ["target"] * n_tgt
    system = gisp.GISPSystem(
        knn={"k": 1, "n_mix_support": 3, "mix_alpha": 0.9},
        weighting={"alpha_audio": 0.5, "alpha_embedding": 0.5, "clip": 3.0,
                   "audio": {"n_components": 1}, "embedding": {"n_components": 1, "pca_dim": 4}},
    ).fit(train_emb, dom, train_audio)
    normal_emb, normal_audio = rng.normal(size=(30, d)), rng.normal(size=(30, 5))
    anom_emb, anom_audio = rng.normal(size=(30, d)) * 2.5, rng.normal(size=(30, 5)) * 2.5
    test_emb = np.concatenate([normal_emb, anom_emb])
    test_audio = np.concatenate([normal_audio, anom_audio])
    s = system.score(test_emb, test_audio)
    assert s[30:].mean() > s[:30].mean()
    # first-shot rule: a clip's score does not depend on the other test clips
    from clip_independence import assert_clip_independent

    for weighted in (True, False):
        assert_clip_independent(lambda i, w=weighted: system.score(test_emb[i], test_audio[i], weighted=w),
                                np.arange(len(test_emb)))
    assert system.train_scores_.shape == (n_src + n_tgt,)
    assert np.isfinite(system.train_scores_).all()
    unweighted = system.score(test_emb, test_audio, weighted=False)
    assert unweighted.shape == s.shape and not np.allclose(unweighted, s)


def test_gisp_system_with_extra_clips():
    """System 2: extra (supplemental) clips join the distribution fits; those flagged ``in_bank``
    also join the source memory bank, the others do not."""
    rng = np.random.default_rng(2)
    train_emb = rng.normal(size=(40, 4))
    train_audio = rng.normal(size=(40, 3))
    dom = ["source"] * 36 + ["target"] * 4
    extra_emb, extra_audio = rng.normal(size=(10, 4)) + 4.0, rng.normal(size=(10, 3)) + 4.0
    in_bank = np.array([True] * 5 + [False] * 5)
    cfg = dict(knn={"k": 1, "n_mix_support": 2},
               weighting={"audio": {"n_components": 1}, "embedding": {"n_components": 1}})
    with_extra = gisp.GISPSystem(**cfg).fit(train_emb, dom, train_audio, extra_emb=extra_emb,
                                            extra_audio=extra_audio, extra_in_bank=in_bank)
    plain = gisp.GISPSystem(**cfg).fit(train_emb, dom, train_audio)
    np.testing.assert_array_equal(with_extra.knn_.source_bank_, np.concatenate([train_emb[:36], extra_emb[:5]]))
    np.testing.assert_array_equal(plain.knn_.source_bank_, train_emb[:36])
    assert len(with_extra.weighting_.audio_.train_z_) == 50 and len(plain.weighting_.audio_.train_z_) == 40
    # an in-bank extra clip is at distance 0 from the source bank; an extra clip kept out of it is not
    d = with_extra.knn_.distances(extra_emb)
    np.testing.assert_allclose(d[:5, 0], 0.0, atol=1e-6)  # |a|^2 + |b|^2 - 2ab rounding
    assert np.all(d[5:, 0] > 0.1)
    # clips like the extra ones look less unusual once the extras are part of the fitted distribution
    assert np.all(with_extra.weights(extra_emb, extra_audio) < plain.weights(extra_emb, extra_audio))


# -- notebook glue ---------------------------------------------------------------------------------
def _toy_index(rng):
    import pandas as pd

    rows = []
    for machine in ("fan", "valve"):
        for i in range(30):
            rows.append(dict(path=f"/{machine}/train_{i}.wav", machine=machine, section="00", split="train",
                             domain="source" if i < 26 else "target", is_anomaly=0.0, supplemental_kind=None))
        for i in range(16):
            rows.append(dict(path=f"/{machine}/test_{i}.wav", machine=machine, section="00", split="test",
                             domain="source" if i % 2 else "target", is_anomaly=float(i >= 8),
                             supplemental_kind=None))
        for i, kind in enumerate(("clean", "clean", "noise", "noise")):
            rows.append(dict(path=f"/{machine}/supp_{i}.wav", machine=machine, section="00", split="supplemental",
                             domain="source", is_anomaly=np.nan, supplemental_kind=kind))
    index = pd.DataFrame(rows)
    emb = rng.normal(size=(len(index), 6)) + np.where(index["is_anomaly"].fillna(0).to_numpy() > 0, 2.0, 0.0)[:, None]
    audio = rng.normal(size=(len(index), 4))
    return index, emb, audio


def test_score_machines_and_ensemble():
    rng = np.random.default_rng(0)
    index, emb, audio = _toy_index(rng)
    knn = {"k": 1, "n_mix_support": 2}
    weighting = {"audio": {"n_components": 1}, "embedding": {"n_components": 1, "pca_dim": 3}}
    s1 = gisp.score_machines(index, emb, audio, knn=knn, weighting=weighting, progress=False)
    s2 = gisp.score_machines(index, emb, audio, knn=knn, weighting=weighting, supplemental_kinds=["clean", "noise"],
                             memory_bank_kinds=["clean"], name="System-2", progress=False)
    for res in (s1["weighted"], s1["unweighted"], s2["weighted"]):
        assert len(res.test_scores) == 32 and np.isfinite(res.test_scores).all()
        assert len(res.train_scores) == 60 and np.isfinite(res.train_scores).all()
        assert (res.test_index["split"] == "test").all()
    anomalous = s1["weighted"].test_index["is_anomaly"].to_numpy() > 0
    assert s1["weighted"].test_scores[anomalous].mean() > s1["weighted"].test_scores[~anomalous].mean()
    assert not np.allclose(s1["weighted"].test_scores, s2["weighted"].test_scores)
    ens = gisp.ensemble_by_machine([s1["weighted"], s2["weighted"]], [1.0, 3.0])
    # hand formula on one machine: weighted mean of the training-standardised scores
    fan_te = (ens.test_index["machine"] == "fan").to_numpy()
    fan_tr = (ens.train_index["machine"] == "fan").to_numpy()
    parts = []
    for res in (s1["weighted"], s2["weighted"]):
        t = res.train_scores[fan_tr]
        parts.append((res.test_scores[fan_te] - t.mean()) / t.std())
    np.testing.assert_allclose(ens.test_scores[fan_te], (1.0 * parts[0] + 3.0 * parts[1]) / 4.0)
