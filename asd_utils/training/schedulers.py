"""Learning-rate schedules: linear warm-up followed by a constant, cosine or inverse-sqrt phase.

Every schedule is a multiplier ``f(step)`` of the optimizer's base learning rate, applied through
``torch.optim.lr_scheduler.LambdaLR``; ``step`` counts optimizer steps from 0 (the value used for
the first update). With ``W = warmup_steps`` and ``T = total_steps``:

- warm-up (all schedules, when ``W > 0`` and ``step < W``): ``f = (step + 1) / W``
  (so the first update already uses ``base / W`` instead of a wasted zero step, and step ``W - 1``
  reaches the full rate);
- ``constant``:      ``f = 1``;
- ``cosine``:        ``f = min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(pi * p))`` with
  ``p = clamp((step - W) / max(1, T - W), 0, 1)``, so the rate decays from ``base`` to
  ``base * min_ratio`` at step ``T`` and stays there;
- ``inverse_sqrt``:  ``f = sqrt(W / (step + 1))`` after the warm-up, i.e. the "Noam" schedule
  ``f = min((step + 1) / W, sqrt(W / (step + 1)))``, continuous at ``step + 1 = W``
  (with ``W = 0`` it is ``1 / sqrt(step + 1)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SCHEDULES = ("constant", "cosine", "inverse_sqrt")


def lr_multiplier(name: str, warmup_steps: int = 0, total_steps: int | None = None,
                  min_ratio: float = 0.0) -> Callable[[int], float]:
    """The multiplier ``f(step)`` of the module docstring for schedule ``name``."""
    name = name.lower().replace("-", "_")
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {SCHEDULES}")
    warmup = int(warmup_steps)
    if warmup < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if name == "cosine" and total_steps is None:
        raise ValueError("the cosine schedule needs total_steps")
    total = int(total_steps) if total_steps is not None else 0

    def multiplier(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if name == "constant":
            return 1.0
        if name == "cosine":
            progress = min(max((step - warmup) / max(1, total - warmup), 0.0), 1.0)
            return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return math.sqrt(max(warmup, 1) / (step + 1))

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, name: str = "constant", warmup_steps: int = 0,
                    total_steps: int | None = None, *, min_ratio: float = 0.0
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over ``optimizer`` for schedule ``name`` (``constant``, ``cosine``, ``inverse_sqrt``).

    Call ``scheduler.step()`` once after each ``optimizer.step()``.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(name, warmup_steps, total_steps, min_ratio=min_ratio))
