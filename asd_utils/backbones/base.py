"""The common shape of every backbone (see CONTRIBUTING.md, Backbone contract)."""

from __future__ import annotations

import torch
from torch import nn

from asd_utils.backbones.provenance import STANDIN_PRETRAINED


class Backbone(nn.Module):
    """Base class: a pretrained-style audio encoder that exposes all its hidden states.

    Subclasses set ``name``, ``size``, ``num_layers``, ``dim``, ``pretrained`` (True only when
    weights were loaded from a checkpoint) and ``checkpoint_sha256``, and implement
    ``hidden_states``.
    """

    name: str = ""
    size: str = "base"
    num_layers: int = 0
    dim: int = 0
    pretrained: bool = False
    checkpoint_sha256: str | None = None
    sample_rate: int = 16000

    def hidden_states(self, waves: torch.Tensor) -> list[torch.Tensor]:
        """waves: (batch, samples) float32 at 16 kHz -> [input, layer 1, ..., layer L],
        each (batch, tokens, dim). Differentiable; callers wrap in ``torch.inference_mode``."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for tables and figure captions, e.g. 'beats-base (untrained stand-in)'."""
        if getattr(self, "standin_marker", None):

            origin = STANDIN_PRETRAINED
        else:
            origin = "published checkpoint" if self.pretrained else "untrained stand-in, random weights"
        return f"{self.name}-{self.size} ({origin})"
