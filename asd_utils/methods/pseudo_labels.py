"""Pseudo attribute labels for machine types whose attributes are hidden (report 002, Sec. 2.1).

Two labelling methods, both fitted on the *training* clips of one machine type and one domain:

- **clustering** (:func:`cluster_labels`): log-mel statistics of every clip (mean and standard
  deviation over time of each mel band, :func:`logmel_statistics`), centred, reduced by PCA
  (scikit-learn; UMAP, used by Fujimura et al.'s public pseudo-labelling recipe, is not a
  dependency of the compendium; numba would be heavy), then a Gaussian mixture whose number of components is chosen by
  the Bayesian information criterion (BIC) among ``1..max_components``;
- **characteristic frequencies** (:func:`characteristic_frequencies`, :func:`quantise_frequencies`):
  band-pass, Hilbert envelope and envelope spectrum (``asd_utils.signal.envelope_spectrum``), the
  dominant envelope frequency of each clip within a search range, and those frequencies (on a log
  scale) quantised into labels by a one-dimensional Gaussian mixture, again with the number of
  levels chosen by BIC.

Which method labels a machine type is decided from the training clips alone
(:func:`choose_method`): each method's labelling is refitted on bootstrap resamples of the clips
and compared with the labelling of all clips (adjusted Rand index, ARI); the method with the higher
mean bootstrap ARI (*stability*) wins, provided it finds at least two groups in the source domain.
A machine type where neither does keeps one class per domain. No test clip and no true attribute
enters the choice.

Where the true attributes exist (the synthetic dataset's ``ground_truth_attributes.csv``; the
official DCASE 2025 ground-truth attribute files), :func:`score_against_truth` reports ARI, NMI and
the contingency table -- after the fact, as a diagnosis.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from asd_utils.features.logmel import log_mel
from asd_utils.signal import dominant_frequency, envelope_spectrum

__all__ = [
    "HIDDEN_ATTRIBUTE",
    "METHODS",
    "LabelFit",
    "characteristic_frequencies",
    "choose_method",
    "cluster_labels",
    "contingency",
    "fit_labels",
    "hidden_attribute_machines",
    "logmel_statistics",
    "pseudo_label_machine",
    "quantise_frequencies",
    "read_true_attributes",
    "score_against_truth",
    "stability",
]

HIDDEN_ATTRIBUTE = "noAttribute"
METHODS = ("clustering", "charfreq")


# --------------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------------
def logmel_statistics(waves: np.ndarray, *, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 512,
                      n_mels: int = 64, fmin: float = 0.0, fmax: float | None = None,
                      batch_size: int = 64) -> np.ndarray:
    """``waves (N, T) float32`` -> ``(N, 2 * n_mels)`` float64: mean and standard deviation over
    time of each band of the log-mel power (dB, ``asd_utils.features.logmel.log_mel``)."""


    waves = np.asarray(waves, dtype=np.float32)
    if waves.ndim != 2 or len(waves) == 0:
        raise ValueError(f"waves must be (clips >= 1, samples), got shape {waves.shape}")
    out = []
    with torch.inference_mode():
        for start in range(0, len(waves), batch_size):
            lm = log_mel(waves[start:start + batch_size], sample_rate=sample_rate, n_fft=n_fft,
                         hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax).double()
            out.append(torch.cat([lm.mean(dim=2), lm.std(dim=2, unbiased=False)], dim=1).numpy())
    return np.concatenate(out, axis=0)


def characteristic_frequencies(waves: np.ndarray, *, sample_rate: int = 16000,
                               band: tuple[float, float] | None = (1000.0, 7000.0), fmin: float = 0.5,
                               fmax: float = 100.0) -> np.ndarray:
    """Dominant envelope frequency (Hz) of every clip: ``(N, T)`` -> ``(N,)`` float64.

    Band-pass ``band`` (Hz), Hilbert envelope, envelope spectrum, then the frequency of the largest
    envelope-spectrum line in ``[fmin, fmax]`` Hz (``asd_utils.signal``). The resolution is
    ``sample_rate / T`` Hz.
    """

    waves = np.asarray(waves, dtype=np.float64)
    if waves.ndim != 2 or len(waves) == 0:
        raise ValueError(f"waves must be (clips >= 1, samples), got shape {waves.shape}")
    freqs, magnitude = envelope_spectrum(waves, sample_rate, band=None if band is None else tuple(band))
    return dominant_frequency(freqs, magnitude, fmin=fmin, fmax=fmax)


# --------------------------------------------------------------------------------------------------
# labelling
# --------------------------------------------------------------------------------------------------
def _bic_mixture(x: np.ndarray, max_components: int, covariance_type: str, seed: int):
    """Fit mixtures with 1..max_components components to ``x (N, d)``; return (best model, BIC list)."""

    n = len(x)
    best, bics = None, []
    # tiny matrices: one BLAS thread is faster than several fighting over a busy machine; repeated
    # values (quantised frequencies) make k-means initialisation warn about duplicate points
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in range(1, max(1, min(int(max_components), n)) + 1):
            gm = GaussianMixture(k, covariance_type=covariance_type, reg_covar=1e-4, n_init=1, random_state=seed)
            gm.fit(x)
            bics.append(float(gm.bic(x)))
            if best is None or bics[-1] < min(bics[:-1]):
                best = gm
    return best, bics


@dataclass
class LabelFit:
    """A fitted labelling of one set of clips: ``labels (N,)`` int in ``0..n_labels - 1``
    (ordered by the component means along the first coordinate), ``bic`` per number of
    components tried, and ``predict(features) -> labels`` for other clips of the same kind."""

    labels: np.ndarray
    n_labels: int
    bic: list[float] = field(default_factory=list)
    model: object = None
    transform: object = None

    def predict(self, features: np.ndarray) -> np.ndarray:
        z = self.transform(features)
        return self._relabel(self.model.predict(z))

    def _relabel(self, raw: np.ndarray) -> np.ndarray:
        order = np.argsort(self.model.means_[:, 0])
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return rank[raw]


def cluster_labels(features: np.ndarray, *, max_components: int = 8, pca_components: int = 8,
                   covariance_type: str = "full", seed: int = 0) -> LabelFit:
    """Clustering labels: PCA of the centred ``features (N, d)`` (not scaled: log-mel statistics are
    all in dB, and scaling would inflate uninformative bands) to ``min(pca_components, N - 1, d)``
    dimensions, Gaussian mixture with the BIC-best number of components in ``1..max_components``.
    With fewer than 4 clips everything is one group. A fitted PCA + mixture labels other clips
    (:meth:`LabelFit.predict`)."""

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (clips, dims), got shape {x.shape}")
    n = len(x)
    if n < 4:
        return LabelFit(labels=np.zeros(n, dtype=np.int64), n_labels=1, bic=[])
    dims = max(1, min(int(pca_components), n - 1, x.shape[1]))
    pca = PCA(dims, random_state=seed).fit(x)  # centred, not scaled: the statistics share one unit (dB)

    def transform(f):
        return pca.transform(np.asarray(f, dtype=np.float64))

    z = transform(x)
    # a full covariance needs more clips than dimensions per component; fall back to diagonal
    cov = covariance_type if n > 4 * dims else "diag"
    model, bics = _bic_mixture(z, max_components, cov, seed)
    fit = LabelFit(labels=np.zeros(n, dtype=np.int64), n_labels=int(model.n_components), bic=bics, model=model,
                   transform=transform)
    fit.labels = fit._relabel(model.predict(z))
    return fit


def quantise_frequencies(freqs: np.ndarray, *, max_levels: int = 6, seed: int = 0) -> LabelFit:
    """Characteristic-frequency labels: a 1-D Gaussian mixture on ``log(freqs)`` with the BIC-best
    number of levels in ``1..max_levels``; labels are ordered by frequency (0 = lowest)."""
    f = np.asarray(freqs, dtype=np.float64).reshape(-1)
    if np.any(~np.isfinite(f)) or np.any(f <= 0):
        raise ValueError("characteristic frequencies must be finite and > 0 Hz")
    n = len(f)
    if n < 4:
        return LabelFit(labels=np.zeros(n, dtype=np.int64), n_labels=1, bic=[])

    def transform(values):
        return np.log(np.asarray(values, dtype=np.float64).reshape(-1, 1))

    model, bics = _bic_mixture(transform(f), max_levels, "full", seed)
    fit = LabelFit(labels=np.zeros(n, dtype=np.int64), n_labels=int(model.n_components), bic=bics, model=model,
                   transform=transform)
    fit.labels = fit._relabel(model.predict(transform(f)))
    return fit


def fit_labels(method: str, features: np.ndarray, params: Mapping, *, seed: int = 0) -> LabelFit:
    """``method`` = ``"clustering"`` (features: ``(N, d)`` statistics, params of
    :func:`cluster_labels`) or ``"charfreq"`` (features: ``(N,)`` Hz, params of
    :func:`quantise_frequencies`)."""
    if method == "clustering":
        return cluster_labels(features, seed=seed, **dict(params))
    if method == "charfreq":
        return quantise_frequencies(features, seed=seed, **dict(params))
    raise ValueError(f"unknown pseudo-labelling method {method!r}; expected one of {METHODS}")


def stability(method: str, features: np.ndarray, params: Mapping, *, n_bootstrap: int = 10, seed: int = 0,
              reference: LabelFit | None = None) -> float:
    """Mean adjusted Rand index between the labelling of all clips and the labellings predicted by
    refits on ``n_bootstrap`` bootstrap resamples (training clips only). 1 = perfectly stable.
    A labelling with a single group scores 0 (it separates nothing)."""

    reference = reference or fit_labels(method, features, params, seed=seed)
    if reference.n_labels < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    n = len(features)
    scores = []
    for b in range(int(n_bootstrap)):
        idx = rng.integers(0, n, size=n)
        boot = fit_labels(method, np.asarray(features)[idx], params, seed=seed + 1 + b)
        pred = boot.predict(features) if boot.model is not None else np.zeros(n, dtype=np.int64)
        scores.append(adjusted_rand_score(reference.labels, pred))
    return float(np.mean(scores)) if scores else 0.0


# --------------------------------------------------------------------------------------------------
# per machine type
# --------------------------------------------------------------------------------------------------
def hidden_attribute_machines(train_index: pd.DataFrame) -> list[str]:
    """Machine types whose training clips all have hidden attributes (``noAttribute``), sorted."""
    hidden = train_index.groupby("machine")["attributes"].agg(lambda a: bool((a == HIDDEN_ATTRIBUTE).all()))
    return sorted(hidden[hidden].index)


def pseudo_label_machine(machine_index: pd.DataFrame, waves: np.ndarray, cfg: Mapping, *, sample_rate: int = 16000,
                         seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both methods on one machine type's training clips, per domain, and the choice between them.

    machine_index: the training rows of one machine type (columns ``file_name, domain``);
    waves: ``(N, T)`` aligned with it. cfg: ``clustering`` (features + :func:`cluster_labels`
    params), ``charfreq`` (``band``, ``fmin``, ``fmax`` + ``max_levels``), ``max_components``
    per domain (``{source: 8, target: 2}``), ``n_bootstrap``.

    Returns ``(labels, summary)``: labels has one row per clip (``file_name, domain,
    clustering, charfreq``: label strings like ``"source-2"``); summary one row per method and
    domain (``method, domain, n_clips, n_labels, stability``).
    """
    if len(machine_index) != len(waves):
        raise ValueError(f"{len(machine_index)} index rows but {len(waves)} waveforms")
    clus_cfg = dict(cfg.get("clustering", {}))
    feat_keys = ("n_mels", "fmin", "fmax", "n_fft", "hop_length")
    feat_params = {k: clus_cfg.pop(k) for k in feat_keys if k in clus_cfg}
    cf_cfg = dict(cfg.get("charfreq", {}))
    cf_params = {"band": tuple(cf_cfg.pop("band")) if cf_cfg.get("band") else None,
                 "fmin": float(cf_cfg.pop("fmin", 0.5)), "fmax": float(cf_cfg.pop("fmax", 100.0))}
    cf_cfg.pop("band", None)
    max_components = dict(cfg.get("max_components", {"source": 8, "target": 2}))
    n_boot = int(cfg.get("n_bootstrap", 10))

    stats = logmel_statistics(waves, sample_rate=sample_rate, **feat_params)
    freqs = characteristic_frequencies(waves, sample_rate=sample_rate, **cf_params)
    domains = machine_index["domain"].fillna("unknown").astype(str).to_numpy()
    labels = pd.DataFrame({"file_name": machine_index["file_name"].to_numpy(), "domain": domains,
                           "charfreq_hz": freqs})
    rows = []
    for method in METHODS:
        column = np.empty(len(domains), dtype=object)
        for domain in sorted(set(domains)):
            sel = domains == domain
            k_max = int(max_components.get(domain, max_components.get("source", 8)))
            if method == "clustering":
                feats, params = stats[sel], {**clus_cfg, "max_components": k_max}
            else:
                feats, params = freqs[sel], {**cf_cfg, "max_levels": k_max}
            fit = fit_labels(method, feats, params, seed=seed)
            stab = stability(method, feats, params, n_bootstrap=n_boot, seed=seed, reference=fit)
            column[sel] = [f"{domain}-{int(v)}" for v in fit.labels]
            rows.append({"method": method, "domain": domain, "n_clips": int(sel.sum()), "n_labels": fit.n_labels,
                         "stability": stab})
        labels[method] = column
    return labels, pd.DataFrame(rows)


