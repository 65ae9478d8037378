"""Clips at their own lengths: load, train on random windows, embed whole clips.

DCASE roots mix clip lengths (DCASE 2024: 6, 10, 12 or 18 s by machine type). Tiling every clip to
the longest one in the root would splice short clips and make a test clip's input depend on which
other clips exist; cutting every clip to its first 10 s would drop the rest of a long one. Here a
set of clips is a plain list of ``(samples_i,)`` float32 arrays, each at its own length:

- :func:`load_clips` reads each file at its own length;
- :func:`window_samples` takes a model's fixed input length (the *window*) from the configured
  length and the **training** clips only: ``min(configured, shortest training clip)``;
- :func:`make_clip_loader` trains on one random window per drawn clip (:class:`ClipCropCollate`);
  a clip shorter than the window is tiled to it, alone;
- :func:`embed_clips` embeds a clip as the mean over windows every ``hop`` that cover it from its
  first to its last sample (the last window ends at the clip's end); a clip shorter than the
  window is tiled to one window. Clips of equal length are batched together, so the result of a
  clip depends on that clip alone;
- :func:`map_by_length` applies any ``(n, T) -> (n, ...)`` function to each group of equal-length
  clips and returns the rows in input order; :func:`clips_fingerprint` keys caches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from asd_utils.data import load_audio
from asd_utils.training.crops import RandomCropCollate, embed_crops

__all__ = ["ClipCropCollate", "ClipDataset", "as_clips", "clip_lengths", "clips_fingerprint", "concat", "embed_clips",
           "fit_window", "load_clips", "make_clip_loader", "map_by_length", "stack_tiled", "take", "window_samples"]


def load_clips(paths: Sequence[str], *, sample_rate: int = 16000, progress: bool = False,
               desc: str = "loading clips") -> list[np.ndarray]:
    """Each audio file at its own length: a list of ``(samples_i,)`` float32 arrays at
    ``sample_rate`` (``asd_utils.data.load_audio``; a bad file is a ``DataError`` naming it)."""


    return [load_audio(p, sample_rate=sample_rate) for p in tqdm(list(paths), desc=desc, disable=not progress,
                                                                 leave=False)]


def as_clips(waves) -> list[np.ndarray]:
    """A list of 1-D float32 clips from a list of clips or an ``(N, T)`` array."""
    if isinstance(waves, np.ndarray) and waves.ndim == 2:
        return [np.asarray(w, dtype=np.float32) for w in waves]
    clips = [np.asarray(w, dtype=np.float32) for w in waves]
    for i, c in enumerate(clips):
        if c.ndim != 1 or len(c) == 0:
            raise ValueError(f"clip {i} must be a non-empty 1-D waveform, got shape {c.shape}")
    return clips


def clip_lengths(clips) -> np.ndarray:
    """``(N,)`` int64 lengths in samples."""
    return np.array([len(c) for c in as_clips(clips)], dtype=np.int64)


def window_samples(train_clips, seconds: float, *, sample_rate: int = 16000) -> int:
    """A model's input length in samples: the configured ``seconds``, shortened to the shortest
    *training* clip (test clips never set it, so adding a test clip changes nothing)."""
    lengths = clip_lengths(train_clips)
    if len(lengths) == 0:
        raise ValueError("no training clips to take the window length from")
    return int(min(int(round(float(seconds) * sample_rate)), int(lengths.min())))


def fit_window(clip: np.ndarray, window: int) -> np.ndarray:
    """``clip`` tiled to ``window`` samples when it is shorter (this clip alone), else unchanged."""
    clip = np.asarray(clip, dtype=np.float32)
    if len(clip) >= window:
        return clip
    return np.tile(clip, -(-int(window) // len(clip)))[: int(window)]


def stack_tiled(clips) -> np.ndarray:
    """``(n, T)`` float32 with every clip tiled to the longest of them. Only for clips that never
    get scored (training statistics, noise pools): a scored clip is never tiled to another's length."""
    clips = as_clips(clips)
    if not clips:
        raise ValueError("no clips to stack")
    longest = max(len(c) for c in clips)
    return np.stack([fit_window(c, longest) for c in clips]).astype(np.float32)


def take(waves, idx) -> list[np.ndarray] | np.ndarray:
    """Rows ``idx`` (positions) of a clip list (a list) or of an ``(N, T)`` array (an array)."""
    if isinstance(waves, list):
        return [waves[int(i)] for i in np.asarray(idx, dtype=np.int64)]
    return np.asarray(waves)[np.asarray(idx, dtype=np.int64)]


def concat(*parts) -> list[np.ndarray] | np.ndarray:
    """Clip lists joined into one list, or ``(N_i, T)`` arrays stacked into one array."""
    if any(isinstance(p, list) for p in parts):
        return [c for p in parts for c in as_clips(p)] if parts else []
    return np.concatenate(parts, axis=0)


def clips_fingerprint(clips) -> str:
    """sha256 over every clip's length and samples (a cache key of a ragged set)."""
    digest = hashlib.sha256()
    for c in as_clips(clips):
        digest.update(np.int64(len(c)).tobytes())
        digest.update(np.ascontiguousarray(c, dtype=np.float32).tobytes())
    return f"clips{len(clips)}:{digest.hexdigest()}"


