"""Learning-rate schedules: linear warm-up followed by a constant, cosine or inverse-sqrt phase.

The values come from transformers' schedules (``get_constant_schedule_with_warmup``,
``get_cosine_with_min_lr_schedule_with_warmup``, ``get_inverse_sqrt_schedule``); this module only
fixes how their step counter lines up with ours. Every schedule is a multiplier ``f(step)`` of the
optimizer's base learning rate, applied through ``torch.optim.lr_scheduler.LambdaLR``; ``step``
counts optimizer steps from 0 (the value used for the first update). With ``W = warmup_steps`` and
``T = total_steps``:

- warm-up (all schedules, when ``W > 0`` and ``step < W``): ``f = (step + 1) / W``, transformers'
  linear warm-up read one step on (so the first update already uses ``base / W`` instead of a
  wasted zero step, and step ``W - 1`` reaches the full rate);
- ``constant``:      ``f = 1``;
- ``cosine``:        ``f = min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(pi * p))`` with
  ``p = clamp((step - W) / max(1, T - W), 0, 1)``, so the rate decays from ``base`` to
  ``base * min_ratio`` at step ``T`` and stays there (transformers' cosine rises again after
  ``T``: the step is held at the end of the decay);
- ``inverse_sqrt``:  ``f = sqrt(W / (step + 1))`` after the warm-up, i.e. the "Noam" schedule
  ``f = min((step + 1) / W, sqrt(W / (step + 1)))``, continuous at ``step + 1 = W``
  (with ``W = 0`` it is ``1 / sqrt(step + 1)``): transformers' ``1 / sqrt((x + shift) / timescale)``
  with ``timescale = max(W, 1)`` and ``shift = 1``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SCHEDULES = ("constant", "cosine", "inverse_sqrt")


def _library_multiplier(make_schedule: Callable[..., torch.optim.lr_scheduler.LambdaLR], **kwargs
                        ) -> Callable[[int], float]:
    """The multiplier ``f(step)`` of the transformers schedule ``make_schedule(optimizer, **kwargs)``."""
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    return make_schedule(probe, **kwargs).lr_lambdas[0]


def lr_multiplier(name: str, warmup_steps: int = 0, total_steps: int | None = None,
                  min_ratio: float = 0.0) -> Callable[[int], float]:
    """The multiplier ``f(step)`` of the module docstring for schedule ``name``."""
    # heavy: importing transformers takes seconds and loads torch._inductor (which seeding must not
    # force on every import of asd_utils.training), so it is imported when a schedule is built
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_with_min_lr_schedule_with_warmup,
        get_inverse_sqrt_schedule,
    )

    name = name.lower().replace("-", "_")
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {SCHEDULES}")
    warmup = int(warmup_steps)
    if warmup < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if name == "cosine" and total_steps is None:
        raise ValueError("the cosine schedule needs total_steps")
    # transformers' warm-up is step / W from step 0; ours is (step + 1) / W: read it one step on
    warm = _library_multiplier(get_constant_schedule_with_warmup, num_warmup_steps=warmup)
    if name == "constant":
        after = warm
    elif name == "cosine":
        total = int(total_steps)
        decay = _library_multiplier(get_cosine_with_min_lr_schedule_with_warmup, num_warmup_steps=warmup,
                                    num_training_steps=total, min_lr_rate=float(min_ratio))
        end = warmup + max(1, total - warmup)  # progress 1: held from here on

        def after(step: int) -> float:
            return decay(min(step, end))
    else:
        # transformers: 1 / sqrt((step + timescale - W') / timescale) for step >= W'; with
        # timescale = max(W, 1) and W' = timescale - 1 this is sqrt(max(W, 1) / (step + 1))
        timescale = max(warmup, 1)
        after = _library_multiplier(get_inverse_sqrt_schedule, num_warmup_steps=timescale - 1, timescale=timescale)

    def multiplier(step: int) -> float:
        if step < warmup:
            return warm(step + 1)
        return after(step)

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, name: str = "constant", warmup_steps: int = 0,
                    total_steps: int | None = None, *, min_ratio: float = 0.0
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over ``optimizer`` for schedule ``name`` (``constant``, ``cosine``, ``inverse_sqrt``).

    Call ``scheduler.step()`` once after each ``optimizer.step()``.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(name, warmup_steps, total_steps, min_ratio=min_ratio))
