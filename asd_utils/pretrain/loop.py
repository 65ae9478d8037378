"""Pieces every pretraining objective shares: crops of precomputed features, the learning-rate
schedule, a held-out split of the corpus, and the training history (loss curves, timings)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from asd_utils.training.schedulers import lr_multiplier

#: the pretraining decay ends at this share of ``cfg.lr``
FINAL_LR_RATIO = 0.05

__all__ = ["History", "Stopwatch", "feature_crops", "holdout_split", "scheduled_steps"]


def feature_crops(features: torch.Tensor, rows: torch.Tensor, frames: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crops of ``frames`` frames: features (N, T, F) -> (len(rows), frames, F) float32.

    One random start per crop; ``frames`` must not exceed T."""
    n_frames = features.shape[1]
    if frames > n_frames:
        raise ValueError(f"crop of {frames} frames asked from features of {n_frames} frames")
    starts = torch.randint(0, n_frames - frames + 1, (len(rows),), generator=generator)
    index = starts[:, None] + torch.arange(frames)[None, :]
    return features[rows[:, None], index].float()


def scheduled_steps(optimizer: torch.optim.Optimizer, cfg, *, desc: str, progress: bool = False):
    """Yield ``0 .. cfg.steps - 1``, setting every parameter group's learning rate before each step
    to ``cfg.lr`` times the ``cosine`` schedule of :mod:`asd_utils.training.schedulers` (linear
    warm-up over ``cfg.warmup_steps``, cosine decay to :data:`FINAL_LR_RATIO` at ``cfg.steps``); a
    tqdm bar named ``desc`` when ``progress``."""
    multiplier = lr_multiplier("cosine", cfg.warmup_steps, cfg.steps, min_ratio=FINAL_LR_RATIO)
    steps = range(cfg.steps)
    if progress:

        steps = tqdm(steps, desc=desc, leave=False)
    for step in steps:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * multiplier(step)
        yield step


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows) of ``n`` corpus clips; the held-out rows (``fraction``, at
    least 1 when ``fraction > 0``) only measure the objective on clips not trained on."""
    order = np.random.default_rng(seed).permutation(n)
    n_out = max(1, int(round(fraction * n))) if fraction > 0 else 0
    return np.sort(order[n_out:]), np.sort(order[:n_out])


class Stopwatch:
    """Wall-clock and process CPU seconds since construction."""

    def __init__(self):
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()

    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    def cpu(self) -> float:
        return time.process_time() - self.cpu0


@dataclass
class History:
    """What a pretraining run logged: per-step training loss (and masked-prediction accuracy when
    the objective is a classification), held-out evaluations every few steps, timings in seconds."""

    objective: str
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0

    def log(self, step: int, loss: float, accuracy: float | None = None) -> None:
        self.steps.append(int(step))
        self.loss.append(float(loss))
        self.accuracy.append(float("nan") if accuracy is None else float(accuracy))

    def log_eval(self, step: int, loss: float, accuracy: float | None = None) -> None:
        self.eval_steps.append(int(step))
        self.eval_loss.append(float(loss))
        self.eval_accuracy.append(float("nan") if accuracy is None else float(accuracy))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(**data)
