"""Pretrained audio encoders behind one interface (CONTRIBUTING.md, Backbone contract).

``load_backbone(name, checkpoint=None, size="base", device="cpu")`` returns a ``Backbone`` whose
``hidden_states(waves)`` gives ``[input, layer 1, ..., layer L]`` as (batch, tokens, dim) tensors.

- ``beats`` (``beats.py``): official ``.pt`` (microsoft/unilm);
- ``eat`` (``eat.py``): Hugging Face folder / ``model.safetensors`` / ``pytorch_model.bin``, or
  fairseq ``.pt``;
- ``hubert``, ``wav2vec2``, ``wavlm``, ``unispeech_sat`` (``hf_speech.py``): a ``save_pretrained``
  folder or a model id in the local Hugging Face cache.

With a checkpoint: exactly those weights or a ``CheckpointError``; never a silent fallback to
random weights. Without one: a randomly initialised stand-in of the named size, seeded
(``seed=0`` unless given) so that two runs build the same weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from asd_utils.backbones.base import Backbone
from asd_utils.backbones.beats import build_beats
from asd_utils.backbones.eat import build_eat
from asd_utils.backbones.errors import PUBLISHED_AT, CheckpointError, checkpoint_error
from asd_utils.backbones.provenance import read_standin_marker
from asd_utils.device import resolve_device

__all__ = [
    "BACKBONE_NAMES", "Backbone", "CheckpointError", "configured_size_and_layer", "load_backbone", "PUBLISHED_AT",
]

BACKBONE_NAMES: tuple[str, ...] = ("beats", "eat", "hubert", "wav2vec2", "wavlm", "unispeech_sat")
_HF_NAMES = ("hubert", "wav2vec2", "wavlm", "unispeech_sat")


def _check_checkpoint_path(name: str, checkpoint) -> None:
    """A local path that does not exist is a ``CheckpointError`` (HF model ids are resolved later)."""
    text = str(checkpoint)
    path = Path(text).expanduser()
    if path.exists():
        return
    looks_like_hf_id = name in _HF_NAMES and "/" in text and not text.startswith(("/", ".", "~"))
    looks_like_hf_id = looks_like_hf_id and text.count("/") == 1 and not path.suffix
    if not looks_like_hf_id:
        raise checkpoint_error(name, path, "does not exist")


def load_backbone(
    name: str,
    checkpoint: str | Path | None = None,
    size: str = "base",
    device: str | torch.device = "cpu",
    *,
    seed: int = 0,
    **kwargs,
) -> Backbone:
    """Build backbone ``name`` (one of ``BACKBONE_NAMES``).

    checkpoint: path (or, for the HF speech models, a cached model id); None for random weights.
    size: ``"base"`` or ``"tiny"`` (``"large"`` also for EAT and the HF speech models).
    device: ``"cpu"``, ``"cuda"``, ``"auto"`` or a ``torch.device``.
    seed: seeds the random initialisation when ``checkpoint`` is None (recorded as ``init_seed``).
    kwargs: family options (EAT: ``target_length``; HF: ``cache_dir``, ``do_normalize``).
    Returns the model in eval mode. Raises ``ValueError`` for an unknown name and
    ``CheckpointError`` for any checkpoint problem (missing file, wrong format, wrong size,
    mismatched weights), naming the file and where the official weights are published.
    """

    if name not in BACKBONE_NAMES:
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(BACKBONE_NAMES)}")
    if checkpoint is not None and str(checkpoint).strip() == "":
        checkpoint = None
    device = resolve_device(device)
    if checkpoint is not None:
        _check_checkpoint_path(name, checkpoint)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "beats":
            model = build_beats(checkpoint, size=size, device=device, **kwargs)
        elif name == "eat":
            model = build_eat(checkpoint, size=size, device=device, seed=seed, **kwargs)
        else:
            # here, not at the top: transformers takes a second to import, and only the four speech
            # models need it (every notebook imports this package for its provenance labels)
            from asd_utils.backbones.hf_speech import build_hf_speech
            model = build_hf_speech(name, checkpoint, size=size, device=device, **kwargs)
    if checkpoint is None:
        model.init_seed = seed
    elif not model.pretrained:  # defensive: a checkpoint must never give random weights
        raise checkpoint_error(name, checkpoint, "was given but the model reports random weights")

    # a stand-in pretrained by the compendium says so (provenance.backbone_provenance)
    model.standin_marker = read_standin_marker(checkpoint)
    return model


def configured_size_and_layer(section: dict, checkpoint) -> tuple[str, int]:
    """(size, layer) a notebook config section asks for.

    Without a checkpoint: the stand-in keys ``size`` and ``layer``. With one: ``checkpoint_size``
    (default ``"base"``, the published architecture) and ``checkpoint_layer`` (default ``layer``),
    so that a profile sized for CPU stand-ins (``size: tiny``) still loads a real base checkpoint
    when one is configured, at the layer chosen for that architecture. A pretrained stand-in
    (``asd_utils.pretrain.standins.standin_checkpoint``) is read at the stand-in ``layer``, with the size it was
    pretrained at (recorded in its marker).
    """

    marker = read_standin_marker(checkpoint) if checkpoint else None
    if marker is not None:
        size = (marker.get("config") or {}).get("size", section["size"])
        return str(size), int(section.get("layer", -1))
    if checkpoint:
        layer = section.get("checkpoint_layer", section.get("layer", -1))
        return str(section.get("checkpoint_size", "base")), int(layer)
    return str(section["size"]), int(section.get("layer", -1))
