"""The pretraining corpus: the training and supplemental clips of a *synthetic* DCASE-format root.

Choice: the stand-ins are pretrained on the ``train`` and ``supplemental`` clips
of the compendium's synthetic dataset of the profile (``data/synth_<profile>``, generated on first
use), or of another synthetic root given explicitly. Why:

- test clips never enter: only the ``train`` and ``supplemental`` folders are indexed
  (:func:`asd_utils.data.discover` with ``splits=("train", "supplemental")``), and
  :func:`build_corpus` checks it;
- the audio is always synthetic, so the label "stand-in pretrained by the compendium on synthetic
  audio" is true whatever ``DATA_ROOT`` a notebook runs on; a user's real data never trains a
  model behind their back, and the same stand-in serves every notebook of a profile;
- no labels are used: self-supervised objectives see the waveforms only, and these are the very
  clips the anomaly detectors train on anyway (normal training clips, supplemental clips).

The corpus fingerprint (paths relative to the root, the clips' content, the synthetic manifest) keys
every stand-in, so a regenerated or different corpus never reuses a stale checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asd_utils.data import discover
from asd_utils.data.audio import load_batch
from asd_utils.storage.keys import files_digest, stable_hash
from asd_utils.synth import ensure_dataset

__all__ = ["CORPUS_SPLITS", "Corpus", "build_corpus", "corpus_root", "is_synthetic_root", "load_corpus_waves"]

CORPUS_SPLITS = ("train", "supplemental")


def is_synthetic_root(root: str | Path) -> bool:
    """True for a root written by :mod:`asd_utils.synth` (it holds ``synth_manifest.json``)."""
    return (Path(root) / "synth_manifest.json").is_file()


def corpus_root(profile: str, data_root: str | Path | None = None, *, progress: bool = True) -> Path:
    """Root the stand-ins of ``profile`` pretrain on.

    ``data_root`` is used when it is a synthetic root; otherwise (None, or real recordings) the
    profile's own synthetic dataset is used, generated when missing (file-locked, shared)."""
    if data_root not in (None, "") and is_synthetic_root(Path(data_root).expanduser()):
        return Path(data_root).expanduser().resolve()

    return Path(ensure_dataset(profile, progress=progress)).resolve()


@dataclass(frozen=True)
class Corpus:
    """Clips to pretrain on. ``paths``: sorted absolute paths; ``fingerprint``: cache-key hash."""

    root: Path
    paths: tuple[str, ...]
    fingerprint: str

    def __len__(self) -> int:
        return len(self.paths)


def build_corpus(root: str | Path) -> Corpus:
    """Index the ``train`` + ``supplemental`` clips of a synthetic root.

    Raises ``ValueError`` when the root is not synthetic (see the module docstring) or holds no
    training clip."""

    root = Path(root).expanduser().resolve()
    if not is_synthetic_root(root):
        raise ValueError(
            f"pretraining corpus {root}: not a synthetic root (no synth_manifest.json); the stand-ins "
            "are pretrained on synthetic audio only (asd_utils.synth)"
        )
    index = discover(root, splits=CORPUS_SPLITS)
    if len(index) == 0 or not (index["split"] == "train").any():
        raise ValueError(f"pretraining corpus {root}: no training clips under dev_data/raw/<machine>/train/")
    if set(index["split"]) - set(CORPUS_SPLITS):  # defensive: discover honours splits
        raise AssertionError(f"pretraining corpus {root}: clips outside {CORPUS_SPLITS} were indexed")
    paths = tuple(sorted(str(p) for p in index["path"]))
    # names relative to the root and the files' content: a copied root keeps its fingerprint
    names = [os.path.relpath(p, root) for p in paths]
    manifest = (root / "synth_manifest.json").read_text()
    return Corpus(root=root, paths=paths, fingerprint=stable_hash({"files": names, "content": files_digest(paths),
                                                                   "manifest": manifest}))


def load_corpus_waves(corpus: Corpus, seconds: float, *, sample_rate: int = 16000, progress: bool = True,
                      max_clips: int | None = None) -> np.ndarray:
    """(N, seconds * sample_rate) float32 waveforms of the corpus, shorter clips tiled
    (``asd_utils.data.load_batch``); ``max_clips`` keeps the first clips only (tests)."""

    paths = list(corpus.paths[:max_clips] if max_clips else corpus.paths)
    return load_batch(paths, sample_rate=sample_rate, n_samples=int(round(seconds * sample_rate)),
                      mode="tile", progress=progress)
