"""Wilkinghoff's self-supervision for ASD: StatEx, FeatEx and the C / 3C / 9C heads.

After K. Wilkinghoff, "Self-supervised learning for anomalous sound detection", ICASSP 2024
(public code ``wilkinghoff/ssl4asd``, read for the definitions; written anew here). A batch of
``B`` clips with soft targets ``y (B, C)`` (one-hot or mixed by mixup) is augmented twice:

1. **StatEx** (:func:`statex`, :func:`statex_targets`), on the spectrogram ``X (B, F, T)``: with
   probability ``p`` a sample's *temporal statistics* -- the mean and the standard deviation over
   the frequency axis of every frame, two curves over time -- are replaced by those of its
   partner, the batch-reversed sample ``P = X[B - 1 - i]``::

       X'_i = (X_i - mu_i) / (sigma_i + eps) * sigma_P + mu_P,   mu, sigma: (1, T) per sample

   (ssl4asd computes these statistics along the frequency axis of its ``(B, T, F, 1)``
   spectrogram, its "temporal" exchange; the frequency-axis variant is switched off there).
   The targets grow to ``3C`` columns: unchanged samples ``[y_i, 0, 0]``, exchanged samples
   ``[0, y_i / 2, y_P / 2]``.
2. **FeatEx** (:func:`featex`, :func:`featex_targets`), on the two branch embeddings: with
   probability ``p`` the spectrogram-branch embedding of a sample is replaced by its batch-reversed
   partner's, the |FFT|-branch embedding is kept. The ``3C`` targets grow to ``9C`` the same way:
   ``[t_i, 0, 0]`` or ``[0, t_i / 2, t_P / 2]``.

Three sub-cluster AdaCos heads (:class:`SelfSupervisedHeads`) classify the plain embedding into
the ``C`` classes (mixup targets), the plain embedding into ``3C`` (StatEx targets) and the
FeatEx embedding into ``9C``; ssl4asd weighs their losses ``[1, 0, 1]`` and keeps the centres of
the C head fixed, those of the 3C and 9C heads trainable.

The model packs what the heads need into one tensor (:func:`pack_ssl_outputs`), so the generic
:class:`asd_utils.training.Trainer` (``loss_fn(model(x), y)``, with its mixup on the waveforms)
trains it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from asd_utils.training.losses import SubClusterAdaCos, soft_targets

__all__ = [
    "SelfSupervisedHeads",
    "exchange_targets",
    "featex",
    "featex_targets",
    "pack_ssl_outputs",
    "statex",
    "statex_targets",
    "temporal_statistics",
    "unpack_ssl_outputs",
]

STATEX_EPS = 1e-12


def _draw(batch: int, prob: float, device, generator: torch.Generator | None) -> torch.Tensor:
    if prob <= 0.0:
        return torch.zeros(batch, dtype=torch.bool, device=device)
    if prob >= 1.0:
        return torch.ones(batch, dtype=torch.bool, device=device)
    return (torch.rand(batch, generator=generator) < prob).to(device)


def temporal_statistics(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``spec (B, F, T)`` -> ``(mean, std)``, each ``(B, 1, T)``: per frame, over frequency
    (population standard deviation, as ``tf.math.reduce_std``)."""
    if spec.dim() != 3:
        raise ValueError(f"spectrogram must be (batch, freq, time), got shape {tuple(spec.shape)}")
    return spec.mean(dim=1, keepdim=True), spec.std(dim=1, keepdim=True, unbiased=False)


