"""The one exact k-nearest-neighbour engine, and the kNN scorers built on it.

:func:`knn_search` is the engine every kNN scorer of the package calls (:class:`KNNScorer`,
:class:`SMOTEKNNScorer`, :class:`asd_utils.scoring.libraries.SeparateLibraryKNN`,
:class:`asd_utils.scoring.libraries.GenRepKNN` and its MemMixup); :func:`knn_mean_distance` is its
mean over the ``k`` neighbours. Scorers speak the contract of :mod:`asd_utils.scoring`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from imblearn.over_sampling import SMOTE
from sklearn.base import BaseEstimator

from asd_utils.scoring.base import (
    TINY,
    as_2d,
    as_domains,
    as_float_2d,
    check_dim,
    check_fitted,
    check_metric,
    l2_normalise,
    min_over,
    split_domains,
)

__all__ = ["KNNScorer", "SMOTEKNNScorer", "knn_mean_distance", "knn_search"]


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
            inv = (1.0 / np.maximum(self.norm64, TINY)).astype(np.float32)
            self.rank = torch.from_numpy(data.astype(np.float32, copy=False)) * torch.from_numpy(inv)[:, None]
            self.sq32 = None
        else:
            self.norm64 = None
            self.rank = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
            self.sq32 = (self.rank * self.rank).sum(dim=1)

    def __len__(self) -> int:
        return len(self.data)


def knn_search(
    queries,
    bank,
    k: int = 1,
    *,
    metric: str = "cosine",
    exclude: np.ndarray | None = None,
    bank_groups: np.ndarray | None = None,
    batch_size: int = 256,
    max_block_bytes: int = 128 * 2**20,
    margin: int = 8,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``bank`` for every query: exact, float64 distances.

    queries: (M, D); bank: (N, D) float arrays (float32 kept as float32); k: neighbours;
    metric: ``'cosine'`` (1 - cosine similarity, zero vectors at distance 1) or ``'euclidean'``;
    exclude: optional (M,) int, what query ``i`` must not match (``-1``: nothing): bank row
    ``exclude[i]`` (leave-one-out), or, with ``bank_groups`` (N,) int, every bank row ``j`` with
    ``bank_groups[j] == exclude[i]`` (a clip and the rows made from it); batch_size: queries per
    block (capped so that a block's (queries x N) float32 score matrix stays under
    ``max_block_bytes``); margin: extra candidates re-ranked exactly; n_threads: torch threads
    (``None``: torch's setting).

    Returns ``(distances (M, k) float64, indices (M, k) int64)``, nearest first (equal distances:
    lower row first); where fewer than ``k`` rows are allowed, the tail is ``inf`` / ``-1``.

    Method: a float32 matrix product ranks the whole bank for a block of queries (cosine:
    ``q @ b.T`` of normalised rows; euclidean: ``|b|^2 - 2 q @ b.T``), ``torch.topk`` keeps
    ``k + margin`` candidates (plus the excluded rows), and their distances are recomputed exactly
    in float64 from the given values (cosine: ``1 - q.b / (|q| |b|)``; euclidean: ``|q - b|``).
    The result equals a float64 brute-force search up to float64 rounding (a neighbour the float32
    ranking misses can only be one whose distance is within float32 rounding, ~1e-6, of the k-th),
    while the O(M N D) work runs in float32.
    Not faiss: faiss-cpu 1.15.1 ranked no faster across sizes (0.86-1.66x, probes/results/knn_engine.md).
    """
    check_metric(metric)
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    q = as_float_2d(queries, "queries")
    b = as_float_2d(bank, "bank")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"queries have dim {q.shape[1]} but the bank has dim {b.shape[1]}")
    return _search(q, _Bank(b, metric), k, exclude=exclude, bank_groups=bank_groups, batch_size=batch_size,
                   max_block_bytes=max_block_bytes, margin=margin, n_threads=n_threads)


def knn_mean_distance(queries, bank, k: int = 1, *, metric: str = "cosine", exclude: np.ndarray | None = None,
                      bank_groups: np.ndarray | None = None, **options) -> np.ndarray:
    """Mean distance of each query to its ``k`` nearest rows of ``bank``: (M,) float64.

    Arguments as :func:`knn_search` (``options``: batch_size, max_block_bytes, margin,
    n_threads); ``k`` is clipped to the rows a query may match, and a query with none gets ``inf``.
    """
    return _mean(knn_search(queries, bank, k, metric=metric, exclude=exclude, bank_groups=bank_groups,
                            **options)[0])


