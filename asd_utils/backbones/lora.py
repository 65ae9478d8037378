"""Fine-tuning switches for backbones: LoRA through ``peft``, partial freezing, full fine-tuning.

LoRA (Hu et al., 2022) adds ``W + (alpha / rank) * B A`` to chosen Linear layers, ``B`` zero at
the start so the adapted model first computes what the frozen one did. The adapters go on the
attention projections by default:

| backbone | default ``target_modules`` |
|----------|----------------------------|
| ``beats`` | ``q_proj``, ``v_proj`` |
| ``eat`` | ``qkv`` (the fused query/key/value Linear of each block) |
| ``hubert``, ``wav2vec2``, ``wavlm``, ``unispeech_sat`` | ``q_proj``, ``v_proj`` |

``apply_lora`` injects them in place (``peft.inject_adapter_in_model``), so the object stays a
``Backbone`` with its ``hidden_states``; only adapter weights keep ``requires_grad``.
``merge_lora`` folds them back into plain Linear layers (same outputs, no peft modules left).
``configure_finetuning(backbone, config)`` applies a config dict
(``{"mode": "frozen"|"lora"|"full", "rank", "alpha", "dropout", "target_modules", "freeze_below"}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

__all__ = [
    "DEFAULT_TARGETS",
    "apply_lora",
    "merge_lora",
    "freeze_below",
    "set_full_finetuning",
    "freeze_all",
    "configure_finetuning",
    "transformer_blocks",
    "trainable_parameter_count",
    "lora_parameters",
]

DEFAULT_TARGETS: dict[str, list[str]] = {
    "beats": ["q_proj", "v_proj"],
    "eat": ["qkv"],
    "hubert": ["q_proj", "v_proj"],
    "wav2vec2": ["q_proj", "v_proj"],
    "wavlm": ["q_proj", "v_proj"],
    "unispeech_sat": ["q_proj", "v_proj"],
}

FINETUNE_MODES = ("frozen", "lora", "full")


def _is_lora_param(name: str) -> bool:
    return "lora_" in name


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapter parameters (``lora_A`` / ``lora_B``) of ``model``."""
    return [p for n, p in model.named_parameters() if _is_lora_param(n)]


def trainable_parameter_count(model: nn.Module) -> int:
    """Number of scalars with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def freeze_all(model: nn.Module) -> nn.Module:
    """``requires_grad = False`` everywhere; returns ``model``."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def set_full_finetuning(model: nn.Module) -> nn.Module:
    """Full fine-tuning: every parameter trainable (fixed buffers stay buffers); returns ``model``."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def apply_lora(
    backbone: nn.Module,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    target_modules: Sequence[str] | None = None,
) -> nn.Module:
    """Inject LoRA adapters into ``backbone`` (in place) and freeze everything else.

    rank: adapter rank r (> 0). alpha: scaling numerator (``alpha / rank`` multiplies ``B A``).
    dropout: dropout on the adapter input. target_modules: Linear names to adapt (suffix match,
    e.g. ``["q_proj", "v_proj"]``); None picks ``DEFAULT_TARGETS[backbone.name]``.
    Returns the same object; afterwards only ``lora_A``/``lora_B`` weights require grad.
    """

    if int(rank) <= 0:
        raise ValueError(f"apply_lora: rank must be a positive integer, got {rank!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"apply_lora: dropout must be in [0, 1), got {dropout!r}")
    if target_modules is None:
        name = getattr(backbone, "name", "")
        if name not in DEFAULT_TARGETS:
            raise ValueError(
                f"apply_lora: no default target modules for backbone {name!r}; pass target_modules "
                f"(known defaults: {DEFAULT_TARGETS})"
            )
        target_modules = DEFAULT_TARGETS[name]
    targets = list(target_modules)
    linear_names = {n.rsplit(".", 1)[-1] for n, m in backbone.named_modules() if isinstance(m, nn.Linear)}
    unknown = [t for t in targets if t not in linear_names]
    if unknown:
        raise ValueError(
            f"apply_lora: {getattr(backbone, 'name', type(backbone).__name__)} has no Linear layer named "
            f"{unknown}; Linear names present: {sorted(linear_names)}"
        )
    config = LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=float(dropout),
                        target_modules=targets, bias="none")
    inject_adapter_in_model(config, backbone)
    for name, p in backbone.named_parameters():
        p.requires_grad_(_is_lora_param(name))
    backbone.lora_config = {"rank": int(rank), "alpha": float(alpha), "dropout": float(dropout),
                            "target_modules": targets}
    return backbone


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base Linear and remove the peft wrappers (in place).

    The merged model computes the same function (up to float rounding) with plain ``nn.Linear``
    layers; returns ``model``.
    """

    wrapped = [(name, module) for name, module in model.named_modules() if isinstance(module, LoraLayer)]
    for name, module in wrapped:
        module.merge()
        base = module.get_base_layer()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, base)
    if hasattr(model, "lora_config"):
        model.lora_merged = model.lora_config
        del model.lora_config
    return model


