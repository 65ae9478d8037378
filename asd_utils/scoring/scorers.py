"""Anomaly scorers on clip embeddings, score normalisation and ensembles.

Every scorer speaks the scikit-learn style of the compendium's scoring contract:

- ``fit(embeddings (N, D), domains=None) -> self`` on the *normal training* clips; ``domains`` is
  ``(N,)`` of ``'source'``/``'target'`` (or ``None``: one domain);
- ``score(embeddings (M, D)) -> (M,) float64``, higher = more anomalous;
- learned attributes end in ``_``; ``sklearn.base.clone`` works (they derive from ``BaseEstimator``).

Scorers with one model per domain also give ``score_by_domain(embeddings) -> {domain: (M,)}``; the
score is the minimum over domains (a clip is normal if it is close to *either* domain's normals).

First-shot rule: nothing here looks at test statistics. Normalisation and thresholds use training
scores obtained without self-matching (:func:`fit_scores_from_training`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from imblearn.over_sampling import SMOTE
from sklearn.base import BaseEstimator, clone
from sklearn.cluster import KMeans
from sklearn.covariance import ledoit_wolf
from sklearn.mixture import GaussianMixture

__all__ = [
    "GMMScorer",
    "KMeansScorer",
    "KNNScorer",
    "MahalanobisScorer",
    "SMOTEKNNScorer",
    "TrainStatNormalizer",
    "fit_scores_from_training",
    "knn_mean_distance",
    "weighted_ensemble",
]

ALL = "all"
_TINY = 1e-12


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _as_2d(x, name: str = "embeddings") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (clips, dim); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return arr


def _as_domains(domains, n: int) -> np.ndarray | None:
    if domains is None:
        return None
    arr = np.asarray(domains, dtype=object).ravel()
    if len(arr) != n:
        raise ValueError(f"domains has {len(arr)} entries for {n} embeddings")
    if any(d is None or (isinstance(d, float) and math.isnan(d)) for d in arr):
        raise ValueError("domains holds unknown (None/NaN) entries; give 'source'/'target' for every clip")
    return arr.astype(str)


def _split_domains(x: np.ndarray, domains: np.ndarray | None, separate: bool) -> dict[str, np.ndarray]:
    """Indices of the rows of each domain (one group ``'all'`` when not separating)."""
    if domains is None or not separate:
        return {ALL: np.arange(len(x))}
    return {d: np.flatnonzero(domains == d) for d in sorted(set(domains.tolist()))}


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, _TINY)


def _check_metric(metric: str) -> None:
    """Raise ``ValueError`` unless ``metric`` is one the distance scorers support."""
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean'; got {metric!r}")


def _check_fitted(est, attr: str) -> None:
    if not hasattr(est, attr):
        raise RuntimeError(f"{type(est).__name__} is not fitted yet; call fit(embeddings, domains) first")


def _check_dim(est, x: np.ndarray) -> None:
    if x.shape[1] != est.n_features_in_:
        raise ValueError(f"{type(est).__name__} was fitted on dim {est.n_features_in_}; got dim {x.shape[1]}")


def _min_over(by_domain: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.min(np.stack(list(by_domain.values()), axis=0), axis=0)


@contextlib.contextmanager
def _torch_threads(n_threads: int | None) -> Iterator[None]:
    """Temporarily use ``n_threads`` intra-op threads (``None``: leave torch's setting)."""
    if not n_threads:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------------------------------
# k nearest neighbours
# --------------------------------------------------------------------------------------------------
def _as_float_2d(x, name: str = "embeddings") -> np.ndarray:
    """Like :func:`_as_2d` but keeps float32 input as float32 (no copy of a large bank)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (clips, dim); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return arr


class _Bank:
    """A k-NN memory bank prepared for blocked search.

    ``data``: (N, D) the bank as given (float32 or float64), used for the exact float64 distances of
    the candidates; ``rank``: (N, D) float32 tensor used for ranking (L2-normalised for cosine);
    ``norm64``: (N,) float64 row norms (cosine); ``sq32``: (N,) float32 squared norms (euclidean).
    """

    def __init__(self, data: np.ndarray, metric: str):
        self.data = data
        self.metric = metric
        if metric == "cosine":
            self.norm64 = np.linalg.norm(data.astype(np.float64, copy=False), axis=1)
            inv = (1.0 / np.maximum(self.norm64, _TINY)).astype(np.float32)
            self.rank = torch.from_numpy(data.astype(np.float32, copy=False)) * torch.from_numpy(inv)[:, None]
            self.sq32 = None
        else:
            self.norm64 = None
            self.rank = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
            self.sq32 = (self.rank * self.rank).sum(dim=1)

    def __len__(self) -> int:
        return len(self.data)


def knn_mean_distance(
    queries,
    bank,
    k: int = 1,
    *,
    metric: str = "cosine",
    exclude: np.ndarray | None = None,
    batch_size: int = 256,
    max_block_bytes: int = 128 * 2**20,
    margin: int = 8,
    n_threads: int | None = None,
) -> np.ndarray:
    """Mean distance of each query to its ``k`` nearest rows of ``bank``.

    queries: (M, D); bank: (N, D) float arrays; k: neighbours, clipped to the number of candidate
    rows; metric: ``'cosine'`` (1 - cosine similarity, zero vectors at distance 1) or
    ``'euclidean'``; exclude: optional (M,) int, the bank row that query ``i`` must not match (its
    own row for leave-one-out), ``-1`` for none; batch_size: queries per block (capped so that a
    block's (queries x N) float32 score matrix stays under ``max_block_bytes``); margin: extra
    candidates re-ranked exactly; n_threads: torch threads (``None``: torch's setting).

    Returns (M,) float64; ``inf`` for a query with no candidate row.

    Method: a float32 matrix product ranks the whole bank for a block of queries (cosine:
    ``q @ b.T`` of normalised rows; euclidean: ``|b|^2 - 2 q @ b.T``), ``torch.topk`` keeps
    ``k + margin`` candidates, and their distances are recomputed exactly in float64 from the
    given values (cosine: ``1 - q.b / (|q| |b|)``; euclidean: ``|q - b|``) before the ``k``
    smallest are averaged. The result equals a float64 brute-force search up to float64 rounding
    (a neighbour the float32 ranking misses can only be one whose distance is within float32
    rounding, ~1e-6, of the k-th), while the O(M N D) work runs in float32.
    """
    _check_metric(metric)
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    q = _as_float_2d(queries, "queries")
    b = _as_float_2d(bank, "bank")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"queries have dim {q.shape[1]} but the bank has dim {b.shape[1]}")
    return _knn_search(
        q,
        _Bank(b, metric),
        k,
        exclude=exclude,
        batch_size=batch_size,
        max_block_bytes=max_block_bytes,
        margin=margin,
        n_threads=n_threads,
    )


def _knn_search(
    queries: np.ndarray,
    bank: _Bank,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    batch_size: int = 256,
    max_block_bytes: int = 128 * 2**20,
    margin: int = 8,
    n_threads: int | None = None,
) -> np.ndarray:
    m, n = len(queries), len(bank)
    out = np.full(m, np.inf, dtype=np.float64)
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=np.int64).ravel()
        if len(exclude) != m:
            raise ValueError(f"exclude has {len(exclude)} entries for {m} queries")
    if n == 0 or m == 0:
        return out
    cosine = bank.metric == "cosine"
    n_cand = min(n, k + margin + (1 if exclude is not None else 0))
    block = max(1, min(int(batch_size), m, int(max_block_bytes // (4 * n))))
    with _torch_threads(n_threads), torch.inference_mode():
        buf = torch.empty((block, n), dtype=torch.float32)  # reused: no page faults per block
        bank_t = bank.rank.T
        for start in range(0, m, block):
            stop = min(m, start + block)
            rows = stop - start
            q64 = queries[start:stop].astype(np.float64, copy=False)
            q32 = torch.from_numpy(np.ascontiguousarray(q64, dtype=np.float32))
            key = buf[:rows]
            if cosine:
                q_norm = np.linalg.norm(q64, axis=1)
                q32 = q32 * torch.from_numpy((1.0 / np.maximum(q_norm, _TINY)).astype(np.float32))[:, None]
                torch.mm(q32, bank_t, out=key)  # larger = closer
            else:
                torch.addmm(
                    bank.sq32.unsqueeze(0), q32, bank_t, beta=-1.0, alpha=2.0, out=key
                )  # larger = closer
            ex = None if exclude is None else exclude[start:stop]
            if ex is not None:
                r = np.flatnonzero(ex >= 0)
                if r.size:
                    key[torch.from_numpy(r), torch.from_numpy(ex[r])] = -torch.inf
            idx = torch.topk(key, n_cand, dim=1, largest=True, sorted=False).indices.numpy()
            cand = bank.data[idx].astype(np.float64, copy=False)  # (rows, n_cand, D)
            if cosine:
                dots = np.einsum("bd,bcd->bc", q64, cand)
                denom = np.maximum(q_norm, _TINY)[:, None] * np.maximum(bank.norm64[idx], _TINY)
                dist = np.clip(1.0 - dots / denom, 0.0, 2.0)
            else:
                diff = cand - q64[:, None, :]
                dist = np.sqrt(np.einsum("bcd,bcd->bc", diff, diff))
            if ex is not None:
                dist[idx == ex[:, None]] = np.inf  # never count the excluded row
                n_row = np.where(ex >= 0, n - 1, n)
            else:
                n_row = np.full(rows, n)
            k_row = np.minimum(k, n_row)
            dist.sort(axis=1)
            csum = np.cumsum(np.where(np.isfinite(dist), dist, 0.0), axis=1)
            res = np.full(rows, np.inf)
            ok = np.flatnonzero(k_row > 0)
            res[ok] = csum[ok, k_row[ok] - 1] / k_row[ok]
            out[start:stop] = res
    return out


class KNNScorer(BaseEstimator):
    """k-nearest-neighbour distance to the training embeddings, with one memory bank per domain.

    k: neighbours averaged (clipped to the bank size); metric: ``'cosine'`` (1 - cosine
    similarity) or ``'euclidean'``; separate_domains: one bank per domain (source, target) and the
    score is the minimum over banks of the mean distance to the k nearest neighbours in that bank;
    batch_size: queries per block; n_threads: torch threads while scoring (``None``: torch's
    current setting). The search is exact (see :func:`knn_mean_distance`).

    Learned: ``banks_`` {domain: (N_d, D) training embeddings (float32 kept as float32, else
    float64)}, ``bank_index_`` {domain: (N_d,) row indices into the training set},
    ``n_features_in_``.
    """

    def __init__(
        self,
        k: int = 1,
        metric: str = "cosine",
        separate_domains: bool = True,
        batch_size: int = 256,
        n_threads: int | None = None,
    ):
        self.k = k
        self.metric = metric
        self.separate_domains = separate_domains
        self.batch_size = batch_size
        self.n_threads = n_threads

    def fit(self, embeddings, domains=None) -> KNNScorer:
        _check_metric(self.metric)
        if self.k < 1:
            raise ValueError(f"k must be >= 1; got {self.k}")
        x = _as_float_2d(embeddings)
        d = _as_domains(domains, len(x))
        groups = _split_domains(x, d, self.separate_domains)
        self.bank_index_ = groups
        self.banks_ = {name: (x if len(groups) == 1 else x[idx]) for name, idx in groups.items()}
        self.n_features_in_ = x.shape[1]
        self._prepared = {name: _Bank(b, self.metric) for name, b in self.banks_.items()}
        return self

    def _bank_scores(self, q: np.ndarray, exclude: Mapping[str, np.ndarray] | None = None) -> dict:
        if getattr(self, "_prepared", None) is None:  # e.g. after unpickling
            self._prepared = {name: _Bank(b, self.metric) for name, b in self.banks_.items()}
        return {
            name: _knn_search(
                q,
                bank,
                self.k,
                exclude=None if exclude is None else exclude[name],
                batch_size=self.batch_size,
                n_threads=self.n_threads,
            )
            for name, bank in self._prepared.items()
        }

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_prepared", None)  # derived from banks_; rebuilt on first use
        return state

    def score_by_domain(self, embeddings) -> dict[str, np.ndarray]:
        """{domain: (M,) mean k-NN distance to that domain's bank}."""
        _check_fitted(self, "banks_")
        q = _as_float_2d(embeddings)
        _check_dim(self, q)
        return self._bank_scores(q)

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64: minimum over banks of the mean distance to the k nearest neighbours."""
        return _min_over(self.score_by_domain(embeddings))

    def training_scores(self, *, by_domain: bool = False):
        """Leave-one-out scores of the training clips: each clip never matches itself.

        Each training clip is scored against every bank as a test clip would be, except that its
        own row is removed from its own bank (so with k neighbours it gets the k nearest *other*
        clips; an exact duplicate elsewhere in the bank still counts, at distance 0). This equals
        searching k + 1 neighbours and dropping the clip itself.
        Returns (N,) float64, or {domain: (N,)} when ``by_domain``.
        """
        _check_fitted(self, "banks_")
        n = sum(len(i) for i in self.bank_index_.values())
        first = next(iter(self.banks_.values()))
        x = np.empty((n, self.n_features_in_), dtype=first.dtype)
        for name, idx in self.bank_index_.items():
            x[idx] = self.banks_[name]
        exclude = {}
        for name, idx in self.bank_index_.items():
            ex = np.full(n, -1, dtype=np.int64)
            ex[idx] = np.arange(len(idx))
            exclude[name] = ex
        scores = self._bank_scores(x, exclude)
        return scores if by_domain else _min_over(scores)


# --------------------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------------------
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
        _check_metric(self.metric)
        x = _as_2d(embeddings)
        d = _as_domains(domains, len(x))
        if self.metric == "cosine":
            x = _l2_normalise(x)
        is_target = np.zeros(len(x), bool) if d is None else (d == "target")
        source, target = x[~is_target], x[is_target]
        centres = []
        if len(source):
            n_clusters = max(1, min(int(self.n_clusters), len(source)))
            km = KMeans(n_clusters=n_clusters, n_init=self.n_init, random_state=self.random_state)
            km.fit(source)
            c = km.cluster_centers_
            centres.append(_l2_normalise(c) if self.metric == "cosine" else c)
        centres.append(target)
        self.cluster_centers_ = np.concatenate(centres, axis=0)
        self.n_source_centers_ = len(self.cluster_centers_) - len(target)
        self.n_features_in_ = x.shape[1]
        return self

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64: distance to the nearest centre (cosine distance or Euclidean)."""
        _check_fitted(self, "cluster_centers_")
        q = _as_2d(embeddings)
        _check_dim(self, q)
        if self.metric == "cosine":
            return np.clip(1.0 - np.max(_l2_normalise(q) @ self.cluster_centers_.T, axis=1), 0.0, 2.0)
        return knn_mean_distance(q, self.cluster_centers_, 1, metric="euclidean")


# --------------------------------------------------------------------------------------------------
# Gaussian mixture
# --------------------------------------------------------------------------------------------------
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
        x = _as_2d(embeddings)
        d = _as_domains(domains, len(x))
        self.models_ = {}
        for name, idx in _split_domains(x, d, self.per_domain).items():
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
        _check_fitted(self, "models_")
        q = _as_2d(embeddings)
        _check_dim(self, q)
        return {name: -gmm.score_samples(q).astype(np.float64) for name, gmm in self.models_.items()}

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64 negative log-likelihood (minimum over domains when ``per_domain``)."""
        return _min_over(self.score_by_domain(embeddings))


# --------------------------------------------------------------------------------------------------
# Mahalanobis
# --------------------------------------------------------------------------------------------------
class MahalanobisScorer(BaseEstimator):
    """Mahalanobis distance to the training distribution, one Gaussian per domain.

    separate_domains: mean and covariance per domain, score = minimum over domains;
    shrinkage: ``'ledoit_wolf'`` (Ledoit-Wolf shrinkage), a float ``s`` in [0, 1]
    (``(1 - s) * C + s * trace(C) / D * I`` with ``C`` the maximum-likelihood covariance, as
    ``sklearn.covariance.ShrunkCovariance``), or ``None`` (``C`` itself). The precision is the
    pseudo-inverse of the covariance. A domain with fewer than 2 clips uses the covariance pooled
    over all training clips (each centred on its own domain mean) around its own mean.

    Score: ``sqrt((x - mu)^T P (x - mu))``. Learned: ``location_``, ``covariance_``,
    ``precision_`` ({domain: array}), ``n_features_in_``.
    """

    def __init__(self, separate_domains: bool = True, shrinkage: str | float | None = "ledoit_wolf"):
        self.separate_domains = separate_domains
        self.shrinkage = shrinkage

    def _covariance(self, xc: np.ndarray) -> np.ndarray:
        if isinstance(self.shrinkage, str):
            if self.shrinkage != "ledoit_wolf":
                raise ValueError(
                    f"shrinkage must be 'ledoit_wolf', a float in [0, 1] or None; got {self.shrinkage!r}"
                )
            return ledoit_wolf(xc, assume_centered=True)[0]
        cov = xc.T @ xc / len(xc)
        if self.shrinkage is None:
            return cov
        s = float(self.shrinkage)
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"shrinkage must lie in [0, 1]; got {s}")
        mu = np.trace(cov) / cov.shape[0]
        return (1.0 - s) * cov + s * mu * np.eye(cov.shape[0])

    def fit(self, embeddings, domains=None) -> MahalanobisScorer:
        x = _as_2d(embeddings)
        d = _as_domains(domains, len(x))
        groups = _split_domains(x, d, self.separate_domains)
        self.location_ = {name: x[idx].mean(axis=0) for name, idx in groups.items()}
        centred = np.empty_like(x)
        for name, idx in groups.items():
            centred[idx] = x[idx] - self.location_[name]
        self.covariance_, self.precision_ = {}, {}
        pooled = None
        for name, idx in groups.items():
            if len(idx) >= 2:
                cov = self._covariance(centred[idx])
            else:
                if pooled is None:
                    pooled = self._covariance(centred)
                cov = pooled
            self.covariance_[name] = cov
            self.precision_[name] = np.linalg.pinv(cov, hermitian=True)
        self.n_features_in_ = x.shape[1]
        return self

    def score_by_domain(self, embeddings) -> dict[str, np.ndarray]:
        """{domain: (M,) Mahalanobis distance to that domain's Gaussian}."""
        _check_fitted(self, "precision_")
        q = _as_2d(embeddings)
        _check_dim(self, q)
        out = {}
        for name, mu in self.location_.items():
            diff = q - mu
            out[name] = np.sqrt(np.maximum(np.einsum("md,de,me->m", diff, self.precision_[name], diff), 0.0))
        return out

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64: minimum over domains of the Mahalanobis distance."""
        return _min_over(self.score_by_domain(embeddings))


# --------------------------------------------------------------------------------------------------
# normalisation, training scores, ensembles
# --------------------------------------------------------------------------------------------------
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
            overall = _min_over(by_domain)
        else:
            by_domain = None
            overall = np.asarray(train_scores, dtype=np.float64).ravel()
        self.mean_, self.std_ = _mean_std(overall, self.min_std)
        if self.per_domain:
            d = _as_domains(domains, len(overall))
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
        _check_fitted(self, "mean_")
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
            return _min_over(
                {
                    k: (np.asarray(v, np.float64) - self.domain_mean_[k]) / self.domain_std_[k]
                    for k, v in scores.items()
                }
            )
        if isinstance(scores, Mapping):
            scores = _min_over({k: np.asarray(v, np.float64) for k, v in scores.items()})
        return (np.asarray(scores, dtype=np.float64).ravel() - self.mean_) / self.std_

    def fit_transform(self, train_scores, domains=None) -> np.ndarray:
        """Fit on the training scores and return them normalised."""
        self.fit(train_scores, domains)
        if self.per_domain and not isinstance(train_scores, Mapping):
            d = _as_domains(domains, len(np.ravel(train_scores)))
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
    x = _as_2d(train_emb)
    d = _as_domains(train_domains, len(x))
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


# --------------------------------------------------------------------------------------------------
# k nearest neighbours with a SMOTE-oversampled target library
# --------------------------------------------------------------------------------------------------
class SMOTEKNNScorer(BaseEstimator):
    """k-NN distance with separate source and target libraries, the target library enlarged by SMOTE.

    The DCASE first-shot setting has ~1000 source but only ~10 target training clips per section.
    Following ASDKit's k-NN back end (Fujimura et al., ``asdkit/backends/knn.py``) and report 003
    (XJU, "KNN Settings R: 0.2, N: 3"), SMOTE (Chawla et al., JAIR 2002; ``imblearn``'s ``SMOTE``)
    adds synthetic target embeddings -- points on the segments between a target clip and one of
    its ``smote_neighbors`` nearest target neighbours -- until the target library holds
    ``int(ratio * n_source)`` embeddings. Then a :class:`KNNScorer` with one bank per domain scores
    a clip by the minimum over the two libraries of its mean distance to the ``k`` nearest
    neighbours.

    SMOTE only ever sees the *training* embeddings passed to :meth:`fit`; :meth:`score` never
    resamples. Cosine metric: embeddings are L2-normalised before SMOTE and the synthetic points
    re-normalised (as ASDKit does). No oversampling happens (``n_synthetic_ = 0``, reason in
    ``smote_skipped_``) when ``ratio`` is 0, no domains are given, there are fewer than two target
    clips, or the target library already holds ``ratio * n_source`` clips. With fewer than
    ``smote_neighbors + 1`` target clips, SMOTE uses ``n_target - 1`` neighbours.

    Args: k, metric, batch_size, n_threads as in :class:`KNNScorer`; ratio: target/source size
    after oversampling; smote_neighbors: SMOTE's ``k_neighbors``; random_state: SMOTE's seed.

    Learned: ``knn_`` (the fitted :class:`KNNScorer`), ``synthetic_`` (S, D) synthetic target
    embeddings, ``n_synthetic_``, ``n_source_``, ``n_target_``, ``smote_neighbors_`` (used),
    ``smote_skipped_`` (None or why no oversampling happened), ``n_features_in_``.
    """

    def __init__(self, k: int = 1, metric: str = "cosine", ratio: float = 0.2, smote_neighbors: int = 3,
                 random_state: int = 0, batch_size: int = 256, n_threads: int | None = None):
        self.k = k
        self.metric = metric
        self.ratio = ratio
        self.smote_neighbors = smote_neighbors
        self.random_state = random_state
        self.batch_size = batch_size
        self.n_threads = n_threads

    def _oversample(self, x: np.ndarray, is_target: np.ndarray) -> tuple[np.ndarray, str | None, int]:
        n_target = int(is_target.sum())
        n_source = len(x) - n_target
        if self.ratio <= 0:
            return x[:0], "ratio is 0", 0
        if n_source == 0:
            return x[:0], "no source clips", 0
        if n_target < 2:
            return x[:0], f"{n_target} target clip(s); SMOTE needs at least 2", 0
        if int(self.ratio * n_source) <= n_target:
            return x[:0], f"{n_target} target clips already reach ratio {self.ratio} of {n_source} source clips", 0

        neighbours = max(1, min(int(self.smote_neighbors), n_target - 1))
        smote = SMOTE(sampling_strategy=float(self.ratio), k_neighbors=neighbours,
                      random_state=self.random_state)
        resampled, _ = smote.fit_resample(x, is_target.astype(np.int64))
        if not np.array_equal(resampled[: len(x)], x):  # imblearn appends the new samples
            raise RuntimeError("imblearn SMOTE did not keep the original samples first")
        return resampled[len(x):], None, neighbours

    def fit(self, embeddings, domains=None) -> SMOTEKNNScorer:
        _check_metric(self.metric)
        if self.k < 1:
            raise ValueError(f"k must be >= 1; got {self.k}")
        if self.ratio < 0:
            raise ValueError(f"ratio must be >= 0; got {self.ratio}")
        if self.smote_neighbors < 1:
            raise ValueError(f"smote_neighbors must be >= 1; got {self.smote_neighbors}")
        x = _as_2d(embeddings)
        d = _as_domains(domains, len(x))
        if self.metric == "cosine":
            x = _l2_normalise(x)
        if d is None:
            synthetic, skipped, used = x[:0], "no domains given", 0
            bank, bank_domains = x, None
        else:
            is_target = d == "target"
            synthetic, skipped, used = self._oversample(x, is_target)
            if self.metric == "cosine" and len(synthetic):
                synthetic = _l2_normalise(synthetic)
            bank = np.concatenate([x, synthetic], axis=0)
            bank_domains = np.concatenate([d, np.full(len(synthetic), "target", dtype=d.dtype)])
        self.knn_ = KNNScorer(k=self.k, metric=self.metric, separate_domains=True, batch_size=self.batch_size,
                              n_threads=self.n_threads).fit(bank, bank_domains)
        self.synthetic_ = synthetic
        self.n_synthetic_ = len(synthetic)
        self.n_target_ = 0 if d is None else int((d == "target").sum())
        self.n_source_ = len(x) - self.n_target_
        self.smote_neighbors_ = used
        self.smote_skipped_ = skipped
        self.n_features_in_ = x.shape[1]
        return self

    def score_by_domain(self, embeddings) -> dict[str, np.ndarray]:
        """{domain: (M,) mean k-NN distance to that domain's library (target: with the synthetic points)}."""
        _check_fitted(self, "knn_")
        return self.knn_.score_by_domain(embeddings)

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64: minimum over the source and target libraries of the mean k-NN distance."""
        return _min_over(self.score_by_domain(embeddings))
