"""AnoPatch (Jiang et al., Interspeech 2024), System 3 of the GISP-HEU report.

A ViT pretrained on AudioSet (BEATs or EAT) is fine-tuned on machine audio: its patch tokens (one
token per 16 x 16 spectrogram patch) are pooled by attentive statistics pooling (ASP, as in
ECAPA-TDNN) into an utterance embedding, trained with ArcFace on classes built from the metadata
(machine type, section, attributes and domain). At test time the embeddings of the normal training
clips form a memory bank and the anomaly score is the kNN cosine distance
(``asd_utils.scoring.KNNScorer``).

- :class:`AttentiveStatsPool`: (B, T, D) tokens -> (B, 2 D) attention-weighted mean and std.
- :class:`AnoPatchModel`: backbone + ASP + batch norm + linear projection -> (B, emb_dim).
- :class:`WaveDataset`: clips read lazily from disk (several data roots are fine).
- :func:`finetune`: the fine-tuning loop on :class:`asd_utils.training.Trainer`.
- :func:`embed_paths`: batched embeddings of WAV files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from asd_utils.backbones import configured_size_and_layer, load_backbone
from asd_utils.backbones.embeddings import backbone_identity
from asd_utils.backbones.provenance import is_standin_checkpoint
from asd_utils.data import DataError, discover, fix_length, load_audio, load_batch
from asd_utils.scoring import KNNScorer, fit_scores_from_training
from asd_utils.storage import cache
from asd_utils.storage.keys import files_digest
from asd_utils.training import Trainer, build_class_labels, build_optimizer, seed_everything
from asd_utils.training.labels import ROOT_COLUMN, pool_roots
from asd_utils.training.losses import ArcFace

__all__ = ["AttentiveStatsPool", "AnoPatchModel", "WaveDataset", "finetune", "embed_paths", "build_model",
           "train_and_embed", "score_machines", "extra_training_index", "pooled_training_index", "MAIN_ROOT",
           "missing_years_warning", "training_run_dir"]

MAIN_ROOT = "main"  # root name of the notebook's own DATA_ROOT in pooled class names


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling with global context (Desplanques et al., ECAPA-TDNN, 2020).

    For tokens ``h_t`` (B, T, D): channel-wise attention logits
    ``e_t = W2 tanh(W1 [h_t; mean(h); std(h)] + b1) + b2`` (``[h_t]`` alone when
    ``global_context=False``), weights ``a_t = softmax_t(e_t)`` (per channel), and the output
    ``[sum_t a_t h_t ; sqrt(sum_t a_t h_t**2 - (sum_t a_t h_t)**2)]`` of shape (B, 2 D).
    """

    def __init__(self, dim: int, attention_dim: int = 128, *, global_context: bool = True, eps: float = 1e-6):
        super().__init__()
        self.dim = int(dim)
        self.global_context = bool(global_context)
        self.eps = float(eps)
        in_dim = 3 * self.dim if self.global_context else self.dim
        self.attention = nn.Sequential(nn.Linear(in_dim, attention_dim), nn.Tanh(),
                                       nn.Linear(attention_dim, self.dim))

    def weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D) attention weights, summing to 1 over T for each channel."""
        if tokens.ndim != 3 or tokens.shape[-1] != self.dim:
            raise ValueError(f"expected tokens (batch, tokens, {self.dim}), got {tuple(tokens.shape)}")
        x = tokens
        if self.global_context:
            mean = tokens.mean(dim=1, keepdim=True).expand_as(tokens)
            std = tokens.var(dim=1, keepdim=True, unbiased=False).clamp_min(self.eps).sqrt().expand_as(tokens)
            x = torch.cat([tokens, mean, std], dim=-1)
        return torch.softmax(self.attention(x), dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        a = self.weights(tokens)
        mu = (a * tokens).sum(dim=1)
        var = (a * tokens * tokens).sum(dim=1) - mu * mu
        return torch.cat([mu, var.clamp_min(self.eps).sqrt()], dim=-1)


class AnoPatchModel(nn.Module):
    """Backbone patch tokens -> ASP -> BatchNorm -> Linear: (B, samples) waves -> (B, emb_dim).

    layer: which hidden state feeds the pooling (``-1``: the last layer, as AnoPatch). A CLS
    token (``backbone.has_cls_token``) is dropped so that only patch tokens are pooled.
    """

    def __init__(self, backbone: nn.Module, *, emb_dim: int = 256, attention_dim: int = 128,
                 layer: int = -1, global_context: bool = True):
        super().__init__()
        self.backbone = backbone
        self.layer = int(layer)
        self.skip = 1 if getattr(backbone, "has_cls_token", False) else 0
        self.pool = AttentiveStatsPool(backbone.dim, attention_dim, global_context=global_context)
        self.norm = nn.BatchNorm1d(2 * backbone.dim)
        self.proj = nn.Linear(2 * backbone.dim, emb_dim)
        self.emb_dim = int(emb_dim)

    def tokens(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, patches, dim) patch tokens of the chosen layer."""
        return self.backbone.hidden_states(waves)[self.layer][:, self.skip:]

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(self.pool(self.tokens(waves).float())))


