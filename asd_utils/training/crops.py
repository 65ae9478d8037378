"""Whole-clip training and embedding for fixed-input-length models: random crops, crop averaging.

A model whose input length is fixed at construction (e.g. :class:`asd_utils.models.ThreeSubNetwork`,
whose flattened sizes depend on it) can still use *whole* clips:

- **training**: every time a clip is drawn into a batch, a random window of ``crop_samples`` is cut
  from it (:class:`RandomCropCollate`, :func:`make_crop_loader`), so over the epochs the model sees
  all of every clip, not just its first seconds;
- **embedding**: a clip is cut into windows that cover it from its first to its last sample
  (:func:`crop_starts`), each window is embedded, and the clip's embedding is the mean of its window
  embeddings (:func:`embed_crops`). The result depends on that clip alone.

The random offsets come from the loader's ``torch.Generator`` (the one that also shuffles), so a
seeded loader gives the same crops in every run, and :class:`asd_utils.training.Trainer` checkpoints
that generator: a resumed run draws the same crops as an uninterrupted one.

>>> loader = make_crop_loader(waves, labels, crop_samples=32000, batch_size=32, seed=0)
>>> emb = embed_crops(model, waves, crop_samples=32000, hop_samples=16000)   # (N, D)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

__all__ = ["RandomCropCollate", "crop_starts", "embed_crops", "longest_clip_seconds", "make_crop_loader",
           "random_crops"]


def longest_clip_seconds(paths, *, progress: bool = False) -> float:
    """Duration in seconds of the longest of the audio files ``paths`` (read from their headers).

    Used to load *whole* clips: loading every clip at this length keeps the longest ones complete
    (shorter ones are tiled to it). Raises ``ValueError`` naming a file that cannot be read.
    """

    paths = list(paths)
    if not paths:
        raise ValueError("no audio files to measure")
    longest = 0.0
    for path in tqdm(paths, desc="clip lengths", disable=not progress, leave=False):
        try:
            info = sf.info(str(path))
        except Exception as exc:  # noqa: BLE001 - re-raised naming the file
            raise ValueError(f"cannot read the audio header of {path}: {exc}") from exc
        longest = max(longest, info.frames / float(info.samplerate))
    return longest


def crop_starts(n_samples: int, crop_samples: int, hop_samples: int) -> np.ndarray:
    """Start offsets of the windows that cover a clip of ``n_samples`` completely.

    Windows of ``crop_samples`` start every ``hop_samples``; the last window always ends at the
    clip's last sample (it may overlap its neighbour more than ``hop_samples`` does). A clip no
    longer than one window gives the single offset 0. Returns ``(n_windows,)`` int64, increasing.
    """
    n_samples, crop_samples, hop_samples = int(n_samples), int(crop_samples), int(hop_samples)
    if crop_samples <= 0 or hop_samples <= 0:
        raise ValueError(f"crop_samples ({crop_samples}) and hop_samples ({hop_samples}) must be > 0")
    if n_samples < crop_samples:
        raise ValueError(f"clips of {n_samples} samples are shorter than the crop of {crop_samples} samples")
    last = n_samples - crop_samples
    starts = np.arange(0, last + 1, hop_samples, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, last)
    return starts


def random_crops(x: torch.Tensor, crop_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x (B, T)`` -> ``(B, crop_samples)``: one uniformly random window per row.

    Offsets are drawn from ``generator`` (``torch.randint``, inclusive of ``T - crop_samples``).
    """
    if x.dim() != 2:
        raise ValueError(f"expected (batch, samples) waveforms, got shape {tuple(x.shape)}")
    batch, n = x.shape
    crop_samples = int(crop_samples)
    if n < crop_samples:
        raise ValueError(f"clips of {n} samples are shorter than the crop of {crop_samples} samples")
    if n == crop_samples:
        return x
    starts = torch.randint(0, n - crop_samples + 1, (batch,), generator=generator)
    idx = starts.unsqueeze(1) + torch.arange(crop_samples).unsqueeze(0)
    return torch.gather(x, 1, idx.to(x.device))


