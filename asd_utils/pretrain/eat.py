"""EAT-style pretraining (Chen et al., "EAT: Self-Supervised Pre-Training with Efficient Audio
Transformer", IJCAI 2024), at a CPU size, on the compendium's own
:class:`asd_utils.backbones.eat.EAT`.

EAT is data2vec 2.0 on spectrogram patches with an utterance-level objective (the paper's
Utterance-Frame Objective, UFO). What this module does, per training step (written here from the
paper and the released configuration ``pretraining_AS2M.yaml``; no code copied):

1. the **teacher** (an EMA copy of the student encoder, decay annealed linearly from
   ``ema_decay`` to ``ema_end_decay``) encodes the *whole* crop; the targets are the average of
   its top ``average_top_k_layers`` layer results (each block's feed-forward output, instance-
   normalised over the patches), layer-normalised, CLS token excluded;
2. the **student** encodes each clip ``clone_batch`` times, each time with its own
   *inverse block mask* (``mask_prob`` 0.8 of the patches masked; kept patches form
   ``mask_length`` x ``mask_length`` blocks); masked patches are dropped from the student's input
   (only the CLS token and the kept patches enter the Transformer);
3. EAT's lightweight **CNN decoder** (data2vec 2.0's 2-D decoder: ``decoder_layers`` blocks of a
   grouped ``decoder_kernel`` x ``decoder_kernel`` convolution, channel LayerNorm without affine,
   GELU, residual between blocks, then a linear projection) sees the student's patch outputs at
   their places and small Gaussian noise (``mask_noise_std``) at the masked places, and regresses
   the teacher targets of the **masked** patches (frame-level loss);
4. the student's **CLS output** regresses the mean of the targets over all patches
   (utterance-level loss, weight ``cls_loss``).

Losses follow the release: squared error summed over channels, scaled by ``1 / sqrt(dim)``; the
frame loss averaged over masked patches, the utterance loss summed over clips and weighted by
``cls_loss`` (fairseq divides both by the number of masked patches). Adam with betas
(0.9, 0.95), weight decay 0.05, gradient clipping at 4, cosine schedule, as released; sizes,
steps, learning rate and EMA decays are scaled down for CPU (``asd_utils/configs/standins.yaml``).
The decoder and teacher are pretraining-only and are not saved.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from asd_utils.backbones import load_backbone
from asd_utils.backbones.eat import EAT, eat_preprocess
from asd_utils.pretrain.loop import History, Stopwatch, feature_crops, holdout_split, scheduled_steps
from asd_utils.pretrain.masking import inverse_block_mask
from asd_utils.training.ema import EMA
from asd_utils.training.trainer import build_optimizer

__all__ = ["CNNDecoder", "EATPretrainConfig", "EATPretrainer", "eat_features", "ema_decay_at", "ema_step",
           "layer_targets", "pretrain_eat", "teacher_layer_results"]


@dataclass(frozen=True)
class EATPretrainConfig:
    """Hyper-parameters of EAT pretraining (release values in comments)."""

    size: str = "tiny"
    mask_prob: float = 0.8            # release: 0.8
    mask_length: int = 5              # release: 5 (kept blocks of 5 x 5 patches)
    clone_batch: int = 4              # release: 16
    average_top_k_layers: int = 2     # release: 12 (all layers of the base model)
    cls_loss: float = 1.0             # release: 1
    mask_noise_std: float = 0.01      # release: 0.01
    decoder_dim: int = 64             # release: 768
    decoder_layers: int = 6           # release: 6
    decoder_kernel: int = 3           # release: 3
    decoder_groups: int = 16          # release: 16
    ema_decay: float = 0.998          # release: 0.9998 (400k updates)
    ema_end_decay: float = 0.9999     # release: 0.99999
    steps: int = 300
    batch_size: int = 8               # clips per step (x clone_batch student views)
    crop_frames: int = 256            # 2.56 s: 16 x 8 patches
    lr: float = 0.0005                # release: 5e-4
    weight_decay: float = 0.05        # release: 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 30
    max_grad_norm: float = 4.0        # release: clip_norm 4
    holdout_fraction: float = 0.05
    eval_every: int = 50

    @classmethod
    def from_dict(cls, data: dict) -> EATPretrainConfig:
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(float(b) for b in data["betas"])
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def eat_features(model: EAT, waves: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """EAT's normalised fbank of every clip, all frames kept (cut to a multiple of 16):
    waves (N, samples) -> (N, frames, 128) float16."""
    frames = 1 + (waves.shape[1] - 400) // 160
    config = replace(model.config, target_length=max(16, frames // 16 * 16))
    out = []
    with torch.inference_mode():
        for start in range(0, len(waves), batch_size):
            batch = torch.as_tensor(waves[start : start + batch_size])
            out.append(eat_preprocess(batch, config).squeeze(1).half())
    return torch.cat(out)


class CNNDecoder(nn.Module):
    """EAT's lightweight decoder (data2vec 2.0 ``Decoder2d``): (B, patches, dim) on an
    (n_time, n_freq) grid -> (B, patches, dim) predictions."""

    def __init__(self, dim: int, decoder_dim: int, layers: int, kernel: int, groups: int):
        super().__init__()
        if decoder_dim % groups or dim % groups:
            raise ValueError(f"decoder: dims {dim}/{decoder_dim} must be divisible by groups {groups}")
        self.convs = nn.ModuleList(
            nn.Conv2d(dim if i == 0 else decoder_dim, decoder_dim, kernel, padding=kernel // 2, groups=groups)
            for i in range(layers)
        )
        self.proj = nn.Linear(decoder_dim, dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        h = x.transpose(1, 2).reshape(b, c, grid[0], grid[1])
        residual = h
        for conv in self.convs:
            h = conv(h)
            h = F.layer_norm(h.transpose(1, 3), h.shape[1:2]).transpose(1, 3)  # channel LN, no affine
            h = F.gelu(h)
            if h.shape == residual.shape:
                h = h + residual
            residual = h
        return self.proj(h.flatten(2).transpose(1, 2))


def layer_targets(layer_results: list[torch.Tensor], top_k: int) -> torch.Tensor:
    """data2vec 2.0 targets: the last ``top_k`` of ``layer_results`` (each (B, patches, dim)),
    instance-normalised over patches per channel, averaged, then layer-normalised per patch."""
    chosen = layer_results[-top_k:]
    normed = [F.instance_norm(r.float().transpose(1, 2)).transpose(1, 2) for r in chosen]
    y = torch.stack(normed).mean(dim=0)
    return F.layer_norm(y, y.shape[-1:])


def teacher_layer_results(teacher: EAT, image: torch.Tensor) -> list[torch.Tensor]:
    """The teacher's feed-forward output of every block on the whole input, patches only
    (CLS dropped): image (B, 1, T, 128) -> [(B, patches, dim)] * depth."""
    x = teacher.embed(image)
    results = []
    for block in teacher.blocks:
        x = block.norm1(x + block.attn(x))
        ffn = block.mlp(x)
        results.append(ffn[:, 1:])
        x = block.norm2(x + ffn)
    return results


class EATPretrainer(nn.Module):
    """Student encoder + CNN decoder; the EMA teacher is kept by :class:`asd_utils.training.ema.EMA`."""

    def __init__(self, student: EAT, cfg: EATPretrainConfig):
        super().__init__()
        self.student = student
        self.cfg = cfg
        self.decoder = CNNDecoder(student.dim, cfg.decoder_dim, cfg.decoder_layers, cfg.decoder_kernel,
                                  cfg.decoder_groups)

    def encode_visible(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Student on the kept patches only. image (B, 1, T, 128), mask (B, patches) bool with the
        same number of masked patches per row -> (CLS output (B, dim), kept outputs (B, kept, dim))."""
        s = self.student
        x = s.patch_embed(image).flatten(2).transpose(1, 2)
        x = x + s.pos_embed[:, : x.shape[1]].to(x.dtype)
        b, n, d = x.shape
        kept_idx = torch.nonzero(~mask)[:, 1].reshape(b, -1)
        x = torch.gather(x, 1, kept_idx.unsqueeze(-1).expand(-1, -1, d))
        x = torch.cat([s.cls_token.expand(b, -1, -1).to(x.dtype), x], dim=1)
        x = s.embed_norm(x)
        for block in s.blocks:
            x = block(x)
        return x[:, 0], x[:, 1:]

    def losses(self, image: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
               grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(frame loss, utterance loss) for student views ``image`` (B*clone, 1, T, 128) with masks
        ``mask`` (B*clone, patches) and teacher ``targets`` repeated per view (B*clone, patches, dim)."""
        cls_out, kept_out = self.encode_visible(image, mask)
        b, n = mask.shape
        d = kept_out.shape[-1]
        full = torch.randn(b, n, d, dtype=kept_out.dtype) * self.cfg.mask_noise_std
        kept_idx = torch.nonzero(~mask)[:, 1].reshape(b, -1)
        full = full.scatter(1, kept_idx.unsqueeze(-1).expand(-1, -1, d), kept_out)
        pred = self.decoder(full, grid)
        scale = 1.0 / math.sqrt(d)
        frame = ((pred[mask] - targets[mask]) ** 2).sum(-1).mean() * scale
        utter = ((cls_out - targets.mean(dim=1)) ** 2).sum(-1).sum() * scale * self.cfg.cls_loss
        return frame, utter


def ema_decay_at(step: int, total: int, start: float, end: float) -> float:
    """data2vec's linear EMA anneal from ``start`` to ``end`` over ``total`` steps."""
    if total <= 1:
        return end
    return start + (end - start) * min(1.0, step / (total - 1))


def ema_step(ema: EMA, student: nn.Module, teacher: nn.Module, decay: float) -> None:
    """One teacher update: ``teacher <- decay * teacher + (1 - decay) * student`` (every float
    entry of the state dict), through :class:`asd_utils.training.ema.EMA`."""
    ema.decay = float(decay)
    ema.update(student)
    ema.copy_to(teacher)


def pretrain_eat(features: torch.Tensor, cfg: EATPretrainConfig, *, seed: int = 0, progress: bool = True,
                 initial: EAT | None = None) -> tuple[EAT, History]:
    """Pretrain an EAT stand-in on normalised fbank ``features`` (N, T, 128) (:func:`eat_features`).

    Starts from the untrained stand-in ``load_backbone("eat", size=cfg.size, seed=seed,
    target_length=cfg.crop_frames)`` (or a copy of ``initial``). Returns the student encoder
    (eval mode) and its :class:`History` (``loss`` = frame + utterance loss; ``extras`` holds both
    curves and the held-out losses)."""

    watch = Stopwatch()
    student = copy.deepcopy(initial) if initial is not None else load_backbone(
        "eat", size=cfg.size, seed=seed, target_length=cfg.crop_frames)
    if cfg.crop_frames % 16 or student.config.grid[0] * 16 < cfg.crop_frames:
        raise ValueError(f"EAT pretraining: crop_frames {cfg.crop_frames} must be a multiple of 16 and fit the "
                         f"model's target_length {student.config.target_length}")
    grid = (cfg.crop_frames // 16, student.config.mel_bins // 16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        learner = EATPretrainer(student, cfg)
    teacher = copy.deepcopy(student).eval().requires_grad_(False)
    ema = EMA(student, decay=cfg.ema_decay)
    params = [p for p in learner.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    gen = torch.Generator().manual_seed(int(seed))
    train_rows, held_rows = holdout_split(len(features), cfg.holdout_fraction, seed)
    rows_all = torch.as_tensor(train_rows)
    held = torch.as_tensor(held_rows)
    held_gen = torch.Generator().manual_seed(int(seed) + 1)
    held_image = feature_crops(features, held, cfg.crop_frames, held_gen).unsqueeze(1) if len(held) else None
    held_mask = inverse_block_mask(len(held), grid, cfg.mask_prob, cfg.mask_length, held_gen) if len(held) else None
    history = History(objective="EAT: EMA-teacher regression of masked patches (inverse block masks) + CLS")
    frame_curve, utter_curve, decay_curve = [], [], []
    learner.train()
    for step in scheduled_steps(optimizer, cfg, desc="pretrain eat", progress=progress):
        rows = rows_all[torch.randint(len(rows_all), (cfg.batch_size,), generator=gen)]
        image = feature_crops(features, rows, cfg.crop_frames, gen).unsqueeze(1)
        with torch.no_grad():
            targets = layer_targets(teacher_layer_results(teacher, image), cfg.average_top_k_layers)
        views = image.repeat_interleave(cfg.clone_batch, 0)
        targets = targets.repeat_interleave(cfg.clone_batch, 0)
        mask = inverse_block_mask(len(views), grid, cfg.mask_prob, cfg.mask_length, gen)
        frame, utter = learner.losses(views, targets, mask, grid)
        loss = frame + utter
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        ema_step(ema, student, teacher, ema_decay_at(step, cfg.steps, cfg.ema_decay, cfg.ema_end_decay))
        history.log(step, float(loss.detach()))
        frame_curve.append(float(frame.detach()))
        utter_curve.append(float(utter.detach()))
        decay_curve.append(ema.decay)
        if held_image is not None and (step % cfg.eval_every == 0 or step == cfg.steps - 1):
            learner.eval()
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                held_targets = layer_targets(teacher_layer_results(teacher, held_image), cfg.average_top_k_layers)
                torch.manual_seed(seed)  # the same decoder noise at every evaluation
                f_loss, _ = learner.losses(held_image, held_targets, held_mask, grid)
            history.log_eval(step, float(f_loss))
            learner.train()
    history.extras.update(frame_loss=frame_curve, utterance_loss=utter_curve, ema_decay=decay_curve)
    history.wall_seconds, history.cpu_seconds = watch.wall(), watch.cpu()
    return student.eval(), history