def choose_method(summary: pd.DataFrame, *, min_stability: float = 0.0) -> str | None:
    """The labelling method for one machine type from its :func:`pseudo_label_machine` summary.

    Per method: the clip-weighted mean stability over domains. Eligible: at least two labels in the
    source domain (a method that finds one group labels nothing) and mean stability above
    ``min_stability``. Returns the eligible method with the highest stability (ties: the order of
    :data:`METHODS`), or None (the machine keeps domain-only classes).
    """
    best, best_score = None, -np.inf
    for method in METHODS:
        part = summary[summary["method"] == method]
        if part.empty:
            continue
        source = part[part["domain"] == "source"]
        if source.empty or int(source["n_labels"].max()) < 2:
            continue
        score = float(np.average(part["stability"], weights=part["n_clips"]))
        if score > min_stability and score > best_score + 1e-12:
            best, best_score = method, score
    return best


# --------------------------------------------------------------------------------------------------
# scoring against the truth
# --------------------------------------------------------------------------------------------------
def read_true_attributes(root: str | Path) -> pd.DataFrame | None:
    """True attributes of hidden-attribute clips, where the data root provides them.

    Reads ``<root>/ground_truth_attributes.csv`` (columns ``machine, file_name, attributes``; the
    synthetic dataset writes it). Returns that frame, or None when the file is absent. A file
    without those columns raises ``ValueError`` naming it.
    """
    path = Path(root) / "ground_truth_attributes.csv"
    if not path.exists():
        return None
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    needed = {"machine", "file_name", "attributes"}
    if rows and not needed <= set(rows[0]):
        raise ValueError(f"{path}: expected columns {sorted(needed)}, got {sorted(rows[0])}")
    frame = pd.DataFrame(rows, columns=sorted(needed))
    return frame[["machine", "file_name", "attributes"]]


def contingency(true: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    """Counts of clips per (true attribute, pseudo-label): rows = true, columns = pseudo."""
    return pd.crosstab(pd.Series(np.asarray(true), name="true"), pd.Series(np.asarray(pred), name="pseudo"))


def score_against_truth(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``{"ari", "nmi", "n_true", "n_pseudo", "n_clips"}`` of a pseudo-labelling against the truth."""

    true, pred = np.asarray(true), np.asarray(pred)
    if len(true) != len(pred) or len(true) == 0:
        raise ValueError(f"need equally many true and pseudo labels (> 0), got {len(true)} and {len(pred)}")
    return {"ari": float(adjusted_rand_score(true, pred)), "nmi": float(normalized_mutual_info_score(true, pred)),
            "n_true": int(len(set(true))), "n_pseudo": int(len(set(pred))), "n_clips": int(len(true))}
