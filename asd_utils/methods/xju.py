"""XJU (DCASE 2025 Task 2, report 003): BEATs / EAT / |FFT| branch fusion, sub-center ArcFace with
OS-SCL training, k-NN with a SMOTE-oversampled target library.

S. Huang and L. He, "XJU system for first-shot unsupervised anomalous sound detection", DCASE 2025
Challenge technical report. The report's own words are few (Table 1 and Sec. 3.2); the readings
below and in ``papers/003_xju.md`` fill the gaps from the first author's public OS-SCL code
(``huangswt/OS-SCL``) and ASDKit's k-NN back end.

1. **Systems** (:data:`SYSTEM_BRANCHES`, :func:`build_system`): one
   :class:`asd_utils.models.fusion.FusionModel` per system, whose branches each give 128-d:
   BEATs and EAT (``asd_utils.backbones.load_backbone``; hidden layer pooled over tokens, linear
   projection) and the |FFT| branch (:class:`asd_utils.models.FFTBranch`). The |FFT| branch of
   ``EAT-BEATs-FFT`` is L2-normalised before the concatenation ("explicitly normalized").
   SpecAugment masks the fbank entering each pretrained branch during training.
2. **Classes** (:func:`training_index`, :func:`class_labels`): one class per machine type x
   section x attribute string x domain of the training clips (the report's "172 classes" are the
   count for the authors' data; ours are derived from the data). The supplemental clips are left
   out by default (``use_supplemental``).
3. **OS-SCL training** (:func:`train_system`): per batch, one ``lam ~ Beta(0.5, 0.5)`` mixes the
   waveforms with a permutation of the batch (:class:`OSSCLMixupCollate`); the loss
   (:class:`OSSCLLoss`) is ``lam CE(y_a) + (1 - lam) CE(y_b)`` on sub-center ArcFace logits with
   the margin on ``y_a`` plus SupCon (temperature 0.04) on the embeddings with labels ``y_a``.
   AdamW, warm-up + inverse square root, gradient accumulation and the EMA of the weights come
   from :class:`asd_utils.training.Trainer`; the EMA model gives the embeddings.
4. **Back end** (:func:`make_scorer`, ``asd_utils.methods.pipeline.score_sections``): per machine type
   and section, :class:`asd_utils.scoring.SMOTEKNNScorer` (SMOTE ratio 0.2, 3 neighbours,
   separate source/target libraries, minimum) on the training embeddings; ``no-SMOTE`` rows use
   ratio 0 on the same embeddings.

:func:`run_system` runs one system end to end (model, training, embeddings, accuracies, k-NN with
and without SMOTE), as notebook 05 does for each of its systems.

Longer than 500 lines: the method reads in one place, from the classes to one system's run.

First-shot rule: classes, training, SMOTE and the k-NN libraries use training clips only; test
labels are read only by ``asd_utils.evaluation.metrics.evaluate`` afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from asd_utils.backbones import configured_size_and_layer, load_backbone
from asd_utils.backbones.embeddings import backbone_identity, state_dict_hash
from asd_utils.backbones.provenance import is_standin_checkpoint
from asd_utils.methods.finetune import require_checkpoints as require
from asd_utils.methods.pipeline import score_sections
from asd_utils.methods.pipeline import training_run_dir as run_dir
from asd_utils.models import FFTBranch
from asd_utils.models.fusion import FusionModel, PretrainedBranch, attach_spec_augment
from asd_utils.scoring import SMOTEKNNScorer
from asd_utils.storage.cache import cached_arrays
from asd_utils.storage.keys import array_digest
from asd_utils.training import CHECKPOINT_NAME, Trainer, build_class_labels, seed_everything
from asd_utils.training.clips import clips_fingerprint, embed_clips, make_clip_loader
from asd_utils.training.crops import RandomCropCollate, embed_crops
from asd_utils.training.losses import SubCenterArcFace, SupConLoss, os_scl_loss
from asd_utils.training.specaugment import SpecAugment

__all__ = [
    "CLASS_KEYS",
    "PRETRAINED",
    "SYSTEM_BRANCHES",
    "OSSCLLoss",
    "OSSCLMixupCollate",
    "SystemResult",
    "SystemRun",
    "branch_accuracies",
    "build_system",
    "class_labels",
    "ema_decay",
    "embed_cached",
    "embed_system",
    "load_backbones",
    "make_osscl_loader",
    "make_scorer",
    "require_checkpoints",
    "run_system",
    "steps_plan",
    "train_system",
    "training_index",
    "training_run_dir",
]

CLASS_KEYS = ("machine", "section", "attributes", "domain")
# system name (report 003, Sec. 3.2) -> branches in concatenation order
SYSTEM_BRANCHES: dict[str, tuple[str, ...]] = {
    "BEATs-FFT": ("beats", "fft"),
    "EAT-FFT": ("eat", "fft"),
    "EAT-BEATs": ("eat", "beats"),
    "EAT-BEATs-FFT": ("eat", "beats", "fft"),
}
PRETRAINED = ("beats", "eat")


# --------------------------------------------------------------------------------------------------
# data and classes
# --------------------------------------------------------------------------------------------------
def training_index(index: pd.DataFrame, *, use_supplemental: bool = False) -> pd.DataFrame:
    """The clips the systems are trained on, with a fresh 0..N-1 index.

    ``use_supplemental=False`` (our reading of the report): the development training clips only.
    ``True``: the supplemental clips join them, each as its own class: their ``domain`` becomes
    ``supplemental_clean`` / ``supplemental_noise`` (their attribute string is kept), so they never
    share a class with the training clips. Supplemental clips never enter the k-NN libraries.
    """
    train = index[index["split"] == "train"]
    if not use_supplemental:
        return train.reset_index(drop=True)
    supp = index[index["split"] == "supplemental"].copy()
    kind = supp["supplemental_kind"].fillna("unknown").astype(str)
    supp["domain"] = "supplemental_" + kind
    return pd.concat([train, supp], ignore_index=True)


def class_labels(index: pd.DataFrame, keys: Sequence[str] = CLASS_KEYS) -> tuple[np.ndarray, list[str]]:
    """``(labels (N,) int64, class names)``: one class per distinct combination of ``keys``
    (``asd_utils.training.build_class_labels``)."""

    return build_class_labels(index, keys)


# --------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------
def _eat_frames(n_samples: int) -> int:
    """Kaldi fbank frames (25 ms window, 10 ms shift) of ``n_samples`` at 16 kHz."""
    return 1 + (int(n_samples) - 400) // 160


def require_checkpoints(system: str, checkpoints: Mapping[str, object]) -> None:
    """Raise ``CheckpointError`` naming every pretrained branch of ``system`` without a checkpoint
    (the ``paper`` profile fine-tunes the real BEATs-iter3 and EAT-base)."""

    require(checkpoints, [b for b in SYSTEM_BRANCHES[system] if b in PRETRAINED])


def load_backbones(system: str, model_cfg: Mapping, checkpoints: Mapping[str, object], *, crop_samples: int,
                   device="cpu", seed: int = 0) -> dict:
    """``{name: Backbone}`` for the pretrained branches of ``system``.

    Each backbone comes from its checkpoint when one is configured (at ``checkpoint_size``, default
    base; ``asd_utils.backbones.configured_size_and_layer``), otherwise it is an untrained stand-in
    of ``size`` seeded from ``seed`` (BEATs ``seed``, EAT ``seed + 1``). ``target_length: auto``
    sizes a stand-in EAT's input to the crop (a multiple of 16 frames): an untrained one or a
    pretrained stand-in (``standins.is_standin_checkpoint``; its positional table covers up to 1024
    frames, a longer crop raises ``CheckpointError``); a published checkpoint keeps its own.
    """

    out = {}
    for name in SYSTEM_BRANCHES[system]:
        if name not in PRETRAINED:
            continue
        section = dict(model_cfg["backbones"][name])
        ckpt = checkpoints.get(name) or None
        size, _ = configured_size_and_layer(section, ckpt)
        kwargs = {}
        if name == "eat":
            target = section.get("target_length", "auto")
            if target not in (None, "auto"):
                kwargs["target_length"] = int(target)
            elif ckpt is None or is_standin_checkpoint(ckpt):
                kwargs["target_length"] = max(16, _eat_frames(crop_samples) // 16 * 16)
        out[name] = load_backbone(name, ckpt, size=size, device=device, seed=seed + PRETRAINED.index(name),
                                  **kwargs)
    return out


def build_system(system: str, model_cfg: Mapping, backbones: Mapping[str, nn.Module], *, crop_samples: int,
                 checkpoints: Mapping[str, object] | None = None, seed: int = 0):
    """The :class:`~asd_utils.models.fusion.FusionModel` of ``system`` (a key of
    :data:`SYSTEM_BRANCHES`), waves ``(B, crop_samples)`` -> ``(B, 128 * n_branches)``.

    model_cfg keys (``asd_utils/configs/05_xju.yaml``, section ``model``): ``branch_dim``,
    ``backbones`` ({beats|eat: {layer, checkpoint_layer, pooling}}), ``fft`` ({width,
    squeeze_excitation}), ``fft_normalisation`` ({system: none|l2|layernorm}), ``spec_augment``
    ({enabled, time_mask_param, freq_mask_param, n_time_masks, n_freq_masks, p}).
    The projections and the |FFT| branch are initialised from ``seed``.
    """

    if system not in SYSTEM_BRANCHES:
        raise ValueError(f"unknown system {system!r}; expected one of {list(SYSTEM_BRANCHES)}")
    checkpoints = dict(checkpoints or {})
    dim = int(model_cfg.get("branch_dim", 128))
    aug_cfg = dict(model_cfg.get("spec_augment") or {})
    spec_augment = None
    if aug_cfg.pop("enabled", False):
        spec_augment = SpecAugment(**aug_cfg)
    branches: dict[str, nn.Module] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in SYSTEM_BRANCHES[system]:
            if name == "fft":
                fft_cfg = dict(model_cfg.get("fft") or {})
                branches[name] = FFTBranch(int(crop_samples), dim, width=float(fft_cfg.get("width", 1.0)),
                                           squeeze_excitation=bool(fft_cfg.get("squeeze_excitation", True)))
                continue
            if name not in backbones:
                raise ValueError(f"system {system} needs a {name} backbone; got {sorted(backbones)}")
            section = dict(model_cfg["backbones"][name])
            _, layer = configured_size_and_layer(section, checkpoints.get(name))
            branches[name] = PretrainedBranch(backbones[name], dim, layer=layer,
                                              pooling=str(section.get("pooling", "mean")))
            if spec_augment is not None:
                attach_spec_augment(backbones[name], spec_augment)
    normalise = {}
    how = dict(model_cfg.get("fft_normalisation") or {}).get(system, "none")
    if "fft" in branches:
        normalise["fft"] = how
    return FusionModel(branches, normalise=normalise)


# --------------------------------------------------------------------------------------------------
# OS-SCL training
# --------------------------------------------------------------------------------------------------
class OSSCLMixupCollate:
    """``collate_fn``: random crops of whole clips (:class:`asd_utils.training.crops.RandomCropCollate`),
    then OS-SCL's batch mixup.

    One ``lam ~ Beta(alpha, alpha)`` per batch and a random permutation ``perm`` (both from
    ``generator``): ``x' = lam x + (1 - lam) x[perm]``. Returns ``(x' (B, crop) float32,
    targets (B, 3) float32)`` with columns ``[y_a, y_b, lam]`` (``y_a = y``, ``y_b = y[perm]``),
    what :class:`OSSCLLoss` takes. ``alpha=None`` disables mixing (``lam = 1``, ``y_b = y_a``).
    """

    def __init__(self, crop_samples: int, generator: torch.Generator, alpha: float | None = 0.5):

        if alpha is not None and alpha <= 0:
            raise ValueError(f"mixup alpha must be > 0 or None, got {alpha}")
        self.crops = RandomCropCollate(crop_samples, generator)
        self.generator = generator
        self.alpha = alpha

    def __call__(self, batch):
        return self.mix(*self.crops(batch))

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """OS-SCL's batch mixup of cropped windows ``x (B, crop)`` with labels ``y (B,)``."""
        y = y.long()
        if self.alpha is None or len(x) < 2:
            lam, perm = 1.0, torch.arange(len(x))
        else:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
            lam = float(np.random.default_rng(seed).beta(self.alpha, self.alpha))
            perm = torch.randperm(len(x), generator=self.generator)
            x = lam * x + (1.0 - lam) * x[perm]
        targets = torch.stack([y.float(), y[perm].float(), torch.full((len(x),), lam)], dim=1)
        return x, targets


