"""GISP-HEU (DCASE 2025 Task 2, report 000): GenRep front end + statistical feature-difference weighting.

Longer than 500 lines: report 000's four systems share the statistical weighting and the
backbone embeddings computed once; splitting them would scatter one pipeline.

System 1 of the report is GenRep (Saengthong & Shinozaki, ICASSP 2025) -- frozen BEATs, one shallow
layer's tokens pooled over time, kNN with separate source and target memory banks, MemMixup of the
few target clips with their nearest source clips -- whose kNN distance is multiplied at test time by a
*statistical weight* that grows with how far the clip lies from the training distribution. The report
only says that the weight comes from "the difference in energy distribution between the test set and
the training set" of the audio features and of the embeddings, inspired by the authors' TWFR-GMM
(Guan et al., ICASSP 2023). This module writes that idea down as follows (derivation in
``papers/000_gisp_heu.md``):

1. **Audio statistics** of a clip (:func:`audio_statistics`): the time-weighted frequency-domain
   representation (TWFR) of its log-mel -- per mel band, the frames sorted by energy (loudest
   first) and averaged with geometric weights ``r**i`` (global weighted ranking pooling, GWRP;
   ``r = 1`` is the mean over time, ``r = 0`` the maximum) -- concatenated with quantiles of the
   per-frame log energy (how the energy is distributed over time).
2. **Distribution distance** (:class:`DistributionDistance`): a Gaussian mixture fitted to the
   training statistics of one machine type / section (TWFR-GMM), the negative log-likelihood
   ``NLL(x)`` of a clip, standardised with the mean and standard deviation of *out-of-fold*
   training NLLs: ``z(x) = (NLL(x) - mu) / sigma``. The same estimator on the GenRep embedding
   (after PCA) gives the embedding-statistics distance.
3. **Weight** (:func:`statistical_weight`): ``w(x) = exp(alpha_a * c * tanh(z_a / c)) *
   exp(alpha_e * c * tanh(z_e / c))``. Without the soft clip ``c`` this is
   ``p_a(x)**(-alpha_a / sigma_a) * p_e(x)**(-alpha_e / sigma_e)`` up to a constant: the kNN
   distance times a tempered inverse likelihood of the clip under the training density -- a
   product of experts, each expert's temperature set by its training spread. ``w`` is strictly
   increasing in each distance, equals 1 for a typical training clip and is bounded in
   ``[exp(-(alpha_a + alpha_e) c), exp((alpha_a + alpha_e) c)]``.
4. **Score**: the weighted kNN distance to each memory bank, ``w(x) d_dom(x)``, standardised per
   domain with the mean and standard deviation of the *weighted leave-one-out* distances of that
   domain's training clips, and the minimum over the two domains (GenRep's domain-wise
   normalisation, but with training statistics instead of the test-set statistics of GenRep's
   public code).

Only training clips (and, in System 2, the supplemental clean / noise clips) shape any statistic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from tqdm.auto import tqdm

from asd_utils.backbones.embeddings import extract_layer_embeddings
from asd_utils.data import load_batch
from asd_utils.features.logmel import log_mel
from asd_utils.scoring import GenRepKNN, weighted_ensemble
from asd_utils.storage.cache import cached_arrays
from asd_utils.storage.keys import files_digest

__all__ = [
    "gwrp_weights",
    "twfr",
    "temporal_energy_quantiles",
    "audio_statistics",
    "extract_audio_statistics",
    "DistributionDistance",
    "statistical_weight",
    "StatisticalWeighting",
    "GISPSystem",
]


# ---------------------------------------------------------------------------------------------
# audio statistics (TWFR + temporal energy profile)
# ---------------------------------------------------------------------------------------------
def gwrp_weights(n_frames: int, decay: float) -> np.ndarray:
    """Global weighted ranking pooling weights ``r**i / sum_j r**j``, ``i = 0..n_frames-1``.

    ``decay`` (``r``) in [0, 1]: 1 gives equal weights (mean over time), 0 puts all weight on the
    first (largest) value (maximum over time). Returns (n_frames,) float64 summing to 1.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"GWRP decay must lie in [0, 1], got {decay}")
    if n_frames < 1:
        raise ValueError(f"need at least one frame, got {n_frames}")
    weights = np.power(float(decay), np.arange(n_frames, dtype=np.float64)) if decay > 0 else None
    if weights is None:
        weights = np.zeros(n_frames)
        weights[0] = 1.0
    return weights / weights.sum()


