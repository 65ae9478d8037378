"""Self-supervised speech encoders through Hugging Face ``transformers``: HuBERT, wav2vec 2.0,
WavLM and UniSpeech-SAT, behind the common ``Backbone`` interface.

Checkpoints come from a local folder (``save_pretrained`` layout: ``config.json``,
``model.safetensors`` or ``pytorch_model.bin``, ``preprocessor_config.json``) or from a model id
already in the local Hugging Face cache. Every call passes ``local_files_only=True``: nothing is
ever downloaded, whatever ``HF_HUB_OFFLINE`` says. Loading is strict: a missing or mis-shaped
weight raises ``CheckpointError`` (``transformers`` would silently initialise it at random);
unexpected keys are accepted only for the published pre-training / task heads
(``ALLOWED_EXTRA_PREFIXES``).

Preprocessing: ``do_normalize`` from the folder's ``preprocessor_config.json`` (zero mean, unit
variance per clip: ``(x - mean) / sqrt(var + 1e-7)``, as ``Wav2Vec2FeatureExtractor``). Without that
file the family default below is used.

``hidden_states`` returns ``output_hidden_states`` of the model: ``num_hidden_layers + 1`` tensors
(13 for base) of shape (batch, frames, hidden), frames = 49 per second (20 ms hop, 499 for 10 s).
Entry 0 is the transformer input (feature projection + convolutional positions, LayerNorm'd in the
post-LN base models).

SpecAugment-style time masking and layer drop are switched off (``apply_spec_augment=False``,
``layerdrop=0``) so that ``hidden_states`` is a deterministic function of the input in train mode
too; fine-tuning code adds its own augmentation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import try_to_load_from_cache

from asd_utils.backbones.base import Backbone
from asd_utils.backbones.errors import checkpoint_error
from asd_utils.storage.keys import file_sha256, stable_hash

__all__ = ["HF_FAMILIES", "HFSpeechBackbone", "build_hf_speech", "hf_config", "DEFAULT_DO_NORMALIZE"]

# name -> (config class, model class, transformers model_type)
HF_FAMILIES: dict[str, tuple[str, str, str]] = {
    "hubert": ("HubertConfig", "HubertModel", "hubert"),
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", "wav2vec2"),
    "wavlm": ("WavLMConfig", "WavLMModel", "wavlm"),
    "unispeech_sat": ("UniSpeechSatConfig", "UniSpeechSatModel", "unispeech-sat"),
}

# Family defaults used only when a folder has no preprocessor_config.json (and for random weights).
DEFAULT_DO_NORMALIZE = {"hubert": False, "wav2vec2": True, "wavlm": False, "unispeech_sat": False}

# Published architectures: (layers, hidden, heads, FFN) per size; the conv feature extractor is the
# published 7-layer one (512 channels, kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2: 20 ms hop).
_SIZES = {
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096),
    "tiny": dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64),
}
_CONV = dict(
    conv_dim=(512,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_bias=False,
)
_TINY_CONV = dict(
    conv_dim=(32,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_bias=False,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
)

# Keys a published checkpoint may hold beyond the bare encoder (pre-training / CTC / task heads).
ALLOWED_EXTRA_PREFIXES = (
    "quantizer.", "project_q.", "project_hid.", "lm_head.", "final_proj.", "label_embs_concat",
    "label_embeddings_concat", "speaker_proj.", "layer_norm_for_extract.", "projector.", "classifier.",
    "dropout_features", "masked_spec_embed",
)


def _classes(name: str):

    config_name, model_name, model_type = HF_FAMILIES[name]
    return getattr(transformers, config_name), getattr(transformers, model_name), model_type


def hf_config(name: str, size: str = "base"):
    """The published base / large architecture, or a tiny one for tests, built in code."""
    if name not in HF_FAMILIES:
        raise ValueError(f"unknown HF speech family {name!r}; expected one of {sorted(HF_FAMILIES)}")
    if size not in _SIZES:
        raise ValueError(f"{name}: unknown size {size!r}; expected one of {sorted(_SIZES)}")
    config_cls, _, _ = _classes(name)
    layout = _TINY_CONV if size == "tiny" else _CONV
    extra: dict[str, Any] = dict(feat_extract_norm="group", do_stable_layer_norm=False)
    if size == "large":  # the published large models are pre-LN with layer-normalised conv features
        extra = dict(feat_extract_norm="layer", do_stable_layer_norm=True)
    return config_cls(**_SIZES[size], **layout, **extra)


def _weights_sha256(folder: Path) -> str:
    """sha256 of the weights file, or a hash of the shard hashes for sharded checkpoints."""
    singles = [folder / "model.safetensors", folder / "pytorch_model.bin"]
    for single in singles:
        if single.is_file():
            return file_sha256(single)
    shards = sorted(p for p in folder.iterdir() if re.match(r"^(model|pytorch_model)-\d+-of-\d+\.", p.name))
    if not shards:
        raise FileNotFoundError("no model.safetensors / pytorch_model.bin")
    return stable_hash([file_sha256(p) for p in shards], length=64)


def _resolve_folder(name: str, checkpoint: str | Path, cache_dir: str | Path | None) -> Path:
    """A local folder as given, or the cached snapshot folder of a model id; never the network."""
    path = Path(checkpoint).expanduser()
    if path.exists():
        if not path.is_dir():
            raise checkpoint_error(
                name, path, "is a file; expected a Hugging Face folder (config.json + model.safetensors)"
            )
        return path
    text = str(checkpoint)
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text):

        cache = None if cache_dir is None else str(cache_dir)
        found = try_to_load_from_cache(text, "config.json", cache_dir=cache)
        if isinstance(found, str):
            return Path(found).parent
        raise checkpoint_error(
            name,
            text,
            "is neither a local folder nor a model id in the local Hugging Face cache (nothing is "
            "downloaded: "
            "fetch it on a connected machine with `huggingface-cli download "
            f"{text}` or `save_pretrained` it to a folder and give that path)",
        )
    raise checkpoint_error(name, path, "does not exist")


class HFSpeechBackbone(Backbone):
    """A ``transformers`` speech encoder exposing all its hidden states.

    ``hidden_states(waves (batch, samples) float32 16 kHz)`` -> ``num_layers + 1`` tensors
    (batch, frames, dim). Attribute ``model`` is the ``transformers`` module (its attention
    projections are ``q_proj``/``k_proj``/``v_proj``/``out_proj``).
    """

    has_cls_token = False

    def __init__(self, name: str, model, size: str, do_normalize: bool):
        super().__init__()
        self.name = name
        self.size = size
        self.model = model
        self.do_normalize = bool(do_normalize)
        self.num_layers = int(model.config.num_hidden_layers)
        self.dim = int(model.config.hidden_size)
        self.pretrained = False
        self.checkpoint_sha256 = None
        self.init_seed: int | None = None

    def preprocess(self, waves: torch.Tensor) -> torch.Tensor:
        """Per-clip zero-mean unit-variance when the checkpoint asks for it (``do_normalize``)."""
        if waves.dim() != 2:
            raise ValueError(f"{self.name} expects waves of shape (batch, samples), got {tuple(waves.shape)}")
        waves = waves.float()
        if self.do_normalize:
            mean = waves.mean(dim=-1, keepdim=True)
            var = waves.var(dim=-1, keepdim=True, unbiased=False)
            waves = (waves - mean) / torch.sqrt(var + 1e-7)
        return waves

    def preprocessing_options(self) -> dict[str, Any]:
        return {"frontend": "raw", "do_normalize": self.do_normalize}

    def hidden_states(self, waves: torch.Tensor) -> list[torch.Tensor]:
        """waves: (batch, samples) float32 at 16 kHz -> [input, layer 1, ..., layer L]."""
        out = self.model(input_values=self.preprocess(waves), output_hidden_states=True, return_dict=True)
        return list(out.hidden_states)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.hidden_states(waves)[-1]


def _check_size(name: str, where, config, size: str) -> None:
    want = _SIZES[size]
    got = {k: getattr(config, k, None) for k in want}
    if got != want:
        raise checkpoint_error(
            name,
            where,
            f"config describes {got['num_hidden_layers']} layers, hidden {got['hidden_size']}, "
            f"{got['num_attention_heads']} heads, but size={size!r} ({want['num_hidden_layers']} layers, "
            f"hidden {want['hidden_size']}) was requested",
        )


def build_hf_speech(
    name: str,
    checkpoint: str | Path | None = None,
    size: str = "base",
    device: str | torch.device = "cpu",
    *,
    cache_dir: str | Path | None = None,
    do_normalize: bool | None = None,
) -> HFSpeechBackbone:
    """Build ``name`` in ``hubert, wav2vec2, wavlm, unispeech_sat``.

    checkpoint: a local ``save_pretrained`` folder or a model id in the local HF cache
        (``cache_dir`` overrides the cache location); None: random weights with the published
        ``size`` architecture (``base``: 12 x 768, 12 heads; ``large``; ``tiny`` for tests).
    do_normalize: override the checkpoint's ``preprocessor_config.json``.
    Raises ``CheckpointError`` for a missing folder/id, a different family, a different size,
    missing or mis-shaped weights.
    """
    config_cls, model_cls, model_type = _classes(name) if name in HF_FAMILIES else (None, None, None)
    if config_cls is None:
        raise ValueError(f"unknown HF speech family {name!r}; expected one of {sorted(HF_FAMILIES)}")
    if size not in _SIZES:
        raise ValueError(f"{name}: unknown size {size!r}; expected one of {sorted(_SIZES)}")
    if checkpoint is None:
        config = hf_config(name, size)
        config.apply_spec_augment = False
        config.layerdrop = 0.0
        model = model_cls(config)
        norm = DEFAULT_DO_NORMALIZE[name] if do_normalize is None else do_normalize
        return HFSpeechBackbone(name, model, size, norm).to(device).eval()

    folder = _resolve_folder(name, checkpoint, cache_dir)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise checkpoint_error(name, folder, "has no config.json (expected a save_pretrained folder)")
    try:
        raw_config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise checkpoint_error(name, config_file, f"is not valid JSON ({exc})") from exc
    found_type = raw_config.get("model_type")
    if found_type != model_type:
        raise checkpoint_error(name, config_file, f"has model_type {found_type!r}, expected {model_type!r}")
    try:
        config = config_cls.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise checkpoint_error(name, config_file, f"is not a readable {model_type} config ({exc})") from exc
    _check_size(name, folder, config, size)
    config.apply_spec_augment = False
    config.layerdrop = 0.0
    try:
        sha = _weights_sha256(folder)
    except FileNotFoundError as exc:
        raise checkpoint_error(name, folder, "holds no model.safetensors or pytorch_model.bin") from exc
    try:
        model, info = model_cls.from_pretrained(
            str(folder), config=config, local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise checkpoint_error(name, folder, f"could not be loaded by transformers ({exc})") from exc
    missing = sorted(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    extra = info.get("unexpected_keys") or []
    unexpected = sorted(k for k in extra if not k.startswith(ALLOWED_EXTRA_PREFIXES))
    errors = list(info.get("error_msgs") or [])
    if missing or mismatched or unexpected or errors:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing weights (e.g. {missing[:6]})")
        if mismatched:
            parts.append(f"{len(mismatched)} weights of the wrong shape (e.g. {mismatched[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected weights (e.g. {unexpected[:6]})")
        if errors:
            parts.append(f"errors: {errors[:3]}")
        raise checkpoint_error(name, folder, "weights do not match the model: " + "; ".join(parts))
    norm = do_normalize
    if norm is None:
        pre = folder / "preprocessor_config.json"
        if pre.is_file():
            try:
                norm = bool(json.loads(pre.read_text()).get("do_normalize", DEFAULT_DO_NORMALIZE[name]))
            except json.JSONDecodeError as exc:
                raise checkpoint_error(name, pre, f"is not valid JSON ({exc})") from exc
        else:
            norm = DEFAULT_DO_NORMALIZE[name]
    backbone = HFSpeechBackbone(name, model, size, norm)
    backbone.pretrained = True
    backbone.checkpoint_sha256 = sha
    return backbone.to(device).eval()
