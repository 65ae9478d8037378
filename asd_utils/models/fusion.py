"""Branch-fusion embedding model: pretrained audio encoders and the |FFT| branch, concatenated.

Report 003 (XJU, DCASE 2025) builds every system from 128-d branches that each map the waveform
to an embedding, concatenated into one vector that a classification head is trained on:

- a **pretrained branch** (:class:`PretrainedBranch`): a backbone from
  ``asd_utils.backbones.load_backbone`` (BEATs, EAT, ...), one hidden layer pooled over tokens
  (mean, or EAT's CLS token) and projected by a linear layer to ``out_dim``;
- the **|FFT| branch** (:class:`asd_utils.models.FFTBranch`): the amplitude spectrum of the whole
  input segment through strided 1-D convolutions to ``out_dim``.

:class:`FusionModel` concatenates its branches in the given order. A branch may be normalised
before the concatenation (``normalise={name: "l2" | "layernorm"}``; report 003 normalises the
|FFT| branch of its three-branch system). ``attach_spec_augment`` makes the pretrained branches see
SpecAugment-masked fbanks in training mode.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from asd_utils.backbones.pooling import cls_pool, max_pool, mean_pool

__all__ = ["NORMALISATIONS", "POOLINGS", "FusionModel", "PretrainedBranch", "attach_spec_augment",
           "patch_embedding_module"]

POOLINGS = ("mean", "cls", "max")
NORMALISATIONS = ("none", "l2", "layernorm")


def _pool(h: torch.Tensor, pooling: str) -> torch.Tensor:

    return {"mean": mean_pool, "cls": cls_pool, "max": max_pool}[pooling](h)


class PretrainedBranch(nn.Module):
    """``waves (B, T) float32 16 kHz -> (B, out_dim)``: a backbone's hidden layer ``layer``
    (``-1`` = last), pooled over tokens (``mean``, ``cls`` (first token) or ``max``), then
    ``Linear(backbone.dim, out_dim)``. Every backbone weight stays trainable (fine-tuning)."""

    def __init__(self, backbone: nn.Module, out_dim: int = 128, *, layer: int = -1, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.backbone = backbone
        self.layer = int(layer)
        self.pooling = pooling
        self.projection = nn.Linear(int(backbone.dim), int(out_dim))
        self.out_dim = int(out_dim)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.projection(_pool(self.backbone.hidden_states(waves)[self.layer], self.pooling))


class FusionModel(nn.Module):
    """Concatenation of branch embeddings: ``waves (B, T) -> (B, sum of out_dim)``.

    Args:
        branches: ``{name: module}`` in concatenation order; each maps ``(B, T)`` waveforms to
            ``(B, module.out_dim)``.
        normalise: ``{name: "none" | "l2" | "layernorm"}``: ``l2`` divides the branch output by
            its Euclidean norm, ``layernorm`` standardises it over its dimensions (no affine
            parameters); both are per sample, so they do not couple the clips of a batch.

    ``branch_slices[name]`` is the slice of the fused vector that branch fills.
    """

    def __init__(self, branches: Mapping[str, nn.Module], *, normalise: Mapping[str, str] | None = None):
        super().__init__()
        if not branches:
            raise ValueError("FusionModel needs at least one branch")
        normalise = dict(normalise or {})
        unknown = sorted(set(normalise) - set(branches))
        if unknown:
            raise ValueError(f"normalise names unknown branches {unknown}; branches: {list(branches)}")
        for name, how in normalise.items():
            if how not in NORMALISATIONS:
                raise ValueError(f"normalisation of {name!r} must be one of {NORMALISATIONS}, got {how!r}")
        self.branches = nn.ModuleDict(dict(branches))
        self.normalise = {name: normalise.get(name, "none") for name in self.branches}
        self.branch_slices: dict[str, slice] = {}
        start = 0
        for name, module in self.branches.items():
            dim = int(module.out_dim)
            self.branch_slices[name] = slice(start, start + dim)
            start += dim
        self.dim = start

    def branch_outputs(self, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: (B, out_dim)}`` after each branch's normalisation."""
        out = {}
        for name, module in self.branches.items():
            x = module(waves).float()
            how = self.normalise[name]
            if how == "l2":
                x = F.normalize(x, dim=1)
            elif how == "layernorm":
                x = F.layer_norm(x, x.shape[-1:])
            out[name] = x
        return out

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return torch.cat(list(self.branch_outputs(waves).values()), dim=1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def patch_embedding_module(backbone: nn.Module) -> nn.Module:
    """The module that turns a backbone's normalised fbank image ``(B, 1, frames, mel_bins)`` into
    patch tokens: ``patch_embedding`` (BEATs) or ``patch_embed`` (EAT)."""
    for attr in ("patch_embedding", "patch_embed"):
        module = getattr(backbone, attr, None)
        if isinstance(module, nn.Module):
            return module
    raise ValueError(f"{type(backbone).__name__} has no fbank patch embedding (patch_embedding / patch_embed); "
                     "SpecAugment can be attached to BEATs and EAT only")


def _spec_augment_pre_hook(spec_augment, module: nn.Module, args):
    if not module.training:
        return None
    return (spec_augment.augment(args[0]),) + tuple(args[1:])


def attach_spec_augment(backbone: nn.Module, spec_augment) -> torch.utils.hooks.RemovableHandle:
    """Apply ``spec_augment.augment`` to the fbank image entering the backbone's patch embedding,
    whenever that module is in training mode (``model.train()``); eval mode sees the clean input.

    The hook follows the mode of the hooked module itself, so an EMA copy of the model (a deep
    copy, in eval mode) is never augmented. Returns the hook handle (``handle.remove()`` detaches).
    """
    return patch_embedding_module(backbone).register_forward_pre_hook(
        functools.partial(_spec_augment_pre_hook, spec_augment))
