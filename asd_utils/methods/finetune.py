"""Fine-tuning a pretrained audio backbone on the auxiliary classification task (IOA-CAS, report 004).

The report fine-tunes five self-supervised models (HuBERT, BEATs, wav2vec 2.0, WavLM,
UniSpeech-SAT) "with datasets from the DCASE 2024 challenge Task 2" and scores their embeddings
like those of the three-subnetwork model; it says nothing more. This module writes that down as:

- embedding = mean over tokens (``asd_utils.backbones.pooling.mean_pool``) of one hidden layer of
  the backbone (the last by default), ``(B, dim)``;
- a classification head on that embedding over the same classes as the three-subnetwork model
  (machine type, section, attributes, domain): ``"subcluster_adacos"`` (the three-subnetwork
  loss, :class:`asd_utils.training.losses.SubClusterAdaCos`) or ``"linear"`` (:class:`LinearHead`, a linear
  layer with softmax cross-entropy);
- all backbone weights and the head trained together with ``asd_utils.training.Trainer``
  (optionally mixup), on the training clips minus a stratified held-out part
  (:func:`holdout_split`) whose classification accuracy is the training-data-only signal of the
  Ensemble-4 accuracy filter.

The embedding used for anomaly scoring is the pooled backbone output after fine-tuning (the head
only shapes it). Without a checkpoint the backbone is a small randomly initialised stand-in
(``asd_utils.backbones.load_backbone``): it still trains, but its numbers say nothing about the
real pretrained model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asd_utils.backbones import PUBLISHED_AT, CheckpointError
from asd_utils.backbones.pooling import mean_pool
from asd_utils.methods.pipeline import classification_accuracy, embed, make_loader
from asd_utils.training import Trainer, seed_everything
from asd_utils.training.losses import SubClusterAdaCos, soft_targets

__all__ = [
    "DISPLAY_NAMES",
    "FineTuneModel",
    "FineTuneResult",
    "LinearHead",
    "build_head",
    "finetune",
    "holdout_split",
    "require_checkpoints",
]

# backbone name -> system name used in tables (the report's spelling, "BERTs" corrected)
DISPLAY_NAMES = {"hubert": "HuBERT", "beats": "BEATs", "wav2vec2": "wav2vec 2.0", "wavlm": "WavLM",
                 "unispeech_sat": "UniSpeech-SAT"}


class LinearHead(nn.Module):
    """Linear classification head with softmax cross-entropy, in the loss interface of
    ``asd_utils.training.losses``: ``head(embeddings (B, D), labels) -> scalar`` with labels ``(B,)`` int64
    or ``(B, C)`` soft targets (mixup); ``head.logits(embeddings) -> (B, C)``."""

    def __init__(self, n_classes: int, dim: int):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classification head needs at least 2 classes, got {n_classes}")
        self.n_classes = int(n_classes)
        self.linear = nn.Linear(int(dim), self.n_classes)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.linear(embeddings.float())

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:

        targets = soft_targets(labels, self.n_classes).to(embeddings.device)
        return -(targets * F.log_softmax(self.logits(embeddings), dim=1)).sum(dim=1).mean()


def build_head(kind: str, n_classes: int, dim: int, *, n_subclusters: int = 16) -> nn.Module:
    """``"subcluster_adacos"`` -> :class:`asd_utils.training.losses.SubClusterAdaCos`; ``"linear"`` ->
    :class:`LinearHead`."""
    if kind == "linear":
        return LinearHead(n_classes, dim)
    if kind == "subcluster_adacos":

        return SubClusterAdaCos(n_classes, int(n_subclusters), int(dim))
    raise ValueError(f"unknown head {kind!r}; expected 'linear' or 'subcluster_adacos'")


class FineTuneModel(nn.Module):
    """``waves (B, T) float32 16 kHz -> (B, dim)``: mean-pooled hidden layer ``layer`` of a
    backbone (``-1`` = last, ``0`` = the input projection)."""

    def __init__(self, backbone: nn.Module, layer: int = -1):
        super().__init__()
        self.backbone = backbone
        self.layer = int(layer)
        self.dim = int(backbone.dim)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:

        return mean_pool(self.backbone.hidden_states(waves)[self.layer])


def holdout_split(labels: np.ndarray, fraction: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of training clips into ``(fit_idx, heldout_idx)`` (sorted positions).

    From every class with ``n`` clips, ``floor(n * fraction)`` clips are held out (chosen with a
    generator seeded by ``seed``): a class too small to spare a clip is kept whole for training,
    so every class is still learned. ``fraction = 0`` holds out nothing.
    """
    labels = np.asarray(labels)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_out = int(np.floor(len(idx) * fraction + 1e-9))
        if n_out > 0 and n_out < len(idx):
            held.append(rng.permutation(idx)[:n_out])
    heldout = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    fit = np.setdiff1d(np.arange(len(labels)), heldout)
    return fit.astype(np.int64), heldout.astype(np.int64)