def twfr(logmel: np.ndarray | torch.Tensor, decay: float) -> np.ndarray:
    """Time-weighted frequency-domain representation (Guan et al., ICASSP 2023).

    logmel: (batch, n_mels, frames) or (n_mels, frames) log-mel energies (any log unit).
    Each band's frames are sorted in descending order and averaged with :func:`gwrp_weights`.
    Returns (batch, n_mels) float64 (or (n_mels,) for 2-D input).
    """
    x = logmel.detach().cpu().numpy() if isinstance(logmel, torch.Tensor) else np.asarray(logmel)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"logmel must be (batch, n_mels, frames) or (n_mels, frames), got {x.shape}")
    ranked = -np.sort(-x.astype(np.float64), axis=2)  # descending over time
    out = ranked @ gwrp_weights(x.shape[2], decay)
    return out[0] if single else out


def temporal_energy_quantiles(logmel: np.ndarray | torch.Tensor, quantiles: Sequence[float],
                              *, db: bool = True) -> np.ndarray:
    """How the energy is spread over time: quantiles of the per-frame log energy, plus its std.

    logmel: (batch, n_mels, frames) in dB (``db=True``, 10 log10 power) or natural log.
    The frame energy is ``log(sum_mel power)`` (log-sum-exp over bands, in the input's unit).
    Returns (batch, len(quantiles) + 1) float64.
    """
    x = logmel.detach().cpu().numpy() if isinstance(logmel, torch.Tensor) else np.asarray(logmel)
    if x.ndim == 2:
        x = x[None]
    x = x.astype(np.float64)
    scale = 10.0 / np.log(10.0) if db else 1.0  # dB <-> natural log
    nat = x / scale
    peak = nat.max(axis=1, keepdims=True)
    frame_energy = scale * (peak[:, 0] + np.log(np.exp(nat - peak).sum(axis=1)))  # (batch, frames)
    q = np.quantile(frame_energy, list(quantiles), axis=1).T if len(quantiles) else np.zeros((len(x), 0))
    return np.concatenate([q, frame_energy.std(axis=1, keepdims=True)], axis=1)


