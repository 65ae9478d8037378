"""Scoring back ends: embeddings of training clips in, one anomaly score per test clip out.

Scikit-learn style scorers (``fit(embeddings, domains)``, ``score(embeddings)``, higher = more
anomalous): kNN, k-means, GMM, Mahalanobis, training-statistic normalisation and ensembles. Numpy,
scikit-learn and torch only; imports nothing above ``storage``.

Every scorer speaks the scikit-learn style of the compendium's scoring contract:

- ``fit(embeddings (N, D), domains=None) -> self`` on the *normal training* clips; ``domains`` is
  ``(N,)`` of ``'source'``/``'target'`` (or ``None``: one domain);
- ``score(embeddings (M, D)) -> (M,) float64``, higher = more anomalous;
- learned attributes end in ``_``; ``sklearn.base.clone`` works (they derive from ``BaseEstimator``).

Scorers with one model per domain also give ``score_by_domain(embeddings) -> {domain: (M,)}``; the
score is the minimum over domains (a clip is normal if it is close to *either* domain's normals).

Modules, one job each: :mod:`.base` (input checks, domain helpers), :mod:`.knn` (the one exact kNN
engine :func:`knn_search`, :class:`KNNScorer`, :class:`SMOTEKNNScorer`), :mod:`.libraries`
(per-domain normalised kNN: :class:`SeparateLibraryKNN`, :class:`GenRepKNN` with MemMixup),
:mod:`.clustering` (k-means, GMM), :mod:`.mahalanobis`, :mod:`.normalise` (training scores without
self-matching, :class:`TrainStatNormalizer`, :func:`weighted_ensemble`).
"""

from asd_utils.scoring.clustering import GMMScorer, KMeansScorer
from asd_utils.scoring.knn import KNNScorer, SMOTEKNNScorer, knn_mean_distance, knn_search
from asd_utils.scoring.libraries import GenRepKNN, SeparateLibraryKNN, memmixup
from asd_utils.scoring.mahalanobis import MahalanobisScorer
from asd_utils.scoring.normalise import TrainStatNormalizer, fit_scores_from_training, weighted_ensemble

__all__ = [
    "GMMScorer",
    "GenRepKNN",
    "KMeansScorer",
    "KNNScorer",
    "MahalanobisScorer",
    "SMOTEKNNScorer",
    "SeparateLibraryKNN",
    "TrainStatNormalizer",
    "fit_scores_from_training",
    "knn_mean_distance",
    "knn_search",
    "memmixup",
    "weighted_ensemble",
]
