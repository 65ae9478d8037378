"""Tests of asd_utils.methods.anopatch: attentive statistics pooling, the model, fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from asd_utils.methods.anopatch import AnoPatchModel, AttentiveStatsPool, embed_paths, finetune


class _FakeBackbone(nn.Module):
    """Frames the wave into 16-sample patches, a linear map per patch; optional CLS token."""

    def __init__(self, dim: int = 8, cls: bool = False):
        super().__init__()
        self.dim = dim
        self.has_cls_token = cls
        self.proj = nn.Linear(16, dim)
        self.block = nn.Linear(dim, dim)

    def hidden_states(self, waves: torch.Tensor) -> list[torch.Tensor]:
        b, s = waves.shape
        x = self.proj(waves[:, : s // 16 * 16].reshape(b, s // 16, 16))
        if self.has_cls_token:
            x = torch.cat([torch.full((b, 1, self.dim), 100.0), x], dim=1)
        return [x, torch.tanh(self.block(x))]


def _uniform_pool(dim: int, global_context: bool = True) -> AttentiveStatsPool:
    pool = AttentiveStatsPool(dim, attention_dim=4, global_context=global_context)
    with torch.no_grad():
        pool.attention[2].weight.zero_()
        pool.attention[2].bias.zero_()
    return pool


def test_asp_uniform_attention_gives_mean_and_std():
    tokens = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 6.0]]])  # (1, 4, 2)
    for gc in (True, False):
        out = _uniform_pool(2, gc)(tokens).detach()
        assert out.shape == (1, 4)
        np.testing.assert_allclose(out[0, :2].numpy(), [4.0, 3.0], atol=1e-6)
        np.testing.assert_allclose(out[0, 2:].numpy(), [np.sqrt(5.0), np.sqrt(5.0)], atol=1e-5)


def test_asp_weights_hand_case_and_normalisation():
    # no global context, attention = identity on a 1-channel token: logits e_t = x_t exactly
    pool = AttentiveStatsPool(1, attention_dim=1, global_context=False)
    with torch.no_grad():
        pool.attention[0].weight.fill_(1.0)
        pool.attention[0].bias.zero_()
        pool.attention[2].weight.fill_(1.0)
        pool.attention[2].bias.zero_()
    x = torch.tensor([[[0.0], [1.0], [2.0]]])
    e = torch.tanh(x)  # logits after tanh and the identity output layer
    a = torch.softmax(e, dim=1)
    mu = (a * x).sum(1)
    std = ((a * x * x).sum(1) - mu**2).sqrt()
    out = pool(x)
    np.testing.assert_allclose(out.detach().numpy(), torch.cat([mu, std], -1).numpy(), rtol=1e-6)
    # weights sum to one over tokens for every channel, on random input
    pool = AttentiveStatsPool(6, attention_dim=5)
    w = pool.weights(torch.randn(3, 7, 6))
    np.testing.assert_allclose(w.sum(dim=1).detach().numpy(), np.ones((3, 6)), atol=1e-6)
    with pytest.raises(ValueError):
        pool(torch.randn(3, 7, 5))


def test_asp_is_permutation_invariant_and_focuses_on_large_logits():
    torch.manual_seed(0)
    pool = AttentiveStatsPool(4, attention_dim=8)
    x = torch.randn(2, 9, 4)
    perm = torch.randperm(9)
    np.testing.assert_allclose(pool(x).detach().numpy(), pool(x[:, perm]).detach().numpy(), atol=1e-5)
    # channel-wise attention with a huge bias towards one token's value -> mean ~ that token
    pool = AttentiveStatsPool(1, attention_dim=1, global_context=False)
    with torch.no_grad():
        pool.attention[0].weight.fill_(10.0)
        pool.attention[0].bias.zero_()
        pool.attention[2].weight.fill_(50.0)
        pool.attention[2].bias.zero_()
    x = torch.tensor([[[-1.0], [-1.0], [1.0]]])
    assert pool(x)[0, 0].item() == pytest.approx(1.0, abs=1e-4)


def test_anopatch_model_drops_cls_and_projects():
    torch.manual_seed(0)
    model = AnoPatchModel(_FakeBackbone(8, cls=True), emb_dim=5, attention_dim=4)
    waves = torch.randn(3, 160)
    assert model.tokens(waves).shape == (3, 10, 8)  # CLS dropped
    assert torch.all(model.tokens(waves).abs() < 1.0)  # the tanh layer, not the 100-valued CLS
    model.eval()
    assert model(waves).shape == (3, 5)


def test_finetune_and_embed_on_wav_files(tmp_path):
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(8):
        freq = 300.0 if i % 2 == 0 else 1200.0
        t = np.arange(800) / 16000.0
        wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)
        path = tmp_path / f"clip_{i}.wav"
        sf.write(path, wave.astype(np.float32), 16000)
        paths.append(str(path))
        labels.append(i % 2)
    from asd_utils.losses import ArcFace

    torch.manual_seed(0)
    model = AnoPatchModel(_FakeBackbone(8), emb_dim=6, attention_dim=4)
    loss = ArcFace(2, 6, scale=10.0, margin=0.1)
    history = finetune(model, loss, paths, labels, clip_samples=640, epochs=2, batch_size=4,
                       optimizer={"name": "adam", "lr": 1e-2, "backbone_lr": 1e-3}, progress=False,
                       checkpoint_dir=tmp_path / "ckpt")
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    assert (tmp_path / "ckpt" / "last.pt").exists()
    emb = embed_paths(model, paths, clip_samples=640, batch_size=3, progress=False)
    assert emb.shape == (8, 6) and np.isfinite(emb).all()
    # resuming a finished run trains nothing more and keeps the weights
    before = emb.copy()
    finetune(model, loss, paths, labels, clip_samples=640, epochs=2, batch_size=4,
             optimizer={"name": "adam", "lr": 1e-2, "backbone_lr": 1e-3}, progress=False,
             checkpoint_dir=tmp_path / "ckpt")
    np.testing.assert_allclose(embed_paths(model, paths, clip_samples=640, progress=False), before, atol=1e-6)