def map_by_length(fn: Callable[[np.ndarray], object], clips) -> object:
    """Apply ``fn((n, T) float32) -> (n, ...)`` array or DataFrame to each group of equal-length
    clips; returns the rows in the order of ``clips`` (an array, or a DataFrame with a 0..N-1 index)."""
    clips = as_clips(clips)
    lengths = clip_lengths(clips)
    parts, order = [], []
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        parts.append(fn(np.stack([clips[i] for i in rows])))
        order.append(rows)
    position = np.argsort(np.concatenate(order), kind="stable")
    if isinstance(parts[0], pd.DataFrame):
        return pd.concat(parts, ignore_index=True).iloc[position].reset_index(drop=True)
    return np.concatenate([np.asarray(p) for p in parts], axis=0)[position]


class ClipDataset(torch.utils.data.Dataset):
    """``(clip (T_i,) float32 tensor, label int64)`` items of a ragged clip list."""

    def __init__(self, clips, labels):
        self.clips = [torch.as_tensor(c) for c in as_clips(clips)]
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if len(self.clips) != len(self.labels) or not self.clips:
            raise ValueError(f"need as many labels as clips (> 0); got {len(self.clips)} clips, "
                             f"{len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i):
        return self.clips[i], self.labels[i]


class ClipCropCollate:
    """``collate_fn``: one random ``window`` of each clip of the batch, whatever its length.

    A clip longer than the window gets a uniformly random offset in ``[0, T_i - window]`` (from
    ``generator``); a clip no longer than the window is tiled to it. A batch of equal-length clips
    takes exactly the draws of :class:`asd_utils.training.crops.RandomCropCollate`, so on a root of
    one clip length the batches equal those of a stacked ``(N, T)`` array. Returns ``(waves (B,
    window) float32, labels (B,) int64)``.
    """

    def __init__(self, window: int, generator: torch.Generator):

        self.window = int(window)
        self.generator = generator
        self.uniform = RandomCropCollate(self.window, generator)

    def __call__(self, batch):
        lengths = torch.tensor([len(item[0]) for item in batch])
        if bool((lengths == lengths[0]).all()) and int(lengths[0]) >= self.window:
            return self.uniform(batch)
        u = torch.rand(len(batch), generator=self.generator, dtype=torch.float64)
        starts = torch.floor(u * (lengths - self.window + 1).clamp_min(1)).long()
        waves = torch.stack([torch.as_tensor(fit_window(item[0][s: s + self.window].numpy(), self.window))
                             if len(item[0]) < self.window else item[0][s: s + self.window]
                             for item, s in zip(batch, starts.tolist())])
        labels = torch.stack([torch.as_tensor(item[1]) for item in batch])
        return waves, labels


class _ThenCollate:
    def __init__(self, first, then):
        self.first, self.then = first, then

    def __call__(self, batch):
        return self.then(*self.first(batch))


def make_clip_loader(clips, labels, *, window: int, batch_size: int, seed: int, shuffle: bool = True,
                     then: Callable[[torch.Generator], Callable] | None = None) -> torch.utils.data.DataLoader:
    """A deterministic single-process loader of random windows of ragged clips.

    One ``torch.Generator`` seeded with ``seed`` shuffles the clips and draws the windows (the
    loader's ``generator``, which :class:`asd_utils.training.Trainer` checkpoints, so a resumed
    run draws the same windows). ``then(generator) -> step``: builds a further step
    ``step(waves, labels) -> batch`` on each cropped batch (noise mixing, mixup), drawing from the
    same generator. A final batch of a
    single clip is dropped (BatchNorm needs two).
    """
    dataset = ClipDataset(clips, labels)
    batch_size = max(1, min(int(batch_size), len(dataset)))
    generator = torch.Generator().manual_seed(int(seed))
    collate = ClipCropCollate(window, generator)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       drop_last=len(dataset) % batch_size == 1 and len(dataset) > 1,
                                       num_workers=0, generator=generator,
                                       collate_fn=collate if then is None else _ThenCollate(collate, then(generator)))


def embed_clips(embed_fn: Callable[[torch.Tensor], torch.Tensor], clips, *, window: int, hop: int,
                batch_size: int = 64, device: str | torch.device = "cpu", progress: bool = False,
                desc: str = "embedding clips") -> np.ndarray:
    """``(N, D)`` float32: each clip's mean embedding over windows of ``window`` samples every
    ``hop`` samples that cover it whole (``asd_utils.training.crops.embed_crops`` per group of
    equal-length clips); a clip shorter than the window is tiled to one window, alone.
    ``embed_fn((B, window)) -> (B, D)``: a module in eval mode (no batch statistics)."""

    clips = [fit_window(c, window) for c in as_clips(clips)]
    if not clips:
        raise ValueError("no clips to embed")
    return map_by_length(lambda group: embed_crops(embed_fn, group, crop_samples=window, hop_samples=hop,
                                                   batch_size=batch_size, device=device, progress=progress,
                                                   desc=desc), clips).astype(np.float32)
