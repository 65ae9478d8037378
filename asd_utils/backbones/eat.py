"""EAT (Efficient Audio Transformer, Chen et al., IJCAI 2024), written for this compendium.

Longer than 500 lines: the whole EAT encoder and its two checkpoint formats (Hugging Face and
fairseq), readable in one sitting in forward order.

EAT is a data2vec-2.0-style ViT on a log Mel spectrogram. This module holds the encoder only (the
student at inference; no masking, no decoder, no EMA teacher) and loads both released formats.

Architecture, as in the release (``layer_norm_first = False`` in every released config):

1. ``eat_fbank``: mean-removed waveform, Kaldi fbank (htk_compat, hanning, 128 bins, 10 ms shift);
   zero-padded or cropped to ``target_length`` frames (1024 = 10.24 s); ``(x + 4.268) / (2 * 4.569)``.
2. ``patch_embed``: ``Conv2d(1, D, 16, stride 16)`` on the (1, target_length, 128) image; tokens in
   time-major order (token ``t * 8 + f``), 64 x 8 = 512 patches for 1024 frames.
3. plus fixed 2-D sin-cos positions ``pos_embed`` (first D/2 channels encode the frequency-patch
   index, last D/2 the time-patch index, each as [sin, cos]); the CLS token ``cls_token`` is
   prepended without a position.
4. ``embed_norm``: a LayerNorm over all tokens (fairseq ``context_encoder.norm``, HF ``pre_norm``).
5. ``depth`` transformer blocks, post-norm as released: ``x = norm1(x + attn(x));
   x = norm2(x + mlp(x))`` with a fused ``qkv`` Linear, an output ``proj`` and a GELU MLP.
   Because each block ends in a LayerNorm, the last block output is the model output (the release
   has no extra final norm when ``layer_norm_first`` is False).

``hidden_states(waves)`` returns ``depth + 1`` tensors of shape (batch, 1 + patches, D):
entry 0 is the tensor entering block 1, i.e. ``embed_norm(cat(cls_token, patch_embed(x) + pos))``
(after the input LayerNorm); entry i is the output of block i. Token 0 is CLS.

Every entry equals the official code's (``Data2VecMultiModel.extract_features`` as ASDKit calls
it, from the waveform) to about 1e-6 on a random checkpoint in the fairseq format:
``tests/fixtures/eat_tiny_official.*``, made by ``scripts/make_eat_golden.py``.

Checkpoints (``load_eat_state``):

* Hugging Face (``worstchan/EAT-*``): a folder or file with ``model.safetensors`` or
  ``pytorch_model.bin`` (+ ``config.json``); keys ``model.<name>``.
* fairseq ``.pt`` (``EAT-base_epoch30_pretrain.pt`` ...): ``{"model": state_dict, "cfg": ...}``
  with ``modality_encoders.IMAGE.*`` and ``blocks.N.*`` keys, plus ``model.`` for fine-tuned
  checkpoints. Loaded with ``torch.load(weights_only=True)``; the pickled config objects
  (argparse / omegaconf / fairseq classes, the EAT config enums such as
  ``EAT.models.EAT_pretraining.Modality`` that fairseq's trainer pickles in ``cfg``) are allowed
  only as inert stand-ins that never run any code (see ``safe_torch_load``); any other pickled
  global is refused.

Both are remapped to this module's names, teacher/decoder/classifier keys are dropped by explicit
rule (``DROP_RULES``), and the rest must match the model exactly.
"""

from __future__ import annotations

import argparse
import collections
import json
import pickle
import re
import typing
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from asd_utils.backbones.base import Backbone
from asd_utils.backbones.errors import check_state_dict_keys, checkpoint_error
from asd_utils.features.fbank import eat_fbank
from asd_utils.storage.keys import file_sha256

__all__ = [
    "EATConfig",
    "EAT",
    "EAT_SIZES",
    "DROP_RULES",
    "build_eat",
    "load_eat_state",
    "remap_eat_keys",
    "safe_torch_load",
    "sincos_pos_embed_2d",
    "eat_preprocess",
    "save_eat_hf",
]