class WaveDataset(Dataset):
    """(wave (clip_samples,) float32, label int64) pairs read from WAV files on demand.

    random_crop: for clips longer than ``clip_samples``, take a random window (training);
    otherwise the first ``clip_samples`` samples (shorter clips are tiled, as ``load_audio``).
    """

    def __init__(self, paths: Sequence[str], labels: Sequence[int] | None, clip_samples: int, *,
                 sample_rate: int = 16000, random_crop: bool = False, seed: int = 0):
        self.paths = [str(p) for p in paths]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.clip_samples = int(clip_samples)
        self.sample_rate = int(sample_rate)
        self.random_crop = bool(random_crop)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):

        wave = load_audio(self.paths[i], sample_rate=self.sample_rate)
        if self.random_crop and len(wave) > self.clip_samples:
            start = int(self.rng.integers(0, len(wave) - self.clip_samples + 1))
            wave = wave[start:start + self.clip_samples]
        else:

            wave = fix_length(wave, self.clip_samples)
        label = -1 if self.labels is None else int(self.labels[i])
        return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), torch.tensor(label)


def finetune(model: AnoPatchModel, loss_fn: nn.Module, paths: Sequence[str], labels: Sequence[int], *,
             clip_samples: int, epochs: int, batch_size: int, optimizer: dict, scheduler: dict | None = None,
             device: str | torch.device = "cpu", seed: int = 0, checkpoint_dir: str | Path | None = None,
             mixup_alpha: float | None = None, max_grad_norm: float | None = None,
             freeze_backbone: bool = False, progress: bool = True, config: dict | None = None) -> list[dict]:
    """Fine-tune ``model`` with ``loss_fn`` (e.g. ``asd_utils.training.losses.ArcFace``) on labelled clips.

    paths / labels: training WAVs (any number of data roots) and their class indices. The loader
    shuffles with a seeded generator, so a run resumed from ``checkpoint_dir`` matches an
    uninterrupted one. ``optimizer``: ``{"name", "lr", ...}`` for the head; ``optimizer["backbone_lr"]``
    (default: same lr) is used for the backbone through a second parameter group.
    Returns the trainer's per-epoch history.
    """

    if freeze_backbone:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    dataset = WaveDataset(paths, labels, clip_samples, random_crop=True, seed=seed)
    generator = torch.Generator().manual_seed(int(seed))
    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True, generator=generator,
                        drop_last=len(dataset) > batch_size, num_workers=0)
    opt = dict(optimizer)
    backbone_lr = opt.pop("backbone_lr", None)
    trainer = Trainer(model, loss_fn, opt, scheduler, epochs, device=device, seed=seed,
                      checkpoint_dir=checkpoint_dir, mixup_alpha=mixup_alpha, max_grad_norm=max_grad_norm,
                      progress=progress, config=config)
    if backbone_lr is not None and not freeze_backbone:
        backbone_ids = {id(p) for p in model.backbone.parameters()}
        trainable = [p for p in list(model.parameters()) + list(loss_fn.parameters()) if p.requires_grad]
        head = [p for p in trainable if id(p) not in backbone_ids]
        body = [p for p in trainable if id(p) in backbone_ids]
        groups = [{"params": head, "lr": opt.get("lr", 1e-3)}, {"params": body, "lr": float(backbone_lr)}]

        name = opt.pop("name", "adam")
        opt.pop("lr", None)
        trainer.optimizer = build_optimizer(groups, name, lr=groups[0]["lr"], **opt)
    history = trainer.fit(loader, resume=checkpoint_dir is not None)
    model.eval()
    return history


