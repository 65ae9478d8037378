"""Glue for notebook 07 (pretraining of the stand-ins): which checkpoints to show, and the
before / after backbones of the frozen-kNN comparison."""

from __future__ import annotations

from pathlib import Path

from asd_utils.backbones import load_backbone
from asd_utils.config import deep_merge
from asd_utils.pretrain.corpus import build_corpus, corpus_root
from asd_utils.pretrain.registry import read_history
from asd_utils.pretrain.standins import ensure_standin, standin_checkpoint, standins_config

__all__ = ["eat_target_length", "notebook_checkpoints", "before_after_backbones"]


def notebook_checkpoints(cfg: dict, *, profile: str, data_root: str | Path | None, cache_dir: str | Path,
                         progress: bool = True, log=print) -> dict[str, Path]:
    """``{name: checkpoint}`` for ``cfg["models"]`` (notebook 07's config).

    ``source: hook``: the stand-ins the other notebooks get from
    :func:`asd_utils.pretrain.standins.standin_checkpoint` (models the profile leaves untrained are
    skipped). ``source: local``: pretrained here, with ``standins.yaml``'s pretraining settings
    updated by ``cfg["pretraining"][name]``, on the synthetic dataset of ``cfg["corpus_profile"]``
    (or ``data_root`` when it is synthetic), cached under ``cache_dir``."""

    out: dict[str, Path] = {}
    if cfg["source"] == "hook":
        for name in cfg["models"]:
            path = standin_checkpoint(name, profile=profile, data_root=data_root, progress=progress, log=log)
            if path is not None:
                out[name] = path
        return out
    if cfg["source"] != "local":
        raise ValueError(f"07_pretraining: source must be 'hook' or 'local', got {cfg['source']!r}")
    base = standins_config(profile)["pretraining"]
    corpus = build_corpus(corpus_root(cfg["corpus_profile"], data_root, progress=progress))
    for name in cfg["models"]:
        settings = deep_merge(base[name], (cfg.get("pretraining") or {}).get(name, {}))
        out[name] = ensure_standin(name, settings, corpus, seed=int(cfg["seed"]), cache_root=cache_dir,
                                   progress=progress, log=log)
    return out


def eat_target_length(clip_samples: int) -> int:
    """EAT input frames for whole clips: the clip's fbank frames cut to a multiple of 16."""
    return max(16, (1 + (int(clip_samples) - 400) // 160) // 16 * 16)


def before_after_backbones(name: str, checkpoint: str | Path, *, clip_samples: int, seed: int = 0):
    """(untrained stand-in, pretrained stand-in) of ``name``: the same architecture and the same
    initial weights (``seed``), before and after pretraining. EAT gets whole-clip inputs."""

    folder = Path(checkpoint)
    folder = folder if folder.is_dir() else folder.parent
    size = read_history(folder)["config"]["size"]
    kwargs = {"target_length": eat_target_length(clip_samples)} if name == "eat" else {}
    before = load_backbone(name, size=size, seed=seed, **kwargs)
    after = load_backbone(name, checkpoint=checkpoint, size=size, **kwargs)
    return before, after
