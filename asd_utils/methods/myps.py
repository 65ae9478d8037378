"""MYPS (DCASE 2025 Task 2, report 001): EAT fine-tuned with ArcFace (LoRA or full), kNN back end,
checkpoint ensembles, and the mechanism-based analysis (MA) for some machine types.

Longer than 500 lines: report 001 names seven systems (EAT-LoRA, the |FFT| branch, the
mechanism analysis and their fusions) whose glue shares one cache of fine-tuned runs.

Wang, "Pre-trained model enhanced anomalous sound detection system for DCASE2025 Task2", DCASE
2025 Challenge technical report (MYPS). The system as this module writes it down (readings of
what the report leaves open: ``papers/001_myps.md``):

1. **Embedding** (:class:`MYPSModel`): the EAT encoder on a log-mel image cut into 16 x 16
   patches; the clip embedding is the average of all *patch* embeddings of the last layer (the CLS
   token is left out), ``(B, dim)``.
2. **Fine-tuning** (:func:`train_run`): an ArcFace head (:class:`asd_utils.training.losses.ArcFace`) on
   classes machine type x section x attribute string x domain (types with hidden attributes get
   machine x section x domain: "domain classification only"). Supplemental clean-machine clips
   join the training set; supplemental noise-only clips of a machine type are mixed into that
   type's training crops at a random SNR (:class:`NoiseMixCropCollate`). Two variants: EAT-FFT
   (every weight trained) and EAT-LoRA (frozen encoder, LoRA adapters from
   :mod:`asd_utils.backbones.lora`, trained head). Several learning rates per variant, and
   snapshots saved at several steps of each run.
3. **Back end**: kNN, k = 1, cosine distance to the normal training clips of the machine type and
   section (one library; separate source/target libraries as the ``sep-lib`` option,
   :class:`asd_utils.scoring.SeparateLibraryKNN`), through
   :func:`asd_utils.methods.pipeline.score_sections`; training scores are leave-one-out.
4. **Checkpoint ensemble** (:func:`checkpoint_ensemble`): every snapshot's scores are z-normalised
   with the mean and standard deviation of its own *training* scores of that machine type and
   section, then combined by a weighted sum (:func:`asd_utils.methods.pipeline.combine`).
5. **-MA systems** (:func:`replace_machines`): the scores of the configured machine types are
   replaced by those of the mechanism-based analysis (:mod:`asd_utils.signal.mechanism`).

Embeddings are computed on windows that cover the whole clip and averaged
(:func:`asd_utils.training.crops.embed_crops`); the log-mel front end of a batch of windows is
computed once and shared by every snapshot being embedded (:class:`SnapshotBank`).
First-shot rule: no test label and no statistic of the test clips enters any fit, normalisation,
threshold or choice here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from asd_utils.backbones import configured_size_and_layer, load_backbone
from asd_utils.backbones.embeddings import backbone_identity
from asd_utils.backbones.lora import configure_finetuning
from asd_utils.backbones.provenance import is_standin_checkpoint
from asd_utils.evaluation.submission import decision_file_name
from asd_utils.methods.pipeline import SectionScores, combine, score_sections, training_run_dir
from asd_utils.signal.bearing import estimate_geometry
from asd_utils.signal.mechanism import IndicatorExtractor, MechanismScorer
from asd_utils.storage.atomic import atomic_path, atomic_write_json, atomic_write_text
from asd_utils.storage.cache import cache_file, cached_arrays, load_arrays, save_arrays
from asd_utils.storage.keys import array_digest, files_digest
from asd_utils.training import Trainer, seed_everything
from asd_utils.training.clips import clips_fingerprint, embed_clips, make_clip_loader, map_by_length
from asd_utils.training.crops import RandomCropCollate, embed_crops
from asd_utils.training.losses import ArcFace
from asd_utils.training.noise_mix import NoiseMixer

__all__ = [
    "MYPSModel",
    "NoiseMixCropCollate",
    "RunPlan",
    "SnapshotBank",
    "build_backbone",
    "build_model",
    "checkpoint_ensemble",
    "hidden_attribute_machines",
    "load_snapshot",
    "ma_machines",
    "make_training_loader",
    "replace_machines",
    "run_plans",
    "save_snapshot",
    "snapshot_epochs",
    "train_run",
    "training_set",
]


# --------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------
class MYPSModel(nn.Module):
    """EAT encoder + average pooling of the patch embeddings of one layer: ``(B, samples) -> (B, dim)``.

    backbone: an EAT (or any ``Backbone`` with ``preprocess``/``embed``/``blocks``); layer: which
    hidden state is pooled (``-1``: the last block). A CLS token (``backbone.has_cls_token``) is
    dropped before pooling: the report averages "all patch embeddings".
    """

    def __init__(self, backbone: nn.Module, layer: int = -1):
        super().__init__()
        self.backbone = backbone
        self.layer = int(layer)
        self.skip = 1 if getattr(backbone, "has_cls_token", False) else 0
        self.dim = int(backbone.dim)

    def pool(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        """Mean over the patch tokens of ``hidden[layer]`` ``(B, tokens, dim)`` -> ``(B, dim)``."""
        tokens = hidden[self.layer][:, self.skip:]
        if tokens.shape[1] == 0:
            raise ValueError("no patch tokens to pool")
        return tokens.mean(dim=1)

    def forward_image(self, image: torch.Tensor) -> torch.Tensor:
        """From the front end's output (``backbone.preprocess(waves)``) to the pooled embedding."""
        x = self.backbone.embed(image)
        hidden = [x]
        for block in self.backbone.blocks:
            x = block(x)
            hidden.append(x)
        return self.pool(hidden)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.forward_image(self.backbone.preprocess(waves))


