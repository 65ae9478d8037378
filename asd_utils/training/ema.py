"""Exponential moving average of a model's weights, on ``torch.optim.swa_utils.AveragedModel``.

torch's ``AveragedModel`` with ``get_ema_multi_avg_fn(decay)`` does the averaging (a ``lerp`` of
every floating-point parameter and buffer); :class:`EMA` keeps the interface the trainer uses
(``update``, ``copy_to``, ``averaged_model``, ``state_dict``) and two rules of its own: the average
starts from the weights the model has when the EMA is made, and integer buffers are copied.
The ``lerp`` rounds differently from the former hand-written ``mul_``/``add_``: the same weights
within a few units in the last place per update, not bit for bit, which moved the EAT stand-in and
the XJU rows built on it by less than their bootstrap intervals (``CHANGELOG.md``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class EMA:
    """Shadow copy ``theta_ema <- decay * theta_ema + (1 - decay) * theta`` of a model's state.

    Every floating-point entry of ``model.state_dict()`` (parameters and float buffers such as
    batch-norm running statistics) is averaged; integer buffers (``num_batches_tracked``) are
    copied. With ``warmup=True`` the effective decay is ``min(decay, (1 + n) / (10 + n))`` after
    ``n`` updates, so early averages are not dominated by the random initialisation.

    ``averaged``: the ``AveragedModel`` (its ``module`` carries the averaged weights).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = False):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        # AveragedModel's first update copies the model: the average starts here, not at the first update
        self.averaged.update_parameters(model)

    @property
    def num_updates(self) -> int:
        """Updates folded in since the EMA was made."""
        return int(self.averaged.n_averaged) - 1

    @property
    def shadow(self) -> dict[str, torch.Tensor]:
        """The averaged ``state_dict`` (live tensors, keyed as ``model.state_dict()``)."""
        return self.averaged.module.state_dict()

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average."""
        self.averaged.multi_avg_fn = get_ema_multi_avg_fn(self.current_decay())
        self.averaged.update_parameters(model)
        # get_ema_multi_avg_fn leaves integer buffers as they were: take the model's
        for mine, theirs in zip(self.averaged.module.buffers(), model.buffers(), strict=True):
            if not (mine.dtype.is_floating_point or mine.dtype.is_complex):
                mine.copy_(theirs)

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
        self.averaged.to(device)
        return self

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        shadow = self.shadow
        missing = set(shadow) ^ set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state does not match the model; differing keys: {sorted(missing)[:5]}")
        for key, value in state["shadow"].items():
            shadow[key].copy_(value)
        self.averaged.n_averaged.fill_(int(state["num_updates"]) + 1)