@dataclass
class FineTuneResult:
    """A fine-tuned backbone: ``model`` (:class:`FineTuneModel`, eval mode), ``head`` (the loss
    with its class centres / linear layer), trainer ``history``, ``heldout_accuracy`` (NaN when
    nothing was held out) and ``n_heldout``."""

    model: FineTuneModel
    head: nn.Module
    history: list[dict] = field(default_factory=list)
    heldout_accuracy: float = float("nan")
    n_heldout: int = 0


def finetune(backbone: nn.Module, waves: np.ndarray, labels: np.ndarray, n_classes: int, cfg: Mapping, *,
             seed: int = 0, device: str | torch.device = "cpu", heldout_waves: np.ndarray | None = None,
             heldout_labels: np.ndarray | None = None, progress: bool = True,
             checkpoint_dir=None) -> FineTuneResult:
    """Fine-tune ``backbone`` + head on ``(waves (N, T) float32 16 kHz, labels (N,) int64)``.

    cfg keys (``asd_utils/configs/06_ioa.yaml``, section ``pretrained``): ``layer`` (-1),
    ``head`` (``subcluster_adacos``/``linear``), ``n_subclusters``, ``optimizer`` ({name, lr, ...}),
    ``scheduler`` (optional), ``batch_size``, ``epochs``, ``mixup_alpha`` (None: off),
    ``mixup_prob``, ``max_grad_norm`` (optional). ``heldout_*``: training clips kept out of the
    fit; their accuracy is returned. Deterministic for a given ``seed`` (head initialisation,
    batch order, mixup draws). ``checkpoint_dir`` (e.g. ``pipeline.training_run_dir(...)``): save
    checkpoints there and resume from them; a finished run is restored without training.
    """

    seed_everything(seed)
    model = FineTuneModel(backbone, int(cfg.get("layer", -1)))
    head = build_head(str(cfg.get("head", "subcluster_adacos")), n_classes, model.dim,
                      n_subclusters=int(cfg.get("n_subclusters", 16)))
    trainer = Trainer(model, head, dict(cfg.get("optimizer") or {"name": "adam", "lr": 1e-4}),
                      dict(cfg.get("scheduler") or {"name": "constant"}), int(cfg["epochs"]), device=device,
                      mixup_alpha=cfg.get("mixup_alpha"), mixup_prob=float(cfg.get("mixup_prob", 1.0)),
                      max_grad_norm=cfg.get("max_grad_norm"), seed=seed, progress=progress,
                      checkpoint_dir=checkpoint_dir, amp=bool(cfg.get("mixed_precision", False)),
                      config={"system": f"finetune_{getattr(backbone, 'name', 'backbone')}"})
    history = trainer.fit(make_loader(waves, labels, batch_size=int(cfg["batch_size"]), seed=seed),
                          resume=checkpoint_dir is not None)
    model.eval()
    head.eval()
    accuracy, n_heldout = float("nan"), 0
    if heldout_waves is not None and len(heldout_waves):
        emb = embed(model, heldout_waves, batch_size=int(cfg.get("embed_batch_size", cfg["batch_size"])),
                    device=trainer.device)
        accuracy = classification_accuracy(emb, heldout_labels, head)
        n_heldout = len(heldout_waves)
    return FineTuneResult(model=model, head=head, history=list(history), heldout_accuracy=accuracy,
                          n_heldout=n_heldout)


def require_checkpoints(checkpoints: Mapping[str, object], names: Sequence[str]) -> None:
    """Raise ``asd_utils.backbones.CheckpointError`` naming every backbone of ``names`` whose
    checkpoint is missing (None/empty) in ``checkpoints`` ({name: path}); the paper profile needs
    the real weights."""

    missing = [n for n in names if checkpoints.get(n) in (None, "")]
    if missing:
        lines = [f"  {n}: set {n.upper()}_CHECKPOINT (published at {PUBLISHED_AT.get(n, 'see README')})"
                 for n in missing]
        raise CheckpointError("the paper profile fine-tunes the real pretrained models; missing checkpoints:\n"
                              + "\n".join(lines))