class OSSCLLoss(nn.Module):
    """OS-SCL loss in the ``loss(embeddings, labels)`` interface of ``asd_utils.training.Trainer``.

    Owns the sub-center ArcFace head (the trainable class centres) and the SupCon loss.
    ``forward(embeddings (B, D), targets)``: ``targets`` is ``(B, 3)`` ``[y_a, y_b, lam]`` from
    :class:`OSSCLMixupCollate` or plain ``(B,)`` int64 labels (no mixing); returns
    ``asd_utils.training.losses.os_scl_loss``'s total and keeps the last batch's parts in ``last_parts``.
    ``logits(embeddings)`` are the head's per-class cosines; ``n_classes`` the head's.
    """

    def __init__(self, n_classes: int, dim: int, *, subcenters: int = 114, margin: float = 0.2,
                 scale: float = 30.0, temperature: float = 0.04, base_temperature: float = 0.07,
                 supcon_weight: float = 1.0):
        super().__init__()

        self.head = SubCenterArcFace(int(n_classes), int(dim), k=int(subcenters), scale=float(scale),
                                     margin=float(margin))
        self.supcon = SupConLoss(float(temperature), float(base_temperature))
        self.supcon_weight = float(supcon_weight)
        self.n_classes = int(n_classes)
        self.last_parts: dict[str, float] = {}

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.head.logits(embeddings)

    def forward(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:

        if targets.dim() == 1:
            y_a = y_b = targets.long()
            lam: float | torch.Tensor = 1.0
        elif targets.dim() == 2 and targets.shape[1] == 3:
            y_a, y_b = targets[:, 0].round().long(), targets[:, 1].round().long()
            lam = targets[:, 2].float()
        else:
            raise ValueError(f"targets must be (B,) labels or (B, 3) [y_a, y_b, lam], got {tuple(targets.shape)}")
        total, ce, sc = os_scl_loss(self.head, self.supcon, embeddings, y_a, y_b, lam,
                                    supcon_weight=self.supcon_weight)
        self.last_parts = {"ce": float(ce.detach()), "supcon": float(sc.detach())}
        return total


def make_osscl_loader(waves: np.ndarray, labels: np.ndarray, *, crop_samples: int, batch_size: int, seed: int,
                      mixup_alpha: float | None = 0.5, shuffle: bool = True) -> torch.utils.data.DataLoader:
    """A deterministic single-process loader of mixed random crops: ``(x (B, crop), targets (B, 3))``.

    One ``torch.Generator`` seeded with ``seed`` shuffles, draws the crops and the mixup (the
    trainer checkpoints it, so a resumed run draws what an uninterrupted one would). A final batch
    of a single clip is dropped (BatchNorm needs two).
    """
    if isinstance(waves, list):  # clips at their own lengths (asd_utils.training.clips)

        return make_clip_loader(waves, labels, window=crop_samples, batch_size=batch_size, seed=seed,
                                shuffle=shuffle,
                                then=lambda g: OSSCLMixupCollate(crop_samples, g, mixup_alpha).mix)
    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as waveforms (> 0); got {len(x)} waveforms, {len(y)} labels")
    if x.dim() != 2 or x.shape[1] < int(crop_samples):
        raise ValueError(f"waves must be (N, T) with T >= crop_samples={int(crop_samples)}, got {tuple(x.shape)}")
    batch_size = max(1, min(int(batch_size), len(x)))
    drop_last = len(x) % batch_size == 1 and len(x) > 1
    generator = torch.Generator().manual_seed(int(seed))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size,
                                       shuffle=shuffle, drop_last=drop_last, num_workers=0, generator=generator,
                                       collate_fn=OSSCLMixupCollate(crop_samples, generator, mixup_alpha))


