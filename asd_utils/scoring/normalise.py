"""Scores on a common scale: training scores without self-matching, z-normalisation, ensembles.

First-shot rule: nothing here looks at test statistics. Normalisation and thresholds use training
scores obtained without self-matching (:func:`fit_scores_from_training`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, clone

from asd_utils.scoring.base import ALL, as_2d, as_domains, check_fitted, min_over
from asd_utils.scoring.knn import KNNScorer

__all__ = ["TrainStatNormalizer", "fit_scores_from_training", "weighted_ensemble"]


def _mean_std(values: np.ndarray, min_std: float) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no training scores to compute a mean and standard deviation from")
    if not np.isfinite(values).all():
        raise ValueError("training scores must be finite")
    return float(values.mean()), float(max(values.std(), min_std))


class TrainStatNormalizer(BaseEstimator):
    """z-score normalisation of anomaly scores with statistics of the *training* scores only.

    per_domain: keep a mean and standard deviation per training domain. Then :meth:`transform`
    takes ``{domain: (M,) scores against that domain's model}`` (``score_by_domain`` of a scorer),
    normalises each with its own domain's training statistics and returns the minimum over domains
    (test clips' domain labels are never used). min_std: floor of the standard deviation.

    Learned: ``mean_``, ``std_`` (floats, over all training scores) and, when ``per_domain``,
    ``domain_mean_``, ``domain_std_`` ({domain: float}).
    """

    def __init__(self, per_domain: bool = False, min_std: float = 1e-12):
        self.per_domain = per_domain
        self.min_std = min_std

    def fit(self, train_scores, domains=None) -> TrainStatNormalizer:
        """Fit on training scores: (N,) array, or {domain: (N,)} per-domain scores.

        domains: (N,) training clip domains (needed when ``per_domain``). For a per-domain fit the
        statistics of domain ``d`` come from the training clips of domain ``d`` (their score
        against domain ``d``'s model when a dict is given).
        """
        if isinstance(train_scores, Mapping):
            by_domain = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in train_scores.items()}
            overall = min_over(by_domain)
        else:
            by_domain = None
            overall = np.asarray(train_scores, dtype=np.float64).ravel()
        self.mean_, self.std_ = _mean_std(overall, self.min_std)
        if self.per_domain:
            d = as_domains(domains, len(overall))
            if d is None:
                raise ValueError("per_domain normalisation needs the training clips' domains")
            self.domain_mean_, self.domain_std_ = {}, {}
            for name in sorted(set(d.tolist())):
                values = overall[d == name] if by_domain is None else by_domain[name][d == name]
                self.domain_mean_[name], self.domain_std_[name] = _mean_std(values, self.min_std)
        return self

    def transform(self, scores) -> np.ndarray:
        """(M,) float64 normalised scores.

        scores: (M,) array (global statistics), or, when ``per_domain``, {domain: (M,)}.
        """
        check_fitted(self, "mean_")
        if self.per_domain:
            if not isinstance(scores, Mapping):
                raise ValueError(
                    "per_domain normalisation takes {domain: scores against that domain's model} "
                    "(a scorer's score_by_domain), never test clip domain labels"
                )
            unknown = [k for k in scores if k not in self.domain_mean_]
            if unknown:
                raise ValueError(
                    f"no training statistics for domains {unknown}; known: {sorted(self.domain_mean_)}"
                )
            return min_over(
                {
                    k: (np.asarray(v, np.float64) - self.domain_mean_[k]) / self.domain_std_[k]
                    for k, v in scores.items()
                }
            )
        if isinstance(scores, Mapping):
            scores = min_over({k: np.asarray(v, np.float64) for k, v in scores.items()})
        return (np.asarray(scores, dtype=np.float64).ravel() - self.mean_) / self.std_

    def fit_transform(self, train_scores, domains=None) -> np.ndarray:
        """Fit on the training scores and return them normalised."""
        self.fit(train_scores, domains)
        if self.per_domain and not isinstance(train_scores, Mapping):
            d = as_domains(domains, len(np.ravel(train_scores)))
            s = np.asarray(train_scores, dtype=np.float64).ravel()
            return np.array([(v - self.domain_mean_[k]) / self.domain_std_[k] for v, k in zip(s, d)])
        return self.transform(train_scores)


def _fold_ids(domains: np.ndarray | None, n: int, n_splits: int, random_state: int) -> np.ndarray:
    """Fold of every clip, stratified by domain (each domain spread round-robin over folds)."""
    rng = np.random.default_rng(random_state)
    folds = np.empty(n, dtype=np.int64)
    groups = (
        {ALL: np.arange(n)} if domains is None else {d: np.flatnonzero(domains == d) for d in set(domains)}
    )
    offset = 0
    for name in sorted(groups):
        idx = rng.permutation(groups[name])
        folds[idx] = (np.arange(len(idx)) + offset) % n_splits
        offset += len(idx)  # so that single-clip domains do not all land in fold 0
    return folds


def fit_scores_from_training(
    scorer,
    train_emb,
    train_domains=None,
    *,
    n_splits: int = 5,
    random_state: int = 0,
    by_domain: bool = False,
):
    """Anomaly scores of the training clips, obtained without any clip matching itself.

    Scoring the training clips with a model fitted on them is biased low (a k-NN clip finds
    itself at distance 0; k-means keeps every target clip as a centre), so the statistics used
    for normalisation (:class:`TrainStatNormalizer`, :func:`weighted_ensemble`) and decision
    thresholds (:func:`asd_utils.evaluation.submission.gamma_threshold`) come from here instead:

    - :class:`KNNScorer`: exact leave-one-out (each clip is removed from its own bank; see
      :meth:`KNNScorer.training_scores`), one fit;
    - any other scorer: K-fold cross-fitting with ``n_splits`` folds stratified by domain; each
      fold is scored by a clone of ``scorer`` fitted on the other folds.

    ``scorer`` itself is not modified (clones are fitted). train_emb: (N, D); train_domains: (N,)
    or None. Returns (N,) float64, or {domain: (N,)} when ``by_domain`` (needs ``score_by_domain``).
    """
    x = as_2d(train_emb)
    d = as_domains(train_domains, len(x))
    if isinstance(scorer, KNNScorer):
        return clone(scorer).fit(x, d).training_scores(by_domain=by_domain)
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2; got {n_splits}")
    n_splits = min(n_splits, len(x))
    folds = _fold_ids(d, len(x), n_splits, random_state)
    result: dict[str, np.ndarray] | np.ndarray | None = None
    for f in range(n_splits):
        held = folds == f
        if not held.any():
            continue
        model = clone(scorer).fit(x[~held], None if d is None else d[~held])
        if by_domain:
            part = model.score_by_domain(x[held])
            if result is None:
                result = {k: np.full(len(x), np.nan) for k in part}
            for k, v in part.items():
                if k not in result:  # a domain absent from some training folds
                    result[k] = np.full(len(x), np.inf)
                result[k][held] = v
        else:
            if result is None:
                result = np.empty(len(x))
            result[held] = model.score(x[held])
    if by_domain:
        for k in result:
            result[k] = np.where(np.isnan(result[k]), np.inf, result[k])
    return result


def weighted_ensemble(
    test_scores: Sequence, train_scores: Sequence, weights: Sequence[float] | None = None
) -> np.ndarray:
    """Weighted mean of several systems' scores, each z-normalised by its own training scores.

    test_scores: list of (M,) test scores, one per system; train_scores: list of (N_i,) training
    scores of the same systems (for example from :func:`fit_scores_from_training`); weights: one
    non-negative weight per system (default equal). Returns (M,) float64:
    ``sum_i w_i (s_i - mean(t_i)) / std(t_i) / sum_i w_i`` (population std, floored at 1e-12).
    """
    if len(test_scores) == 0:
        raise ValueError("weighted_ensemble needs at least one system")
    if len(train_scores) != len(test_scores):
        raise ValueError(
            f"{len(test_scores)} test score arrays but {len(train_scores)} training score arrays"
        )
    w = np.ones(len(test_scores)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if len(w) != len(test_scores):
        raise ValueError(f"{len(w)} weights for {len(test_scores)} systems")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum; got {w.tolist()}")
    tests = [np.asarray(s, dtype=np.float64).ravel() for s in test_scores]
    if len({len(s) for s in tests}) != 1:
        raise ValueError(f"test score arrays differ in length: {[len(s) for s in tests]}")
    total = np.zeros_like(tests[0])
    for wi, s, t in zip(w, tests, train_scores):
        mean, std = _mean_std(t, 1e-12)
        total += wi * (s - mean) / std
    return total / w.sum()
