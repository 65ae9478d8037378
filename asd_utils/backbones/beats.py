"""BEATs (Chen et al., "BEATs: Audio Pre-Training with Acoustic Tokenizers", ICML 2023), written
for this project and able to load the official checkpoints as published.

Longer than 500 lines: the whole BEATs model and its checkpoint loader, readable in one sitting
in forward order, as the official code is.

The model, in the order the forward pass runs:

1. front end: ``wave * 2**15`` -> Kaldi fbank (128 bins, 25 ms / 10 ms, povey window; see
   :mod:`asd_utils.features.fbank`) -> ``(fbank - 15.41663) / (2 * 6.55582)``;
2. patch embedding: a 16 x 16 convolution with stride 16 over the (time, mel) image, giving
   ``frames // 16`` time patches x 8 frequency patches, flattened **time-major** (token
   ``t * 8 + f``), then LayerNorm over the ``embed_dim`` (512) channels and a linear projection
   ``post_extract_proj`` to ``encoder_embed_dim`` (768);
3. encoder input: a grouped convolutional position embedding (kernel 128, 16 groups, weight norm
   over the kernel axis, the last output frame dropped so the length is kept, GELU) added to the
   tokens, then LayerNorm (post-LN model, ``layer_norm_first=False``): this is hidden state 0;
4. 12 post-LN Transformer layers with DeepNorm: ``x = LN(alpha * x + attention(x))``,
   ``x = LN(alpha * x + FFN(x))``, ``alpha = (2 * layers) ** 0.25``, FFN 3072 with GELU;
5. attention adds a gated relative position bias: T5-style log buckets (320 buckets,
   max distance 800) looked up in an embedding table that layer 0 owns and all layers share, the
   bias computed once (layer 0) and reused; per layer and head it is scaled by a gate computed
   from the un-scaled query: ``g = sigmoid(sum4(grep_linear(q)))`` split into ``(a, b)``,
   ``gate = a * (b * grep_a - 1) + 2``;
6. fine-tuned checkpoints add ``predictor``: a linear layer per token, averaged over tokens,
   then a sigmoid (527 AudioSet classes).

Checkpoints: ``torch.load(path, weights_only=True)`` gives ``{"cfg": dict, "model": state dict}``
(plus ``"label_dict"`` for the AS2M fine-tuned ones). The state-dict keys are the official ones,
including the weight-norm parametrisation ``encoder.pos_conv.0.weight_g`` / ``weight_v``. Loading is
strict: every key must match (see :func:`build_beats`).

Batches must hold clips of equal length: there is no padding mask (the official padding mask only
matters for zero-padded batches of unequal clips, which this project never builds).

``tests/test_beats.py`` checks every hidden state against the official implementation run on a
small random checkpoint (``tests/fixtures/beats_tiny_official.*``, made by
``scripts/make_beats_golden.py``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from asd_utils.backbones.base import Backbone
from asd_utils.backbones.errors import CheckpointError, check_state_dict_keys, checkpoint_error
from asd_utils.features.fbank import beats_fbank
from asd_utils.storage.atomic import atomic_path
from asd_utils.storage.keys import file_sha256

__all__ = [
    "BEATS_SIZES",
    "BEATs",
    "BEATsConfig",
    "CheckpointError",
    "FBANK_MEAN",
    "FBANK_STD",
    "build_beats",
    "save_beats_checkpoint",
]

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582


@dataclasses.dataclass
class BEATsConfig:
    """The official ``BEATsConfig`` fields. Defaults are those of the published base models
    (BEATs_iter3, iter3+, AS2M fine-tuned) except ``finetuned_model`` (True in the fine-tuned one)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_wise_gradient_decay_ratio: float = 1.0
    layer_norm_first: bool = False
    deep_norm: bool = True
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = False
    predictor_dropout: float = 0.1
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> BEATsConfig:
        """Build from a checkpoint's ``cfg`` dict; unknown fields are ignored with a warning (the
        official code ignores them too: it only reads the fields above)."""
        names = {f.name for f in dataclasses.fields(cls)}
        # "compendium_standin": the provenance marker of a stand-in pretrained by the compendium
        # (asd_utils.backbones.provenance); read by load_backbone, not an architecture field
        unknown = sorted(set(cfg) - names - {"compendium_standin"})
        if unknown:
            warnings.warn(f"BEATsConfig: ignoring unknown cfg fields {unknown}", stacklevel=2)
        return cls(**{k: v for k, v in cfg.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Architecture presets; "tiny" is a CPU/test stand-in with the same structure.
_ARCH_FIELDS = (
    "embed_dim",
    "encoder_layers",
    "encoder_embed_dim",
    "encoder_ffn_embed_dim",
    "encoder_attention_heads",
)
BEATS_SIZES: dict[str, dict[str, Any]] = {
    "base": dict(
        embed_dim=512,
        encoder_layers=12,
        encoder_embed_dim=768,
        encoder_ffn_embed_dim=3072,
        encoder_attention_heads=12,
    ),
    "tiny": dict(
        embed_dim=32,
        encoder_layers=2,
        encoder_embed_dim=64,
        encoder_ffn_embed_dim=128,
        encoder_attention_heads=4,
        conv_pos=32,
        conv_pos_groups=16,
    ),
}


def _size_of(cfg: BEATsConfig) -> str:
    """'base' or 'tiny' when the architecture matches a preset, else 'custom'."""
    for size, preset in BEATS_SIZES.items():
        if all(getattr(cfg, f) == preset[f] for f in _ARCH_FIELDS):
            return size
    return "custom"


class _GradMultiply(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``scale`` (layer-wise gradient decay)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU evaluated in float32, as the official activation."""
    return F.gelu(x.float()).type_as(x)


class WeightNormConv1d(nn.Module):
    """Conv1d whose kernel is ``weight_g * weight_v / ||weight_v||``, the norm taken over the
    output and input channel axes separately for every kernel position (weight norm with
    ``dim=2``). Parameters keep the official names ``weight_g`` (1, 1, K) and ``weight_v``
    (C_out, C_in / groups, K)."""

    def __init__(self, channels: int, kernel_size: int, groups: int):
        super().__init__()
        self.padding = kernel_size // 2
        self.groups = groups
        weight = torch.empty(channels, channels // groups, kernel_size)
        nn.init.normal_(weight, mean=0.0, std=math.sqrt(4.0 / (kernel_size * channels)))
        self.weight_v = nn.Parameter(weight)
        self.weight_g = nn.Parameter(self._norm(weight).detach().clone())
        self.bias = nn.Parameter(torch.zeros(channels))

    @staticmethod
    def _norm(v: torch.Tensor) -> torch.Tensor:
        return v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / self._norm(self.weight_v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, channels, tokens) -> (batch, channels, tokens + 1 for an even kernel)."""
        return F.conv1d(x, self.weight, self.bias, padding=self.padding, groups=self.groups)


class _TrimLast(nn.Module):
    """Drops the extra output frame of an even-kernel 'same' convolution."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : x.shape[-1] - self.remove]


def relative_position_buckets(n_query: int, n_key: int, num_buckets: int, max_distance: int, device=None):
    """(n_query, n_key) int64 bucket of ``key - query``: bidirectional T5 buckets.

    Half the buckets for positive offsets; in each half, offsets below ``half / 2`` get their own
    bucket, larger ones share logarithmically spaced buckets up to ``max_distance``.
    """
    offset = torch.arange(n_key, device=device)[None, :] - torch.arange(n_query, device=device)[:, None]
    half = num_buckets // 2
    bucket = (offset > 0).long() * half
    distance = offset.abs()
    exact = half // 2
    far = (
        exact + (torch.log(distance.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    )
    far = torch.clamp(far, max=half - 1)
    return bucket + torch.where(distance < exact, distance, far)


class BEATsAttention(nn.Module):
    """Multi-head self-attention with BEATs' gated relative position bias.

    ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` are ``nn.Linear`` (LoRA attaches to them).
    """

    def __init__(self, cfg: BEATsConfig, has_relative_bias: bool):
        super().__init__()
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        if dim % heads:
            raise ValueError(f"BEATs: encoder_embed_dim {dim} is not divisible by {heads} heads")
        self.num_heads = heads
        self.head_dim = dim // heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = cfg.attention_dropout
        self.num_buckets = cfg.num_buckets
        self.max_distance = cfg.max_distance
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, heads)
        self.gru_rel_pos = cfg.gru_rel_pos
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def position_bias(self, n_tokens: int) -> torch.Tensor:
        """(heads, n_tokens, n_tokens) bias from the shared bucket table."""
        weight = self.relative_attention_bias.weight
        buckets = relative_position_buckets(
            n_tokens, n_tokens, self.num_buckets, self.max_distance, weight.device
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, tokens, dim); bias: (heads, tokens, tokens) or None -> (batch, tokens, dim)."""
        b, n, d = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, hd)
        k = self.k_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        mask = None
        if bias is not None:
            mask = bias.unsqueeze(0)  # (1, H, N, N)
            if self.gru_rel_pos:
                # The gate sees the query before the 1/sqrt(head_dim) scaling.
                gates = torch.sigmoid(self.grep_linear(q).view(b, self.num_heads, n, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)  # (B, H, N, 1) each
                mask = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * mask
            mask = mask.to(q.dtype)
        # softmax(q k^T / sqrt(hd) + bias) v. The official code subtracts the row maximum before
        # adding the bias (fp16 safety); softmax is invariant to that shift.
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
            scale=self.scaling,
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class BEATsLayer(nn.Module):
    """One Transformer layer (post-LN with DeepNorm residual scaling, or pre-LN)."""

    def __init__(self, cfg: BEATsConfig, has_relative_bias: bool):
        super().__init__()
        dim = cfg.encoder_embed_dim
        if cfg.activation_fn != "gelu":
            raise ValueError(
                f"BEATs: only activation_fn='gelu' is implemented, cfg has {cfg.activation_fn!r}"
            )
        self.self_attn = BEATsAttention(cfg, has_relative_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.activation_dropout = nn.Dropout(cfg.activation_dropout)
        self.layer_norm_first = cfg.layer_norm_first
        self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.activation_dropout(_gelu(self.fc1(x)))))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), bias))
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(self.alpha * x + self.dropout(self.self_attn(x, bias)))
        return self.final_layer_norm(self.alpha * x + self._ffn(x))


class BEATsEncoder(nn.Module):
    """Convolutional position embedding, LayerNorm and the Transformer layers."""

    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.pos_conv = nn.Sequential(
            WeightNormConv1d(dim, cfg.conv_pos, cfg.conv_pos_groups), _TrimLast(cfg.conv_pos), nn.GELU()
        )
        rel = cfg.relative_position_embedding
        self.layers = nn.ModuleList(
            [BEATsLayer(cfg, has_relative_bias=rel) for _ in range(cfg.encoder_layers)]
        )
        if rel:  # one bucket table, owned by layer 0, shared by every layer (and listed under each)
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg.layer_norm_first
        self.relative_position_embedding = rel
        self.dropout = nn.Dropout(cfg.dropout)
        self.layerdrop = cfg.encoder_layerdrop
        self.gradient_decay = cfg.layer_wise_gradient_decay_ratio

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (batch, tokens, dim) -> [input, layer 1, ..., layer L], each (batch, tokens, dim)."""
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        states = [x]
        bias = (
            self.layers[0].self_attn.position_bias(x.shape[1]) if self.relative_position_embedding else None
        )
        for layer in self.layers:
            if self.gradient_decay != 1.0:
                x = _GradMultiply.apply(x, self.gradient_decay)
            if not self.training or self.layerdrop == 0.0 or float(torch.rand(())) > self.layerdrop:
                x = layer(x, bias)
            states.append(x)
        return states


class BEATs(Backbone):
    """BEATs encoder exposing all hidden states (see the module docstring for the architecture).

    ``hidden_states(waves)`` -> ``[input, layer 1, ..., layer L]``, each (batch, tokens, dim) with
    ``tokens = (frames // 16) * 8``, ``frames = 1 + (samples - 400) // 160`` (496 for 10 s).
    """

    name = "beats"

    def __init__(self, cfg: BEATsConfig | None = None, *, size: str | None = None):
        super().__init__()
        cfg = cfg or BEATsConfig()
        self.cfg = cfg
        self.size = size or _size_of(cfg)
        self.num_layers = cfg.encoder_layers
        self.dim = cfg.encoder_embed_dim
        self.pretrained = False
        self.checkpoint_sha256 = None
        self.label_dict: dict | None = None
        patch = cfg.input_patch_size
        self.patch_embedding = nn.Conv2d(
            1, cfg.embed_dim, kernel_size=patch, stride=patch, bias=cfg.conv_bias
        )
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = (
            nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
            if cfg.embed_dim != cfg.encoder_embed_dim
            else None
        )
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.encoder = BEATsEncoder(cfg)
        if cfg.finetuned_model:
            self.predictor_dropout = nn.Dropout(cfg.predictor_dropout)
            self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)
        else:
            self.predictor = None
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Random initialisation in the spirit of the original (BERT-style normal(0, 0.02) linears,
        DeepNorm's down-scaled value/output/FFN projections). Only used without a checkpoint."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.xavier_normal_(module.weight)
        if self.cfg.deep_norm:
            beta = math.pow(8 * self.cfg.encoder_layers, -0.25)
            for layer in self.encoder.layers:
                attn = layer.self_attn
                nn.init.xavier_normal_(attn.q_proj.weight)
                nn.init.xavier_normal_(attn.k_proj.weight)
                for lin in (attn.v_proj, attn.out_proj, layer.fc1, layer.fc2):
                    nn.init.xavier_normal_(lin.weight, gain=beta)

    # -- forward ---------------------------------------------------------------------------------
    def fbank(self, waves: torch.Tensor) -> torch.Tensor:
        """waves: (batch, samples) float in [-1, 1] at 16 kHz -> normalised fbank (batch, frames, 128)."""
        if waves.dim() != 2:
            raise ValueError(f"BEATs: waves must be (batch, samples), got shape {tuple(waves.shape)}")
        return (beats_fbank(waves.float()) - FBANK_MEAN) / (2.0 * FBANK_STD)

    def patch_tokens(self, waves: torch.Tensor) -> torch.Tensor:
        """waves (batch, samples) -> projected patch tokens (batch, tokens, encoder_embed_dim),
        time-major (token = t * 8 + f), before the encoder."""
        fbank = self.fbank(waves)
        patch = self.cfg.input_patch_size
        if fbank.shape[1] < patch:
            raise ValueError(
                f"BEATs: clips of {waves.shape[1]} samples give {fbank.shape[1]} fbank frames, "
                f"fewer than one {patch}-frame patch "
                f"(need at least {400 + 160 * (patch - 1)} samples at 16 kHz)"
            )
        features = self.patch_embedding(fbank.unsqueeze(1))  # (B, E, frames // 16, 8)
        features = features.flatten(2).transpose(1, 2)  # (B, T' * 8, E), time-major
        features = self.layer_norm(features)
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        return self.dropout_input(features)

    def hidden_states(self, waves: torch.Tensor) -> list[torch.Tensor]:
        """waves: (batch, samples) float32 at 16 kHz, all the same length (no padding mask) ->
        ``num_layers + 1`` tensors (batch, tokens, dim): the encoder input after the position
        convolution and LayerNorm, then every layer's output."""
        return self.encoder(self.patch_tokens(waves))

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """waves (batch, samples) -> encoder output (batch, tokens, dim): the last hidden state
        (pre-LN configurations, none published, add the final LayerNorm as the official code)."""
        x = self.hidden_states(waves)[-1]
        return self.encoder.layer_norm(x) if self.cfg.layer_norm_first else x

    def predict(self, waves: torch.Tensor) -> torch.Tensor:
        """Fine-tuned models only: clip-level class probabilities (batch, predictor_class), the
        token-averaged sigmoid logits of the official model (keys in ``label_dict``)."""
        if self.predictor is None:
            raise ValueError("BEATs.predict: this model has no predictor head (not a fine-tuned checkpoint)")
        logits = self.predictor(self.predictor_dropout(self.forward(waves)))
        return torch.sigmoid(logits.mean(dim=1))

    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict in the official key layout (plain tensors, CPU)."""
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}


# -- checkpoints ---------------------------------------------------------------------------------
def save_beats_checkpoint(model: BEATs, path: str | Path) -> Path:
    """Write ``{"cfg": dict, "model": state dict[, "label_dict": ...]}``, the official format."""

    payload: dict[str, Any] = {"cfg": model.cfg.to_dict(), "model": model.official_state_dict()}
    if model.label_dict is not None:
        payload["label_dict"] = model.label_dict
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _read_checkpoint(path: Path) -> tuple[BEATsConfig, dict[str, torch.Tensor], dict | None]:
    if not path.is_file():
        raise checkpoint_error("beats", path, "file not found" if not path.exists() else "not a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, truncated, or pickles arbitrary objects
        raise checkpoint_error(
            "beats", path, f"cannot be read with torch.load(weights_only=True): {exc}"
        ) from exc
    if not isinstance(payload, dict):
        raise checkpoint_error(
            "beats", path, f"expected a dict with 'cfg' and 'model', found {type(payload).__name__}"
        )
    missing = [key for key in ("cfg", "model") if key not in payload]
    if missing:
        raise checkpoint_error(
            "beats",
            path,
            f"expected a dict with 'cfg' and 'model', missing {missing} (found keys {sorted(payload)})",
        )
    cfg, state = payload["cfg"], payload["model"]
    if not isinstance(cfg, dict):
        raise checkpoint_error(
            "beats", path, f"'cfg' should be a dict of BEATsConfig fields, found {type(cfg).__name__}"
        )
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise checkpoint_error("beats", path, "'model' should be a state dict of tensors")
    try:
        config = BEATsConfig.from_dict(cfg)
    except TypeError as exc:
        raise checkpoint_error("beats", path, f"bad 'cfg': {exc}") from exc
    if "predictor.weight" in state and not config.finetuned_model:
        # A predictor head in the weights is kept even when cfg does not say so.
        config.finetuned_model = True
    if "predictor.weight" in state:
        config.predictor_class = int(state["predictor.weight"].shape[0])
    label_dict = payload.get("label_dict")
    return config, state, label_dict if isinstance(label_dict, dict) else None


def build_beats(
    checkpoint: str | Path | None = None, size: str = "base", device: str | torch.device = "cpu"
) -> BEATs:
    """BEATs from an official checkpoint, or randomly initialised.

    checkpoint: path to an official ``.pt`` file (BEATs_iter3.pt, BEATs_iter3_plus_AS2M.pt,
        BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt*.pt) or one written by
        :func:`save_beats_checkpoint`. Loaded with ``weights_only=True`` on CPU; the architecture
        comes from its ``cfg``; every state-dict key must match (strict). Any problem raises
        :class:`CheckpointError` naming the file; there is never a silent random fallback.
    size: ``"base"`` or ``"tiny"``. Without a checkpoint, the size of the random model. With one,
        a check: a checkpoint whose architecture is a different preset raises ``CheckpointError``
        (a checkpoint matching neither preset is accepted and reports size ``"custom"``).
    device: where the model is moved. The model is returned in eval mode.
    """
    if size not in BEATS_SIZES:
        raise ValueError(f"build_beats: size must be one of {sorted(BEATS_SIZES)}, got {size!r}")
    if checkpoint is None:
        cfg = dataclasses.replace(BEATsConfig(), **BEATS_SIZES[size])
        model = BEATs(cfg, size=size)
        return model.to(device).eval()


    path = Path(checkpoint).expanduser()
    cfg, state, label_dict = _read_checkpoint(path)
    found_size = _size_of(cfg)
    if found_size != "custom" and found_size != size:
        raise checkpoint_error(
            "beats",
            path,
            f"size={size!r} was requested but the checkpoint's cfg describes a {found_size!r} model "
            f"({', '.join(f'{f}={getattr(cfg, f)}' for f in _ARCH_FIELDS)})",
        )
    try:
        model = BEATs(cfg, size=found_size)
    except (ValueError, TypeError) as exc:
        raise checkpoint_error(
            "beats", path, f"cfg does not describe a buildable BEATs model: {exc}"
        ) from exc
    check_state_dict_keys("beats", path, set(model.state_dict()), set(state))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shapes disagree with cfg
        raise checkpoint_error(
            "beats", path, f"weights do not fit the model built from its cfg: {exc}"
        ) from exc
    model.pretrained = True
    model.checkpoint_sha256 = file_sha256(path)
    model.label_dict = label_dict
    return model.to(device).eval()