def ema_decay(train_cfg: Mapping, total_steps: int) -> float:
    """EMA momentum for a run of ``total_steps`` optimizer steps.

    ``ema_horizon: fixed`` uses ``ema_momentum`` as it is. ``ema_horizon: scaled`` keeps the share
    of the initial weights left in the average at the end of the run equal to the report's,
    ``alpha ** reference_steps`` (0.9995 ** 10,000 = e^-5, 0.7 %): ``alpha ** (reference_steps /
    total_steps)``. For a 10,000-step run both give 0.9995; a CPU-sized run of a few hundred
    steps would otherwise return an average dominated by the random initialisation.
    """
    alpha = float(train_cfg["ema_momentum"])
    mode = str(train_cfg.get("ema_horizon", "fixed"))
    if mode == "fixed":
        return alpha
    if mode != "scaled":
        raise ValueError(f"ema_horizon must be 'fixed' or 'scaled', got {mode!r}")
    return alpha ** (float(train_cfg["ema_reference_steps"]) / max(1, int(total_steps)))


def steps_plan(n_clips: int, train_cfg: Mapping) -> dict[str, int]:
    """``{batches_per_epoch, steps_per_epoch, epochs, optimizer_steps}`` for ``total_steps`` optimizer
    steps (each ``grad_accum_steps`` micro-batches of ``batch_size``), rounded up to whole epochs."""
    batch = max(1, min(int(train_cfg["batch_size"]), n_clips))
    n_batches = n_clips // batch if n_clips % batch == 1 and n_clips > 1 else math.ceil(n_clips / batch)
    per_epoch = math.ceil(n_batches / int(train_cfg["grad_accum_steps"]))
    epochs = max(1, math.ceil(int(train_cfg["total_steps"]) / per_epoch))
    return {"batches_per_epoch": n_batches, "steps_per_epoch": per_epoch, "epochs": epochs,
            "optimizer_steps": epochs * per_epoch}


