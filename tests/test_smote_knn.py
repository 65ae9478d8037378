"""SMOTEKNNScorer (asd_utils.scoring.knn): k-NN with a SMOTE-oversampled target library."""

from __future__ import annotations

import numpy as np
import pytest
from clip_independence import assert_clip_independent
from sklearn.base import clone

from asd_utils.scoring import KNNScorer, SMOTEKNNScorer, fit_scores_from_training


def _data(n_source=50, n_target=6, n_test=20, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(n_source, dim))
    target = rng.normal(loc=2.0, size=(n_target, dim))
    train = np.concatenate([source, target])
    domains = np.array(["source"] * n_source + ["target"] * n_target)
    test = rng.normal(loc=1.0, size=(n_test, dim))
    return train, domains, test


def test_oversamples_the_target_library_to_the_configured_ratio():
    train, domains, _ = _data(n_source=50, n_target=6)
    scorer = SMOTEKNNScorer(ratio=0.2, smote_neighbors=3).fit(train, domains)
    assert scorer.n_source_ == 50 and scorer.n_target_ == 6
    assert scorer.n_synthetic_ == int(0.2 * 50) - 6 == 4
    assert len(scorer.knn_.banks_["target"]) == int(0.2 * 50)
    assert len(scorer.knn_.banks_["source"]) == 50
    assert scorer.smote_neighbors_ == 3 and scorer.smote_skipped_ is None
    scorer = SMOTEKNNScorer(ratio=0.5, smote_neighbors=3).fit(train, domains)
    assert len(scorer.knn_.banks_["target"]) == 25


def test_synthetic_points_lie_between_target_neighbours():
    train, domains, _ = _data(n_source=60, n_target=5)
    scorer = SMOTEKNNScorer(metric="euclidean", ratio=0.3, smote_neighbors=3).fit(train, domains)
    target = train[domains == "target"]
    for s in scorer.synthetic_:
        # distance from s to the closest segment between two target clips
        best = np.inf
        for i in range(len(target)):
            for j in range(len(target)):
                if i == j:
                    continue
                a, b = target[i], target[j]
                u = np.clip((s - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
                best = min(best, np.linalg.norm(a + u * (b - a) - s))
        assert best < 1e-9


def test_smote_never_sees_test_embeddings(monkeypatch):
    import imblearn.over_sampling

    seen = []
    original = imblearn.over_sampling.SMOTE.fit_resample

    def spy(self, x, y):
        seen.append(np.array(x, copy=True))
        return original(self, x, y)

    monkeypatch.setattr(imblearn.over_sampling.SMOTE, "fit_resample", spy)
    train, domains, test = _data()
    scorer = SMOTEKNNScorer(metric="euclidean").fit(train, domains)
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], train)  # exactly the training embeddings, nothing else
    scorer.score(test)
    scorer.score_by_domain(test)
    assert len(seen) == 1  # scoring never resamples
    # no test row is among the rows SMOTE saw
    assert not any(np.isclose(seen[0], row).all(axis=1).any() for row in test)


def test_score_is_the_minimum_over_source_and_oversampled_target_libraries():
    train, domains, test = _data()
    scorer = SMOTEKNNScorer(k=2, metric="euclidean").fit(train, domains)
    source = train[domains == "source"]
    target = np.concatenate([train[domains == "target"], scorer.synthetic_])

    def knn(q, bank):
        d = np.linalg.norm(q[:, None] - bank[None], axis=2)
        return np.sort(d, axis=1)[:, :2].mean(axis=1)

    np.testing.assert_allclose(scorer.score(test), np.minimum(knn(test, source), knn(test, target)), rtol=1e-9)


def test_ratio_zero_equals_plain_separate_domain_knn():
    train, domains, test = _data()
    plain = KNNScorer(k=1, metric="cosine", separate_domains=True).fit(train, domains).score(test)
    no_smote = SMOTEKNNScorer(k=1, metric="cosine", ratio=0.0).fit(train, domains)
    assert no_smote.n_synthetic_ == 0 and no_smote.smote_skipped_ == "ratio is 0"
    np.testing.assert_allclose(no_smote.score(test), plain, atol=1e-12)


def test_cosine_synthetic_points_are_unit_vectors():
    train, domains, _ = _data()
    scorer = SMOTEKNNScorer(metric="cosine").fit(train, domains)
    np.testing.assert_allclose(np.linalg.norm(scorer.synthetic_, axis=1), 1.0, atol=1e-12)


def test_fallbacks_without_enough_target_clips():
    train, domains, _ = _data(n_source=50, n_target=3)
    scorer = SMOTEKNNScorer(ratio=0.2, smote_neighbors=3).fit(train, domains)
    assert scorer.smote_neighbors_ == 2 and scorer.n_synthetic_ == 7  # n_target - 1 neighbours
    train, domains, _ = _data(n_source=50, n_target=1)
    assert "needs at least 2" in SMOTEKNNScorer().fit(train, domains).smote_skipped_
    train, domains, _ = _data(n_source=10, n_target=4)  # 0.2 * 10 = 2 <= 4: nothing to add
    scorer = SMOTEKNNScorer().fit(train, domains)
    assert scorer.n_synthetic_ == 0 and "already reach" in scorer.smote_skipped_
    assert SMOTEKNNScorer().fit(train, None).smote_skipped_ == "no domains given"


def test_clone_cross_fitted_training_scores_and_errors():
    train, domains, _ = _data()
    scorer = SMOTEKNNScorer(k=1, ratio=0.2, smote_neighbors=3)
    assert clone(scorer).get_params() == scorer.get_params()
    scores = fit_scores_from_training(scorer, train, domains, n_splits=3)
    assert scores.shape == (len(train),) and np.isfinite(scores).all() and (scores > 0).all()
    with pytest.raises(RuntimeError, match="not fitted"):
        SMOTEKNNScorer().score(train)
    with pytest.raises(ValueError, match="ratio"):
        SMOTEKNNScorer(ratio=-1).fit(train, domains)
    with pytest.raises(ValueError, match="dim"):
        SMOTEKNNScorer().fit(train, domains).score(train[:, :3])


def test_a_clip_score_does_not_depend_on_the_other_test_clips():
    train, domains, test = _data(n_test=12)
    scorer = SMOTEKNNScorer().fit(train, domains)
    assert_clip_independent(scorer.score, test)
