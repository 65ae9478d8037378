"""The steps every report notebook shares, from the data index to per-section scores.

The notebooks of reports 001-004 run the same skeleton around their own models:

1. split the data index into training and test clips (:func:`split_index`), name the auxiliary
   classes (:func:`class_labels`) and load whole clips (:func:`load_waves`);
2. train, with the run cached under a key of everything that determines it
   (:func:`training_run_dir`, :func:`make_loader`);
3. embed clips batch by batch, whole clips as the mean over windows (:func:`embed`,
   :func:`embed_clips`), cached beside the training run (:func:`cached_embeddings`), and check
   the auxiliary task (:func:`classification_accuracy`);
4. fit a scorer per machine type and section on training embeddings and score the test clips,
   with cross-fitted training scores (:func:`score_sections`, :class:`SectionScores`,
   :func:`make_scorer`), and combine systems with training-score normalisation (:func:`combine`).

First-shot rule: no test label and no test-set statistic enters any fit, normalisation, threshold
or choice here; test labels are used only by ``asd_utils.evaluation.metrics.evaluate`` afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from asd_utils.backbones.embeddings import backbone_identity
from asd_utils.data import load_batch
from asd_utils.scoring import GMMScorer, KMeansScorer, fit_scores_from_training, weighted_ensemble
from asd_utils.storage import cache
from asd_utils.storage.keys import array_digest
from asd_utils.training import build_class_labels
from asd_utils.training.clips import clips_fingerprint
from asd_utils.training.crops import embed_crops, training_tensors

__all__ = [
    "SCORERS",
    "SectionScores",
    "cached_embeddings",
    "class_labels",
    "classification_accuracy",
    "combine",
    "embed",
    "embed_clips",
    "load_waves",
    "make_loader",
    "make_scorer",
    "score_sections",
    "split_index",
    "training_run_dir",
]

SCORERS = ("gmm", "kmeans")


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
def split_index(index: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train_index, test_index)``: the training clips and every test clip, each with a fresh
    0..N-1 index (rows keep the index's order). Blinded test clips without ground truth are kept:
    they are scored and get submission files; ``metrics.evaluate`` leaves them out of the metrics."""
    train = index[index["split"] == "train"].reset_index(drop=True)
    test = index[index["split"] == "test"]
    return train, test.reset_index(drop=True)


