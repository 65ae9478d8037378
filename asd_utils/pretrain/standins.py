"""Pretrained stand-ins: the one place notebooks ask which weights a backbone gets without a
published checkpoint (where any backbone's weights came from: :mod:`asd_utils.backbones.provenance`).

``standin_checkpoint(name, profile=...)`` returns the compendium's pretrained stand-in of ``name``
(a checkpoint in the published format, :mod:`asd_utils.pretrain`) when ``configs/standins.yaml``
asks for one in that profile (``default``: BEATs, EAT, wav2vec 2.0), pretraining and caching it on
first use; ``None`` otherwise (``smoke``: untrained stand-ins; ``paper``: never, a real checkpoint
is required). Notebooks pass the result to ``load_backbone(name, checkpoint=...)`` exactly as they
pass a real checkpoint.

Cache layout: ``cache/pretrained_standins/<name>-<key>/`` where ``key`` hashes the model, its
pretraining config, the seed, the corpus fingerprint and
:data:`asd_utils.pretrain.registry.PRETRAIN_CODE_VERSION`; the folder is built under a temporary name
and renamed into place (atomic), under a file lock so that two notebooks never pretrain the same
stand-in twice.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from asd_utils import paths
from asd_utils.backbones import BACKBONE_NAMES
from asd_utils.backbones.provenance import STANDIN_PRETRAINED
from asd_utils.config import load_config
from asd_utils.pretrain import registry
from asd_utils.pretrain.corpus import build_corpus, corpus_root
from asd_utils.storage.atomic import file_lock
from asd_utils.storage.keys import cache_key

__all__ = ["MODES", "ensure_standin", "standin_checkpoint", "standin_folder", "standin_mode", "standins_config"]

MODES = ("pretrained", "untrained", "never")


def standins_config(profile: str) -> dict[str, Any]:
    """``configs/standins.yaml`` for ``profile`` (``common`` merged with the profile's section)."""
    return load_config("standins", profile)


def standin_mode(name: str, profile: str) -> str:
    """``pretrained``, ``untrained`` or ``never`` for backbone ``name`` in ``profile``."""
    if name not in BACKBONE_NAMES:
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(BACKBONE_NAMES)}")
    mode = str(standins_config(profile)["models"].get(name, "untrained"))
    if mode not in MODES:
        raise ValueError(f"configs/standins.yaml, profile {profile!r}: {name}: {mode!r} is not one of {MODES}")
    return mode


def _marker(name: str, cfg: dict, seed: int, corpus, key: str) -> dict[str, Any]:
    return {
        "provenance": STANDIN_PRETRAINED,
        "model": name,
        "key": key,
        "seed": int(seed),
        "corpus": "train + supplemental clips of a synthetic DCASE-format root (asd_utils.synth)",
        "corpus_fingerprint": corpus.fingerprint,
        "corpus_clips": len(corpus),
        "code_version": registry.PRETRAIN_CODE_VERSION,
        "config": cfg,
    }


def standin_folder(name: str, cfg: dict, seed: int, corpus) -> Path:
    """Cache folder of the stand-in of ``name`` for this config, seed and corpus (not created)."""
    key = cache_key({"name": name, "config": cfg, "seed": int(seed), "corpus": corpus.fingerprint,
                     "code_version": registry.PRETRAIN_CODE_VERSION}, code="asd_utils.pretrain.run")
    return paths.cache_dir("pretrained_standins") / f"{name}-{key}"


def _checkpoint_in(name: str, folder: Path) -> Path:
    file = registry.CHECKPOINT_FILES[name]
    return folder / file if file else folder


def standin_checkpoint(
    name: str,
    *,
    profile: str,
    data_root: str | Path | None = None,
    ensure: bool = True,
    seed: int | None = None,
    progress: bool = True,
    log=print,
) -> Path | None:
    """The pretrained stand-in checkpoint of ``name`` for ``profile``, or ``None``.

    None when ``standins.yaml`` says ``untrained`` or ``never`` for ``name`` in ``profile`` (this
    never pretrains), or when ``ensure`` is False and the stand-in is not cached yet. Otherwise the
    cached checkpoint path (BEATs: the ``.pt`` file; EAT, wav2vec 2.0: the folder), pretrained
    first when missing. ``data_root``: a synthetic root to pretrain on; None or a root of real
    recordings: the profile's synthetic dataset (see :mod:`asd_utils.pretrain.corpus`).
    ``seed``: None = the config's.
    """
    paths.check_profile(profile)
    if standin_mode(name, profile) != "pretrained":
        return None
    if name not in registry.PRETRAINABLE:
        raise ValueError(f"configs/standins.yaml asks for a pretrained {name!r} stand-in, but only "
                         f"{', '.join(registry.PRETRAINABLE)} have a pretraining objective")
    config = standins_config(profile)
    seed = int(config.get("seed", 0)) if seed is None else int(seed)
    cfg = dict(config["pretraining"][name])
    corpus = build_corpus(corpus_root(profile, data_root, progress=progress))
    return ensure_standin(name, cfg, corpus, seed=seed, ensure=ensure, progress=progress, log=log)


def ensure_standin(name: str, cfg: dict, corpus, *, seed: int = 0, ensure: bool = True,
                   cache_root: str | Path | None = None, progress: bool = True, log=print) -> Path | None:
    """The stand-in of ``name`` pretrained with ``cfg`` on ``corpus`` (``asd_utils.pretrain.corpus``)
    from ``seed``: cached under ``cache_root`` (default ``cache/pretrained_standins``), pretrained
    first when missing (None instead when ``ensure`` is False). Atomic and file-locked."""
    folder = standin_folder(name, cfg, seed, corpus)
    if cache_root is not None:
        folder = Path(cache_root) / folder.name
    checkpoint = _checkpoint_in(name, folder)
    if (folder / "standin.json").is_file():
        return checkpoint
    if not ensure:
        return None
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if (folder / "standin.json").is_file():  # another process finished it meanwhile
            return checkpoint
        tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
        log(f"pretraining the {name} stand-in on {len(corpus)} synthetic clips ({corpus.root.name}) -> {folder.name}")
        # here, not at the top: the pretraining code loads transformers' wav2vec 2.0 model (seconds
        # at every notebook start), and only a stand-in missing from the cache needs it
        from asd_utils.pretrain.run import pretrain_standin
        try:
            pretrain_standin(name, cfg, corpus, tmp, marker=_marker(name, cfg, seed, corpus, folder.name),
                                 seed=seed, progress=progress)
            if folder.exists():  # an incomplete leftover (no standin.json): replace it
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return checkpoint


