"""BEATs-style pretraining, the first iteration of BEATs (Chen et al., "BEATs: Audio
Pre-Training with Acoustic Tokenizers", ICML 2023), at a CPU size.

Iteration 1 of BEATs has no trained tokenizer yet: a *random-projection tokenizer* turns every
16 x 16 fbank patch into a discrete label (a frozen random linear projection, then the nearest
vector of a frozen random codebook), and the acoustic model learns to predict the labels of masked
patches from the visible ones with a cross-entropy over the codebook.

Written here (no code copied), on the compendium's own :class:`asd_utils.backbones.beats.BEATs`:

- :class:`RandomProjectionTokenizer`: patches are standardised per dimension with statistics of
  the corpus (computed once, frozen), projected by a Xavier-normal random matrix, L2-normalised,
  and assigned the nearest of ``codebook_size`` L2-normalised Gaussian codes (nearest in Euclidean
  distance between unit vectors = largest cosine). Projection, codebook and statistics are
  buffers: no gradient ever reaches them, and the same ``seed`` gives the same tokenizer.
- :class:`BEATsMaskedPredictor`: BEATs' patch embedding, masked patches replaced by a learned mask
  embedding (in place, so the convolutional and relative positions of the encoder stay valid), the
  BEATs encoder, and a linear label predictor over the codebook. Departure, stated: the paper feeds
  only the unmasked patches to the encoder and adds a separate Transformer label predictor
  (MAE style); at this scale the in-place mask embedding (as HuBERT / BEiT) is simpler and keeps
  BEATs' relative position bias meaningful. The mask embedding and predictor are pretraining-only
  and are not part of the saved checkpoint (the published checkpoints hold the encoder only).
- 75 % of the patches are masked at random (the paper's ratio).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from asd_utils.backbones import load_backbone
from asd_utils.backbones.beats import BEATs
from asd_utils.pretrain.loop import History, Stopwatch, feature_crops, holdout_split, scheduled_steps
from asd_utils.pretrain.masking import random_mask
from asd_utils.training.trainer import build_optimizer

__all__ = ["BEATsMaskedPredictor", "BEATsPretrainConfig", "RandomProjectionTokenizer", "beats_features",
           "patchify", "pretrain_beats"]


@dataclass(frozen=True)
class BEATsPretrainConfig:
    """Hyper-parameters of BEATs iteration-1 pretraining (see ``asd_utils/configs/standins.yaml``)."""

    size: str = "tiny"
    codebook_size: int = 256        # paper: 1024 codes; fewer for a corpus of ~1e3 clips
    code_dim: int = 16              # dimension of the random projection / codes
    mask_ratio: float = 0.75        # paper: 75 % of the patches
    steps: int = 400
    batch_size: int = 32
    crop_frames: int = 256          # 2.56 s crops (16 time patches x 8 frequency patches)
    lr: float = 0.001
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 40
    max_grad_norm: float = 2.0
    holdout_fraction: float = 0.05  # corpus clips kept out of training to measure the objective
    eval_every: int = 50
    tokenizer_fit_clips: int = 256  # clips whose patches give the tokenizer's standardisation

    @classmethod
    def from_dict(cls, data: dict) -> BEATsPretrainConfig:
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(float(b) for b in data["betas"])
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def patchify(fbank: torch.Tensor, patch: int = 16) -> torch.Tensor:
    """fbank (B, T, F) -> (B, (T // patch) * (F // patch), patch * patch): the patches BEATs' 16 x 16
    stride-16 convolution sees, in its time-major token order (token ``t * (F // patch) + f``)."""
    b, t, f = fbank.shape
    nt, nf = t // patch, f // patch
    x = fbank[:, : nt * patch, : nf * patch].reshape(b, nt, patch, nf, patch)
    return x.permute(0, 1, 3, 2, 4).reshape(b, nt * nf, patch * patch)


class RandomProjectionTokenizer(nn.Module):
    """Frozen random-projection tokenizer: fbank (B, T, 128) -> code labels (B, patches) int64.

    Deterministic from ``seed``: projection ``(patch**2, code_dim)`` Xavier-normal, codebook
    ``(codebook_size, code_dim)`` Gaussian then unit-norm. :meth:`fit` sets the per-dimension patch
    standardisation from a corpus sample (once, before training); everything is a buffer.
    """

    def __init__(self, *, codebook_size: int = 256, code_dim: int = 16, patch: int = 16, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        patch_dim = patch * patch
        std = math.sqrt(2.0 / (patch_dim + code_dim))
        self.patch = patch
        self.register_buffer("projection", torch.randn(patch_dim, code_dim, generator=gen) * std)
        self.register_buffer("codebook", F.normalize(torch.randn(codebook_size, code_dim, generator=gen), dim=-1))
        self.register_buffer("mean", torch.zeros(patch_dim))
        self.register_buffer("std", torch.ones(patch_dim))
        self.requires_grad_(False)

    @property
    def codebook_size(self) -> int:
        return int(self.codebook.shape[0])

    @torch.no_grad()
    def fit(self, fbank: torch.Tensor) -> RandomProjectionTokenizer:
        """Per-dimension mean / std of the patches of ``fbank`` (B, T, F)."""
        patches = patchify(fbank.float(), self.patch).reshape(-1, self.projection.shape[0])
        self.mean.copy_(patches.mean(dim=0))
        self.std.copy_(patches.std(dim=0).clamp_min(1e-5))
        return self

    @torch.no_grad()
    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        """fbank (B, T, F) -> (B, patches) int64 labels in ``[0, codebook_size)``."""
        z = (patchify(fbank.float(), self.patch) - self.mean) / self.std
        z = F.normalize(z @ self.projection, dim=-1)
        return (z @ self.codebook.T).argmax(dim=-1)


def beats_features(model: BEATs, waves: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """BEATs' normalised fbank of every clip: waves (N, samples) -> (N, frames, 128) float16
    (half precision to keep a corpus of 5 s clips in about 170 MB)."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(waves), batch_size):
            out.append(model.fbank(torch.as_tensor(waves[start : start + batch_size])).half())
    return torch.cat(out)


class BEATsMaskedPredictor(nn.Module):
    """BEATs encoder + learned mask embedding + linear label predictor (pretraining only)."""

    def __init__(self, model: BEATs, codebook_size: int):
        super().__init__()
        self.model = model
        self.mask_embedding = nn.Parameter(torch.randn(model.dim) * 0.02)
        self.predictor = nn.Linear(model.dim, codebook_size)

    def tokens(self, fbank: torch.Tensor) -> torch.Tensor:
        """Normalised fbank (B, T, 128) -> projected patch tokens (B, patches, dim), as
        :meth:`BEATs.patch_tokens` computes them after its own fbank."""
        m = self.model
        x = m.patch_embedding(fbank.unsqueeze(1)).flatten(2).transpose(1, 2)
        x = m.layer_norm(x)
        if m.post_extract_proj is not None:
            x = m.post_extract_proj(x)
        return m.dropout_input(x)

    def forward(self, fbank: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """fbank (B, T, 128), mask (B, patches) bool -> logits (B, patches, codebook_size)."""
        x = self.tokens(fbank)
        x = torch.where(mask.unsqueeze(-1), self.mask_embedding.to(x.dtype), x)
        return self.predictor(self.model.encoder(x)[-1])

    def loss(self, fbank: torch.Tensor, mask: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Cross-entropy over the codebook on the masked patches, and their top-1 accuracy."""
        logits = self(fbank, mask)[mask]
        target = codes[mask]
        return F.cross_entropy(logits, target), float((logits.argmax(-1) == target).float().mean())


def pretrain_beats(features: torch.Tensor, cfg: BEATsPretrainConfig, *, seed: int = 0,
                   progress: bool = True, initial: BEATs | None = None) -> tuple[BEATs, History]:
    """Pretrain a BEATs stand-in on normalised fbank ``features`` (N, T, 128) (from
    :func:`beats_features`).

    The model starts from the untrained stand-in ``load_backbone("beats", size=cfg.size, seed=seed)``
    (or a copy of ``initial``), so "before" and "after" pretraining differ only by the training.
    Returns the trained encoder (eval mode) and its :class:`History`.
    """

    watch = Stopwatch()
    model = copy.deepcopy(initial) if initial is not None else load_backbone("beats", size=cfg.size, seed=seed)
    gen = torch.Generator().manual_seed(int(seed))
    train_rows, held_rows = holdout_split(len(features), cfg.holdout_fraction, seed)
    fit_rows = torch.as_tensor(train_rows[: cfg.tokenizer_fit_clips])
    tokenizer = RandomProjectionTokenizer(codebook_size=cfg.codebook_size, code_dim=cfg.code_dim,
                                          patch=model.cfg.input_patch_size, seed=seed)
    tokenizer.fit(features[fit_rows].float())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        learner = BEATsMaskedPredictor(model, tokenizer.codebook_size)
    params = [p for p in learner.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    history = History(objective="BEATs iteration 1: masked patch prediction, random-projection tokenizer")
    held = torch.as_tensor(held_rows)
    held_gen = torch.Generator().manual_seed(int(seed) + 1)
    held_fbank = held_mask = held_codes = None
    if len(held):
        held_fbank = feature_crops(features, held, cfg.crop_frames, held_gen)
        held_codes = tokenizer(held_fbank)
        held_mask = random_mask(len(held), held_codes.shape[1], cfg.mask_ratio, held_gen)
    rows_all = torch.as_tensor(train_rows)
    learner.train()
    for step in scheduled_steps(optimizer, cfg, desc="pretrain beats", progress=progress):
        rows = rows_all[torch.randint(len(rows_all), (cfg.batch_size,), generator=gen)]
        fbank = feature_crops(features, rows, cfg.crop_frames, gen)
        codes = tokenizer(fbank)
        mask = random_mask(len(rows), codes.shape[1], cfg.mask_ratio, gen)
        loss, acc = learner.loss(fbank, mask, codes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        history.log(step, float(loss.detach()), acc)
        if held_fbank is not None and (step % cfg.eval_every == 0 or step == cfg.steps - 1):
            learner.eval()
            with torch.no_grad():
                eval_loss, eval_acc = learner.loss(held_fbank, held_mask, held_codes)
            history.log_eval(step, float(eval_loss), eval_acc)
            learner.train()
    if held_codes is not None:
        counts = torch.bincount(held_codes.flatten(), minlength=tokenizer.codebook_size).float()
        p = counts / counts.sum()
        history.extras["code_perplexity"] = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
        history.extras["majority_code_rate"] = float(p.max())
    history.wall_seconds, history.cpu_seconds = watch.wall(), watch.cpu()
    return model.eval(), history
