"""Tests of asd_utils.methods.finetune (pretrained backbone + mean pooling + classification head)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from asd_utils.backbones import CheckpointError
from asd_utils.backbones.base import Backbone
from asd_utils.methods import finetune as ft
from asd_utils.training.losses import SubClusterAdaCos


class ToyBackbone(Backbone):
    """Framed waveform -> linear -> GELU -> linear: (B, T) -> [input, layer 1, layer 2]."""

    name, size, num_layers, dim = "toy", "tiny", 2, 8

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(40, 8)
        self.layer1 = nn.Linear(8, 8)
        self.layer2 = nn.Linear(8, 8)
        self.drop = nn.Dropout(0.1)

    def hidden_states(self, waves):
        frames = waves.reshape(waves.shape[0], -1, 40)
        h0 = self.proj(frames)
        h1 = F.gelu(self.layer1(self.drop(h0)))
        return [h0, h1, self.layer2(h1)]


def test_linear_head_is_softmax_cross_entropy():
    torch.manual_seed(0)
    head = ft.LinearHead(4, 8)
    x, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(head(x, y), F.cross_entropy(head.logits(x), y))
    soft = F.one_hot(y, 4).float() * 0.5 + F.one_hot(torch.roll(y, 1), 4).float() * 0.5
    expected = 0.5 * F.cross_entropy(head.logits(x), y) + 0.5 * F.cross_entropy(head.logits(x), torch.roll(y, 1))
    assert torch.allclose(head(x, soft), expected)
    with pytest.raises(ValueError):
        ft.LinearHead(1, 8)


def test_build_head():
    assert isinstance(ft.build_head("linear", 3, 8), ft.LinearHead)
    head = ft.build_head("subcluster_adacos", 3, 8, n_subclusters=2)
    assert isinstance(head, SubClusterAdaCos) and head.n_classes == 3 and head.n_subclusters == 2
    with pytest.raises(ValueError, match="unknown head"):
        ft.build_head("arc", 3, 8)


def test_holdout_split_is_stratified_and_deterministic():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 3 + [3])
    fit, held = ft.holdout_split(labels, 0.1, seed=0)
    assert len(np.intersect1d(fit, held)) == 0 and len(fit) + len(held) == len(labels)
    assert np.bincount(labels[held], minlength=4).tolist() == [2, 1, 0, 0]
    assert set(labels[fit]) == {0, 1, 2, 3}  # every class is still trained on
    again, held2 = ft.holdout_split(labels, 0.1, seed=0)
    np.testing.assert_array_equal(held, held2)
    assert not np.array_equal(held, ft.holdout_split(labels, 0.1, seed=5)[1])
    assert len(ft.holdout_split(labels, 0.0)[1]) == 0
    with pytest.raises(ValueError):
        ft.holdout_split(labels, 1.0)


def test_finetune_model_pools_the_chosen_layer():
    bb = ToyBackbone().eval()
    waves = torch.randn(3, 400)
    model = ft.FineTuneModel(bb, layer=1)
    assert model(waves).shape == (3, 8)
    assert torch.allclose(model(waves), bb.hidden_states(waves)[1].mean(dim=1))


CFG = {"layer": -1, "head": "subcluster_adacos", "n_subclusters": 2, "optimizer": {"name": "adam", "lr": 1e-2},
       "batch_size": 4, "epochs": 2, "mixup_alpha": 1.0, "mixup_prob": 0.5}


def _run(seed: int, head: str = "subcluster_adacos"):
    rng = np.random.default_rng(0)
    waves = rng.normal(size=(12, 400)).astype(np.float32)
    labels = np.arange(12) % 3
    waves[labels == 1] *= 3.0
    fit, held = ft.holdout_split(labels, 0.25, seed=seed)
    torch.manual_seed(123)
    backbone = ToyBackbone()
    result = ft.finetune(backbone, waves[fit], labels[fit], 3, {**CFG, "head": head}, seed=seed,
                         heldout_waves=waves[held], heldout_labels=labels[held], progress=False)
    from asd_utils.methods.ioa import embed

    return result, embed(result.model, waves, batch_size=5)


@pytest.mark.parametrize("head", ["subcluster_adacos", "linear"])
def test_finetune_is_reproducible(head):
    r1, e1 = _run(0, head)
    r2, e2 = _run(0, head)
    assert len(r1.history) == 2 and r1.n_heldout == 3
    assert not r1.model.training and not r1.head.training
    # the held-out accuracy is that of the returned model + head on exactly the held-out clips
    labels = np.arange(12) % 3
    _, held = ft.holdout_split(labels, 0.25, seed=0)
    with torch.no_grad():
        predicted = r1.head.logits(torch.as_tensor(e1[held])).argmax(dim=1).numpy()
    assert r1.heldout_accuracy == pytest.approx(np.mean(predicted == labels[held]))
    np.testing.assert_array_equal(e1, e2)
    assert r1.heldout_accuracy == r2.heldout_accuracy
    _, e3 = _run(1, head)
    assert not np.array_equal(e1, e3)


def _two_tones(n=24, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    t = np.arange(400) / 16000
    waves = np.stack([0.5 * np.sin(2 * np.pi * (500 if y == 0 else 3000) * t + rng.uniform(0, 2 * np.pi))
                      for y in labels]) + 0.05 * rng.normal(size=(n, 400))
    return waves.astype(np.float32), labels


def test_finetune_learns_two_tones_held_out():
    """Two tones (500 Hz / 3 kHz): without learning (lr 0) the held-out accuracy is chance (0.5);
    ten epochs take it to 1.0 and the training loss falls below a third of the first epoch's."""
    waves, labels = _two_tones()
    fit, held = ft.holdout_split(labels, 0.25, seed=0)
    cfg = {**CFG, "head": "linear", "mixup_alpha": None, "batch_size": 6}
    results = {}
    for name, overrides in (("frozen", {"epochs": 1, "optimizer": {"name": "adam", "lr": 0.0}}),
                            ("trained", {"epochs": 10})):
        torch.manual_seed(0)
        results[name] = ft.finetune(ToyBackbone(), waves[fit], labels[fit], 2, {**cfg, **overrides}, seed=0,
                                    heldout_waves=waves[held], heldout_labels=labels[held], progress=False)
    assert results["trained"].n_heldout == len(held) == 6
    assert results["frozen"].heldout_accuracy == 0.5
    assert results["trained"].heldout_accuracy == 1.0
    history = results["trained"].history
    assert history[-1]["loss"] < history[0]["loss"] / 3


def test_finetune_a_tiny_stand_in_backbone():
    from asd_utils.backbones import load_backbone

    backbone = load_backbone("wav2vec2", size="tiny", seed=0)
    waves = np.random.default_rng(0).normal(scale=0.1, size=(6, 4000)).astype(np.float32)
    labels = np.array([0, 1, 0, 1, 0, 1])
    result = ft.finetune(backbone, waves, labels, 2, {**CFG, "epochs": 1, "batch_size": 3}, seed=0,
                         progress=False)
    assert np.isnan(result.heldout_accuracy) and result.n_heldout == 0
    with torch.inference_mode():
        assert result.model(torch.as_tensor(waves[:2])).shape == (2, backbone.dim)


def test_require_checkpoints_names_every_missing_one():
    ft.require_checkpoints({"hubert": "/x", "beats": "/y"}, ["hubert", "beats"])
    with pytest.raises(CheckpointError) as err:
        ft.require_checkpoints({"hubert": "/x", "beats": None, "wavlm": ""}, ["hubert", "beats", "wavlm"])
    assert "BEATS_CHECKPOINT" in str(err.value) and "WAVLM_CHECKPOINT" in str(err.value)
    assert "HUBERT" not in str(err.value)