def _mean(dist: np.ndarray) -> np.ndarray:
    """(M, k) distances with an ``inf`` tail -> (M,) mean of the finite ones (``inf`` if none)."""
    finite = np.isfinite(dist)
    count = finite.sum(axis=1)
    total = np.where(finite, dist, 0.0).sum(axis=1)
    out = np.full(len(dist), np.inf)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _search(
    queries: np.ndarray,
    bank: _Bank,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    bank_groups: np.ndarray | None = None,
    batch_size: int = 256,
    max_block_bytes: int = 128 * 2**20,
    margin: int = 8,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    m, n = len(queries), len(bank)
    out_d = np.full((m, k), np.inf, dtype=np.float64)
    out_i = np.full((m, k), -1, dtype=np.int64)
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=np.int64).ravel()
        if len(exclude) != m:
            raise ValueError(f"exclude has {len(exclude)} entries for {m} queries")
    n_excluded = 1
    if bank_groups is not None:
        bank_groups = np.asarray(bank_groups, dtype=np.int64).ravel()
        if len(bank_groups) != n:
            raise ValueError(f"bank_groups has {len(bank_groups)} entries for {n} bank rows")
        if exclude is None:
            raise ValueError("bank_groups needs exclude (the group each query must not match)")
        sizes = np.unique(bank_groups, return_counts=True)[1]
        n_excluded = int(sizes.max()) if len(sizes) else 0
    if n == 0 or m == 0:
        return out_d, out_i
    cosine = bank.metric == "cosine"
    n_cand = min(n, k + margin + (n_excluded if exclude is not None else 0))
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
                q32 = q32 * torch.from_numpy((1.0 / np.maximum(q_norm, TINY)).astype(np.float32))[:, None]
                torch.mm(q32, bank_t, out=key)  # larger = closer
            else:
                torch.addmm(bank.sq32.unsqueeze(0), q32, bank_t, beta=-1.0, alpha=2.0, out=key)  # larger = closer
            ex = None if exclude is None else exclude[start:stop]
            if ex is not None and bank_groups is None:
                r = np.flatnonzero(ex >= 0)
                if r.size:
                    key[torch.from_numpy(r), torch.from_numpy(ex[r])] = -torch.inf
            elif ex is not None:
                hit = (bank_groups[None, :] == ex[:, None]) & (ex >= 0)[:, None]
                key[torch.from_numpy(hit)] = -torch.inf
            idx = torch.topk(key, n_cand, dim=1, largest=True, sorted=False).indices.numpy()
            cand = bank.data[idx].astype(np.float64, copy=False)  # (rows, n_cand, D)
            if cosine:
                dots = np.einsum("bd,bcd->bc", q64, cand)
                denom = np.maximum(q_norm, TINY)[:, None] * np.maximum(bank.norm64[idx], TINY)
                dist = np.clip(1.0 - dots / denom, 0.0, 2.0)
            else:
                diff = cand - q64[:, None, :]
                dist = np.sqrt(np.einsum("bcd,bcd->bc", diff, diff))
            if ex is not None:  # never count an excluded row
                owner = idx if bank_groups is None else bank_groups[idx]
                dist[(owner == ex[:, None]) & (ex >= 0)[:, None]] = np.inf
            order = np.lexsort((idx, dist), axis=1)[:, :k]  # by distance, then row
            best_d = np.take_along_axis(dist, order, axis=1)
            best_i = np.where(np.isfinite(best_d), np.take_along_axis(idx, order, axis=1), -1)
            out_d[start:stop, : best_d.shape[1]] = best_d
            out_i[start:stop, : best_i.shape[1]] = best_i
    return out_d, out_i


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
        check_metric(self.metric)
        if self.k < 1:
            raise ValueError(f"k must be >= 1; got {self.k}")
        x = as_float_2d(embeddings)
        d = as_domains(domains, len(x))
        groups = split_domains(x, d, self.separate_domains)
        self.bank_index_ = groups
        self.banks_ = {name: (x if len(groups) == 1 else x[idx]) for name, idx in groups.items()}
        self.n_features_in_ = x.shape[1]
        self._prepared = {name: _Bank(b, self.metric) for name, b in self.banks_.items()}
        return self

    def _bank_scores(self, q: np.ndarray, exclude: Mapping[str, np.ndarray] | None = None) -> dict:
        if getattr(self, "_prepared", None) is None:  # e.g. after unpickling
            self._prepared = {name: _Bank(b, self.metric) for name, b in self.banks_.items()}
        return {
            name: _mean(_search(q, bank, self.k, exclude=None if exclude is None else exclude[name],
                                batch_size=self.batch_size, n_threads=self.n_threads)[0])
            for name, bank in self._prepared.items()
        }

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_prepared", None)  # derived from banks_; rebuilt on first use
        return state

    def score_by_domain(self, embeddings) -> dict[str, np.ndarray]:
        """{domain: (M,) mean k-NN distance to that domain's bank}."""
        check_fitted(self, "banks_")
        q = as_float_2d(embeddings)
        check_dim(self, q)
        return self._bank_scores(q)

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64: minimum over banks of the mean distance to the k nearest neighbours."""
        return min_over(self.score_by_domain(embeddings))

    def training_scores(self, *, by_domain: bool = False):
        """Leave-one-out scores of the training clips: each clip never matches itself.

        Each training clip is scored against every bank as a test clip would be, except that its
        own row is removed from its own bank (so with k neighbours it gets the k nearest *other*
        clips; an exact duplicate elsewhere in the bank still counts, at distance 0). This equals
        searching k + 1 neighbours and dropping the clip itself.
        Returns (N,) float64, or {domain: (N,)} when ``by_domain``.
        """
        check_fitted(self, "banks_")
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
        return scores if by_domain else min_over(scores)


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
        check_metric(self.metric)
        if self.k < 1:
            raise ValueError(f"k must be >= 1; got {self.k}")
        if self.ratio < 0:
            raise ValueError(f"ratio must be >= 0; got {self.ratio}")
        if self.smote_neighbors < 1:
            raise ValueError(f"smote_neighbors must be >= 1; got {self.smote_neighbors}")
        x = as_2d(embeddings)
        d = as_domains(domains, len(x))
        if self.metric == "cosine":
            x = l2_normalise(x)
        if d is None:
            synthetic, skipped, used = x[:0], "no domains given", 0
            bank, bank_domains = x, None
        else:
            is_target = d == "target"
            synthetic, skipped, used = self._oversample(x, is_target)
            if self.metric == "cosine" and len(synthetic):
                synthetic = l2_normalise(synthetic)
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
        check_fitted(self, "knn_")
        return self.knn_.score_by_domain(embeddings)

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64: minimum over the source and target libraries of the mean k-NN distance."""
        return min_over(self.score_by_domain(embeddings))
