"""Tests of asd_utils.scoring (engine, kNN, k-means, GMM, Mahalanobis, normalisation) on hand-worked numbers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from sklearn.base import clone
from sklearn.covariance import LedoitWolf
from sklearn.neighbors import NearestNeighbors

from asd_utils.scoring import (
    GMMScorer,
    KMeansScorer,
    KNNScorer,
    MahalanobisScorer,
    TrainStatNormalizer,
    fit_scores_from_training,
    knn_mean_distance,
    knn_search,
    weighted_ensemble,
)

THREE = np.array([[0.0], [1.0], [3.0]])


@pytest.mark.parametrize("k, expected", [(1, 1.0), (2, 1.0), (3, 4 / 3), (5, 4 / 3)])
def test_knn_three_points_euclidean(k, expected):
    # Query 2 against {0, 1, 3}: distances 2, 1, 1; k is clipped to the bank size.
    s = KNNScorer(k=k, metric="euclidean").fit(THREE).score([[2.0]])
    assert s.dtype == np.float64 and s.shape == (1,)
    assert s[0] == pytest.approx(expected)


def test_knn_three_points_cosine():
    bank = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    knn = KNNScorer(k=1, metric="cosine").fit(bank)
    # (2, 0) is parallel to (1, 0): distance 0; (-1, 0): distances 2, 1, 1 + 1/sqrt(2) -> 1.
    np.testing.assert_allclose(knn.score([[2.0, 0.0], [-1.0, 0.0]]), [0.0, 1.0], atol=1e-12)
    knn2 = KNNScorer(k=2, metric="cosine").fit(bank)
    assert knn2.score([[-1.0, 0.0]])[0] == pytest.approx((1.0 + 1.0 + 1 / np.sqrt(2)) / 2)


def test_knn_min_over_domain_banks():
    emb = np.array([[0.0], [10.0], [100.0]])
    domains = ["source", "source", "target"]
    knn = KNNScorer(k=1, metric="euclidean").fit(emb, domains)
    by = knn.score_by_domain([[90.0], [4.0]])
    np.testing.assert_allclose(by["source"], [80.0, 4.0])
    np.testing.assert_allclose(by["target"], [10.0, 96.0])
    np.testing.assert_allclose(knn.score([[90.0], [4.0]]), [10.0, 4.0])
    # One shared bank when separate_domains=False: k=2 mixes domains.
    shared = KNNScorer(k=2, metric="euclidean", separate_domains=False).fit(emb, domains)
    np.testing.assert_allclose(shared.score([[90.0]]), [(10.0 + 80.0) / 2])


def test_knn_leave_one_out_training_scores():
    knn = KNNScorer(k=1, metric="euclidean").fit(THREE)
    np.testing.assert_allclose(knn.training_scores(), [1.0, 1.0, 2.0])
    # Target bank holds one clip: without itself it is empty, so the source bank decides.
    knn = KNNScorer(k=1, metric="euclidean").fit(THREE, ["source", "source", "target"])
    np.testing.assert_allclose(knn.training_scores(), [1.0, 1.0, 2.0])
    by = knn.training_scores(by_domain=True)
    assert np.isinf(by["target"][2])
    np.testing.assert_allclose(by["target"][:2], [3.0, 2.0])
    # Through the generic helper (which clones and fits).
    got = fit_scores_from_training(KNNScorer(k=2, metric="euclidean"), THREE)
    np.testing.assert_allclose(got, [(1 + 3) / 2, (1 + 2) / 2, (2 + 3) / 2])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_matches_sklearn_brute_with_small_blocks(metric):
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    got = KNNScorer(k=3, metric=metric, batch_size=7).fit(bank).score(queries)
    nn = NearestNeighbors(n_neighbors=3, algorithm="brute", metric=metric).fit(bank.astype(np.float64))
    ref = nn.kneighbors(queries.astype(np.float64))[0].mean(axis=1)
    np.testing.assert_allclose(got, ref, atol=1e-10)
    # Leave-one-out equals k+1 neighbours without the zero self-distance.
    loo = KNNScorer(k=3, metric=metric, batch_size=16).fit(bank).training_scores()
    ref_loo = nn.kneighbors(bank.astype(np.float64), n_neighbors=4)[0][:, 1:].mean(axis=1)
    np.testing.assert_allclose(loo, ref_loo, atol=1e-10)


def test_knn_mean_distance_exclude_and_errors():
    d = knn_mean_distance([[2.0], [0.0]], THREE, 1, metric="euclidean", exclude=np.array([2, 0]))
    np.testing.assert_allclose(d, [1.0, 1.0])  # 3 excluded for the first; 0 itself for the second
    with pytest.raises(ValueError, match="metric"):
        knn_mean_distance(THREE, THREE, metric="manhattan")
    with pytest.raises(ValueError, match="dim"):
        knn_mean_distance(np.zeros((2, 2)), THREE)
    with pytest.raises(RuntimeError, match="not fitted"):
        KNNScorer().score(THREE)
    with pytest.raises(ValueError, match="dim 1"):
        KNNScorer().fit(THREE).score(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="entries"):
        KNNScorer().fit(THREE, ["source"])


def test_knn_search_hand_worked_euclidean_and_groups():
    bank = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 1.0]])
    queries = np.array([[0.0, 0.0], [3.0, 3.0]])
    # (0, 0): distances 0, 5, 10, 1; (3, 3): sqrt(18), 1, sqrt(34), sqrt(13).
    dist, idx = knn_search(queries, bank, 2, metric="euclidean")
    np.testing.assert_allclose(dist, [[0.0, 1.0], [1.0, np.sqrt(13.0)]], atol=1e-15)
    np.testing.assert_array_equal(idx, [[0, 3], [1, 3]])
    # Groups: query 0 must not match group 0 (rows 0 and 1); query 1 excludes nothing.
    dist, idx = knn_search(queries, bank, 2, metric="euclidean", exclude=np.array([0, -1]),
                           bank_groups=np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(dist, [[1.0, 10.0], [1.0, np.sqrt(13.0)]], atol=1e-15)
    np.testing.assert_array_equal(idx, [[3, 2], [1, 3]])
    # More neighbours than rows: the tail is inf / -1, and the mean counts the finite ones.
    dist, idx = knn_search(queries[:1], bank, 6, metric="euclidean")
    np.testing.assert_allclose(dist[0, :4], [0.0, 1.0, 5.0, 10.0], atol=1e-15)
    assert np.isinf(dist[0, 4:]).all() and (idx[0, 4:] == -1).all()
    assert knn_mean_distance(queries[:1], bank, 6, metric="euclidean")[0] == pytest.approx(4.0)
    # Equal distances: lower row first.
    _, idx = knn_search([[0.0]], [[1.0], [-1.0], [1.0]], 3, metric="euclidean")
    np.testing.assert_array_equal(idx, [[0, 1, 2]])


def test_knn_search_hand_worked_cosine():
    bank = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    dist, idx = knn_search([[1.0, 1.0]], bank, 3, metric="cosine")
    c = 1.0 / np.sqrt(2.0)  # |cos| of (1, 1) with every row
    np.testing.assert_allclose(dist, [[1.0 - c, 1.0 - c, 1.0 + c]], atol=1e-15)
    np.testing.assert_array_equal(idx, [[0, 1, 2]])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_search_equals_numpy_brute_force(metric):
    rng = np.random.default_rng(3)
    bank = rng.normal(size=(120, 6))
    queries = rng.normal(size=(17, 6))
    groups = np.repeat(np.arange(40), 3)  # three rows per group
    exclude = rng.integers(-1, 40, size=17)
    if metric == "cosine":
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        bn = bank / np.linalg.norm(bank, axis=1, keepdims=True)
        full = 1.0 - qn @ bn.T
    else:
        full = np.sqrt(((queries[:, None, :] - bank[None, :, :]) ** 2).sum(axis=2))
    full[groups[None, :] == exclude[:, None]] = np.inf
    order = np.argsort(full, axis=1, kind="stable")[:, :4]
    dist, idx = knn_search(queries, bank, 4, metric=metric, exclude=exclude, bank_groups=groups, batch_size=5)
    np.testing.assert_allclose(dist, np.take_along_axis(full, order, axis=1), atol=1e-12)
    np.testing.assert_array_equal(idx, order)


def test_kmeans_every_target_is_a_centre():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(40, 8))
    target = rng.normal(size=(3, 8)) + 5
    emb = np.vstack([source, target])
    domains = ["source"] * 40 + ["target"] * 3
    km = KMeansScorer(n_clusters=4).fit(emb, domains)
    assert km.cluster_centers_.shape == (4 + 3, 8) and km.n_source_centers_ == 4
    np.testing.assert_allclose(km.score(target), 0.0, atol=1e-12)
    assert (km.score(source) > 0).all()
    # Score = min cosine distance to the centres, by hand.
    q = rng.normal(size=(5, 8))
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    cn = km.cluster_centers_ / np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True)
    np.testing.assert_allclose(km.score(q), (1 - qn @ cn.T).min(axis=1), atol=1e-12)
    # With at least as many clusters as source clips, every source clip is a centre too.
    small = KMeansScorer(n_clusters=50).fit(emb, domains)
    np.testing.assert_allclose(small.score(emb), 0.0, atol=1e-9)


def test_kmeans_cross_fitted_training_scores_are_not_zero():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(30, 4))
    domains = ["source"] * 25 + ["target"] * 5
    scorer = KMeansScorer(n_clusters=3)
    scores = fit_scores_from_training(scorer, emb, domains, n_splits=5)
    assert scores.shape == (30,) and np.isfinite(scores).all()
    assert (scores[25:] > 1e-6).all()  # a target clip is never its own centre
    assert not hasattr(scorer, "cluster_centers_")  # the given scorer is left unfitted


def test_gmm_is_negative_log_likelihood():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(200, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 2.0]])
    gmm = GMMScorer(n_components=1).fit(emb)
    model = gmm.models_["all"]
    q = rng.normal(size=(4, 3))
    expected = -scipy.stats.multivariate_normal(model.means_[0], model.covariances_[0]).logpdf(q)
    np.testing.assert_allclose(gmm.score(q), expected, rtol=1e-8)
    # Per-domain: minimum NLL over the domains' mixtures.
    emb2 = np.vstack([emb, emb + 50])
    dom = ["source"] * 200 + ["target"] * 200
    per = GMMScorer(n_components=2, per_domain=True).fit(emb2, dom)
    by = per.score_by_domain(q + 50)
    assert set(by) == {"source", "target"}
    np.testing.assert_allclose(per.score(q + 50), np.minimum(by["source"], by["target"]))
    assert (by["target"] < by["source"]).all()


def test_mahalanobis_equals_formula():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 3)) * [1.0, 2.0, 0.5]
    q = rng.normal(size=(6, 3))
    mu = x.mean(axis=0)
    cov = (x - mu).T @ (x - mu) / len(x)
    shrunk = 0.5 * cov + 0.5 * np.trace(cov) / 3 * np.eye(3)
    for shrinkage, c in ((None, cov), (0.5, shrunk)):
        got = MahalanobisScorer(shrinkage=shrinkage).fit(x).score(q)
        diff = q - mu
        expected = np.sqrt(np.einsum("md,de,me->m", diff, np.linalg.inv(c), diff))
        np.testing.assert_allclose(got, expected, rtol=1e-8)
    lw = MahalanobisScorer(shrinkage="ledoit_wolf").fit(x).score(q)
    np.testing.assert_allclose(lw, np.sqrt(LedoitWolf().fit(x).mahalanobis(q)), rtol=1e-8)
    # 1-D hand case: mean 0, variance 1 -> distance |x|.
    one = MahalanobisScorer(shrinkage=None).fit([[-1.0], [1.0]])
    np.testing.assert_allclose(one.score([[3.0], [-0.5]]), [3.0, 0.5])


def test_mahalanobis_min_over_domains_and_single_clip_domain():
    x = np.array([[-1.0], [1.0], [10.0]])
    m = MahalanobisScorer(shrinkage=None).fit(x, ["source", "source", "target"])
    # The single target clip uses the pooled covariance: centred values -1, 1, 0 -> variance 2/3.
    assert m.covariance_["target"][0, 0] == pytest.approx(2 / 3)
    by = m.score_by_domain([[9.0]])
    assert by["source"][0] == pytest.approx(9.0)
    assert by["target"][0] == pytest.approx(1 / np.sqrt(2 / 3))
    assert m.score([[9.0]])[0] == pytest.approx(1 / np.sqrt(2 / 3))
    with pytest.raises(ValueError, match="shrinkage"):
        MahalanobisScorer(shrinkage="oas").fit(x)


def test_normalizer_uses_training_statistics_only():
    train = np.array([1.0, 2.0, 3.0, 6.0])  # mean 3, population std sqrt(3.5)
    norm = TrainStatNormalizer().fit(train)
    assert norm.mean_ == pytest.approx(3.0) and norm.std_ == pytest.approx(np.sqrt(3.5))
    before = (norm.mean_, norm.std_)
    out1 = norm.transform([3.0, 3.0 + np.sqrt(3.5)])
    norm.transform(np.arange(1000.0) * 50)  # other test data: the fitted stats do not move
    assert (norm.mean_, norm.std_) == before
    np.testing.assert_allclose(out1, [0.0, 1.0])
    np.testing.assert_allclose(norm.fit_transform(train), (train - 3.0) / np.sqrt(3.5))


def test_normalizer_per_domain():
    train = {"source": np.array([1.0, 3.0, 50.0, 60.0]), "target": np.array([9.0, 9.0, 10.0, 30.0])}
    domains = ["source", "source", "target", "target"]
    norm = TrainStatNormalizer(per_domain=True).fit(train, domains)
    # source stats from clips 0, 1 against the source model: mean 2, std 1; target: mean 20, std 10.
    assert norm.domain_mean_ == {"source": 2.0, "target": 20.0}
    assert norm.domain_std_ == {"source": 1.0, "target": 10.0}
    out = norm.transform({"source": np.array([4.0, 100.0]), "target": np.array([40.0, 30.0])})
    np.testing.assert_allclose(out, [min(2.0, 2.0), min(98.0, 1.0)])
    with pytest.raises(ValueError, match="never test clip domain labels"):
        norm.transform(np.array([1.0]))
    with pytest.raises(ValueError, match="domains"):
        TrainStatNormalizer(per_domain=True).fit(np.ones(3))


def test_weighted_ensemble_hand_computed():
    # System A: train {0, 2} -> mean 1, std 1; test 3 -> z = 2.
    # System B: train {0, 4} -> mean 2, std 2; test 2 -> z = 0.   Weights 1 and 3: (2 + 0) / 4.
    out = weighted_ensemble([[3.0, 1.0], [2.0, 6.0]], [[0.0, 2.0], [0.0, 4.0]], [1.0, 3.0])
    np.testing.assert_allclose(out, [0.5, (0.0 + 3 * 2.0) / 4])
    np.testing.assert_allclose(weighted_ensemble([[3.0]], [[0.0, 2.0]]), [2.0])
    with pytest.raises(ValueError, match="weights"):
        weighted_ensemble([[1.0]], [[0.0, 1.0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="training score arrays"):
        weighted_ensemble([[1.0]], [])


def test_clone_and_params():
    knn = KNNScorer(k=4, metric="euclidean")
    assert clone(knn).get_params()["k"] == 4
    fitted = KNNScorer().fit(THREE)
    assert not hasattr(clone(fitted), "banks_")


def test_fit_scores_from_training_by_domain_kfold():
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(40, 3))
    dom = ["source"] * 30 + ["target"] * 10
    by = fit_scores_from_training(MahalanobisScorer(), emb, dom, n_splits=5, by_domain=True)
    assert set(by) == {"source", "target"} and all(v.shape == (40,) for v in by.values())
    flat = fit_scores_from_training(MahalanobisScorer(), emb, dom, n_splits=5)
    np.testing.assert_allclose(flat, np.minimum(by["source"], by["target"]))
    norm = TrainStatNormalizer(per_domain=True).fit(by, dom)
    assert set(norm.domain_mean_) == {"source", "target"}


def test_knn_pickle_round_trip_and_float32_bank():
    import pickle

    rng = np.random.default_rng(6)
    bank = rng.normal(size=(50, 8)).astype(np.float32)
    knn = KNNScorer(k=2).fit(bank)
    assert knn.banks_["all"].dtype == np.float32
    q = rng.normal(size=(5, 8))
    again = pickle.loads(pickle.dumps(knn))
    np.testing.assert_array_equal(again.score(q), knn.score(q))
    # Zero vectors are at cosine distance 1 from everything (as scikit-learn's cosine distance).
    np.testing.assert_allclose(knn.score(np.zeros((1, 8))), [1.0])