@dataclass
class SystemResult:
    """A trained system: ``model`` (the EMA-averaged :class:`FusionModel`, eval mode; it gives the
    embeddings), ``live_model`` (the optimised weights, eval mode), ``loss`` (:class:`OSSCLLoss`
    with the head), trainer ``history``, the ``plan`` of :func:`steps_plan`, the EMA momentum used
    and ``restored`` (True when loaded from the cache)."""

    model: nn.Module
    live_model: nn.Module
    loss: OSSCLLoss
    history: list[dict] = field(default_factory=list)
    plan: dict = field(default_factory=dict)
    ema_momentum: float = float("nan")
    restored: bool = False


def train_system(model: nn.Module, waves: np.ndarray, labels: np.ndarray, n_classes: int, train_cfg: Mapping, *,
                 crop_samples: int, seed: int = 0, device="cpu", progress: bool = True,
                 checkpoint_dir=None) -> SystemResult:
    """Train ``model`` (waves ``(B, crop_samples)`` -> ``(B, D)``) with OS-SCL on whole clips.

    waves ``(N, T)`` float32 16 kHz training clips (random crops of ``crop_samples`` are drawn per
    batch); labels ``(N,)`` int64 in ``[0, n_classes)``. train_cfg keys (section ``training``):
    ``head`` ({subcenters, margin, scale}), ``supcon`` ({temperature, base_temperature, weight}),
    ``mixup_alpha``, ``optimizer``, ``scheduler``, ``batch_size``, ``grad_accum_steps``,
    ``total_steps``, ``ema_momentum``, ``ema_horizon``, ``ema_reference_steps``, ``ema_warmup``, ``max_grad_norm``,
    ``checkpoint_every``. ``checkpoint_dir`` (``asd_utils.methods.pipeline.training_run_dir``): a
    finished run there is restored without training.
    """

    seed_everything(seed)
    head_cfg, sup_cfg = dict(train_cfg["head"]), dict(train_cfg["supcon"])
    loss = OSSCLLoss(n_classes, model.dim, subcenters=int(head_cfg["subcenters"]), margin=float(head_cfg["margin"]),
                     scale=float(head_cfg.get("scale", 30.0)), temperature=float(sup_cfg["temperature"]),
                     base_temperature=float(sup_cfg.get("base_temperature", 0.07)),
                     supcon_weight=float(sup_cfg.get("weight", 1.0)))
    plan = steps_plan(len(waves), train_cfg)
    decay = ema_decay(train_cfg, plan["optimizer_steps"])
    restored = checkpoint_dir is not None and (checkpoint_dir / CHECKPOINT_NAME).exists()
    trainer = Trainer(model, loss, dict(train_cfg["optimizer"]), dict(train_cfg["scheduler"]), plan["epochs"],
                      device=device, grad_accum_steps=int(train_cfg["grad_accum_steps"]),
                      max_grad_norm=train_cfg.get("max_grad_norm"), ema_decay=decay, seed=seed,
                      checkpoint_dir=checkpoint_dir, checkpoint_every=int(train_cfg.get("checkpoint_every", 1)),
                      progress=progress, amp=bool(train_cfg.get("mixed_precision", False)),
                      config={"system": "xju_osscl"})
    # EMA warm-up (asd_utils.training.EMA): effective decay min(alpha, (1 + n) / (10 + n)) after n updates
    trainer.ema.warmup = bool(train_cfg.get("ema_warmup", False))
    loader = make_osscl_loader(waves, labels, crop_samples=crop_samples, batch_size=int(train_cfg["batch_size"]),
                               seed=seed, mixup_alpha=train_cfg.get("mixup_alpha"))
    history = trainer.fit(loader, resume=checkpoint_dir is not None)
    ema_model = trainer.ema.averaged_model(trainer.model).eval()
    loss.eval()
    trainer.model.eval()
    return SystemResult(model=ema_model, live_model=trainer.model, loss=loss, history=list(history), plan=plan,
                        ema_momentum=decay, restored=restored)


