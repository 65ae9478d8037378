"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Shadow copy ``theta_ema <- decay * theta_ema + (1 - decay) * theta`` of a model's state.

    Every floating-point entry of ``model.state_dict()`` (parameters and float buffers such as
    batch-norm running statistics) is averaged; integer buffers (``num_batches_tracked``) are
    copied. With ``warmup=True`` the effective decay is ``min(decay, (1 + n) / (10 + n))`` after
    ``n`` updates, so early averages are not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = False):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average."""
        decay = self.current_decay()
        for key, value in model.state_dict().items():
            shadow = self.shadow[key]
            if shadow.dtype.is_floating_point:
                shadow.mul_(decay).add_(value.detach().to(shadow.dtype), alpha=1.0 - decay)
            else:
                shadow.copy_(value)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's weights with the averaged ones."""
        model.load_state_dict(self.shadow, strict=True)

    def averaged_model(self, model: nn.Module) -> nn.Module:
        """A deep copy of ``model`` carrying the averaged weights (``model`` is unchanged)."""
        clone = copy.deepcopy(model)
        self.copy_to(clone)
        return clone

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        return self

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state does not match the model; differing keys: {sorted(missing)[:5]}")
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)