def statex(spec: torch.Tensor, prob: float, *, generator: torch.Generator | None = None,
           mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Statistics exchange on ``spec (B, F, T)``.

    Each sample is exchanged with probability ``prob`` (or where ``mask (B,) bool`` is True): it is
    standardised with its own per-frame mean/std over frequency and given those of its partner
    ``spec.flip(0)``. Returns ``(spec', exchanged (B,) bool)``; unexchanged rows are unchanged.
    """
    mean, std = temporal_statistics(spec)
    if mask is None:
        mask = _draw(spec.shape[0], prob, spec.device, generator)
    mask = mask.to(device=spec.device, dtype=torch.bool)
    if not bool(mask.any()):
        return spec, mask
    exchanged = (spec - mean) / (std + STATEX_EPS) * std.flip(0) + mean.flip(0)
    return torch.where(mask.view(-1, 1, 1), exchanged, spec), mask


def exchange_targets(targets: torch.Tensor, exchanged: torch.Tensor) -> torch.Tensor:
    """``targets (B, K)`` -> ``(B, 3K)``: ``[t_i, 0, 0]`` for kept samples and
    ``[0, t_i / 2, t_P / 2]`` (``P`` = batch-reversed partner) for exchanged ones."""
    if targets.dim() != 2:
        raise ValueError(f"targets must be (batch, classes), got shape {tuple(targets.shape)}")
    t = targets.float()
    zeros = torch.zeros_like(t)
    kept = torch.cat([t, zeros, zeros], dim=1)
    swapped = torch.cat([zeros, 0.5 * t, 0.5 * t.flip(0)], dim=1)
    return torch.where(exchanged.to(t.device).view(-1, 1), swapped, kept)


def statex_targets(targets: torch.Tensor, exchanged: torch.Tensor) -> torch.Tensor:
    """The ``3C`` targets after :func:`statex`: ``exchange_targets(y (B, C), exchanged)``."""
    return exchange_targets(targets, exchanged)


def featex(spec_emb: torch.Tensor, prob: float, *, generator: torch.Generator | None = None,
           mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature exchange: ``spec_emb (B, D)`` -> ``(spec_emb', exchanged (B,) bool)`` where exchanged
    rows carry the batch-reversed partner's spectrogram-branch embedding (the |FFT| embedding is not
    touched here: the caller concatenates it unchanged)."""
    if mask is None:
        mask = _draw(spec_emb.shape[0], prob, spec_emb.device, generator)
    mask = mask.to(device=spec_emb.device, dtype=torch.bool)
    return torch.where(mask.view(-1, 1), spec_emb.flip(0), spec_emb), mask


def featex_targets(targets_3c: torch.Tensor, exchanged: torch.Tensor) -> torch.Tensor:
    """The ``9C`` targets after :func:`featex`: ``exchange_targets(t (B, 3C), exchanged)``."""
    return exchange_targets(targets_3c, exchanged)


def pack_ssl_outputs(embedding: torch.Tensor, featex_embedding: torch.Tensor, statex_mask: torch.Tensor,
                     featex_mask: torch.Tensor) -> torch.Tensor:
    """``(B, D), (B, D), (B,), (B,)`` -> ``(B, 2D + 2)``: plain embedding, FeatEx embedding, flags."""
    flags = torch.stack([statex_mask, featex_mask], dim=1).to(embedding.dtype)
    return torch.cat([embedding, featex_embedding, flags], dim=1)


def unpack_ssl_outputs(packed: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor]:
    """Inverse of :func:`pack_ssl_outputs` for embeddings of size ``dim``."""
    if packed.dim() != 2 or packed.shape[1] != 2 * dim + 2:
        raise ValueError(f"packed outputs must be (batch, {2 * dim + 2}), got {tuple(packed.shape)}")
    return packed[:, :dim], packed[:, dim:2 * dim], packed[:, 2 * dim] > 0.5, packed[:, 2 * dim + 1] > 0.5


class SelfSupervisedHeads(nn.Module):
    """The C / 3C / 9C sub-cluster AdaCos heads, as a loss: ``heads(packed, y) -> scalar``.

    Args:
        n_classes: ``C``.
        dim: embedding size ``D`` (both branches together).
        n_subclusters: centres per class (ssl4asd: 16).
        loss_weights: weights of the C, 3C and 9C losses (ssl4asd: ``[1, 0, 1]``); a head with
            weight 0 is not evaluated.
        trainable: whether each head's centres are trained (ssl4asd: ``[False, True, True]``).

    ``packed``: ``(B, 2D + 2)`` from the model in training mode (:func:`pack_ssl_outputs`) or a
    plain ``(B, D)`` embedding (then only the C head is evaluated, e.g. for diagnostics); ``y``:
    ``(B,)`` int64 or ``(B, C)`` soft targets (mixup). The loss is
    ``w1 L_C(e, y) + w2 L_3C(e, statex_targets(y)) + w3 L_9C(e_featex, featex_targets(...))``.
    ``logits(embedding)`` gives the C head's per-class cosines (``asd_utils.training.losses`` interface).
    """

    def __init__(self, n_classes: int, dim: int, *, n_subclusters: int = 16,
                 loss_weights: Sequence[float] = (1.0, 0.0, 1.0),
                 trainable: Sequence[bool] = (False, True, True), b_avg: str = "non_target"):
        super().__init__()

        if len(loss_weights) != 3 or len(trainable) != 3:
            raise ValueError("loss_weights and trainable need three entries (C, 3C, 9C heads)")
        if any(float(w) < 0 for w in loss_weights) or sum(float(w) for w in loss_weights) <= 0:
            raise ValueError(f"loss_weights must be >= 0 with a positive sum, got {list(loss_weights)}")
        self.n_classes = int(n_classes)
        self.dim = int(dim)
        self.loss_weights = [float(w) for w in loss_weights]
        self.heads = nn.ModuleList([
            SubClusterAdaCos(self.n_classes * factor, int(n_subclusters), self.dim, trainable_centres=bool(train),
                             b_avg=b_avg)
            for factor, train in zip((1, 3, 9), trainable)
        ])

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` -> ``(B, C)`` cosine to the closest centre of every class of the C head."""
        return self.heads[0].logits(embeddings)

    def forward(self, packed: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:

        y = soft_targets(labels, self.n_classes).to(packed.device)
        if packed.shape[1] == self.dim:
            return self.heads[0](packed, y)
        emb, emb_featex, statex_mask, featex_mask = unpack_ssl_outputs(packed, self.dim)
        total = packed.new_zeros(())
        if self.loss_weights[0] > 0:
            total = total + self.loss_weights[0] * self.heads[0](emb, y)
        if self.loss_weights[1] > 0 or self.loss_weights[2] > 0:
            y3 = statex_targets(y, statex_mask)
            if self.loss_weights[1] > 0:
                total = total + self.loss_weights[1] * self.heads[1](emb, y3)
            if self.loss_weights[2] > 0:
                total = total + self.loss_weights[2] * self.heads[2](emb_featex, featex_targets(y3, featex_mask))
        return total