# --------------------------------------------------------------------------------------------------
# embeddings, accuracy, scoring
# --------------------------------------------------------------------------------------------------
def embed_system(model: nn.Module, waves: np.ndarray, *, crop_samples: int, hop_samples: int, batch_size: int = 16,
                 device="cpu", progress: bool = False, desc: str = "embedding") -> np.ndarray:
    """``(N, D)`` clip embeddings: the mean of the embeddings of the crops covering each whole clip
    (``asd_utils.training.crops.embed_crops``), with the model in eval mode. ``waves``: ``(N, T)``
    or a list of clips at their own lengths (``asd_utils.training.clips.embed_clips``)."""

    model.eval()
    if isinstance(waves, list):
        return embed_clips(model, waves, window=crop_samples, hop=hop_samples, batch_size=batch_size, device=device,
                           progress=progress, desc=desc)
    return embed_crops(model, waves, crop_samples=crop_samples, hop_samples=hop_samples, batch_size=batch_size,
                       device=device, progress=progress, desc=desc)


@torch.inference_mode()
def branch_accuracies(embeddings: np.ndarray, labels: np.ndarray, loss: OSSCLLoss,
                      slices: Mapping[str, slice]) -> dict[str, float]:
    """Training-clip classification accuracy of the whole embedding (``"all"``) and of each branch
    alone: the branch's slice of the embedding against the same slice of every sub-centre
    (cosine, max over sub-centres, argmax over classes). A branch that learned nothing scores
    about chance (``1 / n_classes``)."""
    head = loss.head
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    y = np.asarray(labels)
    centres = head.centres.detach().float().cpu()

    def accuracy(cols: slice) -> float:
        xs = torch.nn.functional.normalize(x[:, cols], dim=1)
        cs = torch.nn.functional.normalize(centres[:, cols], dim=1)
        per_class = (xs @ cs.t()).view(len(xs), head.n_classes, head.k).amax(dim=2)
        return float(np.mean(per_class.argmax(dim=1).numpy() == y))

    out = {"all": accuracy(slice(0, x.shape[1]))}
    out.update({name: accuracy(sl) for name, sl in slices.items()})
    return out


