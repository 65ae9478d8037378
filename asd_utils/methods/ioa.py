"""IOA-CAS (DCASE 2024 Task 2, report 004): three subnetworks, pretrained models and ensembles 1-4.

Wu, Wen, Yan and Cheng, "Anomalous sound detection with three-subnetworks and pre-trained models",
DCASE 2024 Challenge technical report. The system, as this module writes it down (derivation and
deviations in ``papers/004_ioa_cas.md``):

1. **Auxiliary classes** (:func:`class_labels`): every training clip is labelled with the
   combination of machine type, section, attribute string and domain
   (``asd_utils.training.build_class_labels``). Machines with hidden attributes get one class
   per machine/section/domain.
2. **Three-subnetwork embedding** (:func:`train_three_subnet`): one
   :class:`asd_utils.models.ThreeSubNetwork` (raw waveform, amplitude spectrum, STFT-ResNet
   branches; 128 + 128 + 256 = 512-d) trained on *all* machine types together with sub-cluster
   AdaCos and mixup (``asd_utils.training.Trainer``), Adam, learning rate 1e-3, batch 64 in the
   report.
3. **Scoring per machine type and section** (:func:`score_sections`): a scorer fitted on the
   training embeddings of that machine/section -- a Gaussian mixture (negative log-likelihood) or
   K-Means (cosine distance to the nearest centre). The K-Means scorer follows the DCASE
   convention of :class:`asd_utils.scoring.KMeansScorer`: ``n_clusters`` centres on the source
   clips plus every target clip as its own centre (the report only says "K-Means"). Training
   scores come from K-fold cross-fitting (:func:`asd_utils.scoring.fit_scores_from_training`),
   never from a clip scored by a model that saw it; they set the normalisation of the ensembles
   and the decision thresholds.
4. **Ensembles** (:func:`ensemble_weights`, :func:`combine`): the mean of z-normalised scores
   (mean and standard deviation of each member's cross-fitted *training* scores of the same
   machine/section) with fixed proportions from the config. Ensemble-1 = the three-subnetwork
   GMM and K-Means scorers; Ensemble-2 = Ensemble-1 + the five fine-tuned pretrained models;
   Ensemble-3 = Ensemble-1 + HuBERT; Ensemble-4 = Ensemble-1 + the pretrained models that pass
   an accuracy filter computed on held-out *training* clips (:func:`accuracy_filter`).

The pretrained models themselves are fine-tuned in :mod:`asd_utils.methods.finetune`.
First-shot rule: no test label and no test-set statistic enters any fit, normalisation, threshold
or choice here; test labels are used only by ``asd_utils.evaluation.metrics.evaluate`` afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from asd_utils.methods import pipeline as _pipeline

# the shared steps live in asd_utils.methods.pipeline; re-exported here for the report's own namespace
from asd_utils.methods.pipeline import (  # noqa: F401
    SCORERS,
    SectionScores,
    classification_accuracy,
    combine,
    embed,
    embed_clips,
    load_waves,
    make_loader,
    make_scorer,
    score_sections,
    split_index,
    training_run_dir,
)
from asd_utils.models import ThreeSubNetwork
from asd_utils.training import Trainer, crops, seed_everything

__all__ = [
    "CLASS_KEYS",
    "SCORERS",
    "SectionScores",
    "ThreeSubnetResult",
    "accuracy_filter",
    "class_labels",
    "classification_accuracy",
    "combine",
    "embed",
    "embed_clips",
    "ensemble_weights",
    "load_waves",
    "make_loader",
    "make_scorer",
    "score_sections",
    "split_index",
    "train_three_subnet",
    "training_run_dir",
]

CLASS_KEYS = ("machine", "section", "attributes", "domain")


def class_labels(train_index: pd.DataFrame, keys: Sequence[str] = CLASS_KEYS) -> tuple[np.ndarray, list[str]]:
    """The report's auxiliary classes (machine type, section, attributes, domain by default):
    ``(labels (N,) int64, class names)`` (:func:`asd_utils.methods.pipeline.class_labels`)."""
    return _pipeline.class_labels(train_index, keys)


# --------------------------------------------------------------------------------------------------
# three-subnetwork training
# --------------------------------------------------------------------------------------------------
@dataclass
class ThreeSubnetResult:
    """A trained three-subnetwork model: ``model`` (eval mode), its ``loss`` (class centres),
    ``classes`` (names), the trainer ``history`` (one dict per epoch) and the config used."""

    model: torch.nn.Module
    loss: torch.nn.Module
    classes: list[str]
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def build_three_subnet_training(waves: np.ndarray, labels: np.ndarray, n_classes: int, cfg: Mapping, *,
                                seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
                                checkpoint_dir=None):
    """``(model, loss, trainer, loader)`` of a three-subnetwork run, before any step is taken.

    Arguments as :func:`train_three_subnet`. ``trainer.fit(loader)`` trains all ``cfg['epochs']``;
    ``trainer.fit(loader, until_epoch=e)`` stops after ``e`` (probes/ probe the embedding
    during training this way).
    """

    sample_rate = int(cfg.get("sample_rate", 16000))
    seed_everything(seed)
    model = ThreeSubNetwork(n_classes, sample_rate, float(cfg["clip_seconds"]), width=float(cfg["width"]),
                            n_fft=int(cfg.get("n_fft", 1024)), hop_length=int(cfg.get("hop_length", 512)),
                            stft_remove_temporal_mean=bool(cfg.get("stft_remove_temporal_mean", False)))
    if waves.shape[1] < model.n_samples:
        raise ValueError(f"waves have {waves.shape[1]} samples; the model expects {model.n_samples} "
                         f"({cfg['clip_seconds']} s at {sample_rate} Hz) or more (whole clips, cropped)")
    loss = model.default_loss(n_subclusters=int(cfg.get("n_subclusters", 16)))
    trainer = Trainer(model, loss, dict(cfg.get("optimizer") or {"name": "adam", "lr": 1e-3}),
                      dict(cfg.get("scheduler") or {"name": "constant"}), int(cfg["epochs"]), device=device,
                      mixup_alpha=cfg.get("mixup_alpha"), mixup_prob=float(cfg.get("mixup_prob", 1.0)),
                      ema_decay=cfg.get("ema_decay"), max_grad_norm=cfg.get("max_grad_norm"), seed=seed,
                      progress=progress, checkpoint_dir=checkpoint_dir, config={"system": "three_subnet"})
    if waves.shape[1] > model.n_samples:  # whole clips: a fresh random window per clip and epoch

        loader = crops.make_crop_loader(waves, labels, crop_samples=model.n_samples, batch_size=int(cfg["batch_size"]),
                                  seed=seed)
    else:
        loader = make_loader(waves, labels, batch_size=int(cfg["batch_size"]), seed=seed)
    return model, loss, trainer, loader


def train_three_subnet(waves: np.ndarray, labels: np.ndarray, n_classes: int, cfg: Mapping, *, seed: int = 0,
                       device: str | torch.device = "cpu", classes: Sequence[str] | None = None,
                       progress: bool = True, checkpoint_dir=None) -> ThreeSubnetResult:
    """Train a :class:`~asd_utils.models.ThreeSubNetwork` with sub-cluster AdaCos (+ mixup).

    waves: (N, samples) float32 at ``cfg['sample_rate']`` (default 16 kHz) with
    ``samples >= round(sample_rate * cfg['clip_seconds'])`` (the model's input length): longer
    (whole) clips are trained on through random windows of that length, a new one per clip and
    epoch (``asd_utils.training.crops.make_crop_loader``); labels: (N,) int64 in [0, n_classes).
    cfg keys (``asd_utils/configs/06_ioa.yaml``, section ``three_subnet``): ``clip_seconds``,
    ``width``, ``n_fft``, ``hop_length``, ``stft_remove_temporal_mean`` (default False),
    ``n_subclusters``, ``optimizer`` ({name, lr, ...}),
    ``scheduler`` (optional), ``batch_size``, ``epochs``, ``mixup_alpha`` (None: off),
    ``mixup_prob``, ``ema_decay`` (optional), ``max_grad_norm`` (optional).
    The model is initialised from ``seed``; the batches and mixup draws from ``seed`` too.
    """
    model, loss, trainer, loader = build_three_subnet_training(
        waves, labels, n_classes, cfg, seed=seed, device=device, progress=progress, checkpoint_dir=checkpoint_dir)
    history = trainer.fit(loader, resume=checkpoint_dir is not None)
    if trainer.ema is not None:
        trainer.ema.copy_to(model)
    model.eval()
    loss.eval()
    return ThreeSubnetResult(model=model, loss=loss, classes=list(classes) if classes is not None else [],
                             history=list(history), config=dict(cfg))


# --------------------------------------------------------------------------------------------------
# ensembles
# --------------------------------------------------------------------------------------------------
def accuracy_filter(accuracies: Mapping[str, float], *, min_relative: float = 0.9,
                    min_absolute: float = 0.0) -> list[str]:
    """Names of the models whose accuracy passes: ``acc >= min_absolute`` and
    ``acc >= min_relative * max(acc)``. At least the most accurate model is always kept.

    accuracies: {model name: classification accuracy in [0, 1]} measured on held-out *training*
    clips (never on test clips). Order of the result follows ``accuracies``.
    """
    if not accuracies:
        return []
    values = {k: float(v) for k, v in accuracies.items() if np.isfinite(v)}
    if not values:
        return []
    best = max(values.values())
    kept = [k for k, v in values.items() if v >= min_absolute and v >= min_relative * best - 1e-12]
    if not kept:
        kept = [max(values, key=values.get)]
    return [k for k in accuracies if k in kept]


def ensemble_weights(definition: Mapping, *, three_subnet_split: Mapping[str, float],
                     pretrained: Sequence[str], kept: Sequence[str] | None = None) -> dict[str, float]:
    """Member weights of one ensemble, summing to 1.

    definition: ``{"three_subnet": share, "pretrained": "all" | "filtered" | [names] | []}`` where
    ``share`` in [0, 1] is the proportion of the three-subnetwork scorers (split among them by
    ``three_subnet_split``, {system: proportion}) and ``1 - share`` goes in equal parts to the
    selected pretrained systems. pretrained: all pretrained system names (in order); kept: the
    names that passed :func:`accuracy_filter` (for ``"filtered"``).
    """
    share = float(definition.get("three_subnet", 1.0))
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"three_subnet share must be in [0, 1], got {share}")
    choice = definition.get("pretrained", [])
    if choice == "all":
        chosen = list(pretrained)
    elif choice == "filtered":
        if kept is None:
            raise ValueError("a 'filtered' ensemble needs the models kept by accuracy_filter")
        chosen = [p for p in pretrained if p in set(kept)]
    elif isinstance(choice, str):
        raise ValueError(f"pretrained must be 'all', 'filtered' or a list of names, got {choice!r}")
    else:
        chosen = list(choice or [])
        unknown = [c for c in chosen if c not in set(pretrained)]
        if unknown:
            raise ValueError(f"unknown pretrained systems {unknown}; known: {list(pretrained)}")
    split_total = float(sum(three_subnet_split.values()))
    if split_total <= 0:
        raise ValueError("three_subnet_split needs a positive total")
    if not chosen:
        share = 1.0
    weights = {name: share * float(w) / split_total for name, w in three_subnet_split.items()}
    for name in chosen:
        weights[name] = (1.0 - share) / len(chosen)
    return {k: v for k, v in weights.items() if v > 0}