def _eat_frames(n_samples: int) -> int:
    """Kaldi fbank frames (25 ms window, 10 ms shift, snip edges) of ``n_samples`` at 16 kHz."""
    return 1 + (int(n_samples) - 400) // 160


def build_backbone(eat_cfg: Mapping, *, checkpoint: str | None, crop_samples: int,
                   device: str | torch.device = "cpu", seed: int = 0):
    """The EAT encoder of the config: ``(backbone, layer)``.

    eat_cfg: the ``eat`` config section (``size``, ``layer``, ``checkpoint_size``,
    ``checkpoint_layer``, ``target_length``: null = the model's own (1024 frames) / ``auto`` = the
    training crop rounded down to a multiple of 16 frames, for stand-ins only: untrained ones and
    pretrained stand-ins (``standins.is_standin_checkpoint``, whose positional table covers up to
    1024 frames; a longer crop raises ``CheckpointError``); a published checkpoint keeps its own).
    """

    size, layer = configured_size_and_layer(dict(eat_cfg), checkpoint)
    kwargs = {}
    target_length = eat_cfg.get("target_length")
    if target_length == "auto":
        if checkpoint is None or is_standin_checkpoint(checkpoint):
            kwargs["target_length"] = max(16, _eat_frames(crop_samples) // 16 * 16)
    elif target_length is not None:
        kwargs["target_length"] = int(target_length)
    backbone = load_backbone(str(eat_cfg.get("backbone", "eat")), checkpoint=checkpoint, size=size, device=device,
                             seed=seed, **kwargs)
    return backbone, layer


def build_model(eat_cfg: Mapping, finetune_cfg: Mapping, *, checkpoint: str | None, crop_samples: int,
                device: str | torch.device = "cpu", seed: int = 0) -> tuple[MYPSModel, dict]:
    """The EAT model of one variant: ``(model, backbone identity)``.

    eat_cfg: see :func:`build_backbone`. finetune_cfg: a
    :func:`asd_utils.backbones.lora.configure_finetuning` dict (``{"mode": "full"}`` or
    ``{"mode": "lora", "rank", "alpha", "dropout", "target_modules"}``). The identity
    (``asd_utils.backbones.embeddings.backbone_identity``, taken before adapters are injected) keys the
    training cache.
    """

    backbone, layer = build_backbone(eat_cfg, checkpoint=checkpoint, crop_samples=crop_samples, device=device,
                                     seed=seed)
    identity = backbone_identity(backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        configure_finetuning(backbone, dict(finetune_cfg))
    return MYPSModel(backbone, layer).to(device), identity


# --------------------------------------------------------------------------------------------------
# training data: clips + clean supplemental, noise mixing per machine type
# --------------------------------------------------------------------------------------------------
CLEAN_CLASS_ATTRIBUTE = "supplementalClean"  # attribute string of clean clips that match no training class
CLEAN_CLASS_RULES = ("match", "own")


def training_set(index: pd.DataFrame, *, use_clean_supplemental: bool = True,
                 clean_class: str = "match") -> pd.DataFrame:
    """The clips the classifier is fine-tuned on: the normal training clips, plus the supplemental
    clean-machine clips when ``use_clean_supplemental`` (the report: "we directly add them to the
    training set as an expanded training set"), after the training clips, in index order.

    clean_class: which class a clean clip joins (classes are machine x section x attributes x
    domain). ``"match"``: the training class with its machine type, section, attribute string
    and domain when one exists (for a type with hidden attributes, its domain class), else one
    class of its type and section whose ``attributes`` read :data:`CLEAN_CLASS_ATTRIBUTE`.
    ``"own"``: every clean clip of a type and section in that one class. Never a class per
    unseen attribute string: such a class would hold a handful of clips and no training clip.
    """
    if clean_class not in CLEAN_CLASS_RULES:
        raise ValueError(f"clean_class must be one of {CLEAN_CLASS_RULES}, got {clean_class!r}")
    train = index[index["split"] == "train"]
    if use_clean_supplemental and "supplemental_kind" in index.columns:
        clean = index[(index["split"] == "supplemental") & (index["supplemental_kind"] == "clean")].copy()
        key = ["machine", "section", "attributes", "domain"]
        known = set(map(tuple, train[key].astype(str).to_numpy()))
        joins = np.array([clean_class == "match" and tuple(k) in known for k in clean[key].astype(str).to_numpy()],
                         dtype=bool)
        clean.loc[~joins, "attributes"] = CLEAN_CLASS_ATTRIBUTE
        train = pd.concat([train, clean])
    return train.reset_index(drop=True)


def noise_clips(index: pd.DataFrame) -> pd.DataFrame:
    """The supplemental noise-only clips (any machine type), in index order."""
    if "supplemental_kind" not in index.columns:
        return index.iloc[:0]
    rows = index[(index["split"] == "supplemental") & (index["supplemental_kind"] == "noise")]
    return rows.reset_index(drop=True)


class NoiseMixCropCollate:
    """``collate_fn``: random crops of whole clips, then the noise of each clip's own machine type.

    crop_samples: window length; generator: the loader's ``torch.Generator`` (shuffling, crop
    offsets and noise draws all come from it, so a resumed :class:`asd_utils.training.Trainer` run
    repeats them); class_group: ``(n_classes,)`` int, the noise pool of each class (``-1``: none);
    mixers: one :class:`asd_utils.training.noise_mix.NoiseMixer` per pool.
    Returns ``(waves (B, crop_samples) float32, labels (B,) int64)``.
    """

    def __init__(self, crop_samples: int, generator: torch.Generator, class_group: np.ndarray, mixers: Sequence):

        self.crop = RandomCropCollate(crop_samples, generator)
        self.generator = generator
        self.class_group = torch.as_tensor(np.asarray(class_group, dtype=np.int64))
        self.mixers = list(mixers)

    def __call__(self, batch):
        return self.mix(*self.crop(batch))

    def mix(self, waves: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise of each window's own machine type mixed into ``waves (B, crop)``."""
        groups = self.class_group[labels]
        for g, mixer in enumerate(self.mixers):
            rows = torch.nonzero(groups == g).flatten()
            if len(rows):
                waves[rows] = mixer(waves[rows], generator=self.generator)
        return waves, labels


def make_training_loader(waves: np.ndarray, labels: np.ndarray, *, crop_samples: int, batch_size: int, seed: int,
                         class_group: np.ndarray | None = None, noise_pools: Sequence[np.ndarray] = (),
                         snr_db_range: Sequence[float] = (5.0, 20.0), p: float = 0.5):
    """A deterministic loader of random ``crop_samples`` windows of whole clips with noise mixing.

    waves: ``(N, T)`` float32; labels: ``(N,)`` int64; class_group: ``(n_classes,)`` pool index per
    class (None / -1: no noise); noise_pools: ``(M_g, T_g)`` noise clips per pool; ``p`` and
    ``snr_db_range``: probability that a crop gets noise and the uniform SNR range (dB).
    """

    if isinstance(waves, list):  # clips at their own lengths: one random window of each drawn clip, then noise

        y = np.asarray(labels, dtype=np.int64)
        group = (np.full(int(y.max()) + 1, -1, dtype=np.int64) if class_group is None
                 else np.asarray(class_group, np.int64))
        mixers = [NoiseMixer(pool, tuple(snr_db_range), p) for pool in noise_pools]
        return make_clip_loader(waves, y, window=crop_samples, batch_size=batch_size, seed=seed,
                                then=lambda g: NoiseMixCropCollate(crop_samples, g, group, mixers).mix)
    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as waveforms (> 0); got {len(x)} waveforms, {len(y)} labels")
    if x.shape[1] < int(crop_samples):
        raise ValueError(f"clips of {x.shape[1]} samples are shorter than the crop of {int(crop_samples)} samples")
    n_classes = int(y.max()) + 1
    group = np.full(n_classes, -1, dtype=np.int64) if class_group is None else np.asarray(class_group, np.int64)
    mixers = [NoiseMixer(pool, tuple(snr_db_range), p) for pool in noise_pools]
    batch_size = max(1, min(int(batch_size), len(x)))
    generator = torch.Generator().manual_seed(int(seed))
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=True,
        drop_last=len(x) % batch_size == 1 and len(x) > 1, num_workers=0, generator=generator,
        collate_fn=NoiseMixCropCollate(crop_samples, generator, group, mixers))


# --------------------------------------------------------------------------------------------------
# runs and snapshots
# --------------------------------------------------------------------------------------------------
def snapshot_epochs(total_steps: int, save_at: Sequence[float], steps_per_epoch: int) -> tuple[int, list[int]]:
    """``(epochs, snapshot epochs)`` for a run of about ``total_steps`` optimizer steps.

    The trainer counts epochs: ``epochs = max(1, round(total_steps / steps_per_epoch))``; a
    snapshot is saved at the end of epoch ``max(1, round(f * epochs))`` for every fraction ``f`` in
    ``save_at`` (0 < f <= 1), duplicates removed, increasing.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    epochs = max(1, int(round(int(total_steps) / steps_per_epoch)))
    bad = [f for f in save_at if not 0.0 < float(f) <= 1.0]
    if bad or not save_at:
        raise ValueError(f"save_at must be fractions in (0, 1], got {list(save_at)}")
    return epochs, sorted({max(1, int(round(float(f) * epochs))) for f in save_at})


@dataclass
class RunPlan:
    """One fine-tuning run: ``variant`` (system name), learning rate, config, snapshot epochs."""

    variant: str
    lr: float
    cfg: dict
    epochs: int
    save_epochs: list[int]
    steps_per_epoch: int

    @property
    def name(self) -> str:
        return f"{self.variant} lr={self.lr:g}"

    def snapshot_name(self, epoch: int) -> str:
        return f"{self.name} step={epoch * self.steps_per_epoch}"


def run_plans(variants: Mapping[str, Mapping], n_train: int) -> list[RunPlan]:
    """Every (variant, learning rate) run of the config's ``variants`` section.

    Each variant: ``learning_rates`` (list), ``steps``, ``save_at`` (fractions of the run),
    ``batch_size``, ``optimizer``, ``scheduler`` (``warmup_fraction`` of the run's steps),
    ``finetune`` and the rest, passed on.
    """
    plans = []
    for variant, vcfg in variants.items():
        vcfg = dict(vcfg)
        steps_per_epoch = math.ceil(n_train / max(1, min(int(vcfg["batch_size"]), n_train)))
        if n_train % min(int(vcfg["batch_size"]), n_train) == 1 and n_train > 1:
            steps_per_epoch -= 1  # the loader drops a final batch of one clip
        epochs, save = snapshot_epochs(int(vcfg["steps"]), vcfg["save_at"], steps_per_epoch)
        for lr in vcfg["learning_rates"]:
            plans.append(RunPlan(variant, float(lr), vcfg, epochs, save, steps_per_epoch))
    return plans


def _snapshot_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / f"snapshot_epoch{int(epoch):05d}.pt"


def save_snapshot(path: Path, model: MYPSModel, head: nn.Module, *, epoch: int, step: int) -> Path:
    """Write the trainable weights of ``model`` (all of them for full fine-tuning, the adapters
    for LoRA) and the head's state atomically to ``path``."""

    trainable = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    state = {"format": "asd_utils.myps.snapshot/1", "model": trainable, "head": head.state_dict(),
             "epoch": int(epoch), "step": int(step)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_snapshot(path: Path, model: MYPSModel, head: nn.Module) -> dict:
    """Load a :func:`save_snapshot` file into a freshly built ``model`` / ``head`` (same variant).

    Every saved tensor must match a parameter; parameters not saved must be the frozen ones.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised naming the file
        raise ValueError(f"cannot load snapshot {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != "asd_utils.myps.snapshot/1":
        raise ValueError(f"{path} is not a MYPS snapshot")
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if unexpected or (set(state["model"]) != trainable):
        raise ValueError(f"snapshot {path} does not fit the model: unexpected {unexpected[:5]}, "
                         f"not saved but trainable {sorted(trainable - set(state['model']))[:5]}")
    head.load_state_dict(state["head"])
    return state


def make_head(n_classes: int, dim: int, arcface_cfg: Mapping) -> nn.Module:
    """The ArcFace head (class centres + angular margin loss)."""

    return ArcFace(int(n_classes), int(dim), scale=float(arcface_cfg["scale"]), margin=float(arcface_cfg["margin"]),
                   easy_margin=bool(arcface_cfg.get("easy_margin", False)))


def make_trainer(plan: RunPlan, model: MYPSModel, head: nn.Module, *, run_dir: Path | None = None,
                 device: str | torch.device = "cpu", seed: int = 0, progress: bool = True,
                 max_grad_norm: float | None = None, mixed_precision: bool = False):
    """The :class:`asd_utils.training.Trainer` of one run: AdamW (``plan.cfg['optimizer']``) at
    ``plan.lr``, linear warm-up over ``warmup_fraction`` of the run's steps, then the schedule of
    ``plan.cfg['scheduler']['name']`` (cosine decay by default); checkpoints in ``run_dir``.
    float32 unless ``mixed_precision`` (opt-in float16 autocast on CUDA; the report names none)."""

    opt = {**dict(plan.cfg.get("optimizer") or {"name": "adamw"}), "lr": plan.lr}
    sched = dict(plan.cfg.get("scheduler") or {"name": "cosine", "warmup_fraction": 0.1})
    total = plan.epochs * plan.steps_per_epoch
    sched["warmup_steps"] = int(round(float(sched.pop("warmup_fraction", 0.0)) * total))
    return Trainer(model, head, opt, sched, plan.epochs, device=device, seed=seed, progress=progress,
                   checkpoint_dir=run_dir, max_grad_norm=max_grad_norm, amp=bool(mixed_precision),
                   config={"system": plan.name, "cfg": {k: v for k, v in plan.cfg.items() if k != "learning_rates"}})


def train_run(plan: RunPlan, model: MYPSModel, head: nn.Module, loader, *, run_dir: Path | None,
              device: str | torch.device = "cpu", seed: int = 0, progress: bool = True,
              max_grad_norm: float | None = None, on_snapshot=None, mixed_precision: bool = False) -> list[dict]:
    """Train one run and take a snapshot at the end of each of ``plan.save_epochs``.

    With ``run_dir`` the trainer checkpoints there and resumes, each snapshot is written there
    (:func:`save_snapshot`; one that exists is not recomputed) and a finished run trains nothing.
    ``on_snapshot(epoch, step)`` is called at every save point reached in this call (e.g. to keep
    an in-memory copy when nothing is cached). Returns the per-epoch history (empty when nothing
    had to be trained).
    """
    trainer = make_trainer(plan, model, head, run_dir=run_dir, device=device, seed=seed, progress=progress,
                           max_grad_norm=max_grad_norm, mixed_precision=mixed_precision)
    history: list[dict] = []
    for epoch in plan.save_epochs:
        path = None if run_dir is None else _snapshot_path(run_dir, epoch)
        if path is not None and path.exists() and epoch != plan.save_epochs[-1]:
            continue
        history = trainer.fit(loader, resume=run_dir is not None, until_epoch=epoch)
        if trainer.state.epoch != epoch:
            raise RuntimeError(f"{plan.name}: the checkpoint in {run_dir} is at epoch {trainer.state.epoch}, past the "
                               f"missing snapshot of epoch {epoch}; delete that folder to retrain")
        if path is not None and not path.exists():
            save_snapshot(path, model, head, epoch=epoch, step=trainer.state.step)
        if on_snapshot is not None:
            on_snapshot(epoch, trainer.state.step)
    model.eval()
    head.eval()
    return list(history)


class SnapshotBank:
    """Several snapshots of one architecture embedded together: ``bank(windows) -> (B, K * dim)``.

    models: ``{name: MYPSModel}`` in eval mode, all with the same front end (one
    ``backbone.preprocess``); the log-mel image of a batch is computed once and fed to every model.
    Column block ``k`` belongs to ``names[k]``. :meth:`split` cuts an ``(N, K * dim)`` array back into
    ``{name: (N, dim)}``.
    """

    def __init__(self, models: Mapping[str, MYPSModel]):
        if not models:
            raise ValueError("SnapshotBank needs at least one model")
        self.names = list(models)
        self.models = [models[n] for n in self.names]
        options = {str(m.backbone.preprocessing_options()) for m in self.models}
        if len(options) != 1:
            raise ValueError(f"snapshots with different front ends cannot share one: {sorted(options)}")
        self.dim = self.models[0].dim

    @torch.inference_mode()
    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        image = self.models[0].backbone.preprocess(windows)
        return torch.cat([m.forward_image(image).float() for m in self.models], dim=1)

    def split(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        return {n: embeddings[:, k * self.dim:(k + 1) * self.dim] for k, n in enumerate(self.names)}


def clone_for_snapshot(model: MYPSModel) -> MYPSModel:
    """A deep copy of ``model`` (same architecture, adapters included) to load a snapshot into."""
    return copy.deepcopy(model)


# --------------------------------------------------------------------------------------------------
# ensembles and the -MA replacement
# --------------------------------------------------------------------------------------------------
@dataclass
class EnsembleResult:
    """A combined system: ``scores`` (:class:`asd_utils.methods.pipeline.SectionScores`) and the member
    ``weights`` ({snapshot name: weight})."""

    scores: object
    weights: dict = field(default_factory=dict)


def checkpoint_ensemble(members: Mapping[str, object], train_index: pd.DataFrame, test_index: pd.DataFrame,
                        weights: Mapping[str, float] | None = None) -> EnsembleResult:
    """Weighted sum of snapshot scores, each z-normalised by its own training scores per section.

    members: ``{snapshot name: SectionScores}`` (test scores aligned with ``test_index``, leave-one-
    out training scores aligned with ``train_index``); weights: per member (default: equal). The
    normalisation uses the member's *training* scores of the same machine type and section only, so
    a test clip's ensemble score depends on that clip alone.
    """

    w = {n: 1.0 for n in members} if weights is None else {n: float(weights.get(n, 0.0)) for n in members}
    if sum(w.values()) <= 0:
        raise ValueError(f"ensemble weights must have a positive sum, got {w}")
    return EnsembleResult(scores=combine(w, dict(members), train_index, test_index), weights=w)


def replace_machines(base, replacement, train_index: pd.DataFrame, test_index: pd.DataFrame,
                     machines: Sequence[str]):
    """Scores of ``base`` with those of ``replacement`` for the clips of ``machines``.

    Both are ``SectionScores`` aligned with the same indices; training scores are replaced too, so
    decision thresholds of the replaced types come from the replacement's own training scores.
    """

    machines = set(machines)
    te = test_index["machine"].isin(machines).to_numpy()
    tr = train_index["machine"].isin(machines).to_numpy()
    return SectionScores(test=np.where(te, replacement.test, base.test),
                         train=np.where(tr, replacement.train, base.train))


def hidden_attribute_machines(index: pd.DataFrame) -> list[str]:
    """Machine types whose training clips all hide their attributes (``noAttribute``), sorted."""
    train = index[index["split"] == "train"]
    hidden = train.groupby("machine")["attributes"].apply(lambda a: bool((a == "noAttribute").all()))
    return sorted(hidden[hidden].index.tolist())


def ma_machines(setting, index: pd.DataFrame) -> list[str]:
    """The machine types whose scores the -MA systems replace.

    setting: a list of names (kept if present in ``index``; absent names are ignored, so a root
    of other machine types runs unchanged) or ``"hidden_attributes"`` (the types whose attributes
    are hidden, found from the training file names). Returns sorted names present in the data.
    """
    present = set(index["machine"].unique())
    if isinstance(setting, str):
        if setting != "hidden_attributes":
            raise ValueError(f"mechanism machines must be a list of names or 'hidden_attributes', got {setting!r}")
        return hidden_attribute_machines(index)
    return sorted(m for m in (setting or []) if m in present)


# --------------------------------------------------------------------------------------------------
# notebook glue: every run trained (or restored), every snapshot embedded once (cached)
# --------------------------------------------------------------------------------------------------
@dataclass
class SnapshotEmbeddings:
    """What one snapshot gives the notebook: ``embeddings`` ({set name: (N, dim) float32}),
    ``centres`` (C, dim) ArcFace class centres, and the ``plan``/``epoch``/``step`` it came from."""

    plan: RunPlan
    epoch: int
    step: int
    embeddings: dict
    centres: np.ndarray

    def accuracy(self, set_name: str, labels: np.ndarray) -> float:
        """Share of the clips of ``set_name`` whose nearest class centre (cosine) is their label."""
        emb = np.asarray(self.embeddings[set_name], dtype=np.float64)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        c = self.centres / np.maximum(np.linalg.norm(self.centres, axis=1, keepdims=True), 1e-12)
        return float(np.mean(np.argmax(emb @ c.T, axis=1) == np.asarray(labels)))


def _set_ingredients(waves: np.ndarray, paths: Sequence[str], crop_samples: int, hop_samples: int) -> dict:
    """Cache-key ingredients of one set of clips to embed: names, waveform content and the windowing."""
    content = clips_fingerprint(waves) if isinstance(waves, list) else array_digest(np.asarray(waves, np.float32))
    return {"names": [Path(str(p)).name for p in paths], "waves": content, "crop": int(crop_samples),
            "hop": int(hop_samples)}


def train_and_embed(plans: Sequence[RunPlan], *, eat_cfg: Mapping, arcface_cfg: Mapping, checkpoint: str | None,
                    fit_waves: np.ndarray, fit_labels: np.ndarray, classes: Sequence[str],
                    class_group: np.ndarray, noise_pools: Sequence[np.ndarray], noise_cfg: Mapping,
                    embed_sets: Mapping[str, tuple[np.ndarray, Sequence[str]]], crop_samples: int,
                    hop_samples: int, cache_root: Path | None, device: str | torch.device = "cpu", seed: int = 0,
                    embed_batch_size: int = 32, max_grad_norm: float | None = None,
                    progress: bool = True) -> tuple[dict[str, SnapshotEmbeddings], dict[str, list[dict]]]:
    """Fine-tune every run of ``plans`` (or restore it from ``cache_root``) and embed every snapshot.

    fit_waves / fit_labels: ``(N, T)`` float32 training clips (normal training + clean
    supplemental) and their class indices; class_group / noise_pools / noise_cfg (``p``,
    ``snr_db_range``): noise mixing per machine type (:func:`make_training_loader`).
    embed_sets: ``{name: (waves (M, T), paths)}`` clips to embed (crop windows of ``crop_samples``
    every ``hop_samples``, averaged). A run's folder is keyed by its config, the seed, the classes,
    the training waveforms and labels, the noise clips and the backbone's identity
    (:func:`asd_utils.methods.pipeline.training_run_dir`); each snapshot's embeddings of each set are
    cached there, keyed by the set's paths and waveforms. A warm rerun builds the encoder once (for its identity)
    and trains and embeds nothing.
    Returns ``({snapshot name: SnapshotEmbeddings}, {run name: history})``.
    """


    noise_hash = hashlib.sha256(b"".join(np.ascontiguousarray(p, dtype=np.float32).tobytes()
                                         for p in noise_pools)).hexdigest()
    set_ingredients = {name: _set_ingredients(waves, paths, crop_samples, hop_samples)
                       for name, (waves, paths) in embed_sets.items()}

    def snapshot_file(run_dir: Path, epoch: int, set_name: str) -> Path:  # one snapshot's embeddings of one set
        return cache_file(run_dir, set_ingredients[set_name], code=__name__, name=f"embeddings_epoch{epoch:05d}")
    results: dict[str, SnapshotEmbeddings] = {}
    histories: dict[str, list[dict]] = {}
    pending: dict[str, tuple[MYPSModel, nn.Module, Path | None, RunPlan, int, int]] = {}
    identity = None
    if cache_root is not None:

        # the encoder's identity (checkpoint hash or stand-in seed + weights) keys every run; built once
        identity = backbone_identity(build_backbone(eat_cfg, checkpoint=checkpoint, crop_samples=crop_samples,
                                                    seed=seed)[0])
    for plan in plans:
        finetune_cfg = dict(plan.cfg["finetune"])
        key_cfg = {"plan": {k: v for k, v in plan.cfg.items() if k != "learning_rates"}, "lr": plan.lr,
                   "eat": dict(eat_cfg), "arcface": dict(arcface_cfg), "noise": dict(noise_cfg),
                   "noise_clips": noise_hash, "class_group": np.asarray(class_group).tolist(),
                   "crop_samples": int(crop_samples), "backbone": identity, "max_grad_norm": max_grad_norm}
        if isinstance(fit_waves, list):  # clips at their own lengths: their fingerprint keys the run

            key_cfg["clips"] = clips_fingerprint(fit_waves)
        run_dir = training_run_dir(cache_root, f"myps_{plan.variant}", cfg=key_cfg, seed=seed, classes=classes,
                                   waves=np.zeros(0, np.float32) if isinstance(fit_waves, list) else fit_waves,
                                   labels=fit_labels, code=__name__)
        cached = {}
        if run_dir is not None:
            for epoch in plan.save_epochs:
                loaded = {s: load_arrays(snapshot_file(run_dir, epoch, s)) for s in embed_sets}
                if all(data is not None for data in loaded.values()):
                    any_set = next(iter(loaded.values()))
                    cached[epoch] = SnapshotEmbeddings(plan, epoch, int(any_set["step"]),
                                                       {s: data["embeddings"] for s, data in loaded.items()},
                                                       any_set["centres"])
            hist_file = run_dir / "history.json"
            if hist_file.exists():
                histories[plan.name] = json.loads(hist_file.read_text())
        if len(cached) == len(plan.save_epochs):
            for epoch, snap in cached.items():
                results[plan.snapshot_name(epoch)] = snap
            continue
        seed_everything(seed)
        model, _ = build_model(eat_cfg, finetune_cfg, checkpoint=checkpoint, crop_samples=crop_samples,
                               device=device, seed=seed)
        torch.manual_seed(seed)
        head = make_head(len(classes), model.dim, arcface_cfg)
        loader = make_training_loader(fit_waves, fit_labels, crop_samples=crop_samples,
                                      batch_size=int(plan.cfg["batch_size"]), seed=seed, class_group=class_group,
                                      noise_pools=noise_pools, snr_db_range=noise_cfg["snr_db_range"],
                                      p=float(noise_cfg["p"]))
        if run_dir is None:  # no cache: keep an in-memory copy at every save point

            def keep(epoch, step, plan=plan, model=model, head=head):
                pending[plan.snapshot_name(epoch)] = (copy.deepcopy(model).eval(), copy.deepcopy(head).eval(), None,
                                                      plan, epoch, step)

            histories[plan.name] = train_run(plan, model, head, loader, run_dir=None, device=device, seed=seed,
                                             progress=progress, max_grad_norm=max_grad_norm, on_snapshot=keep,
                                             mixed_precision=bool(eat_cfg.get("mixed_precision", False)))
            continue
        history = train_run(plan, model, head, loader, run_dir=run_dir, device=device, seed=seed, progress=progress,
                            max_grad_norm=max_grad_norm,
                            mixed_precision=bool(eat_cfg.get("mixed_precision", False)))
        if history:
            histories[plan.name] = history
            atomic_write_json(run_dir / "history.json", history)
        for epoch in plan.save_epochs:
            if epoch in cached:
                results[plan.snapshot_name(epoch)] = cached[epoch]
                continue
            snap_model, snap_head = clone_for_snapshot(model), copy.deepcopy(head)
            state = load_snapshot(_snapshot_path(run_dir, epoch), snap_model, snap_head)
            pending[plan.snapshot_name(epoch)] = (snap_model.eval(), snap_head.eval(), run_dir, plan, epoch,
                                                  int(state["step"]))
        del model, head
    if pending:
        bank = SnapshotBank({name: item[0].to(device) for name, item in pending.items()})
        embedded: dict[str, dict[str, np.ndarray]] = {name: {} for name in pending}
        for set_name, (waves, _) in embed_sets.items():
            embed_fn = embed_clips if isinstance(waves, list) else embed_crops  # a list: clips at their own lengths
            emb = embed_fn(bank, waves, **({"window": crop_samples, "hop": hop_samples} if isinstance(waves, list)
                                           else {"crop_samples": crop_samples, "hop_samples": hop_samples}),
                           batch_size=embed_batch_size, device=device, progress=progress,
                           desc=f"embedding {set_name} ({len(pending)} snapshots)")
            for name, part in bank.split(emb).items():
                embedded[name][set_name] = part
        for name, (_, head, run_dir, plan, epoch, step) in pending.items():
            centres = head.centres.detach().float().cpu().numpy()
            results[name] = SnapshotEmbeddings(plan, epoch, step, embedded[name], centres)
            if run_dir is not None:
                for set_name in embed_sets:
                    save_arrays(snapshot_file(run_dir, epoch, set_name),
                                {"embeddings": embedded[name][set_name], "centres": centres, "step": np.int64(step)})
    order = [p.snapshot_name(e) for p in plans for e in p.save_epochs]
    return {name: results[name] for name in order}, histories


def snapshot_scores(snapshots: Mapping[str, SnapshotEmbeddings], scorer, train_index: pd.DataFrame,
                    test_index: pd.DataFrame, *, train_set: str = "train", test_set: str = "test",
                    progress: bool = False) -> dict[str, object]:
    """kNN scores of every snapshot per machine type / section: ``{name: SectionScores}``.

    scorer: e.g. ``KNNScorer(k=1, metric="cosine", separate_domains=False)``; fitted on the
    snapshot's embeddings of ``train_set`` (aligned with ``train_index``) and scoring ``test_set``.
    Training scores are leave-one-out (``asd_utils.scoring.fit_scores_from_training``).
    """

    return {name: score_sections(scorer, train_index, snap.embeddings[train_set], test_index,
                                 snap.embeddings[test_set], l2_normalise=False, progress=progress, desc=name)
            for name, snap in snapshots.items()}


# --------------------------------------------------------------------------------------------------
# mechanism-based analysis per machine type
# --------------------------------------------------------------------------------------------------
def mechanism_indicators(waves: np.ndarray, machines: np.ndarray, extractor_cfg: Mapping, *, sample_rate: int,
                         geometries: Mapping[str, Mapping] | None = None, cache_dir: str | Path | None = None,
                         cache_ingredients: Mapping | None = None, cache_name: str = "indicators",
                         progress: bool = False) -> dict[str, pd.DataFrame]:
    """Indicator tables per machine type: ``{machine: DataFrame (clips of that type, indicators)}``.

    waves: ``(N, T)`` or a list of clips at their own lengths (each clip's indicators come from
    that whole clip); machines: ``(N,)`` machine type of each row (the rows of a type keep their
    order). A type listed in ``geometries`` ({machine: BearingGeometry fields}) also gets the
    bearing defect lines. Cached in ``cache_dir`` when given (``asd_utils.storage.cache.cached_arrays``
    under ``cache_ingredients``, which must say what the clips, extractor and geometries are).
    """

    machines = np.asarray(machines).astype(str)

    def compute() -> dict[str, np.ndarray]:
        arrays = {}
        for m in sorted(set(machines)):
            geometry = (geometries or {}).get(m)
            extractor = IndicatorExtractor(sample_rate=sample_rate,
                                           geometry=None if geometry is None else dict(geometry), **dict(extractor_cfg))
            rows = np.flatnonzero(machines == m)
            if isinstance(waves, list):  # clips at their own lengths: each group of equal length at once
                frame = map_by_length(lambda group, ex=extractor: ex.transform(group, progress=progress),
                                      [waves[i] for i in rows])
            else:
                frame = extractor.transform(np.asarray(waves)[rows], progress=progress)
            arrays[f"{m}__values"] = frame.to_numpy(dtype=np.float64)
            arrays[f"{m}__columns"] = np.array(frame.columns, dtype=str)
        return arrays

    if cache_dir is not None and cache_ingredients is None:
        raise ValueError("mechanism_indicators: a cache_dir needs cache_ingredients (what the indicators depend on)")
    data = cached_arrays(cache_dir, cache_ingredients, compute, code=__name__, name=cache_name)
    return {m: pd.DataFrame(data[f"{m}__values"], columns=[str(c) for c in data[f"{m}__columns"]])
            for m in sorted(set(machines))}


def estimated_geometries(indicators_train: Mapping[str, pd.DataFrame], known: Mapping[str, Mapping]
                         ) -> dict[str, dict]:
    """``{machine: {"n_elements", "d_over_D"}}`` for every machine type without a known bearing
    geometry (``known``): the stated estimate of ``asd_utils.signal.bearing.estimate_geometry``
    (the dominant envelope line of the type's normal training clips taken as BPFO, ``d / D = 0.2``;
    a typical 9-element bearing when no line qualifies), with its source under ``"estimate"``."""

    out = {}
    for m, frame in sorted(indicators_train.items()):
        if m in known:
            continue
        g, source = estimate_geometry(frame["envelope_peak_hz"].to_numpy(), frame["rotation_hz"].to_numpy())
        out[m] = {"n_elements": int(g.n_elements), "d_over_D": float(g.element_diameter / g.pitch_diameter),
                  "estimate": source}
    return out


def mechanism_indicator_sets(waves_train, waves_test, train_index: pd.DataFrame, test_index: pd.DataFrame,
                             ma_cfg: Mapping, *, sample_rate: int, cache_dir: Path | None = None,
                             progress: bool = False):
    """Indicators of the training and test clips for the MA, with bearing lines for every type.

    A type with a geometry in ``ma_cfg['geometries']`` uses it; with ``ma_cfg['geometry_estimate']
    == "envelope"`` every other type gets the estimate of :func:`estimated_geometries`, made from
    its *training* clips only (test clips never shape it); None leaves those types without bearing
    lines. Returns ``(indicators_train, indicators_test, geometries, estimated)`` (dicts per type;
    ``estimated``: the names whose geometry is an estimate). Cached per set in ``cache_dir``.
    """

    known = dict(ma_cfg.get("geometries") or {})

    def extract(part, waves, rows, geometries):
        ingredients = {"extractor": ma_cfg["extractor"], "geometries": geometries, "sr": int(sample_rate),
                       "clips": files_digest(rows["path"])}
        return mechanism_indicators(waves, rows["machine"].to_numpy(), ma_cfg["extractor"], sample_rate=sample_rate,
                                    geometries=geometries, cache_dir=cache_dir, cache_ingredients=ingredients,
                                    cache_name=part, progress=progress)

    ind_train = extract("train", waves_train, train_index, known)
    estimated = {}
    if ma_cfg.get("geometry_estimate") == "envelope":
        estimated = estimated_geometries(ind_train, known)
    elif ma_cfg.get("geometry_estimate") is not None:
        raise ValueError(f"mechanism.geometry_estimate must be 'envelope' or null, got {ma_cfg['geometry_estimate']!r}")
    geometries = {**estimated, **known}
    if estimated:
        ind_train = extract("train", waves_train, train_index, geometries)
    ind_test = extract("test", waves_test, test_index, geometries)
    return ind_train, ind_test, geometries, sorted(estimated)


def mechanism_scores(indicators_train: Mapping[str, pd.DataFrame], indicators_test: Mapping[str, pd.DataFrame],
                     train_index: pd.DataFrame, test_index: pd.DataFrame, scorer_cfg: Mapping, *,
                     n_splits: int = 5, seed: int = 0):
    """MA scores of every clip: one :class:`asd_utils.signal.mechanism.MechanismScorer` per machine
    type and section, fitted on that section's normal training clips (cross-fitted training scores).

    indicators_*: per machine type, rows in the order of that type's rows in ``train_index`` /
    ``test_index``. Returns ``(SectionScores, {machine: fitted scorer on all its training clips},
    decisions (M,) int 0/1 of the test clips)``.
    """

    test = np.full(len(test_index), np.nan)
    train = np.full(len(train_index), np.nan)
    decisions = np.zeros(len(test_index), dtype=np.int64)
    fitted = {}
    for m in sorted(indicators_train):
        tr = (train_index["machine"] == m).to_numpy()
        te = (test_index["machine"] == m).to_numpy()
        tr_x, te_x = indicators_train[m], indicators_test.get(m)
        scorer = MechanismScorer(indicators=list(tr_x.columns), **dict(scorer_cfg))
        te_rows = test_index[te].reset_index(drop=True)
        te_arr = te_x.to_numpy() if te_x is not None and len(te_x) else np.zeros((0, tr_x.shape[1]))
        part = score_sections(scorer, train_index[tr].reset_index(drop=True), tr_x.to_numpy(), te_rows, te_arr,
                              n_splits=n_splits, seed=seed, l2_normalise=False)
        train[tr] = part.train
        test[te] = part.test
        fitted[m] = MechanismScorer(indicators=list(tr_x.columns), **dict(scorer_cfg)).fit(
            tr_x, train_index.loc[tr, "domain"].to_numpy())
        if te.any():
            sections = te_rows["section"].astype(str).to_numpy()
            for s in sorted(set(sections)):
                rows_tr = (train_index[tr]["section"].astype(str) == s).to_numpy()
                model = MechanismScorer(indicators=list(tr_x.columns), **dict(scorer_cfg)).fit(
                    tr_x[rows_tr], train_index[tr]["domain"].to_numpy()[rows_tr])
                idx = np.flatnonzero(te)[sections == s]
                decisions[idx] = model.decide(te_x[sections == s])
    return SectionScores(test=test, train=train), fitted, decisions


def write_decisions(out_dir, test_index: pd.DataFrame, decisions: np.ndarray) -> list[Path]:
    """(Re)write the ``decision_result_<machine>_section_<ss>_test.csv`` files with given 0/1
    decisions (aligned with ``test_index``), e.g. the mechanism analysis' exceedance decisions."""


    decisions = np.asarray(decisions).astype(np.int64).ravel()
    if len(decisions) != len(test_index):
        raise ValueError(f"{len(decisions)} decisions for {len(test_index)} test clips")
    written = []
    keys = test_index["machine"].astype(str) + "\t" + test_index["section"].astype(str)
    for key in sorted(set(keys)):
        machine, section = key.split("\t")
        rows = (keys == key).to_numpy()
        names = [os.path.basename(str(n)) for n in test_index["file_name"][rows]]
        text = "".join(f"{n},{int(d)}\n" for n, d in zip(names, decisions[rows]))
        written.append(atomic_write_text(Path(out_dir) / decision_file_name(machine, section), text))
    return written