def transformer_blocks(backbone: nn.Module) -> nn.ModuleList:
    """The ModuleList of transformer blocks whose outputs are ``hidden_states[1:]``."""
    for path in ("blocks", "encoder.layers", "model.encoder.layers"):
        try:
            blocks = backbone.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(blocks, nn.ModuleList):
            return blocks
    raise ValueError(f"transformer_blocks: cannot find the blocks of {type(backbone).__name__}")


def freeze_below(backbone: nn.Module, layer: int) -> nn.Module:
    """Freeze everything that computes ``hidden_states[0 .. layer]``.

    That is the front end and the patch / feature encoder (every parameter outside the
    transformer blocks) and blocks ``1 .. layer``; blocks ``layer + 1 .. L`` keep their current
    ``requires_grad`` (so combine with ``apply_lora`` or ``set_full_finetuning`` first).
    ``layer = 0`` freezes the front end only; ``layer = L`` freezes the whole encoder.
    """
    blocks = transformer_blocks(backbone)
    n = len(blocks)
    if not 0 <= int(layer) <= n:
        raise ValueError(f"freeze_below: layer must be in 0..{n}, got {layer!r}")
    in_blocks = {id(p) for p in blocks.parameters()}
    for p in backbone.parameters():
        if id(p) not in in_blocks:
            p.requires_grad_(False)
    for block in list(blocks)[: int(layer)]:
        for p in block.parameters():
            p.requires_grad_(False)
    return backbone


def configure_finetuning(backbone: nn.Module, config: Mapping[str, Any] | None) -> nn.Module:
    """Apply a fine-tuning config dict (from ``asd_utils/configs``) to ``backbone`` in place.

    Keys: ``mode`` (``"frozen"``, ``"lora"``, ``"full"``; default ``"lora"`` when ``rank`` is given,
    else ``"frozen"``), ``rank``/``r``, ``alpha``/``lora_alpha``, ``dropout``/``lora_dropout``,
    ``target_modules`` (LoRA), ``freeze_below`` (int, optional; see ``freeze_below``).
    """
    config = dict(config or {})
    rank = config.get("rank", config.get("r"))
    mode = config.get("mode", "lora" if rank else "frozen")
    if mode not in FINETUNE_MODES:
        raise ValueError(f"configure_finetuning: mode must be one of {FINETUNE_MODES}, got {mode!r}")
    if mode == "frozen":
        freeze_all(backbone)
    elif mode == "full":
        set_full_finetuning(backbone)
    else:
        if rank is None:
            raise ValueError("configure_finetuning: mode 'lora' needs 'rank'")
        apply_lora(
            backbone,
            rank=int(rank),
            alpha=float(config.get("alpha", config.get("lora_alpha", 2 * int(rank)))),
            dropout=float(config.get("dropout", config.get("lora_dropout", 0.0))),
            target_modules=config.get("target_modules"),
        )
    if config.get("freeze_below") is not None:
        freeze_below(backbone, int(config["freeze_below"]))
    return backbone

