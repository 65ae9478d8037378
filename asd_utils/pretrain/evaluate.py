"""Frozen-embedding kNN before / after pretraining (notebook 07).

:func:`frozen_knn_scores` embeds every training and test clip of a data root with a frozen
backbone, fits one detector per machine type / section on the training clips only, scores the
test clips, and evaluates them with :func:`asd_utils.evaluation.metrics.evaluate`. Detectors:

- ``"genrep"``: System 1 of the GISP-HEU report without its statistical weight (GenRep's kNN with
  MemMixup, :class:`asd_utils.scoring.GenRepKNN`);
- ``"knn"``: :class:`asd_utils.scoring.KNNScorer` (one bank per domain, min over domains).

A test clip's score depends on the training clips and on itself only (first-shot rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from asd_utils.backbones.embeddings import extract_layer_embeddings
from asd_utils.evaluation.metrics import evaluate
from asd_utils.scoring import GenRepKNN, KNNScorer

__all__ = ["KNNResult", "frozen_knn_scores"]


@dataclass
class KNNResult:
    """Scores of one frozen-kNN run. ``test_scores`` align with ``test_index`` rows,
    ``train_scores`` (leave-one-out: no clip matches itself) with ``train_index`` rows;
    ``table``: :func:`asd_utils.evaluation.metrics.evaluate` of the test scores."""

    test_index: pd.DataFrame
    test_scores: np.ndarray
    train_index: pd.DataFrame
    train_scores: np.ndarray
    table: pd.DataFrame | None


def frozen_knn_scores(backbone, index: pd.DataFrame, *, layer: int, pooling: str, detector: dict,
                      clip_samples: int | None = None, batch_size: int = 16, cache_dir: str | Path | None = None,
                      progress: bool = True, with_metrics: bool = True) -> KNNResult:
    """Score the test clips of ``index`` (``asd_utils.data.discover`` rows) with a frozen kNN.

    backbone: a ``Backbone``; layer: hidden-state index (0 = input); pooling: see
    ``asd_utils.backbones.embeddings.POOLING_NAMES``; detector: ``{"kind": "genrep", "k", "n_mix_support",
    "mix_alpha"}`` or ``{"kind": "knn", "k", "metric", "separate_domains"}``.
    with_metrics: False skips the metrics (``table`` None), e.g. for subsets without anomalies.
    Returns a :class:`KNNResult`.
    """

    index = index[index["split"].isin(["train", "test"])].reset_index(drop=True)
    emb = extract_layer_embeddings(backbone, index["path"].astype(str).tolist(), layers=[int(layer)],
                                   pooling=pooling, batch_size=batch_size, clip_samples=clip_samples,
                                   cache_dir=cache_dir, progress=progress)
    x = np.asarray(next(iter(emb.values())), dtype=np.float64)
    is_test = (index["split"] == "test").to_numpy()
    scores = np.full(len(index), np.nan)
    kind = detector.get("kind", "knn")
    for _key, group in index.groupby(["machine", "section"], sort=True):
        rows = group.index.to_numpy()
        train, test = rows[~is_test[rows]], rows[is_test[rows]]
        if not len(test):
            continue
        domains = index.loc[train, "domain"].astype(str).tolist()
        if kind == "genrep":
            knn = GenRepKNN(k=int(detector.get("k", 1)), n_mix_support=detector.get("n_mix_support", 5),
                            mix_alpha=float(detector.get("mix_alpha", 0.9))).fit(x[train], domains)
            knn.set_train_embeddings(x[train])
            scores[test], scores[train] = knn.normalised_min(knn.distances(x[test]))
        elif kind == "knn":

            knn = KNNScorer(k=int(detector.get("k", 1)), metric=str(detector.get("metric", "cosine")),
                            separate_domains=bool(detector.get("separate_domains", True)))
            scores[test] = knn.fit(x[train], domains).score(x[test])
            scores[train] = knn.training_scores()
        else:
            raise ValueError(f"unknown detector kind {kind!r}; expected 'genrep' or 'knn'")
    test_rows = index[is_test].reset_index(drop=True)
    return KNNResult(test_rows, scores[is_test], index[~is_test].reset_index(drop=True), scores[~is_test],
                     evaluate(test_rows, scores[is_test]) if with_metrics else None)