NORM_MEAN = -4.268
NORM_STD = 4.569


@dataclass(frozen=True)
class EATConfig:
    """EAT encoder hyper-parameters. ``target_length`` is in fbank frames (10 ms each)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    mel_bins: int = 128
    target_length: int = 1024
    norm_eps: float = 1e-6
    norm_mean: float = NORM_MEAN
    norm_std: float = NORM_STD

    @property
    def grid(self) -> tuple[int, int]:
        """(time patches, frequency patches), e.g. (64, 8)."""
        return self.target_length // self.patch_size, self.mel_bins // self.patch_size

    @property
    def num_patches(self) -> int:
        h, w = self.grid
        return h * w


EAT_SIZES: dict[str, EATConfig] = {
    "base": EATConfig(),
    "large": EATConfig(embed_dim=1024, depth=24, num_heads=16),
    # A small stand-in for tests and the smoke profile; same front end and token layout.
    "tiny": EATConfig(embed_dim=64, depth=2, num_heads=4),
}


def sincos_pos_embed_2d(embed_dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """Fixed 2-D sin-cos positions, (grid[0] * grid[1], embed_dim), time-major token order.

    Channels ``[: D/2]`` encode the frequency-patch index ``f`` and ``[D/2 :]`` the time-patch
    index ``t``; each half is ``[sin(p * w_k), cos(p * w_k)]`` with ``w_k = 10000^(-k / (D/4))``
    (the MAE / data2vec layout used by the EAT release).
    """
    if embed_dim % 4:
        raise ValueError(f"sincos_pos_embed_2d: embed_dim must be a multiple of 4, got {embed_dim}")
    n_t, n_f = grid
    t = torch.arange(n_t, dtype=torch.float64).repeat_interleave(n_f)
    f = torch.arange(n_f, dtype=torch.float64).repeat(n_t)
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)

    def one_axis(pos: torch.Tensor) -> torch.Tensor:
        angles = pos[:, None] * omega[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([one_axis(f), one_axis(t)], dim=1).float()


def eat_preprocess(waves: torch.Tensor, config: EATConfig) -> torch.Tensor:
    """waves (batch, samples) float at 16 kHz in [-1, 1] -> (batch, 1, target_length, mel_bins).

    Official EAT front end: per-clip mean removal, Kaldi fbank (``eat_fbank``), zero padding or
    cropping to ``target_length`` frames, then ``(x - norm_mean) / (2 * norm_std)``.
    """
    if waves.dim() != 2:
        raise ValueError(f"EAT expects waves of shape (batch, samples), got {tuple(waves.shape)}")
    mel = eat_fbank(waves.float())  # (B, frames, 128)
    frames = mel.shape[1]
    if frames < config.target_length:
        mel = F.pad(mel, (0, 0, 0, config.target_length - frames))
    elif frames > config.target_length:
        mel = mel[:, : config.target_length]
    mel = (mel - config.norm_mean) / (2.0 * config.norm_std)
    return mel.unsqueeze(1)


class EATAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` Linear (q, k, v stacked on the output axis)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"EAT: embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # scale 1/sqrt(head_dim)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class EATMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class EATBlock(nn.Module):
    """Released EAT block (``layer_norm_first=False``): ``norm1(x + attn(x))`` then
    ``norm2(x + mlp(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.attn = EATAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = EATMlp(dim, int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


class EAT(Backbone):
    """EAT encoder. ``hidden_states(waves)`` -> ``depth + 1`` tensors (batch, 1 + patches, dim).

    Entry 0 = ``embed_norm(cat(CLS, patch_embed(fbank) + pos_embed))`` (input to block 1);
    entry i = output of block i. Token 0 is the CLS token.
    """

    name = "eat"
    has_cls_token = True

    def __init__(self, config: EATConfig, size: str = "base"):
        super().__init__()
        self.config = config
        self.size = size
        self.num_layers = config.depth
        self.dim = config.embed_dim
        self.pretrained = False
        self.checkpoint_sha256 = None
        self.init_seed: int | None = None
        p = config.patch_size
        self.patch_embed = nn.Conv2d(1, config.embed_dim, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.register_buffer(
            "pos_embed", sincos_pos_embed_2d(config.embed_dim, config.grid).unsqueeze(0), persistent=True
        )
        self.embed_norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)
        self.blocks = nn.ModuleList(
            EATBlock(config.embed_dim, config.num_heads, config.mlp_ratio, config.norm_eps)
            for _ in range(config.depth)
        )

    def reset_parameters(self) -> None:
        """Random initialisation in the spirit of the release (BERT-style Linear init,
        Xavier patch projection, unit LayerNorms)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def preprocess(self, waves: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> normalised fbank image (batch, 1, target_length, 128)."""
        return eat_preprocess(waves, self.config)

    def preprocessing_options(self) -> dict[str, Any]:
        """What the front end does, for cache keys."""
        c = self.config
        return {
            "frontend": "eat_fbank",
            "target_length": c.target_length,
            "norm_mean": c.norm_mean,
            "norm_std": c.norm_std,
        }

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """(batch, 1, T, F) spectrogram image -> hidden state 0, (batch, 1 + patches, dim)."""
        x = self.patch_embed(image).flatten(2).transpose(1, 2)  # (B, patches, D), time-major
        x = x + self.pos_embed[:, : x.shape[1]].to(x.dtype)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        return self.embed_norm(x)

    def hidden_states(self, waves: torch.Tensor) -> list[torch.Tensor]:
        """waves: (batch, samples) float32 at 16 kHz -> [input, block 1, ..., block depth],
        each (batch, 1 + patches, dim); 513 tokens for 10 s clips with the base config."""
        x = self.embed(self.preprocess(waves))
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return states

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Last hidden state, (batch, 1 + patches, dim)."""
        return self.hidden_states(waves)[-1]


# ----------------------------------------------------------------------------------------------
# Safe loading of fairseq pickles
# ----------------------------------------------------------------------------------------------


class _Inert:
    """Stand-in for a pickled config class: records what it was given, runs nothing."""

    _qualified = "?"

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state):
        self.__dict__["state"] = state

    def __repr__(self) -> str:
        return f"<inert {self._qualified}>"


# Pickled globals that are replaced by inert stand-ins: the config objects fairseq, hydra and
# omegaconf put next to the weights. None of their code runs.
_INERT_PREFIXES = ("fairseq.", "omegaconf.", "hydra.", "fairseq_cli.")
# The enum members of EAT's own configuration classes. fairseq's trainer saves
# ``OmegaConf.to_container(cfg)`` without ``enum_to_str``, so ``model.supported_modality`` and
# ``model.modalities.image.type`` (and a fine-tuned model's ``prediction_mode``) are pickled as
# members of the EAT user directory's enums, e.g. ``EAT.models.EAT_pretraining.Modality``; the
# package prefix is whatever the training run named its user directory.
_EAT_CONFIG_ENUMS = re.compile(
    r"(^|\.)models\.(EAT_pretraining|EAT_audio_classification|images|base)\.(Modality|PredictionMode)$"
)


def _real_safe_globals() -> dict[str, Any]:
    """Harmless globals allowed as themselves (plain containers and numpy scalars)."""


    allowed: dict[str, Any] = {
        "argparse.Namespace": argparse.Namespace,
        "typing.Any": typing.Any,
        "collections.defaultdict": collections.defaultdict,
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.dict": dict,
        "builtins.list": list,
        "builtins.set": set,
        "builtins.tuple": tuple,
        "builtins.int": int,
        "builtins.float": float,
        "builtins.str": str,
        "builtins.bool": bool,
        "builtins.object": object,
        "numpy.dtype": np.dtype,
        "numpy.ndarray": np.ndarray,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[f"{mod}.scalar"] = np._core.multiarray.scalar
        allowed[f"{mod}._reconstruct"] = np._core.multiarray._reconstruct
    for name in dir(np.dtypes):
        if name.endswith("DType"):
            allowed[f"numpy.dtypes.{name}"] = getattr(np.dtypes, name)
    return allowed


def safe_torch_load(path: str | Path, *, name: str = "eat") -> Any:
    """``torch.load(path, weights_only=True)`` that also reads fairseq checkpoints.

    fairseq pickles its training configuration (``argparse.Namespace``, omegaconf containers,
    fairseq dataclasses) next to the weights, which plain ``weights_only=True`` refuses. This lists
    the pickled globals first (``torch.serialization.get_unsafe_globals_in_checkpoint``) and allows,
    for this one call only: plain containers / numpy scalars as themselves, and names under
    ``fairseq.``, ``omegaconf.``, ``hydra.`` and the EAT configuration enums
    (``<user dir>.models.EAT_pretraining.Modality`` ..., ``_EAT_CONFIG_ENUMS``) as inert stand-ins
    (``_Inert``) that run no code. Any other global raises ``CheckpointError`` naming it.
    ``weights_only=False`` is never used.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        first_error = exc
    except Exception as exc:  # noqa: BLE001 - anything else means it is not a torch checkpoint
        problem = f"cannot be read by torch.load ({type(exc).__name__}: {exc})"
        raise checkpoint_error(name, path, problem) from exc
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as exc:  # legacy (non-zip) pickles cannot be inspected
        raise checkpoint_error(
            name, path, f"cannot be read with torch.load(weights_only=True): {first_error}"
        ) from exc
    real = _real_safe_globals()
    allow: list[tuple[Any, str]] = []
    refused: list[str] = []
    for qualified in unsafe:
        if qualified in real:
            allow.append((real[qualified], qualified))
        elif qualified.startswith(_INERT_PREFIXES) or _EAT_CONFIG_ENUMS.search(qualified):
            stub = type(qualified.rsplit(".", 1)[-1], (_Inert,), {"_qualified": qualified})
            allow.append((stub, qualified))
        else:
            refused.append(qualified)
    if refused:
        raise checkpoint_error(
            name,
            path,
            f"contains pickled globals that are not allowed: {refused}; only tensors, plain containers "
            "and fairseq/omegaconf configuration objects are accepted",
        )
    try:
        with torch.serialization.safe_globals(allow):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        problem = f"cannot be read with torch.load(weights_only=True): {exc}"
        raise checkpoint_error(name, path, problem) from exc


def _cfg_get(obj: Any, *keys: str) -> Any:
    """Read ``obj[k1][k2]...`` from plain dicts, Namespaces or inert omegaconf stand-ins; None if absent."""
    for key in keys:
        if obj is None:
            return None
        if isinstance(obj, _Inert):
            state = obj.__dict__.get("state")
            content = state.get("_content") if isinstance(state, dict) else None
            obj = content.get(key) if isinstance(content, dict) else None
            if isinstance(obj, _Inert):  # a ValueNode / AnyNode: unwrap its value
                inner = obj.__dict__.get("state")
                if isinstance(inner, dict) and "_val" in inner:
                    obj = inner["_val"]
        elif isinstance(obj, dict):
            obj = obj.get(key)
        else:
            obj = getattr(obj, key, None)
    return obj


# ----------------------------------------------------------------------------------------------
# Key remapping
# ----------------------------------------------------------------------------------------------

# Keys dropped by rule before the strict match: EMA teacher, pre-training decoders/projections,
# and the fine-tuned classifier head. Everything else must map onto the encoder.
DROP_RULES: tuple[str, ...] = (
    r"^_ema(\.|$)",
    r"^ema\.",
    r"^modality_encoders\.IMAGE\.decoder\.",
    r"^shared_decoder\.",
    r"^recon_proj\.",
    r"^cls_proj\.",
    r"^center$",
    r"^fc_norm\.",
    r"^head\.",
)

_RENAMES: tuple[tuple[str, str], ...] = (
    # fairseq (Data2VecMultiModel, modality IMAGE)
    (r"^modality_encoders\.IMAGE\.local_encoder\.proj\.", "patch_embed."),
    (r"^modality_encoders\.IMAGE\.extra_tokens$", "cls_token"),
    (r"^modality_encoders\.IMAGE\.fixed_positional_encoder\.positions$", "pos_embed"),
    (r"^modality_encoders\.IMAGE\.context_encoder\.norm\.", "embed_norm."),
    # Hugging Face (EATModel.model = EAT)
    (r"^local_encoder\.proj\.", "patch_embed."),
    (r"^extra_tokens$", "cls_token"),
    (r"^fixed_positional_encoder\.positions$", "pos_embed"),
    (r"^pre_norm\.", "embed_norm."),
)


def remap_eat_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map a released EAT state dict (fairseq or HF, ``model.`` prefix or not) onto ``EAT``'s names.

    Rules, in order: strip one leading ``model.`` (HF ``EATModel`` and fairseq fine-tuned
    checkpoints); drop keys matching ``DROP_RULES``; rename
    ``modality_encoders.IMAGE.local_encoder.proj.*`` / ``local_encoder.proj.*`` -> ``patch_embed.*``,
    ``...extra_tokens`` -> ``cls_token``, ``...fixed_positional_encoder.positions`` -> ``pos_embed``,
    ``modality_encoders.IMAGE.context_encoder.norm.*`` / ``pre_norm.*`` -> ``embed_norm.*``;
    ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`` keep their names.
    Returns (remapped state, dropped keys).
    """
    keys = list(state)
    if keys and all(k.startswith("model.") or re.match(r"^(fc_norm|head)\.", k) for k in keys):
        state = {(k[len("model.") :] if k.startswith("model.") else k): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        if any(re.search(rule, key) for rule in DROP_RULES):
            dropped.append(key)
            continue
        new = key
        for pattern, repl in _RENAMES:
            new, n = re.subn(pattern, repl, new)
            if n:
                break
        out[new] = value
    return out, dropped


def _read_hf_state(path: Path, name: str) -> tuple[dict[str, torch.Tensor], dict | None, Path]:
    """Hugging Face layout: folder with model.safetensors / pytorch_model.bin (+ config.json)."""
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        for candidate in ("model.safetensors", "pytorch_model.bin"):
            if (folder / candidate).is_file():
                weights = folder / candidate
                break
        else:
            raise checkpoint_error(
                name, path, "folder holds neither model.safetensors nor pytorch_model.bin (HF layout)"
            )
    else:
        weights = path
    if weights.suffix == ".safetensors":

        try:
            state = load_file(str(weights), device="cpu")
        except Exception as exc:
            raise checkpoint_error(name, weights, f"is not a readable safetensors file ({exc})") from exc
    else:
        state = safe_torch_load(weights, name=name)
    config = None
    if (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text())
        except json.JSONDecodeError as exc:
            raise checkpoint_error(name, folder / "config.json", f"is not valid JSON ({exc})") from exc
    return state, config, weights


def _infer_config(
    state: dict[str, torch.Tensor], heads: int | None, base: EATConfig, name: str, path: Path
) -> EATConfig:
    """EATConfig from tensor shapes (dim, depth, MLP width); heads from the checkpoint's config or
    ``dim // 64`` (64-d heads in every released size)."""
    if "patch_embed.weight" not in state:
        raise checkpoint_error(
            name,
            path,
            "does not look like an EAT checkpoint (no patch projection "
            "'modality_encoders.IMAGE.local_encoder.proj.weight' / 'model.local_encoder.proj.weight'; "
            f"found keys such as {sorted(state)[:6]})",
        )
    w = state["patch_embed.weight"]
    if w.dim() != 4 or w.shape[1] != 1:
        problem = f"patch projection has shape {tuple(w.shape)}, expected (D, 1, p, p)"
        raise checkpoint_error(name, path, problem)
    dim, patch = int(w.shape[0]), int(w.shape[-1])
    block_ids = {int(m.group(1)) for k in state if (m := re.match(r"^blocks\.(\d+)\.", k))}
    depth = max(block_ids) + 1 if block_ids else 0
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    mlp_ratio = fc1.shape[0] / dim if fc1 is not None else base.mlp_ratio
    return replace(
        base, embed_dim=dim, depth=depth, num_heads=int(heads or max(1, dim // 64)), mlp_ratio=mlp_ratio,
        patch_size=patch,
    )


_PRE_NORM_PROBLEM = "layer_norm_first is true; only the released post-norm EAT is supported"


def load_eat_state(
    checkpoint: str | Path, *, target_length: int = 1024
) -> tuple[dict[str, torch.Tensor], EATConfig, str, list[str]]:
    """Read a released EAT checkpoint (HF folder/file or fairseq ``.pt``).

    Returns (state dict in ``EAT``'s names with ``pos_embed`` cut to the model's patches, config
    inferred from it, sha256 of the weights file, dropped keys). Raises ``CheckpointError``.
    """
    name = "eat"
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise checkpoint_error(name, path, "does not exist")
    hf_config: dict | None = None
    if path.is_dir() or path.suffix in (".safetensors", ".bin"):
        raw, hf_config, weights = _read_hf_state(path, name)
        heads = (hf_config or {}).get("num_heads")
        if hf_config and hf_config.get("layer_norm_first"):
            raise checkpoint_error(name, path, _PRE_NORM_PROBLEM)
    else:
        weights = path
        obj = safe_torch_load(path, name=name)
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):  # fairseq
            raw = obj["model"]
            cfg = obj.get("cfg") or obj.get("args")
            heads = _cfg_get(cfg, "model", "num_heads") or _cfg_get(cfg, "num_heads")
            if heads is None:
                heads = _cfg_get(cfg, "model", "pretrained_model_args", "model", "num_heads")
            if _cfg_get(cfg, "model", "layer_norm_first"):
                raise checkpoint_error(name, path, _PRE_NORM_PROBLEM)
        elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            raw, heads = obj, None  # a bare state dict (HF names or this module's names)
        else:
            raise checkpoint_error(
                name, path, "is neither a fairseq checkpoint (dict with a 'model' state dict) nor state dict"
            )
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor) or k == "_ema"}
    non_tensor = sorted(set(raw) - set(tensors))
    if non_tensor:
        raise checkpoint_error(name, path, f"state dict has non-tensor entries {non_tensor[:5]}")
    state, dropped = remap_eat_keys(tensors)
    config = _infer_config(state, heads, replace(EAT_SIZES["base"], target_length=target_length), name, path)
    if hf_config:
        if int(hf_config.get("mel_bins", config.mel_bins)) != config.mel_bins:
            problem = f"config.json mel_bins={hf_config.get('mel_bins')}, expected 128"
            raise checkpoint_error(name, path, problem)
        config = replace(config, norm_eps=float(hf_config.get("norm_eps", config.norm_eps)))
    pos = state.get("pos_embed")
    if pos is not None:
        if pos.dim() != 3 or pos.shape[1] < config.num_patches or pos.shape[2] != config.embed_dim:
            raise checkpoint_error(
                name,
                path,
                f"positional table has shape {tuple(pos.shape)}; need at least (1, {config.num_patches}, "
                f"{config.embed_dim}) for target_length={target_length}",
            )
        state["pos_embed"] = pos[:, : config.num_patches].contiguous()
    return state, config, file_sha256(weights), dropped


def _size_matches(config: EATConfig, size: str) -> bool:
    ref = EAT_SIZES[size]
    return (config.embed_dim, config.depth, config.num_heads) == (ref.embed_dim, ref.depth, ref.num_heads)


def build_eat(
    checkpoint: str | Path | None = None,
    size: str = "base",
    device: str | torch.device = "cpu",
    target_length: int = 1024,
    seed: int = 0,
) -> EAT:
    """Build an EAT encoder.

    checkpoint: a released checkpoint (HF folder / ``model.safetensors`` / ``pytorch_model.bin``,
        or fairseq ``.pt``); loaded strictly. None: random weights (``seed``) of ``size``.
    size: ``"base"`` (12 x 768, 12 heads), ``"large"`` (24 x 1024, 16 heads) or ``"tiny"``
        (2 x 64, 4 heads, tests). A checkpoint of another size raises ``CheckpointError``.
    target_length: fbank frames the input is padded/cropped to (1024 = 10.24 s, 512 patches).
    """
    if size not in EAT_SIZES:
        raise ValueError(f"eat: unknown size {size!r}; expected one of {sorted(EAT_SIZES)}")
    if target_length % 16:
        raise ValueError(f"eat: target_length must be a multiple of 16 frames, got {target_length}")
    if checkpoint is None:
        config = replace(EAT_SIZES[size], target_length=target_length)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = EAT(config, size=size)
            model.reset_parameters()
        model.init_seed = seed
    else:
        state, config, sha, _dropped = load_eat_state(checkpoint, target_length=target_length)
        if not _size_matches(config, size):
            raise checkpoint_error(
                "eat",
                checkpoint,
                f"holds an EAT with {config.depth} layers, {config.embed_dim}-d, {config.num_heads} heads, "
                f"but size={size!r} ({EAT_SIZES[size].depth} layers, {EAT_SIZES[size].embed_dim}-d) "
                "was requested",
            )
        model = EAT(config, size=size)
        check_state_dict_keys("eat", checkpoint, set(model.state_dict()), set(state))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # shape mismatches
            raise checkpoint_error("eat", checkpoint, f"tensor shapes do not match the model: {exc}") from exc
        model.pretrained = True
        model.checkpoint_sha256 = sha
    return model.to(device).eval()


def save_eat_hf(
    model: EAT, folder: str | Path, *, max_length: int | None = None, finetune_classes: int = 0
) -> Path:
    """Write ``model`` in the released Hugging Face layout (``model.safetensors`` with ``model.``
    keys + ``config.json``); used by tests and for exporting fine-tuned encoders."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c = model.config
    max_length = max_length or c.grid[0]
    state = {}
    for key, value in model.state_dict().items():
        new = key
        for mine, theirs in (
            ("patch_embed.", "local_encoder.proj."),
            ("cls_token", "extra_tokens"),
            ("embed_norm.", "pre_norm."),
        ):
            if new.startswith(mine):
                new = theirs + new[len(mine) :]
        if key == "pos_embed":
            new = "fixed_positional_encoder.positions"
            value = sincos_pos_embed_2d(c.embed_dim, (max_length, c.grid[1])).unsqueeze(0)
        state["model." + new] = value.detach().cpu().contiguous()
    if finetune_classes:
        state["model.fc_norm.weight"] = torch.ones(c.embed_dim)
        state["model.fc_norm.bias"] = torch.zeros(c.embed_dim)
        state["model.head.weight"] = torch.zeros(finetune_classes, c.embed_dim)
        state["model.head.bias"] = torch.zeros(finetune_classes)
    save_file(state, str(folder / "model.safetensors"))
    hf_config = {
        "model_type": "eat",
        "architectures": ["EATModel"],
        "embed_dim": c.embed_dim,
        "depth": c.depth,
        "num_heads": c.num_heads,
        "patch_size": c.patch_size,
        "stride": c.patch_size,
        "in_chans": 1,
        "mel_bins": c.mel_bins,
        "max_length": max_length,
        "mlp_ratio": c.mlp_ratio,
        "qkv_bias": True,
        "layer_norm_first": False,
        "norm_eps": c.norm_eps,
        "model_variant": "finetune" if finetune_classes else "pretrain",
        "num_classes": finetune_classes or 527,
    }
    (folder / "config.json").write_text(json.dumps(hf_config, indent=2))
    return folder


def eat_config_dict(config: EATConfig) -> dict[str, Any]:
    """Plain dict of an ``EATConfig`` (for cache keys and logs)."""
    return asdict(config)
