"""LoRA via peft, partial freezing and full fine-tuning switches."""

from __future__ import annotations

import pytest
import torch

from asd_utils.backbones import load_backbone
from asd_utils.backbones.lora import (
    apply_lora,
    configure_finetuning,
    freeze_below,
    lora_parameters,
    merge_lora,
    trainable_parameter_count,
)


def _waves(seconds=1.0):
    return 0.1 * torch.randn(2, int(16000 * seconds), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["eat", "beats", "hubert"])
def test_only_adapters_train_and_merge_is_exact(name):
    torch.manual_seed(0)
    model = load_backbone(name, size="tiny")
    apply_lora(model, rank=4, alpha=8, dropout=0.0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    targets = {"eat": ["qkv"], "beats": ["q_proj", "v_proj"], "hubert": ["q_proj", "v_proj"]}[name]
    assert all(any(f".{t}.lora_" in n for n in trainable) for t in targets)
    assert trainable_parameter_count(model) == sum(p.numel() for p in lora_parameters(model))

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    waves = _waves()
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    loss = model.hidden_states(waves)[-1].pow(2).mean()
    loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable
    assert any("lora_B" in n for n in changed)  # B leaves zero, so the adapter now matters

    model.eval()
    with torch.inference_mode():
        unmerged = model.hidden_states(waves)
    merge_lora(model)
    assert not any("lora" in n for n, _ in model.named_parameters())
    with torch.inference_mode():
        merged = model.hidden_states(waves)
    for a, b in zip(unmerged, merged):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_freeze_below_and_full_finetuning():
    model = load_backbone("eat", size="tiny")
    configure_finetuning(model, {"mode": "full"})
    assert all(p.requires_grad for p in model.parameters())
    freeze_below(model, 1)
    assert not model.patch_embed.weight.requires_grad and not model.cls_token.requires_grad
    assert not any(p.requires_grad for p in model.blocks[0].parameters())
    assert all(p.requires_grad for p in model.blocks[1].parameters())
    freeze_below(model, 2)
    assert trainable_parameter_count(model) == 0
    with pytest.raises(ValueError, match="0..2"):
        freeze_below(model, 3)


def test_configure_from_config_dict():
    model = load_backbone("hubert", size="tiny")
    configure_finetuning(model, {"mode": "lora", "rank": 2, "alpha": 4, "dropout": 0.1, "freeze_below": 1})
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("layers.1." in n and "lora_" in n for n in trainable)
    assert model.lora_config == {
        "rank": 2,
        "alpha": 4.0,
        "dropout": 0.1,
        "target_modules": ["q_proj", "v_proj"],
    }
    frozen = load_backbone("eat", size="tiny")
    configure_finetuning(frozen, {"mode": "frozen"})
    assert trainable_parameter_count(frozen) == 0


def test_bad_lora_arguments():
    model = load_backbone("eat", size="tiny")
    with pytest.raises(ValueError, match="no Linear layer named \\['q_proj'\\]"):
        apply_lora(model, 4, 8, 0.0, target_modules=["q_proj"])
    with pytest.raises(ValueError, match="rank"):
        apply_lora(model, 0, 8, 0.0)
    with pytest.raises(ValueError, match="mode"):
        configure_finetuning(model, {"mode": "partial"})