class RandomCropCollate:
    """``collate_fn`` for a DataLoader of ``(wave (T,), label)`` items: stacks the batch and cuts one
    random ``crop_samples`` window from each wave (offsets from ``generator``).

    Returns ``(waves (B, crop_samples) float32, labels (B,) int64)``.
    """

    def __init__(self, crop_samples: int, generator: torch.Generator):
        self.crop_samples = int(crop_samples)
        self.generator = generator

    def __call__(self, batch):
        waves = torch.stack([item[0] for item in batch])
        labels = torch.stack([torch.as_tensor(item[1]) for item in batch])
        return random_crops(waves, self.crop_samples, self.generator), labels


def training_tensors(waves, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """``waves (N, T)`` and ``labels (N,)`` as float32 / int64 tensors; a clear error when their
    counts differ or there are none."""
    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if len(x) != len(y):
        raise ValueError(f"{len(x)} waveforms but {len(y)} labels")
    if len(x) == 0:
        raise ValueError("no training clips")
    return x, y


def make_crop_loader(waves: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *, crop_samples: int,
                     batch_size: int, seed: int, shuffle: bool = True,
                     drop_last: bool = False) -> torch.utils.data.DataLoader:
    """A deterministic single-process loader of random crops of whole clips.

    waves: ``(N, T)`` float32 whole clips; labels: ``(N,)`` int64. Each batch is
    ``(waves (B, crop_samples) float32, labels (B,) int64)``. One ``torch.Generator`` seeded with
    ``seed`` shuffles the clips and draws the crop offsets; it is the loader's ``generator``, which
    :class:`asd_utils.training.Trainer` checkpoints. A final batch of a single clip is dropped
    (BatchNorm needs two).
    """
    x, y = training_tensors(waves, labels)
    if x.dim() != 2 or x.shape[1] < int(crop_samples):
        raise ValueError(f"waves must be (N, T) with T >= crop_samples={int(crop_samples)}, got {tuple(x.shape)}")
    batch_size = max(1, min(int(batch_size), len(x)))
    drop_last = drop_last or (len(x) % batch_size == 1 and len(x) > 1)
    generator = torch.Generator().manual_seed(int(seed))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size,
                                       shuffle=shuffle, drop_last=drop_last, num_workers=0,
                                       generator=generator,
                                       collate_fn=RandomCropCollate(crop_samples, generator))


@torch.inference_mode()
def embed_crops(embed_fn: Callable[[torch.Tensor], torch.Tensor], waves: np.ndarray | torch.Tensor, *,
                crop_samples: int, hop_samples: int, batch_size: int = 64,
                device: str | torch.device = "cpu", progress: bool = False,
                desc: str = "embedding crops") -> np.ndarray:
    """Clip embeddings as the mean of the embeddings of windows that cover each whole clip.

    ``embed_fn((B, crop_samples) float32 tensor on device) -> (B, D)`` (a module in eval mode, or
    any callable); waves: ``(N, T)``. The windows are :func:`crop_starts` ``(T, crop_samples,
    hop_samples)``; they are embedded ``batch_size`` at a time (windows of several clips share a
    batch) and averaged per clip. Returns ``(N, D)`` float32. A clip's embedding depends only on
    that clip (eval-mode modules have no batch statistics).
    """
    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    if x.dim() != 2:
        raise ValueError(f"expected (clips, samples) waveforms, got shape {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError("no clips to embed")
    starts = torch.as_tensor(crop_starts(x.shape[1], crop_samples, hop_samples))
    n_win = len(starts)
    device = torch.device(device)
    offsets = starts.unsqueeze(1) + torch.arange(int(crop_samples)).unsqueeze(0)  # (W, crop)
    clips_per_batch = max(1, int(batch_size) // n_win)
    parts = []
    for first in tqdm(range(0, len(x), clips_per_batch), desc=desc, disable=not progress, leave=False):
        chunk = x[first:first + clips_per_batch]  # (b, T)
        windows = chunk[:, offsets].reshape(-1, int(crop_samples))  # (b * W, crop)
        out = embed_fn(windows.to(device)).float().cpu()
        parts.append(out.reshape(len(chunk), n_win, -1).mean(dim=1).numpy())
    return np.concatenate(parts, axis=0)
