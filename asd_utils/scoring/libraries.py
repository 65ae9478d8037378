"""kNN scorers whose memory banks are normalised per domain by their own training distances.

- :class:`SeparateLibraryKNN` (MYPS, report 001, ``sep-lib``): one library per domain, each
  z-normalised with the leave-one-out distances of its own training clips; score = minimum.
- :class:`GenRepKNN` (GenRep, Saengthong & Shinozaki, ICASSP 2025; used by GISP-HEU, report 000,
  and by the pretraining evaluation): a source bank and a target bank enlarged by
  :func:`memmixup`, each column standardised with its domain's leave-one-out training distances.

Both search with the one engine, :func:`asd_utils.scoring.knn.knn_search`. Only training clips
shape any statistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from asd_utils.scoring.knn import KNNScorer, knn_mean_distance, knn_search

__all__ = ["GenRepKNN", "SeparateLibraryKNN", "memmixup"]


class SeparateLibraryKNN(KNNScorer):
    """kNN with one library per domain, each normalised by its own training distances (``sep-lib``).

    With k = 1, the minimum over separate source and target libraries of the raw distances is the
    distance to the nearest clip of the joint library, i.e. the single-library score. Separate
    libraries differ only when each library's distances are put on a common scale: here every
    domain's distances are z-normalised with the mean and standard deviation of the leave-one-out
    distances of that domain's own training clips to that library
    (:meth:`asd_utils.scoring.knn.KNNScorer.training_scores`), and the score is the minimum over
    domains. The target library (10 clips in DCASE) is sparse, so its raw distances run larger;
    normalising removes that bias. A domain with fewer than two training clips (no leave-one-out
    distance) borrows the statistics pooled over the other domains.

    A :class:`asd_utils.scoring.knn.KNNScorer` with ``separate_domains=True``, so
    :func:`asd_utils.scoring.normalise.fit_scores_from_training` takes its exact leave-one-out
    :meth:`training_scores` (normalised the same way). Learned, besides the kNN banks: ``mean_``,
    ``std_`` ({domain: float}).
    """

    def __init__(self, k: int = 1, metric: str = "cosine", min_std: float = 1e-12, batch_size: int = 256,
                 n_threads: int | None = None):
        super().__init__(k=k, metric=metric, separate_domains=True, batch_size=batch_size, n_threads=n_threads)
        self.min_std = min_std

    def fit(self, embeddings, domains=None) -> SeparateLibraryKNN:
        super().fit(embeddings, domains)
        own = super().training_scores(by_domain=True)
        stats, pooled = {}, []
        for name, rows in self.bank_index_.items():
            values = np.asarray(own[name])[rows]
            values = values[np.isfinite(values)]
            if len(values):
                stats[name] = (float(values.mean()), float(max(values.std(), self.min_std)))
                pooled.append(values)
        if not pooled:
            raise ValueError("SeparateLibraryKNN needs at least two training clips in some domain")
        pooled = np.concatenate(pooled)
        fallback = (float(pooled.mean()), float(max(pooled.std(), self.min_std)))
        self.mean_ = {n: stats.get(n, fallback)[0] for n in self.bank_index_}
        self.std_ = {n: stats.get(n, fallback)[1] for n in self.bank_index_}
        return self

    def _normalise(self, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {n: (np.asarray(v) - self.mean_[n]) / self.std_[n] for n, v in raw.items()}

    def score_by_domain(self, embeddings) -> dict[str, np.ndarray]:
        """{domain: (M,) normalised distance to that domain's library}; :meth:`score` is their minimum."""
        if not hasattr(self, "mean_"):
            raise RuntimeError("SeparateLibraryKNN is not fitted yet; call fit(embeddings, domains) first")
        return self._normalise(super().score_by_domain(embeddings))

    def training_scores(self, *, by_domain: bool = False):
        """Leave-one-out training scores (each clip never matches itself), normalised per domain."""
        scores = self._normalise(super().training_scores(by_domain=True))
        return scores if by_domain else np.min(np.stack(list(scores.values())), axis=0)


def memmixup(source: np.ndarray, target: np.ndarray, n_support: int, alpha: float = 0.9
             ) -> tuple[np.ndarray, np.ndarray]:
    """MemMixup (GenRep): mix each target memory with its ``n_support`` nearest source memories.

    source: (Ns, D); target: (Nt, D). For target clip ``t`` and each of its ``n_support`` nearest
    source clips ``s`` (Euclidean), ``alpha * t + (1 - alpha) * s``. Returns ``(mixed (Nt *
    n_support, D), parent (Nt * n_support,) int64)`` with rows grouped by target clip (the
    nearest source first) and ``parent`` the index of the target clip each row comes from.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if n_support < 1 or len(target) == 0:
        return np.zeros((0, source.shape[1] if source.ndim == 2 else 0)), np.zeros(0, dtype=np.int64)
    k = min(int(n_support), len(source))
    nearest = knn_search(target, source, k, metric="euclidean")[1]  # (Nt, k), ties: lower row first
    mixed = alpha * target[:, None, :] + (1.0 - alpha) * source[nearest]
    parent = np.repeat(np.arange(len(target)), k)
    return mixed.reshape(-1, target.shape[1]), parent


class GenRepKNN:
    """GenRep's kNN back end with training-statistics normalisation.

    ``fit(embeddings, domains)`` builds a source memory bank and a target memory bank (the target
    clips plus their MemMixup samples), and the leave-one-out distances of the training clips to
    their own domain's bank (a target clip leaves out itself and its own MemMixup samples).
    ``distances(embeddings) -> (M, 2)`` gives the mean distance to the ``k`` nearest memories of the
    source and of the target bank. ``score`` standardises each column with the training clips of
    that domain and takes the minimum (see :meth:`normalised_min`).
    """

    def __init__(self, *, k: int = 1, n_mix_support: int | None = 5, mix_alpha: float = 0.9):
        self.k = int(k)
        self.n_mix_support = n_mix_support
        self.mix_alpha = float(mix_alpha)

    def fit(self, embeddings: np.ndarray, domains: Sequence[str],
            extra_source: np.ndarray | None = None) -> GenRepKNN:
        """embeddings: (N, D); domains: (N,) 'source'/'target'; extra_source: (E, D) memories added
        to the source bank only (never scored, e.g. supplemental clean clips)."""
        X = np.asarray(embeddings, dtype=np.float64)
        dom = np.asarray(domains, dtype=object)
        is_target = dom == "target"
        if not np.all(np.isin(dom, ["source", "target"])):
            raise ValueError("GenRepKNN.fit: domains must be 'source' or 'target'")
        src, tgt = X[~is_target], X[is_target]
        if len(src) < 2:
            raise ValueError(f"GenRepKNN.fit needs at least 2 source clips, got {len(src)}")
        extra = np.zeros((0, X.shape[1])) if extra_source is None else np.asarray(extra_source, dtype=np.float64)
        self.source_bank_ = np.concatenate([src, extra], axis=0)
        if self.n_mix_support and len(tgt):
            mixed, parent = memmixup(src, tgt, self.n_mix_support, self.mix_alpha)
        else:
            mixed, parent = np.zeros((0, X.shape[1])), np.zeros(0, dtype=np.int64)
        self.target_bank_ = np.concatenate([tgt, mixed], axis=0)
        self.target_owner_ = np.concatenate([np.arange(len(tgt)), parent])  # which target clip made each row
        # leave-one-out distances of training clips to their own bank (a target clip also leaves out
        # its own MemMixup rows)
        train_d = np.full(len(X), np.nan)
        train_d[~is_target] = knn_mean_distance(src, self.source_bank_, self.k, metric="euclidean",
                                                exclude=np.arange(len(src)))
        if len(tgt):
            d_tgt = knn_mean_distance(tgt, self.target_bank_, self.k, metric="euclidean",
                                      exclude=np.arange(len(tgt)), bank_groups=self.target_owner_)
            if np.isfinite(d_tgt).all():
                train_d[is_target] = d_tgt
            else:  # a single target clip: nothing left to compare with, use its source-bank distance
                train_d[is_target] = knn_mean_distance(tgt, self.source_bank_, self.k, metric="euclidean")
        self.train_domains_ = dom
        self.train_distances_ = train_d
        return self

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """(M, D) -> (M, 2) kNN distance to the source bank and to the target bank."""
        X = np.asarray(embeddings, dtype=np.float64)
        d_s = knn_mean_distance(X, self.source_bank_, self.k, metric="euclidean")
        if len(self.target_bank_):
            d_t = knn_mean_distance(X, self.target_bank_, self.k, metric="euclidean")
        else:
            d_t = np.full(len(X), np.inf)
        return np.stack([d_s, d_t], axis=1)

    def normalised_min(self, test_distances: np.ndarray, test_weights: np.ndarray | None = None,
                       train_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Domain-wise standardisation with training statistics, then the minimum over domains.

        ``score(x) = min_dom (w(x) d_dom(x) - m_dom) / s_dom`` where ``m_dom, s_dom`` are the mean
        and std of ``w(t) d_loo(t)`` over the training clips ``t`` of domain ``dom``. Returns
        ``(test_scores (M,), train_scores (N,))``; a training clip's score uses its leave-one-out
        distance in its own domain's column and its plain distance in the other.
        """
        n = len(self.train_distances_)
        tw = np.ones(n) if train_weights is None else np.asarray(train_weights, dtype=np.float64)
        M = len(test_distances)
        w = np.ones(M) if test_weights is None else np.asarray(test_weights, dtype=np.float64)
        weighted_train = tw * self.train_distances_
        stats = {}
        for dom in ("source", "target"):
            vals = weighted_train[self.train_domains_ == dom]
            if len(vals) >= 2 and np.std(vals) > 0:
                stats[dom] = (float(np.mean(vals)), float(np.std(vals)))
            elif len(vals):
                stats[dom] = stats.get("source", (float(np.mean(vals)), 1.0))
        test_scores = _standardised_min(w[:, None] * test_distances, stats)
        # training scores: own domain leave-one-out, other domain plain distance
        train_scores = _standardised_min(tw[:, None] * self._train_distance_matrix(), stats)
        self.domain_stats_ = stats
        return test_scores, train_scores

    def _train_distance_matrix(self) -> np.ndarray:
        if getattr(self, "_train_matrix", None) is None:
            raise RuntimeError("call set_train_embeddings first")
        return self._train_matrix

    def set_train_embeddings(self, embeddings: np.ndarray) -> None:
        """Cache the (N, 2) training distance matrix (own domain: leave-one-out)."""
        d = self.distances(embeddings)
        own = np.where(self.train_domains_ == "target", 1, 0)
        d[np.arange(len(d)), own] = self.train_distances_
        self._train_matrix = d

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """(M, D) -> (M,) unweighted GenRep score (higher = more anomalous)."""
        return self.normalised_min(self.distances(embeddings))[0]


def _standardised_min(weighted: np.ndarray, stats: dict) -> np.ndarray:
    """(M, 2) weighted distances (source, target columns) -> (M,) minimum over the domains of
    ``(d - m_dom) / s_dom``; a domain without statistics counts as ``inf``."""
    cols = [(weighted[:, j] - stats[dom][0]) / stats[dom][1] if dom in stats else np.full(len(weighted), np.inf)
            for j, dom in enumerate(("source", "target"))]
    return np.minimum(cols[0], cols[1])