def make_scorer(scoring_cfg: Mapping, *, smote: bool = True, seed: int = 0):
    """:class:`asd_utils.scoring.SMOTEKNNScorer` of the ``scoring`` section (``k``, ``metric``,
    ``smote_ratio``, ``smote_neighbors``); ``smote=False`` gives the same k-NN with ratio 0."""

    return SMOTEKNNScorer(k=int(scoring_cfg["k"]), metric=str(scoring_cfg["metric"]),
                          ratio=float(scoring_cfg["smote_ratio"]) if smote else 0.0,
                          smote_neighbors=int(scoring_cfg["smote_neighbors"]), random_state=seed)


def training_run_dir(cache_root, system: str, *, model_cfg: Mapping, train_cfg: Mapping, backbones: Mapping,
                     crop_samples: int, seed: int, classes: Sequence[str], waves: np.ndarray,
                     labels: np.ndarray):
    """Checkpoint folder of one system's training run (``asd_utils.methods.pipeline.training_run_dir``),
    keyed by the system, both config sections, the crop length, the seed, the classes, the training
    waveforms and labels and every backbone's identity (checkpoint sha256 or stand-in seed and
    state hash, ``asd_utils.backbones.embeddings.backbone_identity``). None when ``cache_root`` is None."""

    identity = {"model": dict(model_cfg), "training": dict(train_cfg), "crop_samples": int(crop_samples),
                "backbones": {name: backbone_identity(b) for name, b in sorted(backbones.items())}}
    if isinstance(waves, list):  # clips at their own lengths: their fingerprint keys the run

        identity["clips"], waves = clips_fingerprint(waves), np.zeros(0, np.float32)
    return run_dir(cache_root, f"xju_{system}", cfg=identity, seed=seed, classes=classes, waves=waves,
                   labels=labels, code=__name__)


