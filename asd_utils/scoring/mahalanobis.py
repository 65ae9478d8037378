"""Mahalanobis distance to a Gaussian per domain (Ledoit-Wolf or fixed shrinkage of the covariance).

Speaks the contract of :mod:`asd_utils.scoring`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.covariance import ledoit_wolf

from asd_utils.scoring.base import as_2d, as_domains, check_dim, check_fitted, min_over, split_domains

__all__ = ["MahalanobisScorer"]


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
        x = as_2d(embeddings)
        d = as_domains(domains, len(x))
        groups = split_domains(x, d, self.separate_domains)
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
        check_fitted(self, "precision_")
        q = as_2d(embeddings)
        check_dim(self, q)
        out = {}
        for name, mu in self.location_.items():
            diff = q - mu
            out[name] = np.sqrt(np.maximum(np.einsum("md,de,me->m", diff, self.precision_[name], diff), 0.0))
        return out

    def score(self, embeddings) -> np.ndarray:
        """(M,) float64: minimum over domains of the Mahalanobis distance."""
        return min_over(self.score_by_domain(embeddings))