def audio_statistics(waves: np.ndarray | torch.Tensor, *, sample_rate: int = 16000, n_fft: int = 1024,
                     hop_length: int = 512, n_mels: int = 128, gwrp_decay: float = 0.99,
                     time_quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> np.ndarray:
    """Audio statistics of clips: TWFR of the log-mel and the temporal energy profile.

    waves: (batch, samples) float32 at ``sample_rate`` Hz. The log-mel is the official baseline's
    (``asd_utils.features.logmel.log_mel``: power mel, 10 log10, window ``n_fft``, hop ``hop_length``).
    Returns (batch, n_mels + len(time_quantiles) + 1) float64: ``[TWFR (n_mels), energy quantiles,
    energy std]``.
    """

    mel = log_mel(torch.as_tensor(waves, dtype=torch.float32), sample_rate=sample_rate, n_fft=n_fft,
                  hop_length=hop_length, n_mels=n_mels)
    if mel.ndim == 2:
        mel = mel[None]
    return np.concatenate([twfr(mel, gwrp_decay), temporal_energy_quantiles(mel, time_quantiles)], axis=1)


def extract_audio_statistics(paths: Sequence[str], *, clip_samples: int | None, cache_dir: str | Path | None = None,
                             batch_size: int = 32, progress: bool = True, desc: str = "audio stats",
                             **stat_kwargs) -> np.ndarray:
    """:func:`audio_statistics` of WAV files, batched and cached.

    paths: N WAV files; clip_samples: samples per clip (cut or zero-padded, as
    ``asd_utils.data.load_batch``); cache_dir: folder of the ``.npz`` cache
    (``asd_utils.storage.cache.cached_arrays``, keyed by the files' content, the options and the code).
    Returns (N, n_features) float64.
    """

    paths = [str(p) for p in paths]
    sample_rate = int(stat_kwargs.get("sample_rate", 16000))

    def compute() -> dict[str, np.ndarray]:
        chunks = []
        starts = range(0, len(paths), batch_size)
        if progress:
            starts = tqdm(starts, desc=desc, leave=False)
        for start in starts:
            waves = load_batch(paths[start:start + batch_size], sample_rate=sample_rate, n_samples=clip_samples)
            chunks.append(audio_statistics(waves, **stat_kwargs))
        return {"features": np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0))}

    ingredients = {"files": files_digest(paths), "clip_samples": clip_samples, "kind": "gisp_audio_statistics_v1",
                   **{k: stat_kwargs[k] for k in sorted(stat_kwargs)}}
    return cached_arrays(cache_dir, ingredients, compute, code=__name__, name="audio_stats")["features"]