def embed_cached(model: nn.Module, waves: np.ndarray, *, cache_dir, name: str, crop_samples: int, hop_samples: int,
                 batch_size: int = 16, device="cpu", progress: bool = False) -> np.ndarray:
    """:func:`embed_system`, cached as ``cache_dir/embeddings_<name>_<key>.npz`` (written atomically).

    The key hashes the clips (shape and bytes), the crop and hop lengths and the model's weights
    (``asd_utils.backbones.embeddings.state_dict_hash``), so a changed model or input is never served from
    the cache. ``cache_dir=None`` computes without caching (``asd_utils.storage.cache.cached_arrays``).
    Returns ``(N, D)`` float32.
    """
    def compute():
        return {"embeddings": embed_system(model, waves, crop_samples=crop_samples, hop_samples=hop_samples,
                                           batch_size=batch_size, device=device, progress=progress, desc=name)}

    if cache_dir is None:
        return compute()["embeddings"]
    clips = clips_fingerprint(waves) if isinstance(waves, list) else array_digest(np.asarray(waves, np.float32))
    ingredients = {"clips": clips, "crop": int(crop_samples), "hop": int(hop_samples), "model": state_dict_hash(model)}
    return cached_arrays(cache_dir, ingredients, compute, code=__name__, name=f"embeddings_{name}")["embeddings"]


# --------------------------------------------------------------------------------------------------
# one system end to end (what notebook 05 runs per system)
# --------------------------------------------------------------------------------------------------
@dataclass
class SystemRun:
    """One trained and scored system: the :class:`SystemResult` of its training, the k-NN library
    embeddings ``(N_lib, D)`` (the development training clips) and the test embeddings ``(M, D)``,
    the training accuracies of :func:`branch_accuracies`, ``scores``: ``{row name:
    pipeline.SectionScores}`` for the system (SMOTE) and ``"<system> no-SMOTE"``, and ``overview``:
    one row of facts on the run (branches, size, steps, EMA momentum, final loss, accuracies,
    SMOTE points added for the probe machine type, whether restored from the cache, wall and CPU
    seconds)."""

    system: str
    result: SystemResult
    train_embeddings: np.ndarray
    test_embeddings: np.ndarray
    accuracy: dict
    scores: dict
    overview: dict


