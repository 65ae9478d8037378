"""Input checks and per-domain helpers shared by every scorer of :mod:`asd_utils.scoring`.

Embeddings are ``(clips, dim)`` arrays (numpy or torch); domains are ``(clips,)`` of
``'source'``/``'target'`` or ``None`` (one domain, named :data:`ALL`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

#: The name of the single group when domains are not separated.
ALL = "all"
#: Floor of a norm or a standard deviation before dividing by it.
TINY = 1e-12


def as_2d(x, name: str = "embeddings") -> np.ndarray:
    """(N, D) float64 copy-free view of ``x``; ``ValueError`` unless 2-D, non-empty and finite."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    return _checked(arr, name)


def as_float_2d(x, name: str = "embeddings") -> np.ndarray:
    """Like :func:`as_2d` but keeps float32 input as float32 (no copy of a large bank)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    return _checked(arr, name)


def _checked(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (clips, dim); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return arr


def as_domains(domains, n: int) -> np.ndarray | None:
    """(n,) str array of domains, or ``None``; ``ValueError`` on a wrong length or a missing entry."""
    if domains is None:
        return None
    arr = np.asarray(domains, dtype=object).ravel()
    if len(arr) != n:
        raise ValueError(f"domains has {len(arr)} entries for {n} embeddings")
    if any(d is None or (isinstance(d, float) and math.isnan(d)) for d in arr):
        raise ValueError("domains holds unknown (None/NaN) entries; give 'source'/'target' for every clip")
    return arr.astype(str)


def split_domains(x: np.ndarray, domains: np.ndarray | None, separate: bool) -> dict[str, np.ndarray]:
    """{domain: (N_d,) row indices of that domain} (one group :data:`ALL` when not separating)."""
    if domains is None or not separate:
        return {ALL: np.arange(len(x))}
    return {d: np.flatnonzero(domains == d) for d in sorted(set(domains.tolist()))}


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """(N, D) rows divided by their L2 norm (floored at :data:`TINY`: a zero row stays zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, TINY)


def check_metric(metric: str) -> None:
    """Raise ``ValueError`` unless ``metric`` is one the distance scorers support."""
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean'; got {metric!r}")


def check_fitted(est, attr: str) -> None:
    """Raise ``RuntimeError`` unless ``est`` has the learned attribute ``attr``."""
    if not hasattr(est, attr):
        raise RuntimeError(f"{type(est).__name__} is not fitted yet; call fit(embeddings, domains) first")


def check_dim(est, x: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``x`` has the dimension ``est`` was fitted on."""
    if x.shape[1] != est.n_features_in_:
        raise ValueError(f"{type(est).__name__} was fitted on dim {est.n_features_in_}; got dim {x.shape[1]}")


def min_over(by_domain: Mapping[str, np.ndarray]) -> np.ndarray:
    """(M,) element-wise minimum of {domain: (M,)} scores."""
    return np.min(np.stack(list(by_domain.values()), axis=0), axis=0)
