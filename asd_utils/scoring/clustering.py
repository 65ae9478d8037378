"""Cluster-model scorers: distance to the nearest k-means centre, negative log-likelihood under a GMM.

Both speak the contract of :mod:`asd_utils.scoring` (``fit(embeddings (N, D), domains)``,
``score(embeddings (M, D)) -> (M,)``, higher = more anomalous).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from asd_utils.scoring.base import (
    as_2d,
    as_domains,
    check_dim,
    check_fitted,
    check_metric,
    l2_normalise,
    min_over,
    split_domains,
)
from asd_utils.scoring.knn import knn_mean_distance

__all__ = ["GMMScorer", "KMeansScorer"]


class KMeansScorer(BaseEstimator):
    """Distance to the nearest centre: k-means centres of the source clips + every target clip.

    n_clusters: k-means clusters on the source (all clips when no domains; clipped to the number
    of clips); metric: ``'cosine'`` (spherical: embeddings L2-normalised before k-means, centres
    re-normalised; score = 1 - max cosine similarity) or ``'euclidean'``; n_init: k-means
    restarts; random_state: seed.

    Learned: ``cluster_centers_`` (C, D) (source centres first, then the target clips),
    ``n_source_centers_``, ``n_features_in_``.
    """

    def __init__(self, n_clusters: int = 16, metric: str = "cosine", n_init: int = 3, random_state: int = 0):
        self.n_clusters = n_clusters
        self.metric = metric
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, embeddings, domains=None) -> KMeansScorer:
        check_metric(self.metric)
        x = as_2d(embeddings)
        d = as_domains(domains, len(x))
        if self.metric == "cosine":
            x = l2_normalise(x)
        is_target = np.zeros(len(x), bool) if d is None else (d == "target")
        source, target = x[~is_target], x[is_target]
        centres = []
        if len(source):
            n_clusters = max(1, min(int(self.n_clusters), len(source)))
            km = KMeans(n_clusters=n_clusters, n_init=self.n_init, random_state=self.random_state)
            km.fit(source)
            c = km.cluster_centers_
            centres.append(l2_normalise(c) if self.metric == "cosine" else c)
        centres.append(target)
        self.cluster_centers_ = np.concatenate(centres, axis=0)
        self.n_source_centers_ = len(self.cluster_centers_) - len(target)
        self.n_features_in_ = x.shape[1]
        return self

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64: distance to the nearest centre (cosine distance or Euclidean)."""
        check_fitted(self, "cluster_centers_")
        q = as_2d(embeddings)
        check_dim(self, q)
        if self.metric == "cosine":
            return np.clip(1.0 - np.max(l2_normalise(q) @ self.cluster_centers_.T, axis=1), 0.0, 2.0)
        return knn_mean_distance(q, self.cluster_centers_, 1, metric="euclidean")


class GMMScorer(BaseEstimator):
    """Negative log-likelihood under a Gaussian mixture fitted to the training embeddings.

    n_components: mixture components (clipped to the clips of a domain); covariance_type,
    reg_covar, max_iter: as ``sklearn.mixture.GaussianMixture``; per_domain: one mixture per
    domain and the score is the minimum NLL over domains; random_state: seed.

    Learned: ``models_`` {domain: GaussianMixture}, ``n_features_in_``.
    """

    def __init__(
        self,
        n_components: int = 1,
        covariance_type: str = "full",
        reg_covar: float = 1e-6,
        per_domain: bool = False,
        max_iter: int = 100,
        random_state: int = 0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.per_domain = per_domain
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, embeddings, domains=None) -> GMMScorer:
        x = as_2d(embeddings)
        d = as_domains(domains, len(x))
        self.models_ = {}
        for name, idx in split_domains(x, d, self.per_domain).items():
            gmm = GaussianMixture(
                n_components=max(1, min(int(self.n_components), len(idx))),
                covariance_type=self.covariance_type,
                reg_covar=self.reg_covar,
                max_iter=self.max_iter,
                random_state=self.random_state,
            )
            self.models_[name] = gmm.fit(x[idx])
        self.n_features_in_ = x.shape[1]
        return self

    def score_by_domain(self, embeddings) -> dict[str, np.ndarray]:
        """{domain: (M,) negative log-likelihood under that domain's mixture}."""
        check_fitted(self, "models_")
        q = as_2d(embeddings)
        check_dim(self, q)
        return {name: -gmm.score_samples(q).astype(np.float64) for name, gmm in self.models_.items()}

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64 negative log-likelihood (minimum over domains when ``per_domain``)."""
        return min_over(self.score_by_domain(embeddings))