def run_system(system: str, *, model_cfg: Mapping, train_cfg: Mapping, scoring_cfg: Mapping,
               checkpoints: Mapping[str, object], waves_fit, labels: np.ndarray, classes: Sequence[str],
               train_index: pd.DataFrame, test_index: pd.DataFrame, waves_test, crop_samples: int, hop_samples: int,
               probe_machine: str, cache_dir=None, seed: int = 0, device="cpu", progress: bool = False) -> SystemRun:
    """Train (or restore) one XJU system (a key of :data:`SYSTEM_BRANCHES`), embed and score it.

    ``waves_fit`` (``(N, T)`` float32 or a list of clips) and ``labels`` ``(N,)`` into ``classes``:
    the clips to train on, whose first ``len(train_index)`` rows are the development training clips
    of ``train_index`` in order (the k-NN libraries); ``waves_test``: the clips of ``test_index``.
    Steps: :func:`load_backbones` and :func:`build_system`; :func:`train_system` in the checkpoint
    folder :func:`training_run_dir` of ``cache_dir`` (None: no cache); :func:`embed_cached` of all
    training and test clips with the EMA model (windows of ``crop_samples`` every ``hop_samples``);
    :func:`branch_accuracies` on the training clips; then ``pipeline.score_sections`` with
    :func:`make_scorer` with and without SMOTE (``scoring_cfg``: ``k``, ``metric``, ``smote_ratio``,
    ``smote_neighbors``, ``n_splits``). A SMOTE scorer fitted on the library of ``probe_machine``
    counts the synthetic target points it adds. Test labels enter nothing here.
    Returns a :class:`SystemRun`.
    """

    wall, cpu = time.perf_counter(), time.process_time()
    backbones = load_backbones(system, model_cfg, checkpoints, crop_samples=crop_samples, device=device, seed=seed)
    model = build_system(system, model_cfg, backbones, crop_samples=crop_samples, checkpoints=checkpoints, seed=seed)
    folder = training_run_dir(cache_dir, system, model_cfg=model_cfg, train_cfg=train_cfg, backbones=backbones,
                              crop_samples=crop_samples, seed=seed, classes=classes, waves=waves_fit, labels=labels)
    result = train_system(model, waves_fit, labels, len(classes), train_cfg, crop_samples=crop_samples, seed=seed,
                          device=device, progress=progress, checkpoint_dir=folder)
    batch_size = int(train_cfg["embed_batch_size"])
    # embeddings are cached next to the trained model, keyed by the clips and the model's weights
    train_emb, test_emb = (embed_cached(result.model, w, cache_dir=folder, name=f"{system} {part}",
                                        crop_samples=crop_samples, hop_samples=hop_samples, batch_size=batch_size,
                                        device=device, progress=progress)
                           for w, part in ((waves_fit, "train"), (waves_test, "test")))
    accuracy = branch_accuracies(train_emb, labels, result.loss, result.model.branch_slices)
    library = train_emb[: len(train_index)]
    scores = {name: score_sections(make_scorer(scoring_cfg, smote=smote, seed=seed), train_index, library,
                                   test_index, test_emb, n_splits=scoring_cfg["n_splits"], seed=seed,
                                   progress=progress, desc=name)
              for smote, name in ((True, system), (False, f"{system} no-SMOTE"))}
    first = (train_index["machine"] == probe_machine).to_numpy()
    probe = make_scorer(scoring_cfg, seed=seed).fit(library[first], train_index["domain"][first].to_numpy(dtype=object))
    overview = {
        "branches": " + ".join(f"{n} ({model.branches[n].backbone.describe()})" if n != "fft" else "|FFT|"
                               for n in model.branches),
        "dim": model.dim,
        "parameters": model.num_parameters(),
        "optimizer steps": result.plan["optimizer_steps"],
        "EMA momentum": round(result.ema_momentum, 5),
        "final loss": round(result.history[-1]["loss"], 3) if result.history else float("nan"),
        **{f"train acc. {k}": round(v, 3) for k, v in accuracy.items()},
        f"SMOTE points ({probe_machine})": probe.n_synthetic_,
        "restored from cache": result.restored,
        "wall s": round(time.perf_counter() - wall, 1),
        "CPU s": round(time.process_time() - cpu, 1),
    }
    return SystemRun(system=system, result=result, train_embeddings=library, test_embeddings=test_emb,
                     accuracy=accuracy, scores=scores, overview=overview)