# ---------------------------------------------------------------------------------------------
# distribution distance (GMM negative log-likelihood, standardised with out-of-fold training NLL)
# ---------------------------------------------------------------------------------------------
class DistributionDistance:
    """How far clips lie from a training distribution: standardised GMM negative log-likelihood.

    ``fit(X)`` standardises the features, optionally projects them on ``pca_dim`` principal
    components, fits a ``GaussianMixture`` and estimates the mean ``mu_`` and standard deviation
    ``sigma_`` of the NLL of *unseen* normal clips by ``n_folds``-fold cross-fitting (each training
    clip scored by a mixture fitted without it). ``zscore(X) = (NLL(X) - mu_) / sigma_``; the
    out-of-fold training z-scores are kept in ``train_z_``.

    With fewer clips than the covariance can support (``n <= dim``), the covariance falls back to
    ``diag``; the dimension is capped at ``n - 1`` (and at the PCA size).
    """

    def __init__(self, *, n_components: int = 2, covariance_type: str = "full", pca_dim: int | None = None,
                 reg_covar: float = 1e-3, n_folds: int = 5, seed: int = 0, max_iter: int = 200):
        self.n_components = int(n_components)
        self.covariance_type = covariance_type
        self.pca_dim = pca_dim
        self.reg_covar = float(reg_covar)
        self.n_folds = int(n_folds)
        self.seed = int(seed)
        self.max_iter = int(max_iter)

    # -- one fit --------------------------------------------------------------------------------
    def _fit_one(self, X: np.ndarray) -> dict:
        n, d = X.shape
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        std = np.where(std > 1e-8 * max(1.0, float(np.abs(std).max(initial=0.0))), std, 1.0)
        Z = (X - mean) / std
        pca = None
        target_dim = min(d, max(1, n - 1), self.pca_dim or d)
        if target_dim < d:
            pca = PCA(n_components=target_dim, random_state=self.seed).fit(Z)
            Z = pca.transform(Z)
        cov = self.covariance_type if n > Z.shape[1] + 1 else "diag"
        k = max(1, min(self.n_components, n // 2))
        gmm = GaussianMixture(n_components=k, covariance_type=cov, reg_covar=self.reg_covar,
                              random_state=self.seed, max_iter=self.max_iter, n_init=1).fit(Z)
        return {"mean": mean, "std": std, "pca": pca, "gmm": gmm}

    @staticmethod
    def _nll_one(model: dict, X: np.ndarray) -> np.ndarray:
        Z = (X - model["mean"]) / model["std"]
        if model["pca"] is not None:
            Z = model["pca"].transform(Z)
        return -model["gmm"].score_samples(Z)

    # -- estimator API --------------------------------------------------------------------------
    def fit(self, X: np.ndarray) -> DistributionDistance:
        """X: (N, D) training features of one machine type / section (N >= 4)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) < 4:
            raise ValueError(f"DistributionDistance.fit needs (N >= 4, D) features, got shape {X.shape}")
        self.model_ = self._fit_one(X)
        n = len(X)
        folds = max(2, min(self.n_folds, n // 2))
        order = np.random.default_rng(self.seed).permutation(n)
        oof = np.empty(n)
        for fold in range(folds):
            held = order[fold::folds]
            keep = np.setdiff1d(order, held)
            oof[held] = self._nll_one(self._fit_one(X[keep]), X[held])
        self.train_nll_ = oof
        self.mu_ = float(np.mean(oof))
        self.sigma_ = float(max(np.std(oof), 1e-8))
        self.train_z_ = (oof - self.mu_) / self.sigma_
        return self

    def nll(self, X: np.ndarray) -> np.ndarray:
        """(M, D) -> (M,) negative log-likelihood under the mixture fitted on all training clips."""
        return self._nll_one(self.model_, np.asarray(X, dtype=np.float64))

    def zscore(self, X: np.ndarray) -> np.ndarray:
        """(M, D) -> (M,) standardised distance ``(NLL - mu_) / sigma_`` (training statistics)."""
        return (self.nll(X) - self.mu_) / self.sigma_


def statistical_weight(z: np.ndarray, alpha: float, clip: float = 3.0) -> np.ndarray:
    """Weight of a standardised distribution distance: ``exp(alpha * clip * tanh(z / clip))``.

    Strictly increasing in ``z`` for ``alpha > 0``; 1 at ``z = 0``; bounded in
    ``[exp(-alpha * clip), exp(alpha * clip)]``; ``clip = inf`` gives ``exp(alpha * z)``.
    """
    z = np.asarray(z, dtype=np.float64)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if np.isinf(clip):
        return np.exp(alpha * z)
    if clip <= 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    return np.exp(alpha * clip * np.tanh(z / clip))


@dataclass
class StatisticalWeighting:
    """The report's statistical feature-difference weight from audio statistics and embeddings.

    ``fit(audio, embeddings)`` fits one :class:`DistributionDistance` per view on training
    features; ``weights(audio, embeddings)`` gives the multiplicative weight of new clips and
    ``train_weights_`` the out-of-fold weight of the training clips. A view whose ``alpha`` is 0 is
    not fitted.
    """

    alpha_audio: float = 0.5
    alpha_embedding: float = 0.5
    clip: float = 3.0
    audio: dict = field(default_factory=dict)
    embedding: dict = field(default_factory=dict)

    def fit(self, audio: np.ndarray | None, embeddings: np.ndarray | None) -> StatisticalWeighting:
        self.audio_ = DistributionDistance(**self.audio).fit(audio) if self.alpha_audio > 0 else None
        self.embedding_ = (DistributionDistance(**self.embedding).fit(embeddings)
                           if self.alpha_embedding > 0 else None)
        n = len(audio) if audio is not None else len(embeddings)
        self.train_weights_ = self._combine(
            None if self.audio_ is None else self.audio_.train_z_,
            None if self.embedding_ is None else self.embedding_.train_z_, n)
        return self

    def _combine(self, z_audio, z_embedding, n: int) -> np.ndarray:
        w = np.ones(n)
        if z_audio is not None:
            w = w * statistical_weight(z_audio, self.alpha_audio, self.clip)
        if z_embedding is not None:
            w = w * statistical_weight(z_embedding, self.alpha_embedding, self.clip)
        return w

    def zscores(self, audio: np.ndarray | None, embeddings: np.ndarray | None) -> dict[str, np.ndarray]:
        out = {}
        if self.audio_ is not None:
            out["audio"] = self.audio_.zscore(audio)
        if self.embedding_ is not None:
            out["embedding"] = self.embedding_.zscore(embeddings)
        return out

    def weights(self, audio: np.ndarray | None, embeddings: np.ndarray | None) -> np.ndarray:
        """(M, ...) -> (M,) weights of new clips."""
        z = self.zscores(audio, embeddings)
        n = len(audio) if audio is not None else len(embeddings)
        return self._combine(z.get("audio"), z.get("embedding"), n)


# ---------------------------------------------------------------------------------------------
# GenRep back end (asd_utils.scoring.libraries.GenRepKNN) times the statistical weight
# ---------------------------------------------------------------------------------------------
@dataclass
class GISPSystem:
    """System 1 / System 2 of one machine type and section: GenRep kNN x statistical weight.

    ``fit(train_emb, train_domains, train_audio, extra_emb=None, extra_audio=None,
    extra_in_bank=None)``: the GenRep banks come from the training clips (plus ``extra_in_bank``
    rows of the extra clips, added to the source bank); the distribution distances are fitted on
    training clips plus all extra clips (System 2's supplemental data).
    ``score(test_emb, test_audio, weighted=True) -> (M,)``; ``train_scores_`` (N,) and
    ``train_scores_unweighted_`` hold the matching training-clip scores (leave-one-out).
    """

    knn: dict = field(default_factory=dict)
    weighting: dict = field(default_factory=dict)

    def fit(self, train_emb: np.ndarray, train_domains: Sequence[str], train_audio: np.ndarray,
            extra_emb: np.ndarray | None = None, extra_audio: np.ndarray | None = None,
            extra_in_bank: np.ndarray | None = None) -> GISPSystem:
        train_emb = np.asarray(train_emb, dtype=np.float64)
        train_audio = np.asarray(train_audio, dtype=np.float64)
        n = len(train_emb)
        bank_extra = None
        if extra_emb is not None and extra_in_bank is not None and np.any(extra_in_bank):
            bank_extra = np.asarray(extra_emb, dtype=np.float64)[np.asarray(extra_in_bank, dtype=bool)]
        self.knn_ = GenRepKNN(**self.knn).fit(train_emb, train_domains, extra_source=bank_extra)
        self.knn_.set_train_embeddings(train_emb)
        fit_emb, fit_audio = train_emb, train_audio
        if extra_emb is not None and len(extra_emb):
            fit_emb = np.concatenate([train_emb, np.asarray(extra_emb, dtype=np.float64)], axis=0)
            fit_audio = np.concatenate([train_audio, np.asarray(extra_audio, dtype=np.float64)], axis=0)
        self.weighting_ = StatisticalWeighting(**self.weighting).fit(fit_audio, fit_emb)
        self.train_weights_ = self.weighting_.train_weights_[:n]
        _, self.train_scores_ = self.knn_.normalised_min(np.zeros((0, 2)), None, self.train_weights_)
        _, self.train_scores_unweighted_ = self.knn_.normalised_min(np.zeros((0, 2)))
        return self

    def weights(self, test_emb: np.ndarray, test_audio: np.ndarray) -> np.ndarray:
        return self.weighting_.weights(np.asarray(test_audio, dtype=np.float64),
                                       np.asarray(test_emb, dtype=np.float64))

    def score(self, test_emb: np.ndarray, test_audio: np.ndarray | None = None, *,
              weighted: bool = True) -> np.ndarray:
        d = self.knn_.distances(test_emb)
        if not weighted:
            return self.knn_.normalised_min(d)[0]
        return self.knn_.normalised_min(d, self.weights(test_emb, test_audio), self.train_weights_)[0]


# ---------------------------------------------------------------------------------------------
# notebook glue: front end over a data index, per-machine scoring of Systems 1 and 2
# ---------------------------------------------------------------------------------------------
@dataclass
class SystemScores:
    """Scores of one system: ``test_scores`` aligned with ``test_index`` rows, ``train_scores``
    (leave-one-out / out-of-fold) aligned with ``train_index`` rows; ``extras`` for diagnostics."""

    name: str
    test_index: object
    test_scores: np.ndarray
    train_index: object
    train_scores: np.ndarray
    extras: dict = field(default_factory=dict)


def extract_frontend(backbone, index, *, layer: int, clip_samples: int, audio_features: dict,
                     batch_size: int = 8, cache_dir: str | Path | None = None, device="cpu",
                     progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """GenRep embeddings and audio statistics of every clip of ``index`` (rows in order).

    backbone: a BEATs ``Backbone``; layer: hidden-state index (0 = input, 1 = first layer);
    clip_samples: samples per clip. Returns ``(embeddings (N, 8 * dim), audio (N, F))`` float64.
    Both are cached under ``cache_dir`` (keyed by files, model and options).
    """

    paths = index["path"].astype(str).tolist()
    emb = extract_layer_embeddings(backbone, paths, layers=[int(layer)], pooling="genrep",
                                   batch_size=batch_size, clip_samples=clip_samples,
                                   cache_dir=None if cache_dir is None else Path(cache_dir) / "genrep",
                                   device=device, progress=progress)
    emb = np.asarray(next(iter(emb.values())), dtype=np.float64)
    audio = extract_audio_statistics(paths, clip_samples=clip_samples,
                                     cache_dir=None if cache_dir is None else Path(cache_dir) / "audio",
                                     progress=progress, **audio_features)
    return emb, audio


def _group_keys(index) -> list[tuple[str, str]]:
    rows = index[index["split"] == "train"]
    return sorted(set(zip(rows["machine"].astype(str), rows["section"].astype(str))))


def score_machines(index, embeddings: np.ndarray, audio: np.ndarray, *, knn: dict, weighting: dict,
                   supplemental_kinds: Sequence[str] = (), memory_bank_kinds: Sequence[str] = (),
                   name: str = "System-1", progress: bool = True) -> dict[str, SystemScores]:
    """Fit :class:`GISPSystem` per machine type / section and score its test clips.

    index: data index (``asd_utils.data.discover`` columns) aligned with ``embeddings`` (N, D)
    and ``audio`` (N, F). Training rows (``split == 'train'``) build the memory banks and the
    distributions; supplemental rows whose ``supplemental_kind`` is in ``supplemental_kinds`` are
    added to the distribution fits (those in ``memory_bank_kinds`` also to the source bank);
    test rows are scored. Returns ``{"weighted": SystemScores, "unweighted": SystemScores}``
    (the second is the ablation without the statistical weight, from the same fit).
    """
    index = index.reset_index(drop=True)
    is_test = (index["split"] == "test").to_numpy()
    is_train = (index["split"] == "train").to_numpy()
    test_pos = np.flatnonzero(is_test)
    train_pos = np.flatnonzero(is_train)
    test_rank = {p: i for i, p in enumerate(test_pos)}
    train_rank = {p: i for i, p in enumerate(train_pos)}
    out = {key: (np.full(len(test_pos), np.nan), np.full(len(train_pos), np.nan))
           for key in ("weighted", "unweighted")}
    test_weights = np.full(len(test_pos), np.nan)
    kind = index["supplemental_kind"].astype(object) if "supplemental_kind" in index else None
    groups = _group_keys(index)
    if progress:

        groups = tqdm(groups, desc=name, leave=False)
    machine = index["machine"].astype(str).to_numpy()
    section = index["section"].astype(str).to_numpy()
    for m, s in groups:
        same = (machine == m) & (section == s)
        tr = np.flatnonzero(same & is_train)
        te = np.flatnonzero(same & is_test)
        extra = np.zeros(0, dtype=np.int64)
        in_bank = np.zeros(0, dtype=bool)
        if supplemental_kinds and kind is not None:
            supp = (index["split"] == "supplemental").to_numpy() & (machine == m)
            # supplemental clips may carry no section of their own: match the machine type
            supp &= (section == s) | ~np.isin(section, list({*section[tr]}))
            supp &= kind.isin(list(supplemental_kinds)).to_numpy()
            extra = np.flatnonzero(supp)
            in_bank = kind.iloc[extra].isin(list(memory_bank_kinds)).to_numpy()
        system = GISPSystem(knn=dict(knn), weighting=dict(weighting)).fit(
            embeddings[tr], index["domain"].iloc[tr].tolist(), audio[tr],
            extra_emb=embeddings[extra] if len(extra) else None,
            extra_audio=audio[extra] if len(extra) else None,
            extra_in_bank=in_bank if len(extra) else None)
        t_idx = [test_rank[p] for p in te]
        r_idx = [train_rank[p] for p in tr]
        if len(te):
            out["weighted"][0][t_idx] = system.score(embeddings[te], audio[te], weighted=True)
            out["unweighted"][0][t_idx] = system.score(embeddings[te], audio[te], weighted=False)
            test_weights[t_idx] = system.weights(embeddings[te], audio[te])
        out["weighted"][1][r_idx] = system.train_scores_
        out["unweighted"][1][r_idx] = system.train_scores_unweighted_
    test_index = index.iloc[test_pos].reset_index(drop=True)
    train_index = index.iloc[train_pos].reset_index(drop=True)
    return {
        "weighted": SystemScores(name, test_index, out["weighted"][0], train_index, out["weighted"][1],
                                 {"test_weights": test_weights}),
        "unweighted": SystemScores(f"{name} w/o weighting", test_index, out["unweighted"][0], train_index,
                                   out["unweighted"][1]),
    }


def ensemble_by_machine(systems: Sequence[SystemScores], weights: Sequence[float], *,
                        name: str = "System-4") -> SystemScores:
    """System 4: ``asd_utils.scoring.weighted_ensemble`` of several systems, per machine type and
    section, each system z-normalised by its own training scores of that machine type / section;
    the same ``weights`` for every machine type.

    All systems must share the same test and training rows (same order; checked on ``path``).
    """

    first = systems[0]
    for other in systems[1:]:
        if (other.test_index["path"].tolist() != first.test_index["path"].tolist()
                or other.train_index["path"].tolist() != first.train_index["path"].tolist()):
            raise ValueError(f"{other.name} and {first.name} do not score the same clips in the same order")
    test_key = first.test_index["machine"].astype(str) + "|" + first.test_index["section"].astype(str)
    train_key = first.train_index["machine"].astype(str) + "|" + first.train_index["section"].astype(str)
    test_scores = np.full(len(test_key), np.nan)
    train_scores = np.full(len(train_key), np.nan)
    for key in sorted(set(train_key)):
        te = (test_key == key).to_numpy()
        tr = (train_key == key).to_numpy()
        trains = [s.train_scores[tr] for s in systems]
        if te.any():
            test_scores[te] = weighted_ensemble([s.test_scores[te] for s in systems], trains, weights)
        train_scores[tr] = weighted_ensemble(trains, trains, weights)
    return SystemScores(name, first.test_index, test_scores, first.train_index, train_scores)


def clip_samples_of(index, seconds: float | None, sample_rate: int = 16000) -> int:
    """Samples per clip: ``seconds * sample_rate`` when given, else the length of the first
    training clip of ``index`` (DCASE clips of one dataset share their length)."""
    if seconds:
        return int(round(float(seconds) * sample_rate))

    first = index[index["split"] == "train"]["path"].iloc[0]
    info = sf.info(str(first))
    return int(round(info.frames * sample_rate / info.samplerate))