@torch.inference_mode()
def embed_paths(model: AnoPatchModel, paths: Sequence[str], *, clip_samples: int, batch_size: int = 16,
                device: str | torch.device = "cpu", progress: bool = True, desc: str = "embed") -> np.ndarray:
    """(N,) WAV paths -> (N, emb_dim) float64 embeddings (model in eval mode, first ``clip_samples``)."""

    model.eval().to(device)
    out = []
    starts = range(0, len(paths), batch_size)
    if progress:

        starts = tqdm(starts, desc=desc, leave=False)
    for start in starts:
        waves = torch.from_numpy(load_batch(list(paths[start:start + batch_size]), n_samples=clip_samples))
        out.append(model(waves.to(device)).float().cpu().numpy().astype(np.float64))
    return np.concatenate(out, axis=0) if out else np.zeros((0, model.emb_dim))


# ---------------------------------------------------------------------------------------------
# notebook glue
# ---------------------------------------------------------------------------------------------
def _eat_frames(clip_samples: int) -> int:
    """Kaldi fbank frames (25 ms window, 10 ms shift, snip_edges) of a clip at 16 kHz."""
    return 1 + (int(clip_samples) - 400) // 160


def build_model(cfg: dict, *, checkpoint: str | None, clip_samples: int, device="cpu", seed: int = 0
                ) -> AnoPatchModel:
    """The AnoPatch model of the ``anopatch`` config section (backbone from ``checkpoint`` at
    ``checkpoint_size`` (default base) or an untrained stand-in of ``cfg['size']``).
    ``target_length: auto`` sizes a stand-in EAT's input to the clip (a multiple of 16 frames):
    an untrained one, or a pretrained stand-in (``standins.is_standin_checkpoint``; its positional
    table covers up to 1024 frames, a longer clip raises ``CheckpointError``); with a published
    checkpoint the checkpoint's own length is kept."""

    size, layer = configured_size_and_layer(cfg, checkpoint)
    kwargs = {}
    target_length = cfg.get("target_length")
    if cfg["backbone"] == "eat" and target_length not in (None, "auto"):
        kwargs["target_length"] = int(target_length)
    elif cfg["backbone"] == "eat" and target_length == "auto" and (checkpoint is None
                                                                   or is_standin_checkpoint(checkpoint)):
        kwargs["target_length"] = max(16, _eat_frames(clip_samples) // 16 * 16)
    backbone = load_backbone(cfg["backbone"], checkpoint=checkpoint, size=size, device=device, seed=seed, **kwargs)
    torch.manual_seed(seed)
    return AnoPatchModel(backbone, emb_dim=int(cfg["emb_dim"]), attention_dim=int(cfg["attention_dim"]),
                         layer=layer).to(device)


def extra_training_index(roots: Sequence[str | Path]):
    """Training clips of other DCASE roots (e.g. the 2022-2024 development sets) for fine-tuning.

    Each root is indexed with ``asd_utils.data.discover``; its ``train`` rows are kept and tagged
    with the root's name in ``asd_utils.training.labels.ROOT_COLUMN`` (the folder name; a repeated
    folder name gets ``#2``, ``#3``, ...). A root without training clips raises a ``DataError``
    naming it. Returns one DataFrame (empty, with the column, for no roots).
    """


    frames, used = [], {MAIN_ROOT}
    for root in roots:
        root = Path(root).expanduser().resolve()
        index = discover(root)
        train = index[index["split"] == "train"]
        if len(train) == 0:
            raise DataError(f"EXTRA_TRAIN_ROOTS entry {root} holds no training clips "
                            "(expected <root>/dev_data/raw/<machine>/train/*.wav)")
        name, k = root.name or "root", 1
        while name in used:
            k += 1
            name = f"{root.name}#{k}"
        used.add(name)
        frames.append(train.assign(**{ROOT_COLUMN: name}))
    if not frames:
        return pd.DataFrame(columns=[ROOT_COLUMN])
    return pd.concat(frames, ignore_index=True)


def missing_years_warning(cfg: dict, extra_roots: Sequence[str | Path] | None, *, profile: str) -> str | None:
    """The warning a notebook must show loudly (``asd_utils.notebook.context.loud_warning``: in the
    notebook and in the runner's log) when the config expects other DCASE years for fine-tuning
    (``expect_extra_train_roots``, true in the ``paper`` profile: the report pools the 2022-2025
    development sets) and none are given; None otherwise."""
    if not cfg.get("expect_extra_train_roots") or extra_roots:
        return None
    return (f"profile {profile}: EXTRA_TRAIN_ROOTS is empty, so System 3 (AnoPatch) is fine-tuned on DATA_ROOT "
            "alone; the report fine-tunes it on the DCASE 2022-2025 development sets pooled. Set EXTRA_TRAIN_ROOTS "
            "to the 2022-2024 roots to reproduce it; without them System 3 and System 4 are not the report's systems.")


def pooled_training_index(train_index, extra_train_index=None):
    """``(fit_index, root_column)``: the clips AnoPatch is fine-tuned on and the column that keeps
    their dataset roots apart in the class labels.

    Without extra clips: ``(train_index, None)`` (class names as ``build_class_labels`` gives
    them). With extra clips (other DCASE years): the main clips are tagged :data:`MAIN_ROOT`, the
    extra ones keep their ``ROOT_COLUMN`` (``"extra"`` when they have none), and ``root_column``
    is ``ROOT_COLUMN`` -- so ``slider|00|noAttribute|source`` of 2024 and of 2025 become two classes.
    """

    if extra_train_index is None or len(extra_train_index) == 0:
        return train_index.reset_index(drop=True), None
    if ROOT_COLUMN not in extra_train_index:
        extra_train_index = extra_train_index.assign(**{ROOT_COLUMN: "extra"})
    extra_names = extra_train_index[ROOT_COLUMN].astype(str)
    if (extra_names == MAIN_ROOT).any():
        raise ValueError(f"an extra training root may not be named {MAIN_ROOT!r} (reserved for DATA_ROOT)")
    frames = [(MAIN_ROOT, train_index.drop(columns=[ROOT_COLUMN], errors="ignore"))]
    for name in dict.fromkeys(extra_names):  # first-appearance order
        frames.append((name, extra_train_index[extra_names == name].drop(columns=[ROOT_COLUMN])))
    return pool_roots(frames), ROOT_COLUMN


def training_run_dir(cache_dir: str | Path | None, cfg: dict, *, paths: Sequence[str], checkpoint,
                     backbone: nn.Module, clip_samples: int, seed: int, classes: Sequence[str]) -> Path | None:
    """Checkpoint folder of one AnoPatch fine-tuning run (None when ``cache_dir`` is None), keyed by
    the config, the training files, the checkpoint path, the backbone's identity before
    fine-tuning (checkpoint sha256, or stand-in seed, and a hash of its weights:
    ``asd_utils.backbones.embeddings.backbone_identity``), the clip length, the seed and the classes; so an
    untrained stand-in, a pretrained stand-in and a published checkpoint never share a run."""
    if cache_dir is None:
        return None
    # the checkpoint enters through the backbone's identity (its sha256), never through its path
    identity = {"cfg": cfg, "clips": files_digest(paths), "pretrained": checkpoint is not None,
                "backbone": backbone_identity(backbone), "clip_samples": int(clip_samples), "seed": int(seed),
                "classes": list(classes)}
    return cache.run_dir(cache_dir, "anopatch", identity, code=__name__)


def train_and_embed(cfg: dict, train_index, embed_index, *, checkpoint: str | None, clip_samples: int,
                    extra_train_index=None, device="cpu", seed: int = 0, cache_dir: str | Path | None = None,
                    progress: bool = True) -> tuple[np.ndarray, AnoPatchModel, list[dict]]:
    """Fine-tune AnoPatch on ``train_index`` (+ ``extra_train_index``, e.g. other DCASE years) and
    embed every clip of ``embed_index``.

    Classes are the distinct ``cfg['class_keys']`` combinations of the training clips
    (``asd_utils.training.build_class_labels``); with extra clips they also carry the dataset root
    (:func:`pooled_training_index`), so equal metadata of two DCASE years are two classes.
    With ``cache_dir``, fine-tuning checkpoints to a
    folder keyed by the config, the training files and the backbone (:func:`training_run_dir`), so a second run
    resumes the finished run (no training) and reuses cached embeddings.
    Returns ``(embeddings (len(embed_index), emb_dim), model, history)``.
    """

    fit_index, root_column = pooled_training_index(train_index, extra_train_index)
    labels, classes = build_class_labels(fit_index, cfg["class_keys"], root_column=root_column)
    paths = fit_index["path"].astype(str).tolist()
    seed_everything(seed)
    model = build_model(cfg, checkpoint=checkpoint, clip_samples=clip_samples, device=device, seed=seed)
    run_dir = training_run_dir(cache_dir, cfg, paths=paths, checkpoint=checkpoint, backbone=model.backbone,
                               clip_samples=clip_samples, seed=seed, classes=classes)
    loss = ArcFace(len(classes), model.emb_dim, scale=float(cfg["arcface"]["scale"]),
                   margin=float(cfg["arcface"]["margin"]))
    history = finetune(model, loss, paths, labels, clip_samples=clip_samples, epochs=int(cfg["epochs"]),
                       batch_size=int(cfg["batch_size"]), optimizer=dict(cfg["optimizer"]),
                       scheduler=dict(cfg.get("scheduler") or {}), device=device, seed=seed,
                       checkpoint_dir=run_dir, mixup_alpha=cfg.get("mixup_alpha"),
                       max_grad_norm=cfg.get("max_grad_norm"), progress=progress,
                       config={"anopatch": cfg, "classes": classes})
    embed_paths_list = embed_index["path"].astype(str).tolist()

    def compute():
        return {"embeddings": embed_paths(model, embed_paths_list, clip_samples=clip_samples,
                                          batch_size=int(cfg.get("embed_batch_size", 16)), device=device,
                                          progress=progress, desc="AnoPatch embeddings")}

    ingredients = None if run_dir is None else {"clips": files_digest(embed_paths_list)}
    emb = cache.cached_arrays(run_dir, ingredients, compute, code=__name__, name="embeddings")["embeddings"]
    return emb, model, history


def score_machines(index, embeddings: np.ndarray, *, knn: dict, progress: bool = True):
    """kNN (``asd_utils.scoring.KNNScorer``) per machine type / section on AnoPatch embeddings.

    index: data index aligned with ``embeddings`` (N, D), holding train and test rows.
    Returns ``(test_index, test_scores, train_index, train_scores)``; training scores are
    leave-one-out (``asd_utils.scoring.fit_scores_from_training``).
    """

    index = index.reset_index(drop=True)
    is_test = (index["split"] == "test").to_numpy()
    is_train = (index["split"] == "train").to_numpy()
    test_pos, train_pos = np.flatnonzero(is_test), np.flatnonzero(is_train)
    test_scores = np.full(len(test_pos), np.nan)
    train_scores = np.full(len(train_pos), np.nan)
    test_rank = {p: i for i, p in enumerate(test_pos)}
    train_rank = {p: i for i, p in enumerate(train_pos)}
    machine = index["machine"].astype(str).to_numpy()
    section = index["section"].astype(str).to_numpy()
    groups = sorted(set(zip(machine[is_train], section[is_train])))
    if progress:

        groups = tqdm(groups, desc="AnoPatch kNN", leave=False)
    for m, s in groups:
        same = (machine == m) & (section == s)
        tr, te = np.flatnonzero(same & is_train), np.flatnonzero(same & is_test)
        domains = index["domain"].iloc[tr].to_numpy()
        scorer = KNNScorer(**knn).fit(embeddings[tr], domains)
        if len(te):
            test_scores[[test_rank[p] for p in te]] = scorer.score(embeddings[te])
        train_scores[[train_rank[p] for p in tr]] = fit_scores_from_training(scorer, embeddings[tr], domains)
    return (index.iloc[test_pos].reset_index(drop=True), test_scores,
            index.iloc[train_pos].reset_index(drop=True), train_scores)
