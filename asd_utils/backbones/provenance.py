"""Where a backbone's weights came from: a published checkpoint, a stand-in pretrained by the
compendium on synthetic audio, or an untrained stand-in.

A pretrained stand-in is recognised by the marker its checkpoint carries (``"compendium_standin"``
inside the BEATs ``cfg`` or inside ``config.json``), which :func:`asd_utils.backbones.load_backbone`
reads into ``backbone.standin_marker``. The stand-ins themselves are built by
:mod:`asd_utils.pretrain.standins`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["MARKER_KEY", "PROVENANCES", "PUBLISHED", "STANDIN_PRETRAINED", "UNTRAINED", "backbone_provenance",
           "checkpoint_provenance", "is_standin_checkpoint", "read_standin_marker"]

PUBLISHED = "published checkpoint"
STANDIN_PRETRAINED = "stand-in pretrained by the compendium on synthetic audio"
UNTRAINED = "untrained stand-in"
PROVENANCES = (PUBLISHED, STANDIN_PRETRAINED, UNTRAINED)
MARKER_KEY = "compendium_standin"




def read_standin_marker(checkpoint: str | Path | None) -> dict | None:
    """The stand-in marker a checkpoint carries, or None (published checkpoints, unreadable files,
    model ids). Folders: ``config.json[MARKER_KEY]``; files: ``cfg[MARKER_KEY]`` of a ``.pt``
    (memory-mapped, weights-only load; only the small ``cfg`` dict is read)."""
    if checkpoint is None:
        return None
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        config = path / "config.json"
        try:
            marker = json.loads(config.read_text()).get(MARKER_KEY) if config.is_file() else None
        except (OSError, ValueError):
            return None
    elif path.is_file() and path.suffix == ".pt":
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # not a zip-format weights-only checkpoint: not one of ours
            return None
        cfg = payload.get("cfg") if isinstance(payload, dict) else None
        marker = cfg.get(MARKER_KEY) if isinstance(cfg, dict) else None
    else:
        return None
    return marker if isinstance(marker, dict) else None


def is_standin_checkpoint(checkpoint: str | Path | None) -> bool:
    """True when ``checkpoint`` is a stand-in written by :func:`standin_checkpoint`."""
    return read_standin_marker(checkpoint) is not None


def backbone_provenance(backbone) -> str:
    """Exactly one of :data:`PROVENANCES`: "published checkpoint", "stand-in pretrained by the
    compendium on synthetic audio" or "untrained stand-in".

    ``backbone``: a ``Backbone`` from ``load_backbone`` (``pretrained`` False -> untrained; a
    checkpoint carrying the stand-in marker -> pretrained stand-in; any other checkpoint ->
    published), or one of the three strings (returned as is, checked)."""
    if isinstance(backbone, str):
        if backbone not in PROVENANCES:
            raise ValueError(f"unknown provenance {backbone!r}; expected one of {PROVENANCES}")
        return backbone
    if not getattr(backbone, "pretrained", False):
        return UNTRAINED
    if getattr(backbone, "standin_marker", None):
        return STANDIN_PRETRAINED
    return PUBLISHED


def checkpoint_provenance(checkpoint: str | Path | None) -> str:
    """Provenance of the weights a ``load_backbone(name, checkpoint=checkpoint)`` call will get,
    without building the model: None -> "untrained stand-in"; a stand-in checkpoint -> "stand-in
    pretrained by the compendium on synthetic audio"; anything else -> "published checkpoint"."""
    if checkpoint is None or str(checkpoint).strip() == "":
        return UNTRAINED
    return STANDIN_PRETRAINED if is_standin_checkpoint(checkpoint) else PUBLISHED
