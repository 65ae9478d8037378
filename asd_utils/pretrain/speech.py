"""wav2vec 2.0 pretraining of the speech stand-in through ``transformers``' own
``Wav2Vec2ForPreTraining`` (Baevski et al., NeurIPS 2020): masked spans of the latent frames,
contrastive loss against ``num_negatives`` distractors drawn from the same clip, the targets being
the Gumbel-softmax product quantiser's codes, plus the codebook diversity loss
(``diversity_loss_weight``). Masks and negatives come from transformers' own
``_compute_mask_indices`` / ``_sample_negative_indices``; the Gumbel temperature decays from
``max_gumbel_temperature`` to ``min_gumbel_temperature`` as in the paper's schedule.

HuBERT, WavLM and UniSpeech-SAT are left **untrained** (labelled "untrained stand-in") by choice:

- HuBERT and WavLM pretrain by masked prediction of offline k-means cluster labels (MFCC k-means,
  then k-means of a previous iteration's features; WavLM adds utterance mixing). ``transformers``
  ships no pretraining head or loss for either; an imitation would be our own objective wearing
  their names.
- UniSpeech-SAT's ``UniSpeechSatForPreTraining`` in ``transformers`` computes no loss (its
  speaker-aware contrastive objective is not implemented there).

Pretraining them with wav2vec 2.0's loss instead would misdescribe them, so they stay untrained
and the provenance label says so.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
import transformers
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

from asd_utils.backbones import load_backbone
from asd_utils.pretrain.loop import History, Stopwatch, holdout_split, scheduled_steps
from asd_utils.training.trainer import build_optimizer

__all__ = ["UNTRAINED_SPEECH_MODELS", "Wav2Vec2PretrainConfig", "pretrain_wav2vec2", "wav2vec2_pretraining_model"]

UNTRAINED_SPEECH_MODELS = ("hubert", "wavlm", "unispeech_sat")


@dataclass(frozen=True)
class Wav2Vec2PretrainConfig:
    """Hyper-parameters (paper values for the base model in comments)."""

    size: str = "tiny"
    num_codevector_groups: int = 2        # paper: G = 2
    num_codevectors_per_group: int = 64   # paper: V = 320
    codevector_dim: int = 32              # paper: 256
    proj_codevector_dim: int = 32         # paper: 256
    mask_time_prob: float = 0.65          # paper: p = 0.065 start probability x span 10 = ~49 % masked
    mask_time_length: int = 10            # paper: M = 10 frames
    num_negatives: int = 20               # paper: K = 100
    contrastive_logits_temperature: float = 0.1
    diversity_loss_weight: float = 0.1
    max_gumbel_temperature: float = 2.0
    min_gumbel_temperature: float = 0.5
    gumbel_temperature_decay: float = 0.995
    steps: int = 150
    batch_size: int = 8
    crop_seconds: float = 2.0
    lr: float = 0.0005
    weight_decay: float = 0.01
    warmup_steps: int = 20
    max_grad_norm: float = 5.0
    holdout_fraction: float = 0.05
    eval_every: int = 25

    @classmethod
    def from_dict(cls, data: dict) -> Wav2Vec2PretrainConfig:
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def wav2vec2_pretraining_model(cfg: Wav2Vec2PretrainConfig, *, seed: int = 0):
    """``Wav2Vec2ForPreTraining`` whose encoder is the untrained stand-in
    ``load_backbone("wav2vec2", size=cfg.size, seed=seed)`` (same weights), with the quantiser of
    ``cfg``."""


    standin = load_backbone("wav2vec2", size=cfg.size, seed=seed)
    config = copy.deepcopy(standin.model.config)
    config.num_codevector_groups = cfg.num_codevector_groups
    config.num_codevectors_per_group = cfg.num_codevectors_per_group
    config.codevector_dim = cfg.codevector_dim
    config.proj_codevector_dim = cfg.proj_codevector_dim
    config.num_negatives = cfg.num_negatives
    config.contrastive_logits_temperature = cfg.contrastive_logits_temperature
    config.diversity_loss_weight = cfg.diversity_loss_weight
    config.mask_time_prob = cfg.mask_time_prob
    config.mask_time_length = cfg.mask_time_length
    config.apply_spec_augment = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Wav2Vec2ForPreTraining(config)
    model.wav2vec2.load_state_dict(standin.model.state_dict(), strict=True)
    return model, standin


def _normalise(waves: torch.Tensor) -> torch.Tensor:
    """Per-clip zero mean, unit variance (``do_normalize``, as the backbone's preprocessing)."""
    mean = waves.mean(dim=-1, keepdim=True)
    var = waves.var(dim=-1, keepdim=True, unbiased=False)
    return (waves - mean) / torch.sqrt(var + 1e-7)


def _step_inputs(model, waves: torch.Tensor, rng: np.random.Generator):
    """Masks and negatives for a batch (numpy RNG seeded by the caller, so runs repeat)."""

    cfg = model.config
    seq_len = int(model._get_feat_extract_output_lengths(torch.tensor(waves.shape[1])))
    state = np.random.get_state()
    np.random.seed(int(rng.integers(2**31 - 1)))  # transformers draws from numpy's global RNG
    try:
        mask = _compute_mask_indices((waves.shape[0], seq_len), mask_prob=cfg.mask_time_prob,
                                     mask_length=cfg.mask_time_length, min_masks=2)
        negatives = _sample_negative_indices((waves.shape[0], seq_len), cfg.num_negatives,
                                             mask_time_indices=mask)
    finally:
        np.random.set_state(state)
    return torch.as_tensor(mask, dtype=torch.bool), torch.as_tensor(negatives, dtype=torch.long)


def pretrain_wav2vec2(waves: np.ndarray, cfg: Wav2Vec2PretrainConfig, *, seed: int = 0,
                      progress: bool = True):
    """Pretrain the wav2vec 2.0 stand-in on raw waveforms (N, samples) float32 at 16 kHz.

    Returns (``Wav2Vec2ForPreTraining`` in eval mode, :class:`History`; ``accuracy`` = fraction of
    masked frames whose true quantised target has the highest similarity among the candidates)."""
    watch = Stopwatch()
    model, _ = wav2vec2_pretraining_model(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    train_rows, held_rows = holdout_split(len(waves), cfg.holdout_fraction, seed)
    crop = int(round(cfg.crop_seconds * 16000))
    if crop > waves.shape[1]:
        raise ValueError(f"wav2vec2 pretraining: crop of {crop} samples from clips of {waves.shape[1]}")
    all_waves = torch.as_tensor(waves)

    def crops(rows: np.ndarray, g: torch.Generator) -> torch.Tensor:
        starts = torch.randint(0, all_waves.shape[1] - crop + 1, (len(rows),), generator=g)
        return _normalise(torch.stack([all_waves[r, s : s + crop] for r, s in zip(rows, starts.tolist())]).float())

    held_gen = torch.Generator().manual_seed(int(seed) + 1)
    held = crops(held_rows, held_gen) if len(held_rows) else None
    held_inputs = _step_inputs(model, held, np.random.default_rng(seed + 1)) if held is not None else None
    optimizer = build_optimizer(model.parameters(), "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = History(objective="wav2vec 2.0: contrastive loss over quantised latents + diversity loss")
    model.train()
    for step in scheduled_steps(optimizer, cfg, desc="pretrain wav2vec2", progress=progress):
        temperature = max(cfg.max_gumbel_temperature * cfg.gumbel_temperature_decay**step, cfg.min_gumbel_temperature)
        model.set_gumbel_temperature(temperature)
        rows = train_rows[rng.integers(len(train_rows), size=cfg.batch_size)]
        batch = crops(rows, gen)
        mask, negatives = _step_inputs(model, batch, rng)
        out = model(batch, mask_time_indices=mask, sampled_negative_indices=negatives)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        history.log(step, float(out.loss.detach()), _contrastive_accuracy(model, out, mask, negatives))
        if held is not None and (step % cfg.eval_every == 0 or step == cfg.steps - 1):
            model.eval()
            with torch.no_grad():
                held_out = model(held, mask_time_indices=held_inputs[0], sampled_negative_indices=held_inputs[1])
            history.log_eval(step, float(held_out.loss),
                             _contrastive_accuracy(model, held_out, held_inputs[0], held_inputs[1]))
            model.train()
    history.wall_seconds, history.cpu_seconds = watch.wall(), watch.cpu()
    return model.eval(), history


@torch.no_grad()
def _contrastive_accuracy(model, out, mask: torch.Tensor, negatives: torch.Tensor) -> float:
    """Share of masked frames whose positive (the frame's own quantised latent) is the most similar
    candidate to the projected context vector (ties, e.g. a negative equal to the positive, count as
    wrong)."""
    transformed = out.projected_states  # project_hid(context), (B, T, D)
    quantized = out.projected_quantized_states  # (B, T, D)
    b, t, d = quantized.shape
    neg = quantized.view(-1, d)[negatives.view(-1)].view(b, t, -1, d)  # (B, T, K, D)
    candidates = torch.cat([quantized.unsqueeze(2), neg], dim=2)
    sims = torch.cosine_similarity(transformed.unsqueeze(2), candidates, dim=-1)  # (B, T, 1 + K)
    correct = sims[..., 0] > sims[..., 1:].max(dim=-1).values
    return float(correct[mask].float().mean())