def class_labels(train_index: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Auxiliary-task labels: ``(labels (N,) int64, class names)``, one class per distinct
    combination of ``keys`` (see ``asd_utils.training.build_class_labels``)."""

    return build_class_labels(train_index, keys)


def load_waves(index: pd.DataFrame, *, clip_seconds: float, sample_rate: int = 16000,
               progress: bool = False) -> np.ndarray:
    """``(N, round(clip_seconds * sample_rate))`` float32 waveforms of the index's clips, in row
    order; shorter clips are tiled, longer ones cropped to their start (``asd_utils.data.load_batch``)."""

    n_samples = int(round(float(clip_seconds) * sample_rate))
    return load_batch(index["path"].tolist(), sample_rate=sample_rate, n_samples=n_samples, mode="tile",
                      progress=progress)


def make_loader(waves: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *, batch_size: int,
                seed: int, shuffle: bool = True, drop_last: bool = False) -> torch.utils.data.DataLoader:
    """A deterministic single-process loader of ``(waves (B, T) float32, labels (B,) int64)``.

    The shuffling order comes from a ``torch.Generator`` seeded with ``seed`` (the trainer also
    checkpoints its state), so two runs with the same seed see the same batches.
    """

    x, y = training_tensors(waves, labels)
    batch_size = max(1, min(int(batch_size), len(x)))
    # BatchNorm needs two clips per batch in training mode: never leave a final batch of one
    drop_last = drop_last or (len(x) % batch_size == 1 and len(x) > 1)
    generator = torch.Generator().manual_seed(int(seed))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size,
                                       shuffle=shuffle, drop_last=drop_last, num_workers=0,
                                       generator=generator)


# --------------------------------------------------------------------------------------------------
# training runs and embeddings
# --------------------------------------------------------------------------------------------------
def training_run_dir(cache_root, system: str, *, cfg: Mapping, seed: int, classes: Sequence[str],
                     waves: np.ndarray, labels: np.ndarray, backbone=None,
                     code: str | Sequence[str] = "asd_utils.methods") -> Path | None:
    """Checkpoint folder of one training run, keyed by everything that determines its result.

    The key hashes the system name, the config section, the seed, the class list, the training
    waveforms (shape + bytes) and labels, and, for a pretrained model, the backbone's identity
    (checkpoint sha256 or stand-in seed + state hash; ``asd_utils.backbones.embeddings.backbone_identity``), and
    the source of the modules that train it (``code``: the caller's module, e.g. ``__name__``;
    default every report module; ``asd_utils.storage.keys.cache_key``).
    ``Trainer.fit(resume=True)`` on a finished run in this folder trains nothing and restores the
    final weights, so a rerun reuses the trained model; any change of input gives a new folder.
    The folder is ``asd_utils.storage.cache.run_dir(cache_root, system, identity, code=code)``.
    Returns None when ``cache_root`` is None (no caching).
    """
    if cache_root is None:
        return None
    waves = np.ascontiguousarray(waves, dtype=np.float32)
    identity = {
        "system": system,
        "cfg": dict(cfg),
        "seed": int(seed),
        "classes": list(classes),
        "waves": array_digest(waves),
        "labels": array_digest(np.asarray(labels, dtype=np.int64)),
    }
    if backbone is not None:
        identity["backbone"] = backbone_identity(backbone)
    return cache.run_dir(cache_root, system, identity, code=code)


@torch.inference_mode()
def embed(embed_fn, waves: np.ndarray | torch.Tensor, *, batch_size: int = 32, device: str | torch.device = "cpu",
          progress: bool = False, desc: str = "embedding") -> np.ndarray:
    """Apply ``embed_fn((B, T) float32 tensor on device) -> (B, D)`` batch by batch.

    Returns ``(N, D)`` float32 (numpy, CPU). Modules are used as they are (call ``.eval()`` first).
    """
    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    device = torch.device(device)
    parts = []
    starts = range(0, len(x), max(1, int(batch_size)))
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        out = embed_fn(x[start:start + int(batch_size)].to(device))
        parts.append(out.float().cpu().numpy())
    if not parts:
        raise ValueError("no clips to embed")
    return np.concatenate(parts, axis=0)


def embed_clips(model: torch.nn.Module, waves: np.ndarray, *, hop_seconds: float | None = None,
                batch_size: int = 32, device: str | torch.device = "cpu", progress: bool = False,
                desc: str = "embedding") -> np.ndarray:
    """Embeddings of whole clips with a fixed-input-length model (``model.n_samples`` samples).

    waves: (N, T) float32. ``T == model.n_samples``: one forward pass per clip (:func:`embed`).
    ``T > model.n_samples``: the mean of the embeddings of windows that cover the whole clip,
    one every ``hop_seconds`` (default: half a window) plus one flush with the clip's end
    (``asd_utils.training.crops.embed_crops``). Returns (N, D) float32; a clip's embedding
    depends on that clip alone.
    """

    waves = np.asarray(waves, dtype=np.float32)
    n = int(model.n_samples)
    if waves.shape[1] < n:
        raise ValueError(f"clips of {waves.shape[1]} samples are shorter than the model's input of {n} samples")
    if waves.shape[1] == n:
        return embed(model, waves, batch_size=batch_size, device=device, progress=progress, desc=desc)
    hop = n // 2 if hop_seconds is None else int(round(float(hop_seconds) * model.sample_rate))
    return embed_crops(model, waves, crop_samples=n, hop_samples=hop, batch_size=batch_size, device=device,
                       progress=progress, desc=desc)


@torch.inference_mode()
def classification_accuracy(embeddings: np.ndarray, labels: np.ndarray, loss: torch.nn.Module) -> float:
    """Share of clips whose highest class logit (``loss.logits``) is their own class."""
    if len(embeddings) == 0:
        return float("nan")
    logits = loss.logits(torch.as_tensor(np.asarray(embeddings, dtype=np.float32)).to(_module_device(loss)))
    pred = logits.argmax(dim=1).cpu().numpy()
    return float(np.mean(pred == np.asarray(labels)))


def cached_embeddings(run_dir, name: str, waves: np.ndarray | list, compute, **settings) -> np.ndarray:
    """Embeddings of ``waves`` by the model of a cached training run, stored beside its checkpoint.

    run_dir: the run's folder (:func:`training_run_dir`; its name already keys the model) or None
    (no caching: ``compute()`` is returned). name: what is embedded (e.g. ``"train"``); waves:
    (N, T) float32, or a list of N clips at their own lengths, hashed into the key together with
    ``settings`` (hop, window, ...; JSON values), so other clips or settings never reuse a stale
    file. compute: ``() -> (N, D)`` array, called on a miss; its result is written atomically to
    ``run_dir/embeddings_<name>_<key>.npz`` (``asd_utils.storage.cache.cached_arrays``).
    Returns ``(N, D)`` as computed or stored.
    """
    if run_dir is None:
        return np.asarray(compute())
    content = clips_fingerprint(waves) if isinstance(waves, list) else array_digest(np.asarray(waves, np.float32))
    ingredients = {"name": name, "waves": content, "settings": {k: settings[k] for k in sorted(settings)}}
    return cache.cached_arrays(run_dir, ingredients, lambda: {"embeddings": compute()}, code=__name__,
                               name=f"embeddings_{name}")["embeddings"]


def _module_device(module: torch.nn.Module) -> torch.device:
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------------
# scoring per machine type and section
# --------------------------------------------------------------------------------------------------
@dataclass
class SectionScores:
    """Anomaly scores of one system: ``test`` (M,) aligned with the test index by position and
    ``train`` (N,) cross-fitted scores of the training clips aligned with the train index."""

    test: np.ndarray
    train: np.ndarray


def make_scorer(name: str, params: Mapping | None = None, *, seed: int = 0):
    """``'gmm'`` -> :class:`asd_utils.scoring.GMMScorer`, ``'kmeans'`` ->
    :class:`asd_utils.scoring.KMeansScorer`, with ``params`` as keyword arguments and
    ``random_state=seed``."""

    params = dict(params or {})
    if name == "gmm":
        return GMMScorer(**params, random_state=seed)
    if name == "kmeans":
        return KMeansScorer(**params, random_state=seed)
    raise ValueError(f"unknown scorer {name!r}; expected one of {SCORERS}")


def _keys(index: pd.DataFrame) -> np.ndarray:
    return (index["machine"].astype(str) + "\t" + index["section"].astype(str)).to_numpy()


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def score_sections(scorer, train_index: pd.DataFrame, train_emb: np.ndarray, test_index: pd.DataFrame,
                   test_emb: np.ndarray, *, n_splits: int = 5, seed: int = 0, l2_normalise: bool = True,
                   blas_threads: int | None = 1, progress: bool = False, desc: str = "scoring") -> SectionScores:
    """Fit a clone of ``scorer`` per machine type and section on that section's training
    embeddings (with their domains) and score the section's test clips.

    train_emb: (N, D) aligned with ``train_index`` (columns ``machine, section, domain``) by
    position; test_emb: (M, D) aligned with ``test_index``. ``l2_normalise``: project embeddings
    onto the unit sphere first (the angular losses train directions, not lengths).
    Training scores: :func:`asd_utils.scoring.fit_scores_from_training` with ``n_splits`` folds
    (stratified by domain), so no clip is scored by a model fitted on it.
    ``blas_threads``: BLAS threads while fitting (None: the library default). The matrices are
    small (a D x D covariance per section), and one thread avoids oversubscribing the cores that
    torch also uses; on a busy 2-core machine it made the GMM eight times faster.
    Returns :class:`SectionScores`.
    """


    train_emb = np.asarray(train_emb)
    test_emb = np.asarray(test_emb)
    if len(train_emb) != len(train_index) or len(test_emb) != len(test_index):
        raise ValueError(f"embeddings ({len(train_emb)}, {len(test_emb)}) do not align with the indices "
                         f"({len(train_index)} training, {len(test_index)} test clips)")
    if l2_normalise:
        train_emb, test_emb = _l2(train_emb), _l2(test_emb)
    train_keys, test_keys = _keys(train_index), _keys(test_index)
    domains = train_index["domain"].to_numpy(dtype=object)
    test_scores = np.full(len(test_index), np.nan)
    train_scores = np.full(len(train_index), np.nan)
    for key in sorted(set(test_keys) - set(train_keys)):
        machine, section = key.split("\t")
        raise ValueError(f"machine {machine!r} section {section}: test clips but no training clips to fit on")
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        for key in tqdm(sorted(set(train_keys)), desc=desc, disable=not progress, leave=False):
            tr, te = train_keys == key, test_keys == key
            d = domains[tr]
            model = clone(scorer).fit(train_emb[tr], d)
            if te.any():
                test_scores[te] = model.score(test_emb[te])
            train_scores[tr] = fit_scores_from_training(scorer, train_emb[tr], d, n_splits=n_splits,
                                                        random_state=seed)
    return SectionScores(test=test_scores, train=train_scores)


def combine(weights: Mapping[str, float], systems: Mapping[str, SectionScores], train_index: pd.DataFrame,
            test_index: pd.DataFrame) -> SectionScores:
    """Weighted mean of z-normalised member scores, per machine type and section.

    Each member's scores of a section are standardised with the mean and standard deviation of
    its cross-fitted *training* scores of the same section (``asd_utils.scoring.weighted_ensemble``);
    the ensemble's own training scores are the same combination of the members' training scores.
    """

    names = [n for n in weights if weights[n] > 0]
    missing = [n for n in names if n not in systems]
    if missing:
        raise ValueError(f"ensemble members without scores: {missing}; available: {sorted(systems)}")
    w = [float(weights[n]) for n in names]
    train_keys, test_keys = _keys(train_index), _keys(test_index)
    test = np.full(len(test_index), np.nan)
    train = np.full(len(train_index), np.nan)
    for key in sorted(set(train_keys)):
        tr, te = train_keys == key, test_keys == key
        train_parts = [systems[n].train[tr] for n in names]
        train[tr] = weighted_ensemble(train_parts, train_parts, w)
        if te.any():
            test[te] = weighted_ensemble([systems[n].test[te] for n in names], train_parts, w)
    return SectionScores(test=test, train=train)
